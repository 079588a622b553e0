# Sums whose every rounding is SciPy's.  Included by _exact.pyx and its
# per-ISA twins (_exact_v3.pyx, _exact_v4.pyx); see _exact.pyx for what they
# compute.  setup.py compiles this family with floating-point contraction
# off (-ffp-contract=off): no multiply and add fused into one FMA, whose
# single rounding differs from SciPy's two.

from cython.parallel cimport prange

from cconv._fused cimport exact

include "_build_info.pxi"


cdef extern from "no_contraction.h":
    pass


cdef enum:
    STRIP_BYTES = 128        # output columns of one strip of exact sums, in bytes
    NARROW_BYTES = 32        # ... of one strip of a narrow output row
    MAX_LANES = 128          # STRIP_BYTES of unsigned char
    ORDERED_BYTES = 256      # output columns of one strip of ordered double sums, in bytes
    ORDERED_LANES = 32       # ORDERED_BYTES of double


# ---------------------------------------------------------------------------
# Sums in the data's own type: integers (modulo 2**bits) and long double, as
# SciPy's signal module sums them.

cdef inline void _exact_strip(exact* o, const exact* x, Py_ssize_t xs,
                              const exact* k, Py_ssize_t kh, Py_ssize_t kw,
                              Py_ssize_t width) noexcept nogil:
    """``o[j] = sum_ab x[a*xs + b + j] * k[a*kw + b]`` in ``exact``'s arithmetic, ``j < width``."""
    cdef exact acc[MAX_LANES]
    cdef Py_ssize_t a, b, j
    cdef exact kv
    cdef const exact* xa
    for j in range(width):
        acc[j] = 0
    for a in range(kh):
        xa = x + a * xs
        for b in range(kw):
            kv = k[a * kw + b]
            for j in range(width):
                acc[j] = acc[j] + xa[b + j] * kv
    for j in range(width):
        o[j] = acc[j]


