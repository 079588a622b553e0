/* Register-blocked micro-kernels of the 4-D layer's direct convolutions.
 *
 * Included by _conv2d_direct.pxi, and so compiled once per ISA build
 * (baseline, x86-64-v3, x86-64-v4): the vector width and the register
 * blocking below follow the instruction set the compiler targets.  They use
 * GCC/Clang vector extensions, so that the accumulators are named vector
 * registers rather than arrays the compiler may or may not keep in them.
 *
 * Two kernels, each a small matrix product whose operands are read in place
 * through offset tables (no im2col):
 *
 *  cc_fwd_*   a tile of RF output rows (filters) x NP vectors of output
 *             pixels.  ``out[r, p] = sum_k w[k, r] * src[koff[k] + p]``:
 *             w packed as [K][RF] (broadcast), src a flattened image read
 *             with unaligned vector loads.  Forward pass and dx.
 *  cc_dwf_*   RC rows of dw^T x NV vectors of filters, summed over pixels:
 *             ``acc[r, f] += sum_(i, j) x[roff[r] + i*xrs + j] * d[i, j, f]``
 *             with d the output gradient, filters last.  Only real output
 *             pixels are terms (no padding columns): NaN and Inf propagate
 *             as in the direct sum.
 *  cc_dwdot_* the depthwise dw: NT taps x pixel vectors, then lanes summed.
 *
 * Summation order is fixed by the arguments alone, never by threads.
 */
#ifndef CCONV_CONV2D_KERNELS_H
#define CCONV_CONV2D_KERNELS_H

#include <stddef.h>
#include <string.h>

#if defined(__AVX512F__)
#  define CC_VBYTES 64
#elif defined(__AVX2__)
#  define CC_VBYTES 32
#else
#  define CC_VBYTES 16
#endif

/* Register blocking.  AVX-512 has 32 vector registers: 8 x 3 accumulators
 * of the forward tile, 6 x 4 of dw's.  AVX2, SSE2 and NEON builds use 16
 * (NEON has 32, but keeps the 16-register blocking of the baseline). */
#if CC_VBYTES == 64
#  define CC_RF_MAX 8
#  define CC_NP_BIG 3
#  define CC_NP_SMALL 4
#  define CC_RC 6
#  define CC_NV 4
#else
#  define CC_RF_MAX 4
#  define CC_NP_BIG 3
#  define CC_NP_SMALL 4
#  define CC_RC 6
#  define CC_NV 2
#endif
#define CC_NT 9 /* taps per depthwise dw call: a 3x3 filter in one */
#define CC_PF 16 /* k-steps ahead that the forward tile prefetches its input */

typedef float cc_vf __attribute__((vector_size(CC_VBYTES)));
typedef double cc_vd __attribute__((vector_size(CC_VBYTES)));
#define CC_LANES_f32 ((ptrdiff_t)(CC_VBYTES / sizeof(float)))
#define CC_LANES_f64 ((ptrdiff_t)(CC_VBYTES / sizeof(double)))

#define CC_INLINE static inline __attribute__((always_inline))

/* Pixels of a forward tile with rf rows: NP_BIG vectors for wide blocks,
 * NP_SMALL for rf <= 2 (depthwise), whose loads are the bottleneck. */
#define CC_NP_OF(rf) ((rf) > 2 ? CC_NP_BIG : CC_NP_SMALL)

/* One instantiation of the forward tile: RF rows (capped at CC_RF_MAX) x NP vectors. */
#define CC_FWD_ONE(T, SUF, RF, NP)                                                    \
static void cc_fwd_##SUF##_##RF##_##NP(const T* w, const T* s, const ptrdiff_t* o,      \
                                       ptrdiff_t K, T* t)                              \
{ cc_fwd_body_##SUF(RF < CC_RF_MAX ? RF : CC_RF_MAX, NP, w, s, o, K, t); }

#define CC_DEFINE(T, V, SUF)                                                          \
CC_INLINE V cc_load_##SUF(const T* p) { V v; memcpy(&v, p, sizeof v); return v; }     \
CC_INLINE void cc_store_##SUF(T* p, V v) { memcpy(p, &v, sizeof v); }                 \
CC_INLINE V cc_bcast_##SUF(T s) {                                                     \
    V v;                                                                              \
    v = s - (V){0}; /* exact for every s (-0.0 too): one broadcast */             \
    return v;                                                                         \
}                                                                                     \
                                                                                      \
