/* Register-blocked micro-kernels of the 4-D layer's direct convolutions.
 *
 * Included by _conv2d_direct.pxi, and so compiled once per ISA build
 * (baseline, x86-64-v3, x86-64-v4): the vector width and the register
 * blocking below follow the instruction set the compiler targets.  They use
 * GCC/Clang vector extensions, so that the accumulators are named vector
 * registers rather than arrays the compiler may or may not keep in them.
 *
 * The kernels, each a small matrix product whose operands are read in place
 * through offset tables (no im2col):
 *
 *  cc_fwd_*   a tile of RF output rows (filters) x NP vectors of output
 *             pixels.  ``out[r, p] = sum_k w[k, r] * src[koff[k] + p]``:
 *             w packed as [K][RF] (broadcast), src a flattened image read
 *             with unaligned vector loads.  Forward pass and dx, for few
 *             filters per group (the "pixel" kernel).
 *  cc_rowk_*  the pixel kernel for whole output rows written in place (the
 *             "row" kernel): rf filters, one after the other, vectors of
 *             positions along a row, no tile in between.  Depthwise layers,
 *             whose few filters make the tile's write-out the cost.
 *  cc_cv_*    the same product vectorised over filters (the "channel"
 *             kernel): a tile of NPX output positions x NV vectors of
 *             filters, ``out[p, f] = sum_k src[koff[k] + p] * w[k, f]``, w
 *             packed as [K][NV*lanes].  Each step loads NV weight vectors
 *             and broadcasts NPX input values, on AVX-512 inside the FMA's
 *             memory operand (vfmadd231ps zmm, zmm, [mem]{1to16}): about
 *             one micro-op per FMA, and no lane idles along short rows.
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

/* Register blocking.  AVX-512 has 32 vector registers: 8 x 3 or 4 x 6
 * accumulators of the pixel tile, 6 x 4 of dw's.  AVX2, SSE2 and NEON builds
 * use 16 (NEON has 32, but keeps the 16-register blocking of the baseline). */
#if CC_VBYTES == 64
#  define CC_RF_MAX 8
#  define CC_NP_BIG 3
#  define CC_NP_4 6
#  define CC_NP_SMALL 4
#  define CC_RC 6
#  define CC_NV 4
#else
#  define CC_RF_MAX 4
#  define CC_NP_BIG 3
#  define CC_NP_4 3
#  define CC_NP_SMALL 4
#  define CC_RC 6
#  define CC_NV 2
#endif
#define CC_NP_MAX 6 /* the most vectors of pixels of any tile */
#define CC_NT 9 /* taps per depthwise dw call: a 3x3 filter in one */

/* The channel kernel's accumulators (npx * nv of them): 28 of AVX-512's 32
 * registers (14 positions x 2 vectors, or 28 x 1), 12 of the 16 elsewhere
 * (6 x 2, or 12 x 1), leaving room for the weights and a broadcast. */
#if CC_VBYTES == 64
#  define CC_CV_ACC 28
#else
#  define CC_CV_ACC 12
#endif
#define CC_CV_NV 2 /* at most this many vectors of filters */
#define CC_PF 16 /* k-steps ahead that the forward tiles prefetch their input and weights */
#define CC_DW_PF 8 /* pixels ahead that dw prefetches the output gradient */

typedef float cc_vf __attribute__((vector_size(CC_VBYTES)));
typedef double cc_vd __attribute__((vector_size(CC_VBYTES)));
#define CC_LANES_f32 ((ptrdiff_t)(CC_VBYTES / sizeof(float)))
#define CC_LANES_f64 ((ptrdiff_t)(CC_VBYTES / sizeof(double)))

#define CC_INLINE static inline __attribute__((always_inline))

/* Pixels of a forward tile with rf rows: NP_BIG vectors for 8 rows, NP_4
 * for 4 (as many accumulators where there are registers), NP_SMALL for
 * rf <= 2 (depthwise), whose loads are the bottleneck. */
