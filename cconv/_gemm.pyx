"""The 4-D layer lowered to matrix products: im2col / col2im and BLAS.

For image n, group g and a tile of output positions, the output is one
matrix product

    out[n, g*fg:(g+1)*fg, tile] = w[g] @ cols

with w[g] the (fg, kg) filters of the group, kg = cg*kh*kw, and cols the
(kg, tile size) matrix of input windows (im2col), built in the calling
thread's own slot of a workspace.  A tile is a block of whole output rows,
or a run of columns within one row, so that it is contiguous in ``out``.
``cconv._tiling`` sizes the tiles, so that a slot stays small, and the
caller allocates one slot per thread.  The BLAS is called from several
threads at once: the caller holds it at one thread of its own meanwhile
(``cconv._blas``).

Built once, without per-ISA twins (the BLAS does the arithmetic), and
imported only when the 4-D layer first runs, so that ``import cconv`` does
not load ``scipy.linalg``.
"""

cimport scipy.linalg.cython_blas as _blas
from cython.parallel cimport prange, threadid
from libc.string cimport memcpy

from cconv._fused cimport real


cdef struct Geometry:
    # One group of the layer, and how its windows sit in the image.
    Py_ssize_t c, ih, iw              # channels per group, input height and width
    Py_ssize_t kh, kw, oh, ow         # filter and output sizes
    Py_ssize_t sh, sw, ph, pw, dh, dw  # stride, top/left padding, dilation


cdef struct Tile:
    # Output rows [i0, i1) and columns [j0, j1); P = their count.
    Py_ssize_t i0, i1, j0, j1, P


cdef Geometry _geometry(tuple shape, tuple geom):
    cdef Geometry g
    g.c, g.ih, g.iw, g.kh, g.kw, g.oh, g.ow = shape
    g.sh, g.sw, g.ph, g.pw, g.dh, g.dw = geom
    return g


cdef inline Tile _tile(const Geometry* g, Py_ssize_t t, Py_ssize_t rows,
                       Py_ssize_t cols) noexcept nogil:
    """Tile ``t`` of ``rows`` whole rows, or of ``cols`` columns of one row."""
    cdef Tile tl
    cdef Py_ssize_t per_row
    if cols < g.ow:
        per_row = (g.ow + cols - 1) // cols
        tl.i0 = t // per_row
        tl.i1 = tl.i0 + 1
        tl.j0 = (t % per_row) * cols
        tl.j1 = tl.j0 + cols if tl.j0 + cols < g.ow else g.ow
    else:
        tl.i0 = t * rows
        tl.i1 = tl.i0 + rows if tl.i0 + rows < g.oh else g.oh
        tl.j0 = 0
        tl.j1 = g.ow
    tl.P = (tl.i1 - tl.i0) * (tl.j1 - tl.j0)
    return tl