CC_INLINE void cc_fwd_body_##SUF(const int RF, const int NP, const T* restrict w,    \
                                  const T* restrict src, const ptrdiff_t* restrict koff, \
                                  ptrdiff_t K, T* restrict tmp) {                     \
    const ptrdiff_t L = CC_LANES_##SUF;                                               \
    V acc[CC_RF_MAX][CC_NP_SMALL];                                                    \
    for (int r = 0; r < RF; r++)                                                      \
        for (int p = 0; p < NP; p++) acc[r][p] = cc_bcast_##SUF(0);                   \
    for (ptrdiff_t k = 0; k < K; k++) {                                               \
        const T* s = src + koff[k];                                                   \
        /* The input a few k-steps on: taps jump between rows, planes and   \
         * channels, which the hardware prefetchers do not follow. */        \
        if (k + CC_PF < K) __builtin_prefetch(src + koff[k + CC_PF]);                 \
        V xv[CC_NP_SMALL];                                                            \
        for (int p = 0; p < NP; p++) xv[p] = cc_load_##SUF(s + p * L);                \
        for (int r = 0; r < RF; r++) {                                                \
            V wv = cc_bcast_##SUF(w[r]);                                              \
            for (int p = 0; p < NP; p++) acc[r][p] += wv * xv[p];                     \
        }                                                                             \
        w += RF;                                                                      \
    }                                                                                 \
    for (int r = 0; r < RF; r++)                                                      \
        for (int p = 0; p < NP; p++) cc_store_##SUF(tmp + (r * NP + p) * L, acc[r][p]); \
}                                                                                     \
                                                                                      \
CC_FWD_ONE(T, SUF, 8, 1) CC_FWD_ONE(T, SUF, 8, 2) CC_FWD_ONE(T, SUF, 8, 3)           \
CC_FWD_ONE(T, SUF, 4, 1) CC_FWD_ONE(T, SUF, 4, 2) CC_FWD_ONE(T, SUF, 4, 3)           \
CC_FWD_ONE(T, SUF, 2, 1) CC_FWD_ONE(T, SUF, 2, 2) CC_FWD_ONE(T, SUF, 2, 3)           \
CC_FWD_ONE(T, SUF, 2, 4) CC_FWD_ONE(T, SUF, 1, 1) CC_FWD_ONE(T, SUF, 1, 2)           \
CC_FWD_ONE(T, SUF, 1, 3) CC_FWD_ONE(T, SUF, 1, 4)                                    \
                                                                                      \
/* One tile: rf rows (a power of two up to CC_RF_MAX) x np vectors (up to     \
 * CC_NP_OF(rf)) of pixels into tmp, rows np vectors apart. */                      \
static inline void cc_fwd_##SUF(int rf, int np, const T* w, const T* src,            \
                                const ptrdiff_t* koff, ptrdiff_t K, T* tmp) {         \
    switch (rf * 8 + np) {                                                            \
    case 8 * 8 + 1: cc_fwd_##SUF##_8_1(w, src, koff, K, tmp); break;                  \
    case 8 * 8 + 2: cc_fwd_##SUF##_8_2(w, src, koff, K, tmp); break;                  \
    case 8 * 8 + 3: cc_fwd_##SUF##_8_3(w, src, koff, K, tmp); break;                  \
    case 4 * 8 + 1: cc_fwd_##SUF##_4_1(w, src, koff, K, tmp); break;                  \
    case 4 * 8 + 2: cc_fwd_##SUF##_4_2(w, src, koff, K, tmp); break;                  \
    case 4 * 8 + 3: cc_fwd_##SUF##_4_3(w, src, koff, K, tmp); break;                  \
    case 2 * 8 + 1: cc_fwd_##SUF##_2_1(w, src, koff, K, tmp); break;                  \
    case 2 * 8 + 2: cc_fwd_##SUF##_2_2(w, src, koff, K, tmp); break;                  \
    case 2 * 8 + 3: cc_fwd_##SUF##_2_3(w, src, koff, K, tmp); break;                  \
    case 2 * 8 + 4: cc_fwd_##SUF##_2_4(w, src, koff, K, tmp); break;                  \
    case 1 * 8 + 1: cc_fwd_##SUF##_1_1(w, src, koff, K, tmp); break;                  \
    case 1 * 8 + 2: cc_fwd_##SUF##_1_2(w, src, koff, K, tmp); break;                  \
    case 1 * 8 + 3: cc_fwd_##SUF##_1_3(w, src, koff, K, tmp); break;                  \
    default: cc_fwd_##SUF##_1_4(w, src, koff, K, tmp); break;                         \
    }                                                                                 \
}                                                                                     \
                                                                                      \
