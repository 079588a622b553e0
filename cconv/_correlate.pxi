# The direct loops of cconv: valid cross-correlation over a batch of pairs,
# in two loop orders.  Included by _correlate.pyx and its per-ISA twins
# (_correlate_v3.pyx, _correlate_v4.pyx); see _correlate.pyx for what they
# compute.

from cython.parallel cimport prange, threadid
from libc.string cimport memcpy

from cconv._fused cimport real

include "_build_info.pxi"


cdef enum:
    NARROW_BYTES = 64       # one AVX-512 or two AVX2 registers, for narrow rows
    NARROW_LANES = 16       # NARROW_BYTES of float32
    # Rows of a long dot product summed in the input precision before the
    # partial sum is added to a double.
    ROWS_PER_FLUSH = 16


cdef extern from "correlate_kernels.h" nogil:
    void _rows_f "ccr_rows_f32"(float* o, Py_ssize_t os, const float* x, Py_ssize_t xs, Py_ssize_t xn,
                                const float* k, Py_ssize_t kn, Py_ssize_t npairs, Py_ssize_t kh, Py_ssize_t kw,
                                Py_ssize_t ow, Py_ssize_t rows)
    void _rows_d "ccr_rows_f64"(double* o, Py_ssize_t os, const double* x, Py_ssize_t xs, Py_ssize_t xn,
                                const double* k, Py_ssize_t kn, Py_ssize_t npairs, Py_ssize_t kh, Py_ssize_t kw,
                                Py_ssize_t ow, Py_ssize_t rows)


cdef inline void _wide_rows(real* o, Py_ssize_t os, const real* x, Py_ssize_t xs, Py_ssize_t xn,
                            const real* k, Py_ssize_t kn, Py_ssize_t npairs,
                            Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t ow, Py_ssize_t rows) noexcept nogil:
    """``rows`` output rows of ``correlate_wide`` (any count), in the register blocks of correlate_kernels.h."""
    if real is float:
        _rows_f(o, os, x, xs, xn, k, kn, npairs, kh, kw, ow, rows)
    else:
        _rows_d(o, os, x, xs, xn, k, kn, npairs, kh, kw, ow, rows)


def correlate_wide(const real[:, :, ::1] x, const real[:, :, ::1] k,
                   real[:, :, ::1] out, Py_ssize_t npairs, Py_ssize_t rows, int threads):
    """``out[t] = sum over pairs n of task t of correlate2d(x[n], k[n], 'valid')``.

    Parallel over blocks of ``rows`` rows of ``out`` (each written by one
    iteration), on a dynamic schedule: a thread that the system delays
    leaves its blocks to the others, on ``threads`` threads.  Every output
    is the same sum in the same order whatever the thread count.
    """
    cdef Py_ssize_t T = out.shape[0], oh = out.shape[1], ow = out.shape[2]
    cdef Py_ssize_t kh = k.shape[1], kw = k.shape[2], xs = x.shape[2]
    # Distance between consecutive pairs' operands: 0 for a broadcast operand.
    cdef Py_ssize_t xn = x.shape[1] * xs if x.shape[0] != 1 else 0
    cdef Py_ssize_t kn = kh * kw if k.shape[0] != 1 else 0
    cdef Py_ssize_t blocks = (oh + rows - 1) // rows
    cdef Py_ssize_t item, t, i, n0
    if T == 0 or oh == 0 or ow == 0:
        return
    for item in prange(T * blocks, nogil=True, schedule="dynamic", num_threads=threads):
        t = item // blocks
        i = (item - t * blocks) * rows
        n0 = t * npairs // T
        _wide_rows(&out[t, i, 0], ow, &x[0, i, 0] + n0 * xn, xs, xn,
                   &k[0, 0, 0] + n0 * kn, kn, (t + 1) * npairs // T - n0, kh, kw, ow,
                   rows if i + rows <= oh else oh - i)


