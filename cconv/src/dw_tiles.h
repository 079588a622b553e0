/* The register tiles of the fused backward pass's dw (backward_fused in
 * _correlate.pxi), included by it and so compiled once per ISA build.
 *
 * One vector of CCONV_DW_VL_BYTES per accumulator, and tiles of up to
 * CCONV_DW_TILE_ROWS x CCONV_DW_TILE_COLS filter taps, sized so that the
 * accumulators, a row's x vectors (one per tile column) and a d vector fit
 * in the register file: 32 zmm (AVX-512: a whole 5x5 filter), 16 ymm
 * (AVX2), 16 xmm (SSE2). */
#ifndef CCONV_DW_TILES_H
#define CCONV_DW_TILES_H

#include <stddef.h>

#if defined(__AVX512F__)
#define CCONV_DW_VL_BYTES 64
#define CCONV_DW_TILE_ROWS 5
#define CCONV_DW_TILE_COLS 5
#elif defined(__AVX2__)
#define CCONV_DW_VL_BYTES 32
#define CCONV_DW_TILE_ROWS 3
#define CCONV_DW_TILE_COLS 3
#else
#define CCONV_DW_VL_BYTES 16
#define CCONV_DW_TILE_ROWS 3
#define CCONV_DW_TILE_COLS 3
#endif

/* One accumulator's multiply-add, as GCC vector extensions: written as
   a loop over its lanes, GCC unrolls that loop (16 or fewer
   iterations) before the vectoriser sees it, and the pieces come back
   together badly.  Unaligned (element-aligned) loads; may_alias, as
   the vectors are read from and written to arrays of the element type. */
typedef float cconv_dw_vf __attribute__((vector_size(CCONV_DW_VL_BYTES), aligned(4), may_alias));
typedef double cconv_dw_vd __attribute__((vector_size(CCONV_DW_VL_BYTES), aligned(8), may_alias));
typedef int cconv_dw_mf __attribute__((vector_size(CCONV_DW_VL_BYTES)));
typedef long long cconv_dw_md __attribute__((vector_size(CCONV_DW_VL_BYTES)));

/* acc[v] += x[v] * d[v], v < VL */
#define CCONV_DW_FMA(V, acc, x, d) (*(V*)(acc) += *(const V*)(x) * *(const V*)(d))
/* The same for v >= skip: the other lanes' products are cleared bit by
   bit (selected away, never multiplied by zero: Inf * 0 would be NaN). */
#define CCONV_DW_FMA_FROM(V, M, acc, x, d, skip) do { \
    V p_ = *(const V*)(x) * *(const V*)(d); M keep_; \
    for (int v_ = 0; v_ < (int)(sizeof(V) / sizeof(p_[0])); v_++) keep_[v_] = -(v_ >= (skip)); \
    *(V*)(acc) += (V)((M)p_ & keep_); } while (0)
static inline void cconv_dw_fma_f(float* acc, const float* x, const float* d)
{ CCONV_DW_FMA(cconv_dw_vf, acc, x, d); }
static inline void cconv_dw_fma_d(double* acc, const double* x, const double* d)
{ CCONV_DW_FMA(cconv_dw_vd, acc, x, d); }
static inline void cconv_dw_fma_from_f(float* acc, const float* x, const float* d, ptrdiff_t skip)
{ CCONV_DW_FMA_FROM(cconv_dw_vf, cconv_dw_mf, acc, x, d, skip); }
static inline void cconv_dw_fma_from_d(double* acc, const double* x, const double* d, ptrdiff_t skip)
{ CCONV_DW_FMA_FROM(cconv_dw_vd, cconv_dw_md, acc, x, d, skip); }

#endif