#define CC_NP_OF(rf) ((rf) > 4 ? CC_NP_BIG : (rf) > 2 ? CC_NP_4 : CC_NP_SMALL)

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
    V acc[CC_RF_MAX][CC_NP_MAX];                                                      \
    for (int r = 0; r < RF; r++)                                                      \
        for (int p = 0; p < NP; p++) acc[r][p] = cc_bcast_##SUF(0);                   \
    for (ptrdiff_t k = 0; k < K; k++) {                                               \
        const T* s = src + koff[k];                                                   \
        /* The input a few k-steps on: taps jump between rows, planes and   \
         * channels, which the hardware prefetchers do not follow. */        \
        if (k + CC_PF < K) __builtin_prefetch(src + koff[k + CC_PF]);                 \
        V xv[CC_NP_MAX];                                                              \
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
CC_FWD_ONE(T, SUF, 4, 4) CC_FWD_ONE(T, SUF, 4, 5) CC_FWD_ONE(T, SUF, 4, 6)           \
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
    case 4 * 8 + 4: cc_fwd_##SUF##_4_4(w, src, koff, K, tmp); break;                  \
    case 4 * 8 + 5: cc_fwd_##SUF##_4_5(w, src, koff, K, tmp); break;                  \
    case 4 * 8 + 6: cc_fwd_##SUF##_4_6(w, src, koff, K, tmp); break;                  \
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
            for (int v = 0; v < CC_NV; v++) {                                         \
                __builtin_prefetch(di + ((j + CC_DW_PF) * CC_NV + v) * L);            \
                dv[v] = cc_load_##SUF(di + (j * CC_NV + v) * L);                      \
            }                                                                         \
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


/* An L x L block of one vector per row, transposed in place, for the lane
 * counts of this build: log2(L) rounds pairing row i with row i + L/2
 * through a zip of their low halves and one of their high halves (each a
 * two-register permute).  Without __builtin_shufflevector (GCC before 12),
 * through memory. */
#define CC_ZIP_LO_2 0, 2
#define CC_ZIP_HI_2 1, 3
#define CC_ZIP_LO_4 0, 4, 1, 5
#define CC_ZIP_HI_4 2, 6, 3, 7
#define CC_ZIP_LO_8 0, 8, 1, 9, 2, 10, 3, 11
#define CC_ZIP_HI_8 4, 12, 5, 13, 6, 14, 7, 15
#define CC_ZIP_LO_16 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23
#define CC_ZIP_HI_16 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31
#if CC_VBYTES == 64
#  define CC_ZIP_LO_f32 CC_ZIP_LO_16
#  define CC_ZIP_HI_f32 CC_ZIP_HI_16
#  define CC_ZIP_LO_f64 CC_ZIP_LO_8
#  define CC_ZIP_HI_f64 CC_ZIP_HI_8
#elif CC_VBYTES == 32
#  define CC_ZIP_LO_f32 CC_ZIP_LO_8
#  define CC_ZIP_HI_f32 CC_ZIP_HI_8
#  define CC_ZIP_LO_f64 CC_ZIP_LO_4
#  define CC_ZIP_HI_f64 CC_ZIP_HI_4
#else
#  define CC_ZIP_LO_f32 CC_ZIP_LO_4
#  define CC_ZIP_HI_f32 CC_ZIP_HI_4
#  define CC_ZIP_LO_f64 CC_ZIP_LO_2
#  define CC_ZIP_HI_f64 CC_ZIP_HI_2
#endif
#if defined(__has_builtin)
#  if __has_builtin(__builtin_shufflevector)
#    define CC_HAVE_SHUFFLE 1
#  endif
#endif

#ifdef CC_HAVE_SHUFFLE
#define CC_DEFINE_TRANSPOSE(T, V, SUF)                                                \
CC_INLINE void cc_transpose_##SUF(V* r) {                                             \
    const int L = (int)CC_LANES_##SUF;                                                \
    _Pragma("GCC unroll 4") for (int round = 1; round < L; round *= 2) {             \
        V n[CC_LANES_##SUF];                                                          \
        _Pragma("GCC unroll 8") for (int i = 0; i < L / 2; i++) {                    \
            n[2 * i] = __builtin_shufflevector(r[i], r[i + L / 2], CC_ZIP_LO_##SUF);  \
            n[2 * i + 1] = __builtin_shufflevector(r[i], r[i + L / 2], CC_ZIP_HI_##SUF); \
        }                                                                             \
        _Pragma("GCC unroll 16") for (int i = 0; i < L; i++) r[i] = n[i];            \
    }                                                                                 \
}
#else
#define CC_DEFINE_TRANSPOSE(T, V, SUF)                                                \
CC_INLINE void cc_transpose_##SUF(V* r) {                                             \
    const int L = (int)CC_LANES_##SUF;                                                \
    T m[CC_LANES_##SUF][CC_LANES_##SUF];                                              \
    for (int i = 0; i < L; i++) cc_store_##SUF(m[i], r[i]);                           \
    for (int i = 0; i < L; i++)                                                       \
        for (int j = 0; j < L; j++) r[i][j] = m[j][i];                                \
}
#endif

/* d's rows (filters) nl of them, each P long and P apart, as o[p*fl + f]
 * for f < fl (zeros past nl): L x L blocks transposed in registers, the
 * last pixels (past whole vectors) one by one. */
#define CC_DEFINE_FLAST(T, V, SUF)                                                    \
static void cc_filters_last_##SUF(const T* restrict d, ptrdiff_t P, ptrdiff_t nl,    \
                                  ptrdiff_t fl, T* restrict o) {                      \
    const ptrdiff_t L = CC_LANES_##SUF;                                               \
    ptrdiff_t p = 0;                                                                  \
    for (; p + L <= P; p += L)                                                        \
        for (ptrdiff_t f0 = 0; f0 < fl; f0 += L) {                                    \
            V blk[CC_LANES_##SUF];                                                    \
            for (ptrdiff_t i = 0; i < L; i++)                                         \
                blk[i] = f0 + i < nl ? cc_load_##SUF(d + (f0 + i) * P + p) : cc_bcast_##SUF(0); \
            cc_transpose_##SUF(blk);                                                  \
            for (ptrdiff_t i = 0; i < L; i++) cc_store_##SUF(o + (p + i) * fl + f0, blk[i]); \
        }                                                                             \
    for (; p < P; p++)                                                                \
        for (ptrdiff_t f = 0; f < fl; f++) o[p * fl + f] = f < nl ? d[f * P + p] : 0; \
}

/* The channel kernel: npx positions x nv vectors of filters into tmp, as
 * [nv * lanes][S], S = npx rounded up to whole vectors (the positions of a
 * filter in a row, as the pixel kernel leaves them).  npx * nv <= CC_CV_ACC, nv <= CC_CV_NV; both constants
 * in each instantiation, so the loops unroll into named registers. */
#define CC_DEFINE_CV(T, V, SUF)                                                       \
CC_INLINE void cc_cv_body_##SUF(const int NPX, const int NV, const T* restrict w,    \
                                 const T* restrict src, const ptrdiff_t* restrict koff, \
                                 ptrdiff_t K, T* restrict tmp) {                      \
    const ptrdiff_t L = CC_LANES_##SUF;                                               \
    V acc[CC_CV_ACC][CC_CV_NV];                                                       \
    _Pragma("GCC unroll 28") for (int p = 0; p < NPX; p++)                           \
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) acc[p][v] = cc_bcast_##SUF(0); \
    for (ptrdiff_t k = 0; k < K; k++) {                                               \
        const T* s = src + koff[k];                                                   \
        if (k + CC_PF < K) __builtin_prefetch(src + koff[k + CC_PF]);                 \
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                         \
            __builtin_prefetch(w + (CC_PF * NV + v) * L);                             \
        V wv[CC_CV_NV];                                                               \
        _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) wv[v] = cc_load_##SUF(w + v * L); \
        _Pragma("GCC unroll 28") for (int p = 0; p < NPX; p++) {                     \
            V xb = cc_bcast_##SUF(s[p]);                                              \
            _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++) acc[p][v] += xb * wv[v]; \
        }                                                                             \
        w += NV * L;                                                                  \
    }                                                                                 \
    /* Out as rows of filters: L x L blocks (positions x filters) transposed. */ \
    const int S = (NPX + (int)L - 1) / (int)L * (int)L;                               \
    _Pragma("GCC unroll 2") for (int v = 0; v < NV; v++)                             \
        _Pragma("GCC unroll 4") for (int c = 0; c < S / (int)L; c++) {               \
            V blk[CC_LANES_##SUF];                                                    \
            _Pragma("GCC unroll 16") for (int i = 0; i < (int)L; i++)                \
                blk[i] = c * (int)L + i < NPX ? acc[c * L + i][v] : cc_bcast_##SUF(0); \
            cc_transpose_##SUF(blk);                                                  \
            _Pragma("GCC unroll 16") for (int i = 0; i < (int)L; i++)                \
                cc_store_##SUF(tmp + (v * L + i) * S + c * L, blk[i]);                \
        }                                                                             \
}

