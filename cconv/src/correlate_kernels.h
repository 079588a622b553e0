/* The 3-D engine's direct correlation kernel: register blocks of output rows.
 *
 * Included by _correlate.pxi, and so compiled once per ISA build (baseline,
 * x86-64-v3, x86-64-v4): the vector width and the blocking follow the
 * instruction set the compiler targets.  GCC/Clang vector extensions, so that
 * the accumulators are named vector registers.
 *
 * What it computes, for r < rows and j < ow:
 *
 *     o[r*os + j] = sum_n sum_(a < kh) sum_(b < kw) x[n*xn + (r+a)*xs + b + j] * k[n*kn + a*kw + b]
 *
 * with n < npairs.  Strides are in elements and may be negative (a view of an
 * image read in place); the rows of x and o are contiguous.
 *
 * The block: 4 output rows by CCR_V vectors of columns, all in registers.
 * The loop runs down the 4 + kh - 1 input rows that the block reads; each
 * vector of an input row is loaded once per column tap b and feeds every
 * output row r of the block that reads it (tap row a = t - r): up to 4
 * multiply-adds, each with a broadcast tap.  So one load serves up to 4 FMAs
 * (the loop order before it loaded x once per FMA, and on AVX-512 most such
 * loads split a cache line): about (4 + kh - 1) / (4 * kh) vector loads of x
 * and 1 / CCR_V broadcasts per FMA.
 *
 * 3x3 filters run blocks specialised to their size, unrolled whole: no loop
 * or row test is left in them (5-11% faster, one thread; the same for 5x5 was
 * 14% slower: its 25 taps then take the registers that held the x vectors,
 * and every FMA loads x again).
 *
 * The order of the terms of each output is fixed by the arguments (pairs,
 * then rows of x, then the taps along a row), never by threads; a multiply
 * and its add may be fused (the float routes' results are documented within
 * rounding; exact integer results have their own loops).
 */
#ifndef CCONV_CORRELATE_KERNELS_H
#define CCONV_CORRELATE_KERNELS_H

#include <stddef.h>
#include <string.h>

#if defined(__AVX512F__)
#  define CCR_VBYTES 64
#  define CCR_V 4 /* 4 rows x 4: 16 accumulators, 4 x vectors, 1 tap: 21 of 32 zmm */
#elif defined(__AVX2__)
#  define CCR_VBYTES 32
#  define CCR_V 2 /* 4 rows x 2: 8 accumulators, 2 x vectors, 1 tap: 11 of 16 ymm */
#else
#  define CCR_VBYTES 16
#  define CCR_V 2 /* as AVX2, in xmm */
#endif

typedef float ccr_vf __attribute__((vector_size(CCR_VBYTES)));
typedef double ccr_vd __attribute__((vector_size(CCR_VBYTES)));

/* The taps of input row t for a block of R rows (a constant) by V vectors of
 * LN lanes (constants; LN 1: scalars).  FULL: every output row of the block
 * reads row t (the block's middle rows), so the row conditions fold away. */
#define CCR_TAPS(VT, LN, R, V, FULL, UNROLL)                                             \
    UNROLL                                                                              \
    for (ptrdiff_t b = 0; b < kwc; b++) {                                               \
        VT xv[V];                                                                       \
        for (int v = 0; v < V; v++) memcpy(&xv[v], xr + b + v * LN, sizeof(VT));        \
        for (int r = 0; r < R; r++) {                                                   \
            if (FULL || (r >= rlo && r <= rhi)) {                                       \
                VT w = kt[b - r * kwc] - (VT){0};                                       \
                for (int v = 0; v < V; v++) acc[r][v] += w * xv[v];                     \
            }                                                                           \
        }                                                                               \
    }

/* One block: R output rows by V vectors of LN lanes, written to o.  KHC and
 * KWC are the filter's size: the arguments kh and kw, or constants for a
 * block specialised to one size, whose loops UNROLL unrolls whole (then
 * every row condition is a constant). */
#define CCR_BLOCK(NAME, T, VT, LN, R, V, KHC, KWC, UNROLL)                               \
static void NAME(T* restrict o, ptrdiff_t os, const T* restrict x, ptrdiff_t xs,          \
                 ptrdiff_t xn, const T* restrict k, ptrdiff_t kn, ptrdiff_t npairs,      \
                 ptrdiff_t kh, ptrdiff_t kw)                                             \
{                                                                                       \
    const ptrdiff_t khc = (KHC), kwc = (KWC);                                           \
    VT acc[R][V];                                                                       \
    (void)kh;                                                                           \
    (void)kw;                                                                           \
    for (int r = 0; r < R; r++)                                                         \
        for (int v = 0; v < V; v++) acc[r][v] = (VT){0};                                \
    for (ptrdiff_t n = 0; n < npairs; n++) {                                            \
        const T* xp = x + n * xn;                                                       \
        const T* kp = k + n * kn;                                                       \
        UNROLL                                                                          \
        for (ptrdiff_t t = 0; t < R + khc - 1; t++) {                                   \
            const T* xr = xp + t * xs;                                                  \
            const T* kt = kp + t * kwc; /* tap row a = t - r: kt[b - r*kw] */           \
            ptrdiff_t rlo = t - khc + 1 > 0 ? t - khc + 1 : 0;                          \
            ptrdiff_t rhi = t < R - 1 ? t : R - 1;                                      \
            if (rlo == 0 && rhi == R - 1) {                                             \
                CCR_TAPS(VT, LN, R, V, 1, UNROLL)                                       \
            } else {                                                                    \
                CCR_TAPS(VT, LN, R, V, 0, UNROLL)                                       \
            }                                                                           \
        }                                                                               \
    }                                                                                   \
    for (int r = 0; r < R; r++)                                                         \
        for (int v = 0; v < V; v++) memcpy(o + r * os + v * LN, &acc[r][v], sizeof(VT)); \
}