cdef inline Py_ssize_t _tile_count(const Geometry* g, Py_ssize_t rows,
                                   Py_ssize_t cols) noexcept nogil:
    if cols < g.ow:
        return g.oh * ((g.ow + cols - 1) // cols)
    return (g.oh + rows - 1) // rows


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
    if g.iw - 1 - off >= 0:
        hi = (g.iw - 1 - off) // g.sw + 1
    lo = lo if lo > tl.j0 else tl.j0
    hi = hi if hi < tl.j1 else tl.j1
    jlo[0] = lo
    jhi[0] = hi if hi > lo else lo


cdef void _im2col(const Geometry* g, const Tile* tl, const real* x,
                  real* cols) noexcept nogil:
    """``cols[(c*kh + a)*kw + b, tile position of (i, j)] = x[c, i*sh-ph+a*dh, j*sw-pw+b*dw]``.

    Zero where the window reaches into the padding.
    """
    cdef Py_ssize_t c, a, b, i, j, y, jlo, jhi
    cdef real* o
    cdef const real* src
    for c in range(g.c):
        for a in range(g.kh):
            for b in range(g.kw):
                _column_span(g, tl, b, &jlo, &jhi)
                o = cols + ((c * g.kh + a) * g.kw + b) * tl.P - tl.j0
                for i in range(tl.i0, tl.i1):
                    y = i * g.sh - g.ph + a * g.dh
                    if y < 0 or y >= g.ih:
                        for j in range(tl.j0, tl.j1):
                            o[j] = 0
                    else:
                        src = x + (c * g.ih + y) * g.iw + b * g.dw - g.pw
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
    for c in range(g.c):
        for a in range(g.kh):
            for b in range(g.kw):
                _column_span(g, tl, b, &jlo, &jhi)
                o = cols + ((c * g.kh + a) * g.kw + b) * tl.P - tl.j0
                for i in range(tl.i0, tl.i1):
                    y = i * g.sh - g.ph + a * g.dh
                    if 0 <= y < g.ih:
                        dst = dx + (c * g.ih + y) * g.iw + b * g.dw - g.pw
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

    ``x`` is (N, C, ih, iw); ``w`` is (G, fg, kg), one matrix per group; ``out``
    is (N, G*fg, oh*ow); ``shape`` is (cg, ih, iw, kh, kw, oh, ow) and ``geom``
    (sh, sw, ph, pw, dh, dw).  An empty ``bias`` adds nothing.  Work items
    are (image, group, tile), spread over ``work.shape[0]`` threads, each
    using its own row of ``work`` (at least kg times the tile size long).
    ``pointwise`` (a 1x1 filter at stride 1 without padding, as the caller
    decides): the image itself is the matrix, and ``work`` is not used.
    """
    cdef Geometry g = _geometry(shape, geom)
    cdef Py_ssize_t N = x.shape[0], G = w.shape[0], fg = w.shape[1], kg = w.shape[2]
    cdef Py_ssize_t ihw = g.ih * g.iw, ohw = g.oh * g.ow
    cdef Py_ssize_t tiles = _tile_count(&g, rows, cols)
    cdef Py_ssize_t item, n, grp, f, p
    cdef Tile tl
    cdef const real* a
    cdef real* o
    if N == 0 or G == 0 or fg == 0 or ohw == 0:
        return
    for item in prange(N * G * tiles, nogil=True, schedule="static",
                       num_threads=work.shape[0]):
        n = item // (G * tiles)
        grp = (item // tiles) % G
        tl = _tile(&g, item % tiles, rows, cols)
        if pointwise:
            a = &x[n, grp * g.c, 0, 0] + tl.i0 * g.iw + tl.j0
        else:
            _im2col(&g, &tl, &x[n, grp * g.c, 0, 0], &work[threadid(), 0])
            a = &work[threadid(), 0]
        o = &out[n, grp * fg, tl.i0 * g.ow + tl.j0]
        # Row-major o (fg x P, row stride ohw) = w[grp] (fg x kg) @ cols (kg x P).
        _gemm(c'N', c'N', <int>tl.P, <int>fg, <int>kg, a, <int>(ihw if pointwise else tl.P),
              &w[grp, 0, 0], <int>kg, 0, o, <int>ohw)
        if bias.shape[0] != 0:
            for f in range(fg):
                for p in range(tl.P):
                    o[f * ohw + p] += bias[grp * fg + f]


def conv2d_gemm_backward(const real[:, :, :, ::1] x, const real[:, :, ::1] w,
                         const real[:, :, ::1] dout, real[:, :, :, ::1] dx,
                         real[:, :, :, ::1] dw, real[:, ::1] work,
                         tuple shape, tuple geom, Py_ssize_t rows, Py_ssize_t cols,
                         bint pointwise):
    """Gradients of ``sum(out * dout)`` for the layer of ``conv2d_gemm_forward``.

    ``dx`` (N, C, ih, iw) must be zeros; it is summed into.  ``dw`` is
    (S, G, kg, fg) of zeros: S partial sums of each group's filters,
    transposed, which the caller adds up and transposes back.  An empty
    ``dx`` or ``dw`` is skipped.  Work items are (image, group), so no two
    threads write the same part of ``dx``; each runs through its tiles in
    order.  Slot ``s`` of ``dw`` sums the items ``[s*N*G//S, (s+1)*N*G//S)``
    in order, on one thread: ``dw``'s partial sums, and their total, are the
    same bits whatever the thread count (``work.shape[0]``, one row each).
    """
    cdef Geometry g = _geometry(shape, geom)
    cdef Py_ssize_t N = x.shape[0], G = w.shape[0], fg = w.shape[1], kg = w.shape[2]
    cdef Py_ssize_t ihw = g.ih * g.iw, ohw = g.oh * g.ow
    cdef Py_ssize_t tiles = _tile_count(&g, rows, cols)
    cdef bint want_dx = dx.shape[0] != 0, want_dw = dw.shape[0] != 0
    cdef Py_ssize_t S = dw.shape[0] if want_dw else work.shape[0]
    cdef Py_ssize_t item, n, grp, t, tid, slot
    cdef Tile tl
    cdef real* ws
    cdef const real* a
    cdef const real* d
    if N == 0 or G == 0 or fg == 0 or ohw == 0:
        return
    for slot in prange(S, nogil=True, schedule="dynamic", num_threads=work.shape[0]):
        tid = threadid()
        ws = &work[tid, 0]
        for item in range(slot * N * G // S, (slot + 1) * N * G // S):
            n = item // G
            grp = item % G
            for t in range(tiles):
                tl = _tile(&g, t, rows, cols)
                d = &dout[n, grp * fg, tl.i0 * g.ow + tl.j0]
                if want_dw:
                    # Row-major dw.T (kg x fg) += cols (kg x P) @ dout.T (P x fg).
                    if pointwise:
                        a = &x[n, grp * g.c, 0, 0] + tl.i0 * g.iw + tl.j0
                    else:
                        _im2col(&g, &tl, &x[n, grp * g.c, 0, 0], ws)
                        a = ws
                    _gemm(c'T', c'N', <int>fg, <int>kg, <int>tl.P, d, <int>ohw,
                          a, <int>(ihw if pointwise else tl.P), 1, &dw[slot, grp, 0, 0], <int>fg)
                if want_dx:
                    # Row-major dcols (kg x P) = w[grp].T (kg x fg) @ dout (fg x P).
                    if pointwise:
                        _gemm(c'N', c'T', <int>tl.P, <int>kg, <int>fg, d, <int>ohw, &w[grp, 0, 0],
                              <int>kg, 1, &dx[n, grp * g.c, 0, 0] + tl.i0 * g.iw + tl.j0, <int>ihw)
                    else:
                        _gemm(c'N', c'T', <int>tl.P, <int>kg, <int>fg, d, <int>ohw, &w[grp, 0, 0],
                              <int>kg, 0, ws, <int>tl.P)
                        _col2im(&g, &tl, ws, &dx[n, grp * g.c, 0, 0])