#define CC_CV_ONE(T, SUF, NV, NPX)                                                    \
static void cc_cv_##SUF##_##NV##_##NPX(const T* w, const T* s, const ptrdiff_t* o,     \
                                       ptrdiff_t K, T* t)                             \
{ cc_cv_body_##SUF(NPX, NV, w, s, o, K, t); }
#define CC_CV_CASE(T, SUF, NV, NPX) case NPX: cc_cv_##SUF##_##NV##_##NPX(w, src, koff, K, tmp); break;

/* Lists of tile widths: 1..12 everywhere, 13..28 with AVX-512's registers. */
#define CC_NPX_6(M, T, SUF, NV) M(T, SUF, NV, 1) M(T, SUF, NV, 2) M(T, SUF, NV, 3) M(T, SUF, NV, 4) \
    M(T, SUF, NV, 5) M(T, SUF, NV, 6)
#define CC_NPX_12(M, T, SUF, NV) CC_NPX_6(M, T, SUF, NV) M(T, SUF, NV, 7) M(T, SUF, NV, 8)         \
    M(T, SUF, NV, 9) M(T, SUF, NV, 10) M(T, SUF, NV, 11) M(T, SUF, NV, 12)
#define CC_NPX_14(M, T, SUF, NV) CC_NPX_12(M, T, SUF, NV) M(T, SUF, NV, 13) M(T, SUF, NV, 14)
#define CC_NPX_28(M, T, SUF, NV) CC_NPX_14(M, T, SUF, NV) M(T, SUF, NV, 15) M(T, SUF, NV, 16)       \
    M(T, SUF, NV, 17) M(T, SUF, NV, 18) M(T, SUF, NV, 19) M(T, SUF, NV, 20) M(T, SUF, NV, 21)    \
    M(T, SUF, NV, 22) M(T, SUF, NV, 23) M(T, SUF, NV, 24) M(T, SUF, NV, 25) M(T, SUF, NV, 26)    \
    M(T, SUF, NV, 27) M(T, SUF, NV, 28)
#if CC_CV_ACC == 28
#  define CC_NPX_NV1 CC_NPX_28
#  define CC_NPX_NV2 CC_NPX_14
#else
#  define CC_NPX_NV1 CC_NPX_12
#  define CC_NPX_NV2 CC_NPX_6
#endif

/* One channel tile: npx positions (1 .. CC_CV_ACC / nv) x nv vectors (1 or 2). */
#define CC_DEFINE_CV_DISPATCH(T, SUF)                                                 \
CC_NPX_NV1(CC_CV_ONE, T, SUF, 1)                                                      \
CC_NPX_NV2(CC_CV_ONE, T, SUF, 2)                                                      \
static inline void cc_cv_##SUF(int nv, int npx, const T* w, const T* src,            \
                               const ptrdiff_t* koff, ptrdiff_t K, T* tmp) {          \
    if (nv == 1) {                                                                    \
        switch (npx) { CC_NPX_NV1(CC_CV_CASE, T, SUF, 1) default: break; }            \
    } else {                                                                          \
        switch (npx) { CC_NPX_NV2(CC_CV_CASE, T, SUF, 2) default: break; }            \
    }                                                                                 \
}

