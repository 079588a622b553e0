"""A 2-D filter over a batch of images, with SciPy's boundary rules inside the loops.

Every 2-D call of the SciPy drop-ins (``cconv.signal``'s output modes and
boundaries, ``cconv.ndimage``'s modes and origins) is one operation::

    out[n, i, j] = sum_(a < kh, b < kw) X[n, r0 + i + a, c0 + j + b] * k[a, b]

for ``i < OH``, ``j < OW``, where ``X`` is the batch of images ``x`` extended
past its edges by a rule of ``cconv._boundary`` (with a fill value for
'fill').  :func:`filter2d` computes it without an extended copy of the
images: the compiled loop (``filter_rows`` of ``cconv._correlate``) reads the
interior of each image in place, and gathers by index only the patches that
reach past an edge; the result is written where the caller asks, which may
be a view of the user's ``output``.  The FFT route correlates an extended
copy instead.

Leading (batch) axes are the caller's; a 1-D filter is a 1-row or 1-column
``k``.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from . import _engine
from ._boundary import extend, source_index
from ._dispatch import correlate_module as _loops
from ._workspace import scratch_array

__all__ = ["PATHS", "plan", "filter2d"]

#: How the direct loop splits the outputs (a switch for tests and comparisons):
#: 'auto' reads the interior in place, with edge strips of at least one vector;
#: 'interior' makes the edge strips as narrow as the filter allows;
#: 'strips' reads nothing in place (every output from gathered patches).
PATHS = ("auto", "interior", "strips")
PATH = os.environ.get("CCONV_FILTER_PATH", "auto").strip().lower()
if PATH not in PATHS:
    raise ImportError(f"CCONV_FILTER_PATH must be one of {PATHS}; got {PATH!r}")

# Output rows per work item of the direct loop (8, 16 and 32 rows of a
# 2048-wide image ran within a few percent of each other).
ROWS_PER_ITEM = 16
# Edge strips at least this many bytes wide (one AVX-512 vector), so that
# they run in vector blocks.
EDGE_BYTES = 64


def plan(method: _engine.Method, n: int, shape: tuple[int, int], k_shape: tuple[int, int],
         itemsize: int) -> _engine.Plan:
    """The engine's :class:`~cconv._engine.Plan` of :func:`filter2d` on ``n`` images: ``shape`` outputs each.

    Its workspace counts the direct route's scratch rows or the FFT route's
    extended copy and transforms; the result, not (the caller counts it
    unless it is written in place).
    """
    (oh, ow), (kh, kw) = shape, k_shape
    p = _engine.plan(method, n, 1, (oh + kh - 1, ow + kw - 1), k_shape, itemsize)
    if p.method == "direct":
        scratch = p.threads * (ROWS_PER_ITEM + kh - 1) * (ow + kw - 1) * itemsize
        return _engine.Plan("direct", p.threads, scratch)
    extended = n * (oh + kh - 1) * (ow + kw - 1) * itemsize
    return _engine.Plan("fft", p.threads, p.workspace + extended)


def filter2d(x: np.ndarray, k: np.ndarray, rule: str, fill: float, start: tuple[int, int],
             shape: tuple[int, int], plan: _engine.Plan, out: np.ndarray | None = None) -> np.ndarray:
    """``out[n, i, j] = sum_ab X[n, start[0] + i + a, start[1] + j + b] * k[a, b]``.

    Parameters
    ----------
    x : ndarray
        (N, H, W), float32 or float64, any strides.
    k : ndarray
        (kh, kw) of ``x``'s dtype, kh and kw at least 1.
    rule : str
        The boundary rule (``cconv._boundary.RULES``) that extends ``x``.
    fill : float
        The value past the edges for 'fill'.
    start : (int, int)
        Where the first output's window starts in ``x``'s coordinates (may be
        negative).
    shape : (int, int)
        The output's (OH, OW).
    plan : Plan
        The route and thread count (:func:`plan`).
    out : ndarray, optional
        (N, OH, OW) of ``x``'s dtype: written in place and returned.  One
        whose rows are not contiguous, or that overlaps ``x``, is written
        from a fresh result.

    Returns
    -------
    ndarray
        ``out``, or a new (N, OH, OW) array.
    """
    n, h, w = x.shape
    (kh, kw), (oh, ow), (r0, c0) = k.shape, shape, start
    if out is None:
        out = np.empty((n, oh, ow), x.dtype)
    elif out.size and (out.strides[2] != out.itemsize or np.may_share_memory(out, x)):
        out[...] = filter2d(x, k, rule, fill, start, shape, plan)  # through a fresh array
        return out
    if out.size == 0:
        return out
    if plan.method == "fft":
        xe = extend(x, (r0, r0 + oh + kh - 1), (c0, c0 + ow + kw - 1), rule, fill, scratch=True)
        out[...] = _engine.correlate(xe, np.ascontiguousarray(k)[None], plan)
        return out
    if x.size == 0:  # every index is the fill value's: nothing of x is read
        x = np.zeros((n, 1, 1), x.dtype)
    elif x.strides[2] != x.itemsize:
        x = np.ascontiguousarray(x)
    rows, cols, (ia, ib, ja, jb) = _geometry((h, w), (kh, kw), (r0, c0), (oh, ow), rule, x.itemsize, PATH)
    block = ROWS_PER_ITEM
    scratch = scratch_array("filter2d", (plan.threads, (block + kh - 1) * (ow + kw - 1)), x.dtype)
    _loops.filter_rows(x, np.ascontiguousarray(k), out, rows, cols, x.dtype.type(fill), ia, ib, ja, jb, scratch,
                       block, plan.threads)
    return out


@functools.lru_cache(maxsize=64)
def _geometry(size: tuple[int, int], k_size: tuple[int, int], start: tuple[int, int], shape: tuple[int, int],
              rule: str, itemsize: int, path: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]:
    """The source rows and columns each extended row and column reads, and the interior
    outputs ``[ia, ib) x [ja, jb)`` read in place (all zero on the 'strips' path).

    Kept (the index arrays read-only): a filter called in a loop on images
    of one size works them out once.
    """
    (h, w), (kh, kw), (r0, c0), (oh, ow) = size, k_size, start, shape
    rows = _indices(r0, oh + kh - 1, h, rule)
    cols = _indices(c0, ow + kw - 1, w, rule)
    (ia, ib), (ja, jb) = _interior(r0, h, kh, oh, 1, path), _interior(c0, w, kw, ow, EDGE_BYTES // itemsize, path)
    if ia >= ib or ja >= jb or path == "strips":
        ia = ib = ja = jb = 0
    return rows, cols, (ia, ib, ja, jb)


def _indices(start: int, count: int, n: int, rule: str) -> np.ndarray:
    """The index inside ``[0, n)`` each of ``start .. start + count - 1`` reads, read-only."""
    index = source_index(np.arange(start, start + count), n, rule)
    index.flags.writeable = False
    return index


def _interior(start: int, n: int, k: int, count: int, edge: int, path: str) -> tuple[int, int]:
    """The outputs ``[lo, hi)`` of ``count`` whose windows (``start + i`` .. ``+ k - 1``) lie inside ``[0, n)``.

    Unless ``path`` is 'interior', an edge that is not empty is widened to
    at least ``edge`` outputs (one vector), and the interior shrinks to match.
    """
    lo, hi = max(0, -start), min(count, n - k + 1 - start)
    if lo >= hi:
        return 0, 0
    if path != "interior":
        if lo > 0:
            lo = max(lo, min(edge, hi))
        if hi < count:
            hi = min(hi, max(count - edge, lo))
    return lo, hi
