"""1-D, 2-D and 3-D correlations on the engine's 2-D planes: the direct route
of the SciPy drop-ins' N-D calls.

Every direct computation of ``cconv.signal.convolve`` / ``correlate`` and of
``cconv.ndimage`` with 1-D or 3-D weights (and ``correlate1d``) is one call
of :func:`correlate`: a batch of r-D items (r <= 3), extended past their
edges by a boundary rule, correlated 'valid' with r-D weights.  Each item is
seen as a stack of (H, W) planes, unit axes in front:

- the planes the outputs read are extended once, in 2-D, by
  ``cconv._boundary.extend``; along the depth the rule picks which plane
  (or a plane of the fill value) each depth index reads;
- with one depth tap (1-D and 2-D data), the extended planes go to the
  engine in one call; 1-D items are the rows of one image, and a long line
  is cut into overlapping rows, so that the loops have rows to share out;
- a 3-D correlation is a sum of 2-D correlations over the depth taps:
  output plane ``d`` sums ``correlate2d(plane[d + t], k[t])`` over ``t``,
  one engine call per output plane (``_engine.correlate_summed``, which
  accumulates all taps in its register blocks).

The sums (``sums``):

- ``'float'``: the engine's float loops in float32 or float64 (fused
  multiply-adds, any order: within the documented tolerance); taps marked
  ``absent`` are no terms, as ``scipy.ndimage`` skips weights of magnitude
  up to DBL_EPSILON, and where NaN or Inf meets them they are restored
  without those taps (``cconv._nonfinite``);
- ``'ordered'``: ``scipy.ndimage``'s own doubles, summed in its order
  without FMA (``_engine.correlate_in_order``), for integer and bool
  outputs.  They are returned in the calling thread's scratch space (valid
  until its next call): the caller casts them into its output at once, and
  a fresh array of that size would cost a page fault per 4 KiB;
- ``'typed'``: ``scipy.signal``'s sums in the data's (real) type: integers
  exactly modulo 2**bits and long double (``_engine.correlate_exact``),
  float32 and float64 on the float loops.

:func:`extended` gives the whole extended array instead, for the FFT route
(``cconv._fftconv``).
"""

from __future__ import annotations

import functools
import math
from typing import Literal

import numpy as np
import numpy.typing as npt

from . import _engine
from ._boundary import extend, source_index
from ._nonfinite import all_finite, finite_part, restore
from ._threads import for_work, run_jobs
from ._validation import check_memory
from ._workspace import scratch_array

__all__ = ["Sums", "correlate", "extended", "line_rows", "seconds"]

Sums = Literal["float", "ordered", "typed"]
Shape = tuple[int, ...]

# 1-D items: fewer lines than LINE_ROWS, of LINE_CUT outputs or more, are
# cut into rows of at least LINE_CHUNK outputs, so that the loops' blocks of
# rows go to every thread (shorter lines are not worth a second thread).
LINE_ROWS = 64
LINE_CHUNK = 4096
LINE_CUT = 2**16
# Multiply-adds per second of the direct route on 2 cores, per real
# itemsize (complex: four real sums), and the fixed cost of a call; only
# the ratio to ``_fftconv.seconds`` matters (benchmarks/bench.py --only
# scipy_nd prints what they are judged by).
MACS_PER_S = {4: 40e9, 8: 20e9, 16: 1.5e9}
CALL_S = 30e-6


