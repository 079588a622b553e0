# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False, nonecheck=False
"""Compiled loops of the 3-D (N, H, W) convolution layer.

Every function here trusts its caller (``cconv._conv3d``): the arrays are
C-contiguous, of one floating dtype, with shapes that agree, and every output
row is written in full.  Nothing is validated or allocated here, and the loops
run without the GIL.

Broadcasting over the leading axis is expressed by a leading size of 1: the
image or filter index ``n`` of a size-1 operand is always 0.

Each loop's innermost level runs over contiguous memory of one image row and
does one multiply-add per element, with no dependence between iterations, so
the C compiler can vectorise it.
"""


ctypedef fused real:
    float
    double


cdef inline Py_ssize_t _bcast(Py_ssize_t n, Py_ssize_t size) noexcept nogil:
    """Index ``n`` into an operand whose leading size is ``size`` (1 = broadcast)."""
    return n if size != 1 else 0


cdef inline void _axpy(real* y, const real* x, real a, Py_ssize_t m) noexcept nogil:
    """``y[j] += a * x[j]`` for ``j < m``."""
    cdef Py_ssize_t j
    for j in range(m):
        y[j] += a * x[j]


cdef inline real _dot(const real* x, const real* y, Py_ssize_t m) noexcept nogil:
    """``sum(x[j] * y[j])`` for ``j < m``, in the precision of ``real``."""
    cdef Py_ssize_t j
    cdef real s = 0
    for j in range(m):
        s += x[j] * y[j]
    return s


cdef inline void _zero(real* y, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(m):
        y[j] = 0


def forward(const real[:, :, ::1] x, const real[:, :, ::1] w, real[:, :, ::1] out):
    """Valid cross-correlation: ``out[n] = correlate2d(x[n], w[n], 'valid')``."""
    cdef Py_ssize_t N = out.shape[0], Ho = out.shape[1], Wo = out.shape[2]
    cdef Py_ssize_t HH = w.shape[1], WW = w.shape[2]
    cdef Py_ssize_t Nx = x.shape[0], Nw = w.shape[0]
    cdef Py_ssize_t n, i, a, b, nx, nw
    cdef real* orow
    with nogil:
        for n in range(N):
            nx = _bcast(n, Nx)
            nw = _bcast(n, Nw)
            for i in range(Ho):
                orow = &out[n, i, 0]
                _zero(orow, Wo)
                for a in range(HH):
                    for b in range(WW):
                        _axpy(orow, &x[nx, i + a, b], w[nw, a, b], Wo)


def backward_dx(const real[:, :, ::1] dout, const real[:, :, ::1] w, real[:, :, ::1] dx):
    """Full correlation of ``dout`` with the flipped filter, summed over broadcast.

    ``dx[m] = sum over n paired with m of correlate2d(dout[n], w[n][::-1, ::-1], 'full')``,
    computed by gathering, for each row ``p`` of ``dx``, the rows ``p - a`` of
    ``dout`` that reach it, so each output row is owned by one iteration.
    """
    cdef Py_ssize_t N = dout.shape[0], Ho = dout.shape[1], Wo = dout.shape[2]
    cdef Py_ssize_t Nx = dx.shape[0], H = dx.shape[1], W = dx.shape[2]
    cdef Py_ssize_t HH = w.shape[1], WW = w.shape[2], Nw = w.shape[0]
    cdef Py_ssize_t m, p, n, n_lo, n_hi, a, a_lo, a_hi, b, nw
    cdef real* drow
    cdef const real* grow
    with nogil:
        for m in range(Nx):
            # Images paired with dx[m]: just m, or all of them when x broadcasts.
            n_lo = m if Nx == N else 0
            n_hi = m + 1 if Nx == N else N
            for p in range(H):
                drow = &dx[m, p, 0]
                _zero(drow, W)
                a_lo = p - Ho + 1 if p - Ho + 1 > 0 else 0
                a_hi = p + 1 if p + 1 < HH else HH
                for n in range(n_lo, n_hi):
                    nw = _bcast(n, Nw)
                    for a in range(a_lo, a_hi):
                        grow = &dout[n, p - a, 0]
                        for b in range(WW):
                            _axpy(drow + b, grow, w[nw, a, b], Wo)


def backward_dw(const real[:, :, ::1] x, const real[:, :, ::1] dout, real[:, :, ::1] dw):
    """Valid correlation of ``x`` with ``dout``, summed over broadcast.

    ``dw[k] = sum over n paired with k of correlate2d(x[n], dout[n], 'valid')``.
    """
    cdef Py_ssize_t N = dout.shape[0], Ho = dout.shape[1], Wo = dout.shape[2]
    cdef Py_ssize_t Nw = dw.shape[0], HH = dw.shape[1], WW = dw.shape[2]
    cdef Py_ssize_t Nx = x.shape[0]
    cdef Py_ssize_t k, a, b, n, n_lo, n_hi, i, nx
    cdef real* wrow
    cdef const real* grow
    with nogil:
        for k in range(Nw):
            n_lo = k if Nw == N else 0
            n_hi = k + 1 if Nw == N else N
            for a in range(HH):
                wrow = &dw[k, a, 0]
                _zero(wrow, WW)
                for n in range(n_lo, n_hi):
                    nx = _bcast(n, Nx)
                    for i in range(Ho):
                        grow = &dout[n, i, 0]
                        for b in range(WW):
                            wrow[b] += _dot(&x[nx, i + a, b], grow, Wo)