# ---------------------------------------------------------------------------
# A 2-D filter with a boundary rule, reading the images in place.

cdef inline void _gather(real* P, Py_ssize_t pw, const real* x, Py_ssize_t xs, const Py_ssize_t* rows,
                         Py_ssize_t nrows, const Py_ssize_t* cols, real fill) noexcept nogil:
    """``P[t*pw + u] = x[rows[t]*xs + cols[u]]`` for ``t < nrows``, ``u < pw``; ``fill`` where an index is -1."""
    cdef Py_ssize_t t, u, c
    cdef real* p
    cdef const real* xr
    for t in range(nrows):
        p = P + t * pw
        if rows[t] < 0:
            for u in range(pw):
                p[u] = fill
        else:
            xr = x + rows[t] * xs
            for u in range(pw):
                c = cols[u]
                p[u] = xr[c] if c >= 0 else fill


def filter_rows(const real[:, :, :] x, const real[:, ::1] k, real[:, :, :] out,
                const Py_ssize_t[::1] rows, const Py_ssize_t[::1] cols, real fill,
                Py_ssize_t ia, Py_ssize_t ib, Py_ssize_t ja, Py_ssize_t jb,
                real[:, ::1] scratch, Py_ssize_t block, int threads):
    """``out[n, i, j] = sum_ab X[n, i + a, j + b] * k[a, b]``, X the images ``x`` extended by a boundary rule.

    The rule comes as indices: extended row ``t`` of X is row ``rows[t]`` of
    ``x`` (``t < OH + kh - 1``), extended column ``u`` is column
    ``cols[u]`` (``u < OW + kw - 1``), and -1 stands for ``fill``.  The
    output rows ``[ia, ib)`` and columns ``[ja, jb)`` are the interior: the
    indices run consecutively there (``rows[i + a] == rows[i] + a``, and so
    for columns), so those outputs read ``x`` in place, with its own row
    stride, which may be negative (the last axes of ``x`` and ``out`` are
    contiguous: the caller sees to it).  Every other output is computed from a
    patch of X gathered by index into the thread's row of ``scratch``
    (``(block + kh - 1) * (OW + kw - 1)`` elements): the edge columns of
    interior rows, and whole rows elsewhere.  ``out`` may be a view (any row
    stride) that does not overlap ``x``.

    Work items are (image, block of ``block`` output rows), on a dynamic
    schedule over ``threads`` threads (at most the rows of ``scratch``);
    each output is the same sum in the same order whatever the thread count
    or the split into interior and edges.
    """
    cdef Py_ssize_t N = out.shape[0], OH = out.shape[1], OW = out.shape[2]
    cdef Py_ssize_t kh = k.shape[0], kw = k.shape[1]
    cdef Py_ssize_t xs = x.strides[1] // <Py_ssize_t>sizeof(real)
    cdef Py_ssize_t os = out.strides[1] // <Py_ssize_t>sizeof(real)
    cdef Py_ssize_t blocks = (OH + block - 1) // block
    cdef Py_ssize_t item, n, i0, i1, nr, pw
    cdef real* P
    cdef const real* xn
    cdef const real* kp = &k[0, 0]
    if N == 0 or OH == 0 or OW == 0:
        return
    for item in prange(N * blocks, nogil=True, schedule="dynamic", num_threads=threads):
        n = item // blocks
        i0 = (item - n * blocks) * block
        i1 = i0 + block if i0 + block < OH else OH
        nr = i1 - i0
        P = &scratch[threadid(), 0]
        xn = &x[n, 0, 0]
        if i0 >= ia and i1 <= ib and ja < jb:
            _wide_rows(&out[n, i0, ja], os, xn + rows[i0] * xs + cols[ja], xs, 0, kp, 0, 1, kh, kw, jb - ja, nr)
            if ja > 0:
                pw = ja + kw - 1
                _gather(P, pw, xn, xs, &rows[i0], nr + kh - 1, &cols[0], fill)
                _wide_rows(&out[n, i0, 0], os, P, pw, 0, kp, 0, 1, kh, kw, ja, nr)
            if jb < OW:
                pw = OW - jb + kw - 1
                _gather(P, pw, xn, xs, &rows[i0], nr + kh - 1, &cols[jb], fill)
                _wide_rows(&out[n, i0, jb], os, P, pw, 0, kp, 0, 1, kh, kw, OW - jb, nr)
        else:
            pw = OW + kw - 1
            _gather(P, pw, xn, xs, &rows[i0], nr + kh - 1, &cols[0], fill)
            _wide_rows(&out[n, i0, 0], os, P, pw, 0, kp, 0, 1, kh, kw, OW, nr)


