# The compiled loops of cconv, included by _kernels.pyx and its per-ISA twins.
# See _kernels.pyx for what they compute.

from cython.parallel cimport prange

cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    static int cconv_openmp_enabled(void) { return 1; }
    static int cconv_omp_get_max_threads(void) { return omp_get_max_threads(); }
    static void cconv_omp_set_num_threads(int n) { omp_set_num_threads(n); }
    #else
    static int cconv_openmp_enabled(void) { return 0; }
    static int cconv_omp_get_max_threads(void) { return 1; }
    static void cconv_omp_set_num_threads(int n) { (void)n; }
    #endif
    """
    int cconv_openmp_enabled() noexcept nogil
    int cconv_omp_get_max_threads() noexcept nogil
    void cconv_omp_set_num_threads(int n) noexcept nogil

cdef extern from *:
    """
    /* Which instruction-set level the running CPU supports (and the OS
       enables), by GCC's cpu-indicator: 4 = x86-64-v4 (AVX-512),
       3 = x86-64-v3 (AVX2, FMA), 0 = anything else. */
    static int cconv_cpu_level(void) {
    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        int v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
                 && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")
                 && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("movbe");
        int v4 = v3 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
                 && __builtin_cpu_supports("avx512cd") && __builtin_cpu_supports("avx512dq")
                 && __builtin_cpu_supports("avx512vl");
        return v4 ? 4 : (v3 ? 3 : 0);
    #else
        return 0;
    #endif
    }
    """
    int cconv_cpu_level() noexcept nogil

cdef extern from *:
    """
    /* What this module was compiled with; setup.py defines CCONV_CFLAGS. */
    #ifndef CCONV_CFLAGS
    #define CCONV_CFLAGS "unknown"
    #endif
    #if defined(__clang__)
    #define CCONV_COMPILER "clang " __clang_version__
    #elif defined(__GNUC__)
    #define CCONV_COMPILER "gcc " __VERSION__
    #else
    #define CCONV_COMPILER "unknown compiler"
    #endif
    """
    const char* CCONV_CFLAGS
    const char* CCONV_COMPILER


ctypedef fused real:
    float
    double

cdef enum:
    # Bytes of output columns one strip keeps in registers: 4 AVX-512 or
    # 8 AVX2 vector registers.  The widths below are compile-time constants
    # so the compiler unrolls and vectorises the strip loops completely.
    STRIP_BYTES = 256
    MAX_LANES = 64          # STRIP_BYTES of float32
    NARROW_BYTES = 64       # one AVX-512 or two AVX2 registers, for narrow rows
    NARROW_LANES = 16       # NARROW_BYTES of float32
    # Rows of a long dot product summed in the input precision before the
    # partial sum is added to a double.
    ROWS_PER_FLUSH = 16


def build_info():
    """``(compiler, flags)`` this module was compiled with."""
    return CCONV_COMPILER.decode(), CCONV_CFLAGS.decode()


def cpu_level():
    """x86-64 level of the running CPU: 4 (AVX-512), 3 (AVX2 + FMA) or 0."""
    return cconv_cpu_level()


def openmp_enabled():
    """Whether the module was compiled with OpenMP."""
    return bool(cconv_openmp_enabled())


def get_max_threads():
    """OpenMP's thread count for the next parallel loop started by this thread."""
    return cconv_omp_get_max_threads()


def set_num_threads(int n):
    """Set OpenMP's thread count for loops started by the calling thread."""
    cconv_omp_set_num_threads(n)


cdef inline void _strip(real* o, const real* x, Py_ssize_t xs, Py_ssize_t xn,
                        const real* k, Py_ssize_t kn, Py_ssize_t npairs,
                        Py_ssize_t HK, Py_ssize_t WK, Py_ssize_t width) noexcept nogil:
    """``o[j] = sum_n sum_ab x[n*xn + a*xs + b + j] * k[n*kn + a*WK + b]``, ``j < width``.

    Called with a constant ``width``, so ``acc`` lives in registers and each
    kernel tap costs ``width / lanes`` loads and multiply-adds, no stores.
    """
    cdef real acc[MAX_LANES]
    cdef Py_ssize_t n, a, b, j
    cdef real kv
    cdef const real* xa
    cdef const real* ka
    for j in range(width):
        acc[j] = 0
    for n in range(npairs):
        for a in range(HK):
            xa = x + n * xn + a * xs
            ka = k + n * kn + a * WK
            for b in range(WK):
                kv = ka[b]
                for j in range(width):
                    acc[j] += xa[b + j] * kv
    for j in range(width):
        o[j] = acc[j]