CC_DEFINE(float, cc_vf, f32)
CC_DEFINE(double, cc_vd, f64)
CC_DEFINE_TRANSPOSE(float, cc_vf, f32)
CC_DEFINE_TRANSPOSE(double, cc_vd, f64)
CC_DEFINE_FLAST(float, cc_vf, f32)
CC_DEFINE_FLAST(double, cc_vd, f64)
CC_DEFINE_CV(float, cc_vf, f32)
CC_DEFINE_CV(double, cc_vd, f64)
CC_DEFINE_CV_DISPATCH(float, f32)
CC_DEFINE_CV_DISPATCH(double, f64)

/* A tile's rows into the output: d[r*dstride + j] = s[r*sstride + j] (+ b[r]
 * when b is not NULL), rows r < rows, j < n.  Each row by whole vectors, the
 * last moved back to end at n; a row shorter than a vector by two
 * overlapping copies of the largest power of two of lanes not above n (a
 * constant-size memcpy is one load and one store).  An overlap writes the
 * same value twice. */
#define CC_DEFINE_ROW(T, V, SUF)                                                      \
CC_INLINE void cc_chunk_##SUF(T* restrict d, const T* restrict s, const int m,       \
                              const T* b) {                                           \
    T v[CC_VBYTES / sizeof(T)];                                                       \
    memcpy(v, s, m * sizeof(T));                                                      \
    if (b)                                                                            \
        for (int i = 0; i < m; i++) v[i] += *b;                                       \
    memcpy(d, v, m * sizeof(T));                                                      \
}                                                                                     \
CC_INLINE void cc_pair_##SUF(T* restrict d, const T* restrict s, ptrdiff_t n,        \
                             const int m, const T* b) {                               \
    cc_chunk_##SUF(d, s, m, b);                                                       \
    cc_chunk_##SUF(d + n - m, s + n - m, m, b);                                       \
}                                                                                     \
static void cc_rows_##SUF(T* restrict d, ptrdiff_t dstride, const T* restrict s,     \
                          ptrdiff_t sstride, ptrdiff_t rows, ptrdiff_t n, const T* b) { \
    const int L = (int)CC_LANES_##SUF;                                                \
    for (ptrdiff_t r = 0; r < rows; r++, d += dstride, s += sstride) {               \
        const T* br = b ? b + r : NULL;                                               \
        if (n >= L) {                                                                 \
            ptrdiff_t j = 0;                                                          \
            for (; j + L <= n; j += L) cc_chunk_##SUF(d + j, s + j, L, br);           \
            if (j < n) cc_chunk_##SUF(d + n - L, s + n - L, L, br);                   \
        } else if (2 * n >= L) {                                                      \
            cc_pair_##SUF(d, s, n, L / 2, br);                                        \
        } else if (4 * n >= L && L >= 4) {                                            \
            cc_pair_##SUF(d, s, n, L / 4, br);                                        \
        } else {                                                                      \
            for (ptrdiff_t j = 0; j < n; j++) d[j] = br ? s[j] + *br : s[j];          \
        }                                                                             \
    }                                                                                 \
}

