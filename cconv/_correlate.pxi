# The direct loops of cconv: valid cross-correlation over a batch of pairs,
# in two loop orders.  Included by _correlate.pyx and its per-ISA twins
# (_correlate_v3.pyx, _correlate_v4.pyx); see _correlate.pyx for what they
# compute.

from cython.parallel cimport prange

from cconv._fused cimport real

include "_build_info.pxi"


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


cdef inline void _strip(real* o, const real* x, Py_ssize_t xs, Py_ssize_t xn,
                        const real* k, Py_ssize_t kn, Py_ssize_t npairs,
                        Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t width) noexcept nogil:
    """``o[j] = sum_n sum_ab x[n*xn + a*xs + b + j] * k[n*kn + a*kw + b]``, ``j < width``.

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
        for a in range(kh):
            xa = x + n * xn + a * xs
            ka = k + n * kn + a * kw
            for b in range(kw):
                kv = ka[b]
                for j in range(width):
                    acc[j] += xa[b + j] * kv
    for j in range(width):
        o[j] = acc[j]


cdef inline void _wide_row(real* o, const real* x, Py_ssize_t xs, Py_ssize_t xn,
                           const real* k, Py_ssize_t kn, Py_ssize_t npairs,
                           Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t ow) noexcept nogil:
    """One output row of ``correlate_wide``, in strips of constant width.

    The last strip of each width overlaps the one before it rather than
    leaving a ragged tail: recomputing a few columns costs less than a
    narrower, latency-bound strip, and writes the same values.
    """
    cdef Py_ssize_t j = 0
    cdef Py_ssize_t wide = STRIP_BYTES // sizeof(real)
    cdef Py_ssize_t narrow = NARROW_BYTES // sizeof(real)
    if ow >= wide:
        while j < ow:
            if j + wide > ow:
                j = ow - wide
            _strip(o + j, x + j, xs, xn, k, kn, npairs, kh, kw, STRIP_BYTES // sizeof(real))
            j += wide
    elif ow >= narrow:
        while j < ow:
            if j + narrow > ow:
                j = ow - narrow
            _strip(o + j, x + j, xs, xn, k, kn, npairs, kh, kw, NARROW_BYTES // sizeof(real))
            j += narrow
    else:
        for j in range(ow):
            _strip(o + j, x + j, xs, xn, k, kn, npairs, kh, kw, 1)


def correlate_wide(const real[:, :, ::1] x, const real[:, :, ::1] k,
                   real[:, :, ::1] out, Py_ssize_t npairs):
    """``out[t] = sum over pairs n of task t of correlate2d(x[n], k[n], 'valid')``.

    Parallel over the rows of ``out``; each row is written by one iteration.
    """
    cdef Py_ssize_t T = out.shape[0], oh = out.shape[1], ow = out.shape[2]
    cdef Py_ssize_t kh = k.shape[1], kw = k.shape[2], xs = x.shape[2]
    # Distance between consecutive pairs' operands: 0 for a broadcast operand.
    cdef Py_ssize_t xn = x.shape[1] * xs if x.shape[0] != 1 else 0
    cdef Py_ssize_t kn = kh * kw if k.shape[0] != 1 else 0
    cdef Py_ssize_t r, t, i, n0
    if T == 0 or oh == 0 or ow == 0:
        return
    for r in prange(T * oh, nogil=True, schedule="static"):
        t = r // oh
        i = r - t * oh
        n0 = t * npairs // T
        _wide_row(&out[t, i, 0], &x[0, i, 0] + n0 * xn, xs, xn,
                  &k[0, 0, 0] + n0 * kn, kn, (t + 1) * npairs // T - n0, kh, kw, ow)


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
                     real[:, :, ::1] out, Py_ssize_t npairs, Py_ssize_t rows):
    """Same result as ``correlate_wide``, for outputs small next to ``k``.

    Each output element is one long dot product of ``k[n]`` with a window of
    ``x[n]``; up to four neighbouring elements of a row are computed together.
    Parallel over blocks of ``rows`` rows of ``out``: a block computes all of
    its rows pair by pair, so each pair's images are read from memory once
    per block, then reused from cache.
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
    for r in prange(T * blocks, nogil=True, schedule="static"):
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