/* dw^T rows roff[0..RC) x CC_NV vectors of filters, summed over rows x ow     \
 * pixels into acc (RC x CC_NV*L, read and written). */                              \
static void cc_dwf_##SUF(const T* restrict x, const ptrdiff_t* restrict roff,        \
                         ptrdiff_t xrs, const T* restrict d, ptrdiff_t rows,          \
                         ptrdiff_t ow, T* restrict acc_io) {                          \
    const ptrdiff_t L = CC_LANES_##SUF;                                               \
    V acc[CC_RC][CC_NV];                                                              \
    for (int r = 0; r < CC_RC; r++)                                                   \
        for (int v = 0; v < CC_NV; v++) acc[r][v] = cc_load_##SUF(acc_io + (r * CC_NV + v) * L); \
    for (ptrdiff_t i = 0; i < rows; i++) {                                            \
        const T* xr[CC_RC];                                                           \
        for (int r = 0; r < CC_RC; r++) xr[r] = x + i * xrs + roff[r];                \
        const T* di = d + i * ow * (CC_NV * L);                                       \
        for (ptrdiff_t j = 0; j < ow; j++) {                                          \
            V dv[CC_NV];                                                              \
            for (int v = 0; v < CC_NV; v++) dv[v] = cc_load_##SUF(di + (j * CC_NV + v) * L); \
            for (int r = 0; r < CC_RC; r++) {                                         \
                V xb = cc_bcast_##SUF(xr[r][j]);                                      \
                for (int v = 0; v < CC_NV; v++) acc[r][v] += xb * dv[v];              \
            }                                                                         \
        }                                                                             \
    }                                                                                 \
    for (int r = 0; r < CC_RC; r++)                                                   \
        for (int v = 0; v < CC_NV; v++) cc_store_##SUF(acc_io + (r * CC_NV + v) * L, acc[r][v]); \
}                                                                                     \
                                                                                      \
/* Depthwise dw: acc[t] (CC_NT x L lanes, read and written) += the sum over   \
 * rows x ow pixels of d[i*drs + j] * x[toff[t] + i*xrs + j]; a ragged end of \
 * a row is summed into lane 0. */                                                   \
static void cc_dwdot_##SUF(const T* restrict x, const ptrdiff_t* restrict toff,      \
                           ptrdiff_t xrs, const T* restrict d, ptrdiff_t drs,         \
                           ptrdiff_t rows, ptrdiff_t ow, T* restrict acc_io) {        \
    const ptrdiff_t L = CC_LANES_##SUF;                                               \
    V acc[CC_NT];                                                                     \
    T tail[CC_NT];                                                                    \
    for (int t = 0; t < CC_NT; t++) { acc[t] = cc_load_##SUF(acc_io + t * L); tail[t] = 0; } \
    for (ptrdiff_t i = 0; i < rows; i++) {                                            \
        const T* di = d + i * drs;                                                    \
        const T* xi = x + i * xrs;                                                    \
        ptrdiff_t j = 0;                                                              \
        for (; j + L <= ow; j += L) {                                                 \
            V dv = cc_load_##SUF(di + j);                                             \
            for (int t = 0; t < CC_NT; t++) acc[t] += dv * cc_load_##SUF(xi + toff[t] + j); \
        }                                                                             \
        for (; j < ow; j++)                                                           \
            for (int t = 0; t < CC_NT; t++) tail[t] += di[j] * xi[toff[t] + j];        \
    }                                                                                 \
    for (int t = 0; t < CC_NT; t++) {                                                 \
        acc[t][0] += tail[t];                                                         \
        cc_store_##SUF(acc_io + t * L, acc[t]);                                       \
    }                                                                                 \
}

CC_DEFINE(float, cc_vf, f32)
CC_DEFINE(double, cc_vd, f64)

/* The forward tile's pixels for rf rows. */
static inline ptrdiff_t cc_tile(int rf, int itemsize) {
    return CC_NP_OF(rf) * (ptrdiff_t)(CC_VBYTES / itemsize);
}

#endif