cdef inline void _dots(real* o, const real* x, Py_ssize_t xs, const real* k,
                       Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t nb) noexcept nogil:
    """``o[c] += sum_ij x[i*xs + j + c] * k[i*kw + j]`` for ``c < nb <= 4``.

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
    cdef Py_ssize_t i, j, v
    cdef Py_ssize_t L = NARROW_BYTES // sizeof(real)
    cdef const real* xi
    cdef const real* ki
    for v in range(NARROW_BYTES // sizeof(real)):
        a0[v] = 0
        a1[v] = 0
        a2[v] = 0
        a3[v] = 0
    for i in range(kh):
        xi = x + i * xs
        ki = k + i * kw
        j = 0
        while nb == 1 and j + 4 * L <= kw:
            for v in range(NARROW_BYTES // sizeof(real)):
                a0[v] += xi[j + v] * ki[j + v]
            for v in range(NARROW_BYTES // sizeof(real)):
                a1[v] += xi[j + L + v] * ki[j + L + v]
            for v in range(NARROW_BYTES // sizeof(real)):
                a2[v] += xi[j + 2 * L + v] * ki[j + 2 * L + v]
            for v in range(NARROW_BYTES // sizeof(real)):
                a3[v] += xi[j + 3 * L + v] * ki[j + 3 * L + v]
            j += 4 * L
        while j + L <= kw:
            for v in range(NARROW_BYTES // sizeof(real)):
                a0[v] += xi[j + v] * ki[j + v]
            if nb > 1:
                for v in range(NARROW_BYTES // sizeof(real)):
                    a1[v] += xi[j + 1 + v] * ki[j + v]
            if nb > 2:
                for v in range(NARROW_BYTES // sizeof(real)):
                    a2[v] += xi[j + 2 + v] * ki[j + v]
            if nb > 3:
                for v in range(NARROW_BYTES // sizeof(real)):
                    a3[v] += xi[j + 3 + v] * ki[j + v]
            j += L
        while j < kw:  # the row's ragged end
            a0[0] += xi[j] * ki[j]
            if nb > 1:
                a1[0] += xi[j + 1] * ki[j]
            if nb > 2:
                a2[0] += xi[j + 2] * ki[j]
            if nb > 3:
                a3[0] += xi[j + 3] * ki[j]
            j += 1
        if (i + 1) % ROWS_PER_FLUSH == 0 or i + 1 == kh:
            for v in range(NARROW_BYTES // sizeof(real)):
                t0 += a0[v]
                t1 += a1[v]
                t2 += a2[v]
                t3 += a3[v]
                a0[v] = 0
                a1[v] = 0
                a2[v] = 0
                a3[v] = 0
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
                     real[:, :, ::1] out, Py_ssize_t npairs, Py_ssize_t rows, int threads):
    """Same result as ``correlate_wide``, for outputs small next to ``k``.

    Each output element is one long dot product of ``k[n]`` with a window of
    ``x[n]``; up to four neighbouring elements of a row are computed together.
    Parallel over blocks of ``rows`` rows of ``out``, on ``threads``
    threads: a block computes all of its rows pair by pair, so each pair's
    images are read from memory once per block, then reused from cache.
    """
    cdef Py_ssize_t T = out.shape[0], oh = out.shape[1], ow = out.shape[2]
    cdef Py_ssize_t kh = k.shape[1], kw = k.shape[2], xs = x.shape[2]
    cdef Py_ssize_t xn = x.shape[1] * xs if x.shape[0] != 1 else 0
    cdef Py_ssize_t kn = kh * kw if k.shape[0] != 1 else 0
    cdef Py_ssize_t blocks = (oh + rows - 1) // rows
    cdef Py_ssize_t r, t, i, i0, i1, j, n
    cdef real* o
    cdef const real* xj
    cdef const real* kp
    if T == 0 or oh == 0 or ow == 0:
        return
    for r in prange(T * blocks, nogil=True, schedule="static", num_threads=threads):
        t = r // blocks
        i0 = (r - t * blocks) * rows
        i1 = i0 + rows if i0 + rows < oh else oh
        for i in range(i0, i1):
            for j in range(ow):
                out[t, i, j] = 0
        for n in range(t * npairs // T, (t + 1) * npairs // T):
            kp = &k[0, 0, 0] + n * kn
            for i in range(i0, i1):
                j = 0
                while j < ow:
                    o = &out[t, i, j]
                    xj = &x[0, i, j] + n * xn
                    if ow - j >= 4:
                        _dots(o, xj, xs, kp, kh, kw, 4)
                        j = j + 4
                    elif ow - j == 3:
                        _dots(o, xj, xs, kp, kh, kw, 3)
                        j = j + 3
                    elif ow - j == 2:
                        _dots(o, xj, xs, kp, kh, kw, 2)
                        j = j + 2
                    else:
                        _dots(o, xj, xs, kp, kh, kw, 1)
                        j = j + 1


# ---------------------------------------------------------------------------
# The backward pass of a small filter in one pass over x and dout.

cdef extern from "dw_tiles.h" nogil:
    const Py_ssize_t DW_VL_BYTES "CCONV_DW_VL_BYTES"
    const Py_ssize_t DW_TILE_ROWS "CCONV_DW_TILE_ROWS"
    const Py_ssize_t DW_TILE_COLS "CCONV_DW_TILE_COLS"
    void _fma_f "cconv_dw_fma_f"(float* acc, const float* x, const float* d) noexcept nogil
    void _fma_d "cconv_dw_fma_d"(double* acc, const double* x, const double* d) noexcept nogil
    void _fma_from_f "cconv_dw_fma_from_f"(float* acc, const float* x, const float* d,
                                           Py_ssize_t skip) noexcept nogil
    void _fma_from_d "cconv_dw_fma_from_d"(double* acc, const double* x, const double* d,
                                           Py_ssize_t skip) noexcept nogil


cdef enum:
    # Upper bounds of the tiles above, for the accumulator array.
    MAX_DW_ROWS = 5
    MAX_DW_COLS = 5
    MAX_DW_LANES = 16   # 64 bytes of float32


cdef inline void _dw_fma(real* acc, const real* x, const real* d, Py_ssize_t skip) noexcept nogil:
    """``acc[v] += x[v] * d[v]`` for the lanes ``skip <= v < VL`` of one vector (``skip`` 0: all)."""
    if real is float:
        if skip == 0:
            _fma_f(acc, x, d)
        else:
            _fma_from_f(acc, x, d, skip)
    else:
        if skip == 0:
            _fma_d(acc, x, d)
        else:
            _fma_from_d(acc, x, d, skip)


cdef inline void _dw_vec(real* acc, const real* xr, const real* dr, Py_ssize_t ds,
                         Py_ssize_t a0, Py_ssize_t a1, Py_ssize_t A, Py_ssize_t B,
                         Py_ssize_t skip) noexcept nogil:
    """``acc[(a*B + b)*VL + v] += xr[b + v] * dr[-a*ds + v]`` for ``a0 <= a < a1``, ``b < B``, ``skip <= v < VL``.

    One vector of a row ``xr`` of x meets the rows of d that pair with it,
    one per tile row ``a``: each x vector is loaded once for ``A``
    multiply-adds, each d vector once for ``B``.  ``A`` and ``B`` are
    constants; so are ``a0``, ``a1`` (0 and ``A``) and ``skip`` (0) in the
    tile's inner rows, where the conditions fold away.
    """
    cdef Py_ssize_t a, b
    for a in range(A):
        if a >= a0 and a < a1:
            for b in range(B):
                _dw_fma(acc + (a * B + b) * (DW_VL_BYTES // sizeof(real)), xr + b, dr - a * ds, skip)


cdef inline void _dw_xrow(real* acc, const real* xr, const real* dr, Py_ssize_t ds, Py_ssize_t ow,
                          Py_ssize_t a0, Py_ssize_t a1, Py_ssize_t A, Py_ssize_t B) noexcept nogil:
    """``acc[(a*B + b)*VL + v] += sum_j xr[j + b + v] * dr[-a*ds + j + v]`` for ``a0 <= a < a1``, ``b < B``.

    ``j`` runs over one row by vectors (``ow >= VL``); the row's ragged end
    is one more vector, which overlaps the one before it with the lanes
    already counted selected away (not multiplied by zero: an infinity
    there makes no NaN).
    """
    cdef Py_ssize_t L = DW_VL_BYTES // sizeof(real)
    cdef Py_ssize_t j = 0
    while j + L <= ow:
        _dw_vec(acc, xr + j, dr + j, ds, a0, a1, A, B, 0)
        j += L
    if j < ow:
        _dw_vec(acc, xr + ow - L, dr + ow - L, ds, a0, a1, A, B, j - (ow - L))


cdef inline void _dw_tile(double* dw, Py_ssize_t kw, const real* x, Py_ssize_t xs,
                          const real* d, Py_ssize_t ds, Py_ssize_t nrows, Py_ssize_t ow,
                          Py_ssize_t A, Py_ssize_t B) noexcept nogil:
    """``dw[a*kw + b] += sum_i sum_j x[(i+a)*xs + j + b] * d[i*ds + j]`` for ``a < A``, ``b < B``.

    ``i < nrows``, ``j < ow``, ``ow >= VL`` (the lanes of one vector).
    Called with constant ``A`` and ``B``, so that the ``A * B`` vector
    accumulators live in registers through the whole item.  The loop runs
    along the rows of x, each met by the d rows ``r - a`` that pair with
    it (:func:`_dw_xrow`): every tile row takes part for
    ``A - 1 <= r < nrows``, the rows before and after (the tile's top and
    bottom edges) take only the tile rows in range.  Row by row, x and d
    are read in memory order, as the hardware prefetcher expects: column
    vectors down the rows read x from memory a line per row at a time.
    The lanes sum in the input precision, then in a fixed order into
    double.
    """
    cdef real acc[MAX_DW_ROWS * MAX_DW_COLS * MAX_DW_LANES]
    cdef Py_ssize_t r, r0 = A - 1 if A - 1 < nrows else nrows
    cdef Py_ssize_t a, b, v
    cdef double s
    for v in range(A * B * (DW_VL_BYTES // sizeof(real))):
        acc[v] = 0
    for r in range(r0):
        _dw_xrow(acc, x + r * xs, d + r * ds, ds, ow, 0, r + 1, A, B)
    for r in range(r0, nrows):
        _dw_xrow(acc, x + r * xs, d + r * ds, ds, ow, 0, A, A, B)
    for r in range(r0 if r0 > nrows else nrows, nrows + A - 1):
        _dw_xrow(acc, x + r * xs, d + r * ds, ds, ow, r - nrows + 1, r + 1 if r + 1 < A else A, A, B)
    for a in range(A):
        for b in range(B):
            s = 0
            for v in range(DW_VL_BYTES // sizeof(real)):
                s += acc[(a * B + b) * (DW_VL_BYTES // sizeof(real)) + v]
            dw[a * kw + b] += s


cdef inline void _dw_tile_cols(double* dw, Py_ssize_t kw, const real* x, Py_ssize_t xs,
                               const real* d, Py_ssize_t ds, Py_ssize_t nrows, Py_ssize_t ow,
                               Py_ssize_t A) noexcept nogil:
    """:func:`_dw_tile` for ``A`` (a constant) filter rows and all ``kw`` columns, in tiles of constant width."""
    cdef Py_ssize_t b = 0
    while kw - b >= DW_TILE_COLS:
        _dw_tile(dw + b, kw, x + b, xs, d, ds, nrows, ow, A, DW_TILE_COLS)
        b += DW_TILE_COLS
    if kw - b == 1:
        _dw_tile(dw + b, kw, x + b, xs, d, ds, nrows, ow, A, 1)
    elif DW_TILE_COLS > 2 and kw - b == 2:
        _dw_tile(dw + b, kw, x + b, xs, d, ds, nrows, ow, A, 2)
    elif DW_TILE_COLS > 3 and kw - b == 3:
        _dw_tile(dw + b, kw, x + b, xs, d, ds, nrows, ow, A, 3)
    elif DW_TILE_COLS > 4 and kw - b == 4:
        _dw_tile(dw + b, kw, x + b, xs, d, ds, nrows, ow, A, 4)


cdef inline void _dw_block(double* dw, const real* x, Py_ssize_t xs, const real* d, Py_ssize_t ds,
                           Py_ssize_t nrows, Py_ssize_t ow, Py_ssize_t kh, Py_ssize_t kw,
                           real* T) noexcept nogil:
    """``dw[a*kw + b] += sum_i sum_j x[(i+a)*xs + j + b] * d[i*ds + j]``, ``i < nrows``, ``j < ow``.

    Rows of at least one vector: register tiles of filter taps
    (:func:`_dw_tile`), of constant sizes.  Narrower rows: the products are
    summed over the rows first, lane by lane, into ``T[b*ow + j]``
    (``kw * ow`` of scratch), then each ``T[b]`` is added up in double.
    """
    cdef Py_ssize_t a = 0, b, i, j
    cdef real* tb
    cdef const real* xb
    cdef const real* dr
    cdef double sum
    if ow >= DW_VL_BYTES // sizeof(real):
        while kh - a >= DW_TILE_ROWS:
            _dw_tile_cols(dw + a * kw, kw, x + a * xs, xs, d, ds, nrows, ow, DW_TILE_ROWS)
            a += DW_TILE_ROWS
        if kh - a == 1:
            _dw_tile_cols(dw + a * kw, kw, x + a * xs, xs, d, ds, nrows, ow, 1)
        elif DW_TILE_ROWS > 2 and kh - a == 2:
            _dw_tile_cols(dw + a * kw, kw, x + a * xs, xs, d, ds, nrows, ow, 2)
        elif DW_TILE_ROWS > 3 and kh - a == 3:
            _dw_tile_cols(dw + a * kw, kw, x + a * xs, xs, d, ds, nrows, ow, 3)
        elif DW_TILE_ROWS > 4 and kh - a == 4:
            _dw_tile_cols(dw + a * kw, kw, x + a * xs, xs, d, ds, nrows, ow, 4)
        return
    for a in range(kh):
        for j in range(kw * ow):
            T[j] = 0
        for i in range(nrows):
            dr = d + i * ds
            for b in range(kw):
                tb = T + b * ow
                xb = x + (i + a) * xs + b
                for j in range(ow):
                    tb[j] += xb[j] * dr[j]
        for b in range(kw):
            sum = 0
            for j in range(ow):
                sum += T[b * ow + j]
            dw[a * kw + b] += sum


def backward_fused(const real[:, :, ::1] x, const real[:, :, ::1] wflip, const real[:, :, ::1] dout,
                   real[:, :, ::1] dx, double[:, :, ::1] dw, real[:, ::1] scratch, Py_ssize_t rows):
    """dx and dw of ``out[n] = correlate2d(x[n], w[n], 'valid')`` in one pass.

    ``x`` and ``dx`` are (N, H, W), ``dout`` (N, oh, ow), ``wflip`` the
    filters flipped, (1 or N, kh, kw).  Work items are (image n, block of
    ``rows`` rows); item ``q`` writes rows of ``dx[n]`` and the partial
    ``dw[q]`` (items * (kh, kw), doubles, zeros on entry) from the same
    rows of ``dout``, read once: dx is the valid correlation of a
    zero-bordered copy of the item's ``dout`` rows (in the thread's row of
    ``scratch``: (rows + kh - 1) * (ow + 2 * (kw - 1)) elements, then kw * ow
    more for dw's row sums) with the flipped filter; dw the products of
    those ``dout`` rows with shifted rows of ``x``.  Runs on as many threads
    as ``scratch`` has rows.  The items and their partial sums do not depend
    on the thread count, so neither do the results.
    """
    cdef Py_ssize_t N = x.shape[0], H = x.shape[1], W = x.shape[2]
    cdef Py_ssize_t kh = wflip.shape[1], kw = wflip.shape[2]
    cdef Py_ssize_t oh = dout.shape[1], ow = dout.shape[2]
    cdef Py_ssize_t kn = kh * kw if wflip.shape[0] != 1 else 0
    cdef Py_ssize_t sw = ow + 2 * (kw - 1)
    cdef Py_ssize_t blocks = (H + rows - 1) // rows
    # Threads take runs of this many consecutive items, which share rows of
    # x in cache; one at a time when there are few, to share them out
    # evenly.  (Software prefetches of the next item's rows, which an
    # earlier version issued, cost 10-22% on an AVX-512 Xeon: the hardware
    # prefetchers follow these row streams.)
    cdef Py_ssize_t run = 4 if N * blocks >= 64 else 1
    cdef Py_ssize_t item, n, p0, p1, s, i, j, d0, d1, ss
    cdef real* S
    if N == 0 or H == 0 or W == 0:
        return
    for item in prange(N * blocks, nogil=True, schedule="dynamic", chunksize=run,
                       num_threads=scratch.shape[0]):
        n = item // blocks
        p0 = (item - n * blocks) * rows
        p1 = p0 + rows if p0 + rows < H else H
        d0 = p0
        d1 = p1 if p1 < oh else oh
        # dout rows p0 - kh + 1 .. p1 - 1, zero outside dout, with kw - 1
        # zero columns on either side.
        S = &scratch[threadid(), 0]
        ss = p1 - p0 + kh - 1
        for s in range(ss):
            i = p0 - kh + 1 + s
            if i < 0 or i >= oh:
                for j in range(sw):
                    S[s * sw + j] = 0
            else:
                for j in range(kw - 1):
                    S[s * sw + j] = 0
                    S[s * sw + kw - 1 + ow + j] = 0
                memcpy(S + s * sw + kw - 1, &dout[n, i, 0], ow * sizeof(real))
        _wide_rows(&dx[n, p0, 0], W, S, sw, 0, &wflip[0, 0, 0] + n * kn, 0, 1, kh, kw, W, p1 - p0)
        # dw from the dout rows of this item: [p0, p1) within [0, oh).
        if d0 < d1:
            _dw_block(&dw[item, 0, 0], &x[n, d0, 0], W, &dout[n, d0, 0], ow, d1 - d0, ow, kh, kw,
                      S + ss * sw)