CC_DEFINE_ROW(float, cc_vf, f32)
CC_DEFINE_ROW(double, cc_vd, f64)

/* The output a tile will write, asked for ahead (for writing) while the
 * tile computes: rows lines from p, stride elements apart, and the line
 * span bytes on (a tile's first and last output of each filter). */
static inline void cc_prefetch_rows(const char* p, ptrdiff_t stride_bytes, ptrdiff_t rows, ptrdiff_t span) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        __builtin_prefetch(p + r * stride_bytes, 1);
        __builtin_prefetch(p + r * stride_bytes + span, 1);
    }
}


/* The row kernel: out[r*ostride + j] = sum_k w[k*rf + r] * src[koff[k] + j]
 * (+ b[r] when b is not NULL) for r < rows (of a block of rf), j < n, summed
 * in k's order.
 * Four vectors of positions at a time; the one to three vectors left in one
 * step too (independent sums), moved back to end at n (positions summed
 * twice get the same bits); a row shorter than those vectors is summed into
 * a local buffer first (reading up to a vector past n). */
#define CC_DEFINE_ROWK(T, V, SUF)                                                     \
CC_INLINE void cc_rowk_vecs_##SUF(const int NP, const T* restrict w, ptrdiff_t rf,   \
                                  const T* restrict s, const ptrdiff_t* restrict koff, \
                                  ptrdiff_t K, T* restrict o, const T* b) {           \
    const ptrdiff_t L = CC_LANES_##SUF;                                               \
    V acc[4];                                                                         \
    for (int p = 0; p < NP; p++) acc[p] = cc_bcast_##SUF(0);                          \
    for (ptrdiff_t k = 0; k < K; k++) {                                               \
        V wv = cc_bcast_##SUF(w[k * rf]);                                             \
        for (int p = 0; p < NP; p++) acc[p] += wv * cc_load_##SUF(s + koff[k] + p * L); \
    }                                                                                 \
    for (int p = 0; p < NP; p++) {                                                    \
        if (b) acc[p] += cc_bcast_##SUF(*b);                                          \
        cc_store_##SUF(o + p * L, acc[p]);                                            \
    }                                                                                 \
}                                                                                     \
static void cc_rowk_vecs_any_##SUF(int np, const T* w, ptrdiff_t rf, const T* s,     \
                                   const ptrdiff_t* koff, ptrdiff_t K, T* o, const T* b) { \
    switch (np) {                                                                     \
    case 1: cc_rowk_vecs_##SUF(1, w, rf, s, koff, K, o, b); break;                    \
    case 2: cc_rowk_vecs_##SUF(2, w, rf, s, koff, K, o, b); break;                    \
    case 3: cc_rowk_vecs_##SUF(3, w, rf, s, koff, K, o, b); break;                    \
    default: cc_rowk_vecs_##SUF(4, w, rf, s, koff, K, o, b); break;                   \
    }                                                                                 \
}                                                                                     \
static void cc_rowk_##SUF(ptrdiff_t rows, ptrdiff_t rf, const T* w, const T* src,  \
                          const ptrdiff_t* koff, ptrdiff_t K, ptrdiff_t n, T* out,   \
                          ptrdiff_t ostride, const T* b) {                            \
    const ptrdiff_t L = CC_LANES_##SUF;                                               \
    for (ptrdiff_t r = 0; r < rows; r++) {                                            \
        T* o = out + r * ostride;                                                     \
        const T* br = b ? b + r : NULL;                                               \
        ptrdiff_t j = 0;                                                              \
        for (; j + 4 * L <= n; j += 4 * L)                                            \
            cc_rowk_vecs_##SUF(4, w + r, rf, src + j, koff, K, o + j, br);            \
        if (j == n) continue;                                                         \
        const int np = (int)((n - j + L - 1) / L);                                    \
        if (n >= np * L) {                                                            \
            cc_rowk_vecs_any_##SUF(np, w + r, rf, src + n - np * L, koff, K, o + n - np * L, br); \
        } else {                                                                      \
            T v[4 * CC_VBYTES / sizeof(T)];                                           \
            cc_rowk_vecs_any_##SUF(np, w + r, rf, src, koff, K, v, br);               \
            for (ptrdiff_t i = 0; i < n; i++) o[i] = v[i];                            \
        }                                                                             \
    }                                                                                 \
}

CC_DEFINE_ROWK(float, cc_vf, f32)
CC_DEFINE_ROWK(double, cc_vd, f64)

/* The channel tile's positions in tmp, per filter: npx in whole vectors. */
static inline ptrdiff_t cc_cv_stride(ptrdiff_t npx, int itemsize) {
    const ptrdiff_t L = CC_VBYTES / itemsize;
    return (npx + L - 1) / L * L;
}

/* The forward tile's pixels for rf rows. */
static inline ptrdiff_t cc_tile(int rf, int itemsize) {
    return CC_NP_OF(rf) * (ptrdiff_t)(CC_VBYTES / itemsize);
}

#endif
