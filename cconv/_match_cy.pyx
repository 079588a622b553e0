"""Template matching's compiled loops: window sums and score finishing.

Built once, without per-ISA twins: both loops are bound by memory, not by
arithmetic (``benchmarks/bench.py --only match`` showed the AVX2 and
AVX-512 builds no faster).  See ``cconv._match`` for how they are used.
"""

from cython.parallel cimport prange, threadid
from libc.math cimport sqrt

from cconv._fused cimport real


def window_sums(const double[:, :, ::1] x, Py_ssize_t kh, Py_ssize_t kw,
                double[:, :, ::1] s1, double[:, :, ::1] s2, double[:, :, ::1] work,
                bint centred, const double[::1] shift):
    """``s1[n, i, j]`` = sum of ``x[n, i:i+kh, j:j+kw]``, ``s2`` the same of ``x**2``.

    Then, with ``centred``, ``s2`` becomes the sum of squares about the
    window's own mean, ``s2 - s1**2 / (kh*kw)``; else the sum of squares of
    ``x + shift[n]``, ``s2 + 2 shift s1 + kh*kw shift**2``.

    Running sums, slid one row down and one column across at a time, and
    started afresh every ``kh`` rows and every ``kw`` columns, so that
    rounding never accumulates over more than a window's length.  Parallel
    over blocks of ``kh`` output rows; ``work`` is (threads, 2, iw), one pair
    of column-sum rows per thread.
    """
    cdef Py_ssize_t N = x.shape[0], iw = x.shape[2]
    cdef Py_ssize_t oh = s1.shape[1], ow = s1.shape[2]
    cdef Py_ssize_t blocks = (oh + kh - 1) // kh
    cdef Py_ssize_t item, n, i0, i1, i, j, j0, j1, r, tid
    cdef double* c1
    cdef double* c2
    cdef double a, b, t1, t2, m
    cdef double area = kh * kw
    if N == 0 or oh <= 0 or ow <= 0:
        return
    for item in prange(N * blocks, nogil=True, schedule="static", num_threads=work.shape[0]):
        n = item // blocks
        i0 = (item % blocks) * kh
        i1 = i0 + kh if i0 + kh < oh else oh
        tid = threadid()
        c1 = &work[tid, 0, 0]
        c2 = &work[tid, 1, 0]
        for j in range(iw):
            c1[j] = 0
            c2[j] = 0
        for r in range(i0, i0 + kh):
            for j in range(iw):
                a = x[n, r, j]
                c1[j] += a
                c2[j] += a * a
        for i in range(i0, i1):
            if i > i0:  # slide the column sums down one row
                for j in range(iw):
                    a = x[n, i + kh - 1, j]
                    b = x[n, i - 1, j]
                    c1[j] += a - b
                    c2[j] += a * a - b * b
            j0 = 0
            while j0 < ow:
                t1 = 0
                t2 = 0
                for j in range(j0, j0 + kw):
                    t1 = t1 + c1[j]
                    t2 = t2 + c2[j]
                s1[n, i, j0] = t1
                s2[n, i, j0] = t2
                j1 = j0 + kw if j0 + kw < ow else ow
                for j in range(j0 + 1, j1):
                    t1 = t1 + (c1[j + kw - 1] - c1[j - 1])
                    t2 = t2 + (c2[j + kw - 1] - c2[j - 1])
                    s1[n, i, j] = t1
                    s2[n, i, j] = t2
                j0 = j1
            m = shift[n]
            if centred:
                for j in range(ow):
                    s2[n, i, j] = s2[n, i, j] - s1[n, i, j] * s1[n, i, j] / area
            else:
                for j in range(ow):
                    s2[n, i, j] = s2[n, i, j] + (2 * m) * s1[n, i, j] + area * m * m


cpdef enum Score:
    # What finish_scores computes from c = corr + offset (see its docstring);
    # cconv._match picks one per method by these names.
    PLAIN = 0
    NORMED = 1
    SQDIFF = 2
    SQDIFF_NORMED = 3


def finish_scores(const real[:, :, ::1] corr, const double[:, :, ::1] window,
                  const double[::1] offset, const double[::1] templ,
                  const double[::1] w_floor, const double[::1] t_floor,
                  int kind, real[:, :, ::1] out, int threads):
    """Template-matching scores of pairs ``p`` from their correlation, in one pass.

    With ``c = corr[p] + offset[p]``, ``e = window[p]`` (or ``window[0]`` for
    every pair), ``t = templ[p]`` and ``s = sqrt(e * t)``, ``kind`` is one of

    - 0: ``c``;
    - 1: ``c / s`` clipped to [-1, 1], 0 where ``e <= w_floor[p]`` or
      ``t <= t_floor[p]`` (a flat window or template);
    - 2: ``max(t - 2c + e, 0)``: the sum of squared differences;
    - 3: that over ``s``, clipped to [0, 1], 1 where flat.

    Arithmetic in double; ``out`` may be ``corr`` itself.  Parallel over
    rows, on ``threads`` threads.
    """
    cdef Py_ssize_t P = corr.shape[0], oh = corr.shape[1], ow = corr.shape[2]
    cdef bint shared = window.shape[0] == 1
    cdef Py_ssize_t r, p, i, j
    cdef double c, e, v, off, t, wf
    cdef double lo = -1.0 if kind == NORMED else 0.0
    cdef double degenerate = 1.0 if kind == SQDIFF_NORMED else 0.0
    cdef bint flat_template
    cdef const real* cr
    cdef const double* er
    cdef real* o
    for r in prange(P * oh, nogil=True, schedule="static", num_threads=threads):
        p = r // oh
        i = r - p * oh
        cr = &corr[p, i, 0]
        er = &window[0 if shared else p, i, 0]
        o = &out[p, i, 0]
        off = offset[p]
        t = templ[p]
        wf = w_floor[p]
        flat_template = t <= t_floor[p]
        if kind == PLAIN:
            for j in range(ow):
                o[j] = <real>(cr[j] + off)
        elif kind == SQDIFF:
            for j in range(ow):
                v = t - 2 * (cr[j] + off) + er[j]
                o[j] = <real>(v if v > 0 else 0)
        elif flat_template:
            for j in range(ow):
                o[j] = <real>degenerate
        else:
            # kind 1 or 3: branch-free, so that the loop vectorises
            for j in range(ow):
                c = cr[j] + off
                e = er[j]
                if kind == SQDIFF_NORMED:
                    c = t - 2 * c + e
                    c = c if c > 0 else 0
                v = c / sqrt((e if e > wf else 1.0) * t)
                v = v if v > lo else lo
                v = v if v < 1.0 else 1.0
                o[j] = <real>(v if e > wf else degenerate)