def correlate_exact(const exact[:, :, ::1] x, const exact[:, :, ::1] k, exact[:, :, ::1] out, int threads):
    """``out[n] = correlate2d(x[n], k[n], 'valid')``, summed in the data's own type.

    Unsigned integers wrap modulo 2**bits (as signed two's-complement sums
    do, bit for bit), so the sum over taps is exact in that arithmetic
    whatever its order.  ``x`` or ``k`` may have a leading size of 1
    (broadcast).  Parallel over the rows of ``out``, on ``threads`` threads.
    """
    cdef Py_ssize_t N = out.shape[0], oh = out.shape[1], ow = out.shape[2]
    cdef Py_ssize_t kh = k.shape[1], kw = k.shape[2], xs = x.shape[2]
    cdef Py_ssize_t xn = x.shape[1] * xs if x.shape[0] != 1 else 0
    cdef Py_ssize_t kn = kh * kw if k.shape[0] != 1 else 0
    cdef Py_ssize_t wide = STRIP_BYTES // sizeof(exact)
    cdef Py_ssize_t narrow = NARROW_BYTES // sizeof(exact)
    cdef Py_ssize_t r, n, i, j
    cdef exact* o
    cdef const exact* xi
    cdef const exact* kp
    if N == 0 or oh == 0 or ow == 0:
        return
    for r in prange(N * oh, nogil=True, schedule="static", num_threads=threads):
        n = r // oh
        i = r - n * oh
        o = &out[n, i, 0]
        xi = &x[0, i, 0] + n * xn
        kp = &k[0, 0, 0] + n * kn
        # Strips of a constant width; the last one overlaps the one before
        # it rather than leaving a ragged tail (same values written twice).
        j = 0
        if ow >= wide:
            while j < ow:
                if j + wide > ow:
                    j = ow - wide
                _exact_strip(o + j, xi + j, xs, kp, kh, kw, STRIP_BYTES // sizeof(exact))
                j = j + wide
        elif ow >= narrow:
            while j < ow:
                if j + narrow > ow:
                    j = ow - narrow
                _exact_strip(o + j, xi + j, xs, kp, kh, kw, NARROW_BYTES // sizeof(exact))
                j = j + narrow
        else:
            for j in range(ow):
                _exact_strip(o + j, xi + j, xs, kp, kh, kw, 1)


# ---------------------------------------------------------------------------
# Double sums in SciPy's order, as scipy.ndimage's filters make them: for an
# integer or bool output, whose truncation turns one ulp into an off-by-one.

cdef inline void _ordered_strip(double* o, const double* x, const Py_ssize_t* toff, const double* tw,
                                Py_ssize_t taps, Py_ssize_t width) noexcept nogil:
    """``o[j] = (((0 + tw[0]*x[toff[0] + j]) + tw[1]*x[toff[1] + j]) + ...)``, ``j < width``.

    One multiply and one add per term, rounded each (contraction is off for
    this family), in the order of the taps.
    """
    cdef double acc[ORDERED_LANES]
    cdef Py_ssize_t t, j
    cdef const double* xt
    cdef double wt
    for j in range(width):
        acc[j] = 0
    for t in range(taps):
        xt = x + toff[t]
        wt = tw[t]
        for j in range(width):
            acc[j] = acc[j] + wt * xt[j]
    for j in range(width):
        o[j] = acc[j]


def correlate_ordered(const double[::1] x, const Py_ssize_t[::1] starts, const Py_ssize_t[::1] toff,
                      const double[::1] tw, double[:, ::1] out, int threads):
    """``out[r, j] = sum over taps t, in order, of tw[t] * x[starts[r] + toff[t] + j]``.

    Each output is summed from 0.0 one term at a time, in the order of the
    taps, every product and every addition rounded to double: the sum
    ``scipy.ndimage.correlate`` makes.  ``x`` is an extended input,
    flattened; row ``r`` of ``out`` starts at ``x[starts[r]]``; the caller
    keeps every read inside ``x``.  Parallel over the rows of ``out``, on
    ``threads`` threads.
    """
    cdef Py_ssize_t R = out.shape[0], W = out.shape[1], taps = toff.shape[0]
    cdef Py_ssize_t wide = ORDERED_LANES
    cdef Py_ssize_t narrow = NARROW_BYTES // sizeof(double)
    cdef Py_ssize_t r, j
    cdef double* o
    cdef const double* xr
    if R == 0 or W == 0:
        return
    for r in prange(R, nogil=True, schedule="static", num_threads=threads):
        o = &out[r, 0]
        xr = &x[0] + starts[r]
        j = 0
        if W >= wide:
            while j < W:
                if j + wide > W:
                    j = W - wide
                _ordered_strip(o + j, xr + j, &toff[0], &tw[0], taps, ORDERED_LANES)
                j = j + wide
        elif W >= narrow:
            while j < W:
                if j + narrow > W:
                    j = W - narrow
                _ordered_strip(o + j, xr + j, &toff[0], &tw[0], taps, NARROW_BYTES // sizeof(double))
                j = j + narrow
        else:
            for j in range(W):
                _ordered_strip(o + j, xr + j, &toff[0], &tw[0], taps, 1)


# ---------------------------------------------------------------------------
# Double sums of symmetric and antisymmetric 1-D weights, as
# scipy.ndimage.correlate1d makes them: the two samples a weight multiplies
# are added (or subtracted) first, then multiplied once.

cdef inline void _paired_strip(double* o, const double* x, Py_ssize_t center, double wc,
                               const Py_ssize_t* dist, const double* tw, Py_ssize_t pairs, double sign,
                               Py_ssize_t width) noexcept nogil:
    """``o[j] = x[c+j]*wc + (x[c-d0+j] + sign*x[c+d0+j])*tw[0] + ...``, ``j < width``.

    ``sign`` is +1 or -1: ``sign * x`` is ``x`` or ``-x`` exactly, so each
    pair is SciPy's ``x[c-d] + x[c+d]`` or ``x[c-d] - x[c+d]``, rounded once.
    """
    cdef double acc[ORDERED_LANES]
    cdef Py_ssize_t t, j
    cdef const double* xl
    cdef const double* xr
    cdef double wt
    for j in range(width):
        acc[j] = x[center + j] * wc
    for t in range(pairs):
        xl = x + center - dist[t]
        xr = x + center + dist[t]
        wt = tw[t]
        for j in range(width):
            acc[j] = acc[j] + (xl[j] + sign * xr[j]) * wt
    for j in range(width):
        o[j] = acc[j]


def correlate_paired(const double[::1] x, const Py_ssize_t[::1] starts, Py_ssize_t center, double wc,
                     const Py_ssize_t[::1] dist, const double[::1] tw, double sign, double[:, ::1] out,
                     int threads):
    """``out[r, j] = x[s+c+j]*wc + sum over t, in order, of (x[s+c-d_t+j] + sign*x[s+c+d_t+j]) * tw[t]``.

    ``s = starts[r]``, ``c = center``, ``d_t = dist[t]``: the sum
    ``scipy.ndimage.correlate1d`` makes for symmetric (``sign`` +1) or
    antisymmetric (-1) weights, every operation rounded to double as SciPy
    rounds it.  ``x`` is the extended input, flattened; the caller keeps
    every read inside it.  Parallel over the rows of ``out``, on
    ``threads`` threads.
    """
    cdef Py_ssize_t R = out.shape[0], W = out.shape[1], pairs = dist.shape[0]
    cdef Py_ssize_t wide = ORDERED_LANES
    cdef Py_ssize_t narrow = NARROW_BYTES // sizeof(double)
    cdef Py_ssize_t r, j
    cdef double* o
    cdef const double* xr
    cdef const Py_ssize_t* dp = &dist[0] if pairs > 0 else NULL
    cdef const double* wp = &tw[0] if pairs > 0 else NULL
    if R == 0 or W == 0:
        return
    for r in prange(R, nogil=True, schedule="static", num_threads=threads):
        o = &out[r, 0]
        xr = &x[0] + starts[r]
        j = 0
        if W >= wide:
            while j < W:
                if j + wide > W:
                    j = W - wide
                _paired_strip(o + j, xr + j, center, wc, dp, wp, pairs, sign, ORDERED_LANES)
                j = j + wide
        elif W >= narrow:
            while j < W:
                if j + narrow > W:
                    j = W - narrow
                _paired_strip(o + j, xr + j, center, wc, dp, wp, pairs, sign, NARROW_BYTES // sizeof(double))
                j = j + narrow
        else:
            for j in range(W):
                _paired_strip(o + j, xr + j, center, wc, dp, wp, pairs, sign, 1)