#define CCR_NO_UNROLL
#define CCR_UNROLL _Pragma("GCC unroll 8")

/* R output rows, all ow columns: strips of CCR_V vectors, the last one
 * shifted left to end at ow (it recomputes a few columns, with the same
 * values, rather than run a ragged tail); narrower rows in single vectors,
 * then scalars. */
#define CCR_ROWS(SUF, T, VT, LN, R)                                                       \
CCR_BLOCK(ccr_block_##SUF##_##R##_w, T, VT, LN, R, CCR_V, kh, kw, CCR_NO_UNROLL)         \
CCR_BLOCK(ccr_block_##SUF##_##R##_w3, T, VT, LN, R, CCR_V, 3, 3, CCR_UNROLL)             \
CCR_BLOCK(ccr_block_##SUF##_##R##_1, T, VT, LN, R, 1, kh, kw, CCR_NO_UNROLL)             \
CCR_BLOCK(ccr_block_##SUF##_##R##_s, T, T, 1, R, 1, kh, kw, CCR_NO_UNROLL)               \
static void ccr_rows_##SUF##_##R(T* o, ptrdiff_t os, const T* x, ptrdiff_t xs,            \
                                 ptrdiff_t xn, const T* k, ptrdiff_t kn, ptrdiff_t npairs, \
                                 ptrdiff_t kh, ptrdiff_t kw, ptrdiff_t ow)              \
{                                                                                       \
    const ptrdiff_t wide = CCR_V * LN;                                                  \
    ptrdiff_t j;                                                                        \
    if (ow >= wide) {                                                                   \
        for (j = 0; j < ow; j += wide) {                                                \
            if (j + wide > ow) j = ow - wide;                                           \
            if (kh == 3 && kw == 3)                                                     \
                ccr_block_##SUF##_##R##_w3(o + j, os, x + j, xs, xn, k, kn, npairs, kh, kw); \
            else                                                                        \
                ccr_block_##SUF##_##R##_w(o + j, os, x + j, xs, xn, k, kn, npairs, kh, kw); \
        }                                                                               \
    } else if (ow >= LN) {                                                              \
        for (j = 0; j < ow; j += LN) {                                                  \
            if (j + LN > ow) j = ow - LN;                                               \
            ccr_block_##SUF##_##R##_1(o + j, os, x + j, xs, xn, k, kn, npairs, kh, kw); \
        }                                                                               \
    } else {                                                                            \
        for (j = 0; j < ow; j++)                                                        \
            ccr_block_##SUF##_##R##_s(o + j, os, x + j, xs, xn, k, kn, npairs, kh, kw); \
    }                                                                                   \
}

/* Any number of output rows: blocks of 4, then one block of the rest. */
#define CCR_DEFINE(SUF, T, VT, LN)                                                        \
CCR_ROWS(SUF, T, VT, LN, 1) CCR_ROWS(SUF, T, VT, LN, 2)                                  \
CCR_ROWS(SUF, T, VT, LN, 3) CCR_ROWS(SUF, T, VT, LN, 4)                                  \
static void ccr_rows_##SUF(T* o, ptrdiff_t os, const T* x, ptrdiff_t xs, ptrdiff_t xn,    \
                           const T* k, ptrdiff_t kn, ptrdiff_t npairs, ptrdiff_t kh,     \
                           ptrdiff_t kw, ptrdiff_t ow, ptrdiff_t rows)                  \
{                                                                                       \
    ptrdiff_t r = 0;                                                                    \
    for (; r + 4 <= rows; r += 4)                                                       \
        ccr_rows_##SUF##_4(o + r * os, os, x + r * xs, xs, xn, k, kn, npairs, kh, kw, ow); \
    switch (rows - r) {                                                                 \
    case 3: ccr_rows_##SUF##_3(o + r * os, os, x + r * xs, xs, xn, k, kn, npairs, kh, kw, ow); break; \
    case 2: ccr_rows_##SUF##_2(o + r * os, os, x + r * xs, xs, xn, k, kn, npairs, kh, kw, ow); break; \
    case 1: ccr_rows_##SUF##_1(o + r * os, os, x + r * xs, xs, xn, k, kn, npairs, kh, kw, ow); break; \
    default: break;                                                                     \
    }                                                                                   \
}

CCR_DEFINE(f32, float, ccr_vf, (ptrdiff_t)(CCR_VBYTES / sizeof(float)))
CCR_DEFINE(f64, double, ccr_vd, (ptrdiff_t)(CCR_VBYTES / sizeof(double)))

#endif