cdef inline void _wide_row(real* o, const real* x, Py_ssize_t xs, Py_ssize_t xn,
                           const real* k, Py_ssize_t kn, Py_ssize_t npairs,
                           Py_ssize_t HK, Py_ssize_t WK, Py_ssize_t Wo) noexcept nogil:
    """One output row of ``correlate_wide``, in strips of constant width.

    The last strip of each width overlaps the one before it rather than
    leaving a ragged tail: recomputing a few columns costs less than a
    narrower, latency-bound strip, and writes the same values.
    """
    cdef Py_ssize_t j = 0
    cdef Py_ssize_t wide = STRIP_BYTES // sizeof(real)
    cdef Py_ssize_t narrow = NARROW_BYTES // sizeof(real)
    if Wo >= wide:
        while j < Wo:
            if j + wide > Wo:
                j = Wo - wide
            _strip(o + j, x + j, xs, xn, k, kn, npairs, HK, WK, STRIP_BYTES // sizeof(real))
            j += wide
    elif Wo >= narrow:
        while j < Wo:
            if j + narrow > Wo:
                j = Wo - narrow
            _strip(o + j, x + j, xs, xn, k, kn, npairs, HK, WK, NARROW_BYTES // sizeof(real))
            j += narrow
    else:
        for j in range(Wo):
            _strip(o + j, x + j, xs, xn, k, kn, npairs, HK, WK, 1)


def correlate_wide(const real[:, :, ::1] x, const real[:, :, ::1] k,
                   real[:, :, ::1] out, Py_ssize_t npairs):
    """``out[t] = sum over pairs n of task t of correlate2d(x[n], k[n], 'valid')``.

    Parallel over the rows of ``out``; each row is written by one iteration.
    """
    cdef Py_ssize_t T = out.shape[0], Ho = out.shape[1], Wo = out.shape[2]
    cdef Py_ssize_t HK = k.shape[1], WK = k.shape[2], xs = x.shape[2]
    # Distance between consecutive pairs' operands: 0 for a broadcast operand.
    cdef Py_ssize_t xn = x.shape[1] * xs if x.shape[0] != 1 else 0
    cdef Py_ssize_t kn = HK * WK if k.shape[0] != 1 else 0
    cdef Py_ssize_t r, t, i, n0
    if T == 0 or Ho == 0 or Wo == 0:
        return
    for r in prange(T * Ho, nogil=True, schedule="static"):
        t = r // Ho
        i = r - t * Ho
        n0 = t * npairs // T
        _wide_row(&out[t, i, 0], &x[0, i, 0] + n0 * xn, xs, xn,
                  &k[0, 0, 0] + n0 * kn, kn, (t + 1) * npairs // T - n0, HK, WK, Wo)


cdef inline void _dots(real* o, const real* x, Py_ssize_t xs, const real* k,
                       Py_ssize_t HK, Py_ssize_t WK, Py_ssize_t nb) noexcept nogil:
    """``o[c] += sum_ij x[i*xs + j + c] * k[i*WK + j]`` for ``c < nb <= 4``.

    The ``nb`` neighbouring outputs share each load of ``k``; a single output
    keeps four strips in flight instead, so its additions do not wait on one
    another.  Called with a constant ``nb``, so the vector accumulators live
    in registers.  They sum in the input precision for ``ROWS_PER_FLUSH``
    rows at a time, then flush into doubles, so a float32 sum over a large
    kernel keeps float32 accuracy.
    """
    cdef real a0[NARROW_LANES]
    cdef real a1[NARROW_LANES]
    cdef real a2[NARROW_LANES]
    cdef real a3[NARROW_LANES]
    cdef double t0 = 0, t1 = 0, t2 = 0, t3 = 0
    cdef Py_ssize_t i, j, l
    cdef Py_ssize_t L = NARROW_BYTES // sizeof(real)
    cdef const real* xi
    cdef const real* ki
    for l in range(NARROW_BYTES // sizeof(real)):
        a0[l] = 0
        a1[l] = 0
        a2[l] = 0
        a3[l] = 0
    for i in range(HK):
        xi = x + i * xs
        ki = k + i * WK
        j = 0
        while nb == 1 and j + 4 * L <= WK:
            for l in range(NARROW_BYTES // sizeof(real)):
                a0[l] += xi[j + l] * ki[j + l]
            for l in range(NARROW_BYTES // sizeof(real)):
                a1[l] += xi[j + L + l] * ki[j + L + l]
            for l in range(NARROW_BYTES // sizeof(real)):
                a2[l] += xi[j + 2 * L + l] * ki[j + 2 * L + l]
            for l in range(NARROW_BYTES // sizeof(real)):
                a3[l] += xi[j + 3 * L + l] * ki[j + 3 * L + l]
            j += 4 * L
        while j + L <= WK:
            for l in range(NARROW_BYTES // sizeof(real)):
                a0[l] += xi[j + l] * ki[j + l]
            if nb > 1:
                for l in range(NARROW_BYTES // sizeof(real)):
                    a1[l] += xi[j + 1 + l] * ki[j + l]
            if nb > 2:
                for l in range(NARROW_BYTES // sizeof(real)):
                    a2[l] += xi[j + 2 + l] * ki[j + l]
            if nb > 3:
                for l in range(NARROW_BYTES // sizeof(real)):
                    a3[l] += xi[j + 3 + l] * ki[j + l]
            j += L
        while j < WK:  # the row's ragged end
            a0[0] += xi[j] * ki[j]
            if nb > 1:
                a1[0] += xi[j + 1] * ki[j]
            if nb > 2:
                a2[0] += xi[j + 2] * ki[j]
            if nb > 3:
                a3[0] += xi[j + 3] * ki[j]
            j += 1
        if (i + 1) % ROWS_PER_FLUSH == 0 or i + 1 == HK:
            for l in range(NARROW_BYTES // sizeof(real)):
                t0 += a0[l]
                t1 += a1[l]
                t2 += a2[l]
                t3 += a3[l]
                a0[l] = 0
                a1[l] = 0
                a2[l] = 0
                a3[l] = 0
    if nb == 1:
        t0 += t1 + t2 + t3
    o[0] += <real>t0
    if nb > 1:
        o[1] += <real>t1
    if nb > 2:
        o[2] += <real>t2
    if nb > 3:
        o[3] += <real>t3


def correlate_narrow(const real[:, :, ::1] x, const real[:, :, ::1] k,
                     real[:, :, ::1] out, Py_ssize_t npairs, Py_ssize_t rows):
    """Same result as ``correlate_wide``, for outputs small next to ``k``.

    Each output element is one long dot product of ``k[n]`` with a window of
    ``x[n]``; up to four neighbouring elements of a row are computed together.
    Parallel over blocks of ``rows`` rows of ``out``: a block computes all of
    its rows pair by pair, so each pair's images are read from memory once
    per block, then reused from cache.
    """
    cdef Py_ssize_t T = out.shape[0], Ho = out.shape[1], Wo = out.shape[2]
    cdef Py_ssize_t HK = k.shape[1], WK = k.shape[2], xs = x.shape[2]
    cdef Py_ssize_t xn = x.shape[1] * xs if x.shape[0] != 1 else 0
    cdef Py_ssize_t kn = HK * WK if k.shape[0] != 1 else 0
    cdef Py_ssize_t blocks = (Ho + rows - 1) // rows
    cdef Py_ssize_t r, t, i, i0, i1, j, n
    cdef real* o
    cdef const real* xj
    cdef const real* kp
    if T == 0 or Ho == 0 or Wo == 0:
        return
    for r in prange(T * blocks, nogil=True, schedule="static"):
        t = r // blocks
        i0 = (r - t * blocks) * rows
        i1 = i0 + rows if i0 + rows < Ho else Ho
        for i in range(i0, i1):
            for j in range(Wo):
                out[t, i, j] = 0
        for n in range(t * npairs // T, (t + 1) * npairs // T):
            kp = &k[0, 0, 0] + n * kn
            for i in range(i0, i1):
                j = 0
                while j < Wo:
                    o = &out[t, i, j]
                    xj = &x[0, i, j] + n * xn
                    if Wo - j >= 4:
                        _dots(o, xj, xs, kp, HK, WK, 4)
                        j = j + 4
                    elif Wo - j == 3:
                        _dots(o, xj, xs, kp, HK, WK, 3)
                        j = j + 3
                    elif Wo - j == 2:
                        _dots(o, xj, xs, kp, HK, WK, 2)
                        j = j + 2
                    else:
                        _dots(o, xj, xs, kp, HK, WK, 1)
                        j = j + 1


# ---------------------------------------------------------------------------
# The 4-D layer lowered to matrix products: im2col / col2im and BLAS.
#
# For image n, group g and a tile of output positions, the output is one
# matrix product
#     out[n, g*Fg:(g+1)*Fg, tile] = w[g] @ cols
# with w[g] the (Fg, Kg) filters of the group, Kg = Cg*KH*KW, and cols the
# (Kg, tile size) matrix of input windows (im2col), built in the calling
# thread's own slot of a workspace.  A tile is a block of whole output rows,
# or a run of columns within one row, so that it is contiguous in ``out``.
# Python sizes the tiles, so that a slot stays small, and allocates one slot
# per thread.  The BLAS is called from several threads at once: Python holds
# it at one thread of its own meanwhile (cconv._blas).

cimport scipy.linalg.cython_blas as _blas
from cython.parallel cimport threadid
from libc.string cimport memcpy
from libc.math cimport sqrt


cdef struct Geometry:
    # One group of the layer, and how its windows sit in the image.
    Py_ssize_t C, H, W          # channels per group, input height, width
    Py_ssize_t KH, KW, Ho, Wo   # filter and output sizes
    Py_ssize_t sh, sw, ph, pw, dh, dw   # stride, top/left padding, dilation


cdef struct Tile:
    # Output rows [i0, i1) and columns [j0, j1); P = their count.
    Py_ssize_t i0, i1, j0, j1, P


cdef Geometry _geometry(tuple shape, tuple geom):
    cdef Geometry g
    g.C, g.H, g.W, g.KH, g.KW, g.Ho, g.Wo = shape
    g.sh, g.sw, g.ph, g.pw, g.dh, g.dw = geom
    return g


cdef inline Tile _tile(const Geometry* g, Py_ssize_t t, Py_ssize_t rows,
                       Py_ssize_t cols) noexcept nogil:
    """Tile ``t`` of ``rows`` whole rows, or of ``cols`` columns of one row."""
    cdef Tile tl
    cdef Py_ssize_t per_row
    if cols < g.Wo:
        per_row = (g.Wo + cols - 1) // cols
        tl.i0 = t // per_row
        tl.i1 = tl.i0 + 1
        tl.j0 = (t % per_row) * cols
        tl.j1 = tl.j0 + cols if tl.j0 + cols < g.Wo else g.Wo
    else:
        tl.i0 = t * rows
        tl.i1 = tl.i0 + rows if tl.i0 + rows < g.Ho else g.Ho
        tl.j0 = 0
        tl.j1 = g.Wo
    tl.P = (tl.i1 - tl.i0) * (tl.j1 - tl.j0)
    return tl


cdef inline Py_ssize_t _tile_count(const Geometry* g, Py_ssize_t rows,
                                   Py_ssize_t cols) noexcept nogil:
    if cols < g.Wo:
        return g.Ho * ((g.Wo + cols - 1) // cols)
    return (g.Ho + rows - 1) // rows


cdef inline void _gemm(char ta, char tb, int m, int n, int k,
                       const real* a, int lda, const real* b, int ldb,
                       real beta, real* c, int ldc) noexcept nogil:
    """Column-major ``c = op(a) @ op(b) + beta * c`` by SciPy's BLAS."""
    cdef real one = 1
    if real is float:
        _blas.sgemm(&ta, &tb, &m, &n, &k, &one, <float*>a, &lda,
                    <float*>b, &ldb, &beta, c, &ldc)
    else:
        _blas.dgemm(&ta, &tb, &m, &n, &k, &one, <double*>a, &lda,
                    <double*>b, &ldb, &beta, c, &ldc)


cdef inline void _column_span(const Geometry* g, const Tile* tl, Py_ssize_t b,
                              Py_ssize_t* jlo, Py_ssize_t* jhi) noexcept nogil:
    """Columns ``[jlo, jhi)`` of the tile whose tap ``b`` falls inside the image."""
    cdef Py_ssize_t off = b * g.dw - g.pw          # input column of output column 0
    cdef Py_ssize_t lo = 0, hi = 0
    if off < 0:
        lo = (-off + g.sw - 1) // g.sw
    if g.W - 1 - off >= 0:
        hi = (g.W - 1 - off) // g.sw + 1
    lo = lo if lo > tl.j0 else tl.j0
    hi = hi if hi < tl.j1 else tl.j1
    jlo[0] = lo
    jhi[0] = hi if hi > lo else lo


cdef void _im2col(const Geometry* g, const Tile* tl, const real* x,
                  real* cols) noexcept nogil:
    """``cols[(c*KH + a)*KW + b, tile position of (i, j)] = x[c, i*sh-ph+a*dh, j*sw-pw+b*dw]``.

    Zero where the window reaches into the padding.
    """
    cdef Py_ssize_t c, a, b, i, j, y, jlo, jhi
    cdef real* o
    cdef const real* src
    for c in range(g.C):
        for a in range(g.KH):
            for b in range(g.KW):
                _column_span(g, tl, b, &jlo, &jhi)
                o = cols + ((c * g.KH + a) * g.KW + b) * tl.P - tl.j0
                for i in range(tl.i0, tl.i1):
                    y = i * g.sh - g.ph + a * g.dh
                    if y < 0 or y >= g.H:
                        for j in range(tl.j0, tl.j1):
                            o[j] = 0
                    else:
                        src = x + (c * g.H + y) * g.W + b * g.dw - g.pw
                        for j in range(tl.j0, jlo):
                            o[j] = 0
                        if g.sw == 1:
                            memcpy(o + jlo, src + jlo, (jhi - jlo) * sizeof(real))
                        else:
                            for j in range(jlo, jhi):
                                o[j] = src[j * g.sw]
                        for j in range(jhi, tl.j1):
                            o[j] = 0
                    o += tl.j1 - tl.j0


cdef void _col2im(const Geometry* g, const Tile* tl, const real* cols,
                  real* dx) noexcept nogil:
    """The adjoint of ``_im2col``: add every window entry back into ``dx``."""
    cdef Py_ssize_t c, a, b, i, j, y, jlo, jhi
    cdef const real* o
    cdef real* dst
    for c in range(g.C):
        for a in range(g.KH):
            for b in range(g.KW):
                _column_span(g, tl, b, &jlo, &jhi)
                o = cols + ((c * g.KH + a) * g.KW + b) * tl.P - tl.j0
                for i in range(tl.i0, tl.i1):
                    y = i * g.sh - g.ph + a * g.dh
                    if 0 <= y < g.H:
                        dst = dx + (c * g.H + y) * g.W + b * g.dw - g.pw
                        if g.sw == 1:
                            for j in range(jlo, jhi):
                                dst[j] += o[j]
                        else:
                            for j in range(jlo, jhi):
                                dst[j * g.sw] += o[j]
                    o += tl.j1 - tl.j0


def conv2d_gemm_forward(const real[:, :, :, ::1] x, const real[:, :, ::1] w,
                        const real[::1] bias, real[:, :, ::1] out, real[:, ::1] work,
                        tuple shape, tuple geom, Py_ssize_t rows, Py_ssize_t cols,
                        bint pointwise):
    """``out[n, f] = sum_c correlate(x[n, c], w[f, c]) + bias[f]``, by im2col and GEMM.

    ``x`` is (N, C, H, W); ``w`` is (G, Fg, Kg), one matrix per group; ``out``
    is (N, G*Fg, Ho*Wo); ``shape`` is (Cg, H, W, KH, KW, Ho, Wo) and ``geom``
    (sh, sw, ph, pw, dh, dw).  An empty ``bias`` adds nothing.  Work items
    are (image, group, tile), spread over ``work.shape[0]`` threads, each
    using its own row of ``work`` (at least Kg times the tile size long).
    ``pointwise`` (a 1x1 filter at stride 1 without padding, as the caller
    decides): the image itself is the matrix, and ``work`` is not used.
    """
    cdef Geometry g = _geometry(shape, geom)
    cdef Py_ssize_t N = x.shape[0], G = w.shape[0], Fg = w.shape[1], Kg = w.shape[2]
    cdef Py_ssize_t HW = g.H * g.W, HoWo = g.Ho * g.Wo
    cdef Py_ssize_t tiles = _tile_count(&g, rows, cols)
    cdef Py_ssize_t item, n, grp, f, p
    cdef Tile tl
    cdef const real* a
    cdef real* o
    if N == 0 or G == 0 or Fg == 0 or HoWo == 0:
        return
    for item in prange(N * G * tiles, nogil=True, schedule="static",
                       num_threads=work.shape[0]):
        n = item // (G * tiles)
        grp = (item // tiles) % G
        tl = _tile(&g, item % tiles, rows, cols)
        if pointwise:
            a = &x[n, grp * g.C, 0, 0] + tl.i0 * g.W + tl.j0
        else:
            _im2col(&g, &tl, &x[n, grp * g.C, 0, 0], &work[threadid(), 0])
            a = &work[threadid(), 0]
        o = &out[n, grp * Fg, tl.i0 * g.Wo + tl.j0]
        # Row-major o (Fg x P, row stride HoWo) = w[grp] (Fg x Kg) @ cols (Kg x P).
        _gemm(c'N', c'N', <int>tl.P, <int>Fg, <int>Kg, a, <int>(HW if pointwise else tl.P),
              &w[grp, 0, 0], <int>Kg, 0, o, <int>HoWo)
        if bias.shape[0] != 0:
            for f in range(Fg):
                for p in range(tl.P):
                    o[f * HoWo + p] += bias[grp * Fg + f]


def conv2d_gemm_backward(const real[:, :, :, ::1] x, const real[:, :, ::1] w,
                         const real[:, :, ::1] dout, real[:, :, :, ::1] dx,
                         real[:, :, :, ::1] dw, real[:, ::1] work,
                         tuple shape, tuple geom, Py_ssize_t rows, Py_ssize_t cols,
                         bint pointwise):
    """Gradients of ``sum(out * dout)`` for the layer of ``conv2d_gemm_forward``.

    ``dx`` (N, C, H, W) must be zeros; it is summed into.  ``dw`` is
    (T, G, Kg, Fg) of zeros: one partial sum per thread (T =
    ``work.shape[0]``) of each group's filters, transposed, which the caller
    adds up and transposes back.  An empty ``dx`` or ``dw``
    is skipped.  Work items are (image, group), so no two threads write the
    same part of ``dx``; each runs through its tiles in order.  The static
    schedule gives each thread the same items on every call, so ``dw``'s
    partial sums, and their total, are the same bits every time.
    """
    cdef Geometry g = _geometry(shape, geom)
    cdef Py_ssize_t N = x.shape[0], G = w.shape[0], Fg = w.shape[1], Kg = w.shape[2]
    cdef Py_ssize_t HW = g.H * g.W, HoWo = g.Ho * g.Wo
    cdef Py_ssize_t tiles = _tile_count(&g, rows, cols)
    cdef bint want_dx = dx.shape[0] != 0, want_dw = dw.shape[0] != 0
    cdef Py_ssize_t item, n, grp, t, tid
    cdef Tile tl
    cdef real* ws
    cdef const real* a
    cdef const real* d
    if N == 0 or G == 0 or Fg == 0 or HoWo == 0:
        return
    for item in prange(N * G, nogil=True, schedule="static", num_threads=work.shape[0]):
        n = item // G
        grp = item % G
        tid = threadid()
        ws = &work[tid, 0]
        for t in range(tiles):
            tl = _tile(&g, t, rows, cols)
            d = &dout[n, grp * Fg, tl.i0 * g.Wo + tl.j0]
            if want_dw:
                # Row-major dw.T (Kg x Fg) += cols (Kg x P) @ dout.T (P x Fg).
                if pointwise:
                    a = &x[n, grp * g.C, 0, 0] + tl.i0 * g.W + tl.j0
                else:
                    _im2col(&g, &tl, &x[n, grp * g.C, 0, 0], ws)
                    a = ws
                _gemm(c'T', c'N', <int>Fg, <int>Kg, <int>tl.P, d, <int>HoWo,
                      a, <int>(HW if pointwise else tl.P), 1, &dw[tid, grp, 0, 0], <int>Fg)
            if want_dx:
                # Row-major dcols (Kg x P) = w[grp].T (Kg x Fg) @ dout (Fg x P).
                if pointwise:
                    _gemm(c'N', c'T', <int>tl.P, <int>Kg, <int>Fg, d, <int>HoWo, &w[grp, 0, 0],
                          <int>Kg, 1, &dx[n, grp * g.C, 0, 0] + tl.i0 * g.W + tl.j0, <int>HW)
                else:
                    _gemm(c'N', c'T', <int>tl.P, <int>Kg, <int>Fg, d, <int>HoWo, &w[grp, 0, 0],
                          <int>Kg, 0, ws, <int>tl.P)
                    _col2im(&g, &tl, ws, &dx[n, grp * g.C, 0, 0])


# ---------------------------------------------------------------------------
# Window sums for template matching.

def window_sums(const double[:, :, ::1] x, Py_ssize_t hh, Py_ssize_t ww,
                double[:, :, ::1] s1, double[:, :, ::1] s2, double[:, :, ::1] work,
                bint centred, const double[::1] shift):
    """``s1[n, i, j]`` = sum of ``x[n, i:i+hh, j:j+ww]``, ``s2`` the same of ``x**2``.

    Then, with ``centred``, ``s2`` becomes the sum of squares about the
    window's own mean, ``s2 - s1**2 / (hh*ww)``; else the sum of squares of
    ``x + shift[n]``, ``s2 + 2 shift s1 + hh*ww shift**2``.

    Running sums, slid one row down and one column across at a time, and
    started afresh every ``hh`` rows and every ``ww`` columns, so that
    rounding never accumulates over more than a window's length.  Parallel
    over blocks of ``hh`` output rows; ``work`` is (threads, 2, W), one pair
    of column-sum rows per thread.
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t Ho = s1.shape[1], Wo = s1.shape[2]
    cdef Py_ssize_t blocks = (Ho + hh - 1) // hh
    cdef Py_ssize_t item, n, i0, i1, i, j, j0, j1, r, tid
    cdef double* c1
    cdef double* c2
    cdef double a, b, t1, t2, m
    cdef double area = hh * ww
    if N == 0 or Ho <= 0 or Wo <= 0:
        return
    for item in prange(N * blocks, nogil=True, schedule="static", num_threads=work.shape[0]):
        n = item // blocks
        i0 = (item % blocks) * hh
        i1 = i0 + hh if i0 + hh < Ho else Ho
        tid = threadid()
        c1 = &work[tid, 0, 0]
        c2 = &work[tid, 1, 0]
        for j in range(W):
            c1[j] = 0
            c2[j] = 0
        for r in range(i0, i0 + hh):
            for j in range(W):
                a = x[n, r, j]
                c1[j] += a
                c2[j] += a * a
        for i in range(i0, i1):
            if i > i0:  # slide the column sums down one row
                for j in range(W):
                    a = x[n, i + hh - 1, j]
                    b = x[n, i - 1, j]
                    c1[j] += a - b
                    c2[j] += a * a - b * b
            j0 = 0
            while j0 < Wo:
                t1 = 0
                t2 = 0
                for j in range(j0, j0 + ww):
                    t1 = t1 + c1[j]
                    t2 = t2 + c2[j]
                s1[n, i, j0] = t1
                s2[n, i, j0] = t2
                j1 = j0 + ww if j0 + ww < Wo else Wo
                for j in range(j0 + 1, j1):
                    t1 = t1 + (c1[j + ww - 1] - c1[j - 1])
                    t2 = t2 + (c2[j + ww - 1] - c2[j - 1])
                    s1[n, i, j] = t1
                    s2[n, i, j] = t2
                j0 = j1
            m = shift[n]
            if centred:
                for j in range(Wo):
                    s2[n, i, j] = s2[n, i, j] - s1[n, i, j] * s1[n, i, j] / area
            else:
                for j in range(Wo):
                    s2[n, i, j] = s2[n, i, j] + (2 * m) * s1[n, i, j] + area * m * m


cdef enum:
    # What finish_scores computes from c = corr + offset (see its docstring).
    SCORE_PLAIN = 0
    SCORE_NORMED = 1
    SCORE_SQDIFF = 2
    SCORE_SQDIFF_NORMED = 3


def finish_scores(const real[:, :, ::1] corr, const double[:, :, ::1] window,
                  const double[::1] offset, const double[::1] templ,
                  const double[::1] w_floor, const double[::1] t_floor,
                  int kind, real[:, :, ::1] out):
    """Template-matching scores of pairs ``p`` from their correlation, in one pass.

    With ``c = corr[p] + offset[p]``, ``e = window[p]`` (or ``window[0]`` for
    every pair), ``t = templ[p]`` and ``s = sqrt(e * t)``, ``kind`` is one of

    - 0: ``c``;
    - 1: ``c / s`` clipped to [-1, 1], 0 where ``e <= w_floor[p]`` or
      ``t <= t_floor[p]`` (a flat window or template);
    - 2: ``max(t - 2c + e, 0)``: the sum of squared differences;
    - 3: that over ``s``, clipped to [0, 1], 1 where flat.

    Arithmetic in double; ``out`` may be ``corr`` itself.
    """
    cdef Py_ssize_t P = corr.shape[0], Ho = corr.shape[1], Wo = corr.shape[2]
    cdef bint shared = window.shape[0] == 1
    cdef Py_ssize_t r, p, i, j
    cdef double c, e, v, off, t, wf
    cdef double lo = -1.0 if kind == SCORE_NORMED else 0.0
    cdef double degenerate = 1.0 if kind == SCORE_SQDIFF_NORMED else 0.0
    cdef bint flat_template
    cdef const real* cr
    cdef const double* er
    cdef real* o
    for r in prange(P * Ho, nogil=True, schedule="static"):
        p = r // Ho
        i = r - p * Ho
        cr = &corr[p, i, 0]
        er = &window[0 if shared else p, i, 0]
        o = &out[p, i, 0]
        off = offset[p]
        t = templ[p]
        wf = w_floor[p]
        flat_template = t <= t_floor[p]
        if kind == SCORE_PLAIN:
            for j in range(Wo):
                o[j] = <real>(cr[j] + off)
        elif kind == SCORE_SQDIFF:
            for j in range(Wo):
                v = t - 2 * (cr[j] + off) + er[j]
                o[j] = <real>(v if v > 0 else 0)
        elif flat_template:
            for j in range(Wo):
                o[j] = <real>degenerate
        else:
            # kind 1 or 3: branch-free, so that the loop vectorises
            for j in range(Wo):
                c = cr[j] + off
                e = er[j]
                if kind == SCORE_SQDIFF_NORMED:
                    c = t - 2 * c + e
                    c = c if c > 0 else 0
                v = c / sqrt((e if e > wf else 1.0) * t)
                v = v if v > lo else lo
                v = v if v < 1.0 else 1.0
                o[j] = <real>(v if e > wf else degenerate)