def seconds(macs: int, dtype: npt.DTypeLike) -> float:
    """Estimated seconds of ``macs`` multiply-adds of ``dtype`` on this route."""
    dtype = np.dtype(dtype)
    parts = 4 if dtype.kind == "c" else 1
    return CALL_S + parts * macs / MACS_PER_S[min(16, max(4, dtype.itemsize // (2 if dtype.kind == "c" else 1)))]


def correlate(x: np.ndarray, k: np.ndarray, start: Shape, out_shape: Shape, rule: str, fill: object,
              dtype: npt.DTypeLike, sums: Sums, absent: np.ndarray | None = None) -> np.ndarray:
    """Valid correlation of each item of ``x``, extended by ``rule``, with ``k``.

    Parameters
    ----------
    x : ndarray
        (B, *S): a batch of r-D items, r = ``k.ndim`` in 1..3, any layout.
    k : ndarray
        The weights, r-D, in ``dtype`` (for 'ordered': float64), as they
        multiply: already flipped or conjugated as the caller's operation needs.
    start : tuple of int
        Per axis, the index of ``x`` (may be outside it) that the first
        output's first tap reads.
    out_shape : tuple of int
        The outputs: ``out[b, o] = sum_j ext(x)[b, start + o + j] * k[j]``.
    rule, fill
        The boundary rule (``cconv._boundary``) and the fill value for 'fill'.
    dtype : dtype
        The dtype of the extended planes and of the sums.
    sums : {'float', 'ordered', 'typed'}
        How the terms are summed (see the module's notes).
    absent : bool ndarray of ``k``'s shape, optional
        Taps that are no terms ('float' and 'ordered').

    Returns
    -------
    ndarray, shape (B, *out_shape)
        In ``dtype``; for 'ordered' float64, in the calling thread's scratch
        space (see the module's notes).
    """
    dtype = np.dtype(dtype)
    result_dtype = np.dtype(np.float64) if sums == "ordered" else dtype
    batch = x.shape[0]
    pad = 3 - k.ndim
    x3 = x.reshape(batch, *(1,) * pad, *x.shape[1:])
    k3 = np.ascontiguousarray(k.reshape(*(1,) * pad, *k.shape), dtype=result_dtype)
    absent3 = None if absent is None else absent.reshape(k3.shape)
    (sd, sh, sw), (od, oh, ow) = (0,) * pad + tuple(start), (1,) * pad + tuple(out_shape)
    (kd, kh, kw) = k3.shape
    if batch * od * oh * ow == 0 or (absent3 is not None and absent3.all()):
        return np.zeros((batch, *out_shape), result_dtype)  # no outputs, or no terms at all (even over NaN)
    check_memory(3 * batch * x3.shape[1] * (oh + kh - 1) * (ow + kw - 1) * dtype.itemsize,
                 lambda: f"correlation of {x.shape} with weights {k.shape}")
    threads = for_work(batch * od * oh * ow * k3.size)  # the call's thread count, decided once
    return _correlate(x3, k3, batch, (sd, sh, sw), (od, oh, ow), out_shape, rule, fill, dtype, result_dtype, sums,
                      absent3, threads)


def _correlate(x3: np.ndarray, k3: np.ndarray, batch: int, start: Shape, out3: Shape, out_shape: Shape, rule: str,
               fill: object, dtype: np.dtype, result_dtype: np.dtype, sums: Sums,
               absent3: np.ndarray | None, threads: int) -> np.ndarray:
    """:func:`correlate` of (B, D, H, W) items with (KD, KH, KW) weights, on ``threads`` threads."""
    (sd, sh, sw), (od, oh, ow), (kd, kh, kw) = start, out3, k3.shape
    if x3.shape[1:3] == (1, 1) and (kd, kh) == (1, 1):  # 1-D items: lines
        rows, _ = line_rows(x3.reshape(batch, -1), kw, sw, ow, rule, fill, dtype)
        out = _planes_2d(rows[None], k3[0], sums, None if absent3 is None else absent3[0], threads)[0]
        return out.reshape(batch, -1)[:, :ow].reshape(batch, *out_shape)
    planes, src, fill_plane = _extended_planes(x3, (sd, sh, sw), (od, oh, ow), k3.shape, rule, fill, dtype)
    if kd == 1:
        volume = _depth_window(planes, src, fill_plane)  # (B, OD, He, We)
        out = _planes_2d(np.ascontiguousarray(volume.reshape(batch * od, *volume.shape[2:])), k3[0], sums,
                         None if absent3 is None else absent3[0], threads)
        return out.reshape(batch, *out_shape)
    if sums == "ordered":
        # SciPy's doubles (the ordered sums take any rank): one call for the
        # output planes whose windows follow each other in ``planes``, one
        # per plane near the depth's edges, whose windows are gathered
        present = ~absent3 if absent3 is not None else np.ones(k3.shape, bool)
        out = scratch_array("sums", (batch, od, oh, ow), np.float64)
        for d0, d1 in _runs(src, kd):
            window = np.ascontiguousarray(_depth_window(planes, src[d0 : d1 + kd - 1], fill_plane))
            if batch == 1:  # straight into the result
                _engine.correlate_in_order(window, k3, present, out=out[:, d0:d1])
            else:
                out[:, d0:d1] = _engine.correlate_in_order(window, k3, present)
        return out.reshape(batch, *out_shape)
    # One job per output plane, shared out over cconv's threads, each on one
    # OpenMP thread: no parallel region (and barrier) per plane, and a
    # thread held up by another process leaves its planes to the others.
    out = np.empty((batch, od, oh, ow), result_dtype)

    def plane(b: int, d: int) -> None:
        window = _depth_window(planes[b : b + 1], src[d : d + kd], fill_plane)[0]  # (KD, He, We)
        _summed(window, k3, sums, absent3, out[b, d : d + 1])

    run_jobs([functools.partial(plane, b, d) for b in range(batch) for d in range(od)], threads)
    return out.reshape(batch, *out_shape)


def extended(x: np.ndarray, start: Shape, shape: Shape, rule: str, fill: object,
             dtype: npt.DTypeLike) -> np.ndarray:
    """Each item of ``x`` (B, *S) extended by ``rule``: (B, *shape), element
    ``[b, i]`` read from ``x[b, start + i]`` (a new array)."""
    dtype = np.dtype(dtype)
    batch, r = x.shape[0], len(start)
    pad = 3 - r
    x3 = x.reshape(batch, *(1,) * pad, *x.shape[1:])
    start3, shape3 = (0,) * pad + tuple(start), (1,) * pad + tuple(shape)
    if batch * math.prod(shape) == 0:
        return np.zeros((batch, *shape), dtype)
    check_memory(2 * batch * math.prod(shape) * dtype.itemsize, lambda: f"extension of {x.shape} to {shape}")
    if r == 1:
        return _extended_lines(x.reshape(batch, -1), start[0], shape[0], rule, fill, dtype, scratch=False)
    planes, src, fill_plane = _extended_planes(x3, start3, shape3, (1, 1, 1), rule, fill, dtype)
    return np.array(_depth_window(planes, src, fill_plane)).reshape(batch, *shape)


def _extended_planes(x3: np.ndarray, start: Shape, out: Shape, kernel: Shape, rule: str, fill: object,
                     dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """The planes the outputs read, each extended in 2-D; the plane each
    extended depth index reads (an index into them, -1 for the fill plane);
    and the fill plane, if one is read.  The planes are scratch space."""
    (depth, _, _), (sd, sh, sw), (od, oh, ow), (kd, kh, kw) = x3.shape[1:], start, out, kernel
    src = source_index(np.arange(sd, sd + od + kd - 1), depth, rule) if depth else np.full(od + kd - 1, -1)
    inside = src[src >= 0]
    d0, d1 = (int(inside.min()), int(inside.max()) + 1) if inside.size else (0, 0)
    planes = extend(x3[:, d0:d1], (sh, sh + oh + kh - 1), (sw, sw + ow + kw - 1), rule, fill, dtype,
                    scratch=True)
    fill_plane = np.full(planes.shape[2:], fill, dtype) if (src < 0).any() else None
    return planes, np.where(src >= 0, src - d0, -1), fill_plane


def _runs(src: np.ndarray, kd: int) -> list[tuple[int, int]]:
    """The output planes ``[d0, d1)``, in order, as one run where their
    windows of ``kd`` source planes follow each other, single planes elsewhere."""
    od = len(src) - kd + 1
    ok = [bool(src[d] >= 0 and np.array_equal(src[d : d + kd], np.arange(src[d], src[d] + kd))) for d in range(od)]
    runs: list[tuple[int, int]] = []
    for d in range(od):
        if ok[d] and runs and ok[runs[-1][0]] and runs[-1][1] == d and src[d] == src[d - 1] + 1:
            runs[-1] = (runs[-1][0], d + 1)
        else:
            runs.append((d, d + 1))
    return runs


def _depth_window(planes: np.ndarray, src: np.ndarray, fill_plane: np.ndarray | None) -> np.ndarray:
    """(B, len(src), He, We): the planes ``src`` names (-1: the fill plane); a
    view when they follow each other, else a copy."""
    first = int(src[0])
    if first >= 0 and np.array_equal(src, np.arange(first, first + len(src))):
        return planes[:, first : first + len(src)]
    window = np.empty((planes.shape[0], len(src), *planes.shape[2:]), planes.dtype)
    for i, s in enumerate(src):
        window[:, i] = planes[:, s] if s >= 0 else fill_plane
    return window


def line_rows(lines: np.ndarray, kw: int, start: int, ow: int, rule: str, fill: object,
              dtype: npt.DTypeLike) -> tuple[np.ndarray, int]:
    """The lines (N, W), extended by ``rule`` from ``start``, as C-contiguous
    rows of one image for a valid correlation with ``kw`` taps; and the
    outputs per line those rows give (at least ``ow``: the first ``ow`` of
    each line's are its outputs).

    Fewer lines than LINE_ROWS are each cut into rows of overlapping
    windows (``kw - 1`` samples shared with the next), so that the loops'
    blocks of rows go to every thread; the rows are scratch space.
    """
    n, w = lines.shape
    cut = min(-(-LINE_ROWS // n), ow // LINE_CHUNK) if n < LINE_ROWS and ow >= LINE_CUT else 1
    step = -(-ow // cut)
    # the extension runs on past the last output's window: those samples
    # are read only by outputs cut off after
    if cut == 1:
        return _extended_lines(lines, start, step + kw - 1, rule, fill, dtype, scratch=True), step
    # Row j holds samples [start + j * step, + step + kw - 1) of the
    # extended line: the rows inside the line are copied straight from it
    # (one pass over the data), only those that cross an edge are extended.
    size = step + kw - 1
    rows = scratch_array("rows", (n * cut, size), dtype).reshape(n, cut, size)
    first = min(max(-(start // step), 0), cut)  # first row inside: start + first * step >= 0
    last = max(min((w - size - start) // step + 1, cut), first)  # rows inside end here
    if last > first:
        s0, s1 = lines.strides
        rows[:, first:last] = np.lib.stride_tricks.as_strided(
            lines[:, start + first * step :], (n, last - first, size), (s0, step * s1, s1), writeable=False)
    for j in (*range(first), *range(last, cut)):
        rows[:, j] = _extended_lines(lines, start + j * step, size, rule, fill, dtype, scratch=True)
    return rows.reshape(n * cut, size), cut * step


def _extended_lines(lines: np.ndarray, start: int, length: int, rule: str, fill: object, dtype: npt.DTypeLike,
                    scratch: bool) -> np.ndarray:
    """Samples ``[start, start + length)`` of each line (N, W) extended by
    ``rule``: the part inside is one block copy, only the borders are gathered."""
    n, w = lines.shape
    dtype = np.dtype(dtype)
    out = scratch_array("lines", (n, length), dtype) if scratch else np.empty((n, length), dtype)
    i0, i1 = min(max(start, 0), w), max(min(start + length, w), 0)
    if i1 > i0:
        out[:, i0 - start : i1 - start] = lines[:, i0:i1]
    for lo, hi in ((start, min(i0, start + length)), (max(i1, start), start + length)):
        if hi <= lo:
            continue
        part = out[:, lo - start : hi - start]
        if rule == "fill" or not w:
            part[...] = fill
        else:
            part[...] = lines[:, source_index(np.arange(lo, hi), w, rule)]
    return out


def _planes_2d(x: np.ndarray, k: np.ndarray, sums: Sums, absent: np.ndarray | None, threads: int) -> np.ndarray:
    """The engine's valid correlation of ``x[n]`` (C-contiguous) with 2-D ``k``, on ``threads`` threads."""
    if sums == "ordered":
        present = np.ones(k.shape, bool) if absent is None else ~absent
        out_shape = (x.shape[0], x.shape[1] - k.shape[0] + 1, x.shape[2] - k.shape[1] + 1)
        return _engine.correlate_in_order(x, k, present, out=scratch_array("sums", out_shape, np.float64))
    if sums == "typed" and (x.dtype.kind != "f" or x.dtype == np.longdouble):
        return _engine.correlate_exact(x, k[None])
    k = k if absent is None else np.where(absent, 0, k)
    if absent is not None and absent.any() and not all_finite(x):
        # NaN and Inf must not meet the absent taps: restored without them
        out = _engine.correlate_direct(finite_part(x), k[None], False, threads)
        restore(out, x, k[None], reduce=False, absent_k=absent[None])
        return out
    return _engine.correlate_direct(x, k[None], False, threads)


def _summed(window: np.ndarray, k: np.ndarray, sums: Sums, absent: np.ndarray | None, out: np.ndarray) -> None:
    """``out[0] = sum_t correlate2d(window[t], k[t])``: one output plane of a 3-D correlation, on one
    OpenMP thread (a job of :func:`_correlate`'s, which shares the planes out)."""
    window = np.ascontiguousarray(window)
    if sums == "typed" and (window.dtype.kind != "f" or window.dtype == np.longdouble):
        with np.errstate(invalid="ignore", over="ignore"):  # integers wrap, as SciPy's sums do
            np.sum(_engine.correlate_exact(window, k, 1), axis=0, dtype=window.dtype, out=out[0])
        return
    k = k if absent is None else np.where(absent, 0, k)
    if absent is not None and absent.any() and not all_finite(window):
        _engine.correlate_summed(finite_part(window), k, 1, out=out)
        restore(out, window, k, reduce=True, absent_k=absent)
        return
    _engine.correlate_summed(window, k, 1, out=out)
