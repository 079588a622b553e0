"""``scipy.ndimage``'s correlations along 1 or 3 axes, and ``correlate1d``'s
lines: the sums behind ``cconv.ndimage`` for weights of other ranks than 2.

The callers (``cconv._ndimage``, ``cconv._correlate1d``) have checked the
arguments in SciPy's order and moved the filtered axes last; here the input
is filtered and returned as doubles (or float32), to be stored with C's casts:

- into an integer or bool output, SciPy's own doubles, summed in its order
  without FMA (``cconv._exact``): ``correlate``'s from 0.0 tap by tap,
  ``correlate1d``'s with the two samples of a symmetric or antisymmetric
  weight added (or subtracted) first; so truncation gives SciPy's integers;
- into a float output, by the direct route (``cconv._planes``) or FFTs
  (``cconv._fftconv``) of the extended input, as ``method`` says ('auto':
  the routes' cost estimates).  NaN and Inf stay where the direct sums put
  them on both.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from . import _fftconv, _planes
from ._dispatch import exact_module
from ._nonfinite import all_finite
from ._threads import for_work
from ._workspace import scratch_array

__all__ = ["correlate", "correlate_lines"]

_EPS = float(np.finfo(np.float64).eps)
# Below this many multiply-adds the direct route wins outright.
SMALL_MACS = 2**20


def correlate(x: np.ndarray, weights: np.ndarray, origins: list[int], rule: str, cval: float, method: str,
              dtype: npt.DTypeLike, ordered: bool) -> np.ndarray:
    """``scipy.ndimage.correlate`` of each item of ``x`` (B, *S) with r-D ``weights``.

    ``origins`` per filtered axis; ``dtype`` the float dtype of the sums
    (float32 or float64); ``ordered``: SciPy's doubles, for an integer or
    bool output (in the calling thread's scratch space: cast them into the
    output at once).  Weights of magnitude up to DBL_EPSILON are no terms.
    Returns (B, *S).
    """
    start = tuple(-(n // 2) - o for n, o in zip(weights.shape, origins))
    shape = x.shape[1:]
    if x.size == 0:
        return np.zeros(x.shape, np.float64 if ordered else dtype)
    absent = np.abs(weights) <= _EPS
    if ordered:
        return _planes.correlate(x, weights, start, shape, rule, cval, np.float64, "ordered", absent)
    k = np.where(absent, 0.0, weights).astype(dtype)
    # The FFT route knows no absent taps: where NaN or Inf (of the input, or
    # a cval past its edges) would meet them, the direct route.
    finite = all_finite(x) and (rule != "fill" or math.isfinite(cval))
    if _route(method, x.shape, weights.shape, dtype) == "fft" and (finite or not absent.any()):
        return _by_fft(x, k, start, shape, rule, cval, dtype)
    return _planes.correlate(x, k, start, shape, rule, cval, dtype, "float", absent)


def correlate_lines(x: np.ndarray, weights: np.ndarray, origin: int, rule: str, cval: float, method: str,
                    dtype: npt.DTypeLike, ordered: bool) -> np.ndarray:
    """``scipy.ndimage.correlate1d`` along axis 1 of ``x`` (A, L, C) with 1-D ``weights``.

    ``x`` is the input seen as (axes before, the axis, axes after): for
    C > 1 the lines are filtered in place of their layout, as the columns
    of (L, C) planes (weights (K, 1)), with no transposed copy.  Every
    weight is a term (correlate1d skips none).  With ``ordered``, SciPy's
    doubles: for odd symmetric weights ``x[c]*w[c] + (x[c-d] + x[c+d])*w[c-d]``
    over d = c..1, for antisymmetric ones the same with ``-``, otherwise
    the last tap first, then the others in order (in scratch space, as
    :func:`correlate`'s).  Returns (A, L, C).
    """
    size = weights.shape[0]
    lines, length, cols = x.shape
    start = -(size // 2) - origin
    if x.size == 0:
        return np.zeros(x.shape, np.float64 if ordered else dtype)
    sign = _symmetry(weights)
    if not ordered:
        # SciPy multiplies both samples of a (nearly: DBL_EPSILON) symmetric
        # pair by the left weight: so must a float sum, for 0 * Inf to be
        # NaN where SciPy's is (a weight of 1e-17 opposite a 0 is not 0).
        c = size // 2
        k = np.concatenate([weights[: c + 1], sign * weights[c - 1 :: -1][:c]]) if sign else weights
        k = k.astype(dtype)
        starts: tuple[int, ...]
        shape: tuple[int, ...]
        if cols == 1:  # lines along the last axis
            items, starts, shape = x.reshape(lines, length), (start,), (length,)
        else:
            items, k, starts, shape = x, k[:, None], (start, 0), (length, cols)
        if _route(method, items.shape, k.shape, dtype) == "fft":
            out = _by_fft(items, k, starts, shape, rule, cval, dtype)
        else:
            out = _planes.correlate(items, k, starts, shape, rule, cval, dtype, "float")
        return out.reshape(x.shape)
    if cols == 1:
        rows, per_row = _planes.line_rows(x.reshape(lines, length), size, start, length, rule, cval, np.float64)
        firsts = np.arange(rows.shape[0], dtype=np.intp) * rows.shape[1]
        out = _ordered_sums(rows.reshape(-1), firsts, rows.shape[1] - size + 1, 1, weights, sign)
        return out.reshape(lines, -1)[:, :length].reshape(x.shape)
    # Columns of (L + K - 1, C) planes: output row (a, l) starts at
    # xe[a, l, 0]; its taps are C samples apart.
    xe = _planes.extended(x, (start, 0), (length + size - 1, cols), rule, cval, np.float64)
    firsts = (np.arange(lines, dtype=np.intp)[:, None] * xe[0].size
              + np.arange(length, dtype=np.intp)[None, :] * cols).reshape(-1)
    return _ordered_sums(xe.reshape(-1), firsts, cols, cols, weights, sign).reshape(x.shape)


def _ordered_sums(flat: np.ndarray, firsts: np.ndarray, width: int, stride: int, weights: np.ndarray,
                  sign: int) -> np.ndarray:
    """SciPy's correlate1d doubles of ``width`` outputs from each ``firsts[r]``
    of ``flat``, the taps ``stride`` samples apart (see :func:`correlate_lines`)."""
    size = weights.shape[0]
    out = scratch_array("sums", (firsts.size, width), np.float64)  # cast into the output at once
    if sign:
        center = size // 2
        dist = np.arange(center, 0, -1, dtype=np.intp)
        exact_module().correlate_paired(flat, firsts, center * stride, float(weights[center]), dist * stride,
                                        np.ascontiguousarray(weights[center - dist]), float(sign), out,
                                        for_work(out.size * size))
    else:
        order = np.r_[size - 1, 0 : size - 1]  # SciPy's general loop: the last tap first
        exact_module().correlate_ordered(flat, firsts, np.ascontiguousarray(order * stride, dtype=np.intp),
                                         np.ascontiguousarray(weights[order], dtype=np.float64), out,
                                         for_work(out.size * size))
    return out


def _symmetry(weights: np.ndarray) -> int:
    """+1 for odd weights symmetric about their centre, -1 antisymmetric, 0 otherwise (SciPy's test)."""
    size = weights.shape[0]
    if not size & 1:
        return 0
    w, c = weights.tolist(), size // 2
    if all(abs(w[c + i] - w[c - i]) <= _EPS for i in range(1, c + 1)):
        return 1
    if all(abs(w[c + i] + w[c - i]) <= _EPS for i in range(1, c + 1)):
        return -1
    return 0


def _route(method: str, x_shape: tuple[int, ...], k_shape: tuple[int, ...], dtype: npt.DTypeLike) -> str:
    """'direct' or 'fft': ``method``, or for 'auto' the smaller cost estimate."""
    if method != "auto":
        return method
    batch, shape = x_shape[0], x_shape[1:]
    macs = batch * math.prod(shape) * math.prod(k_shape)
    if macs < SMALL_MACS:  # no transform pays for itself
        return "direct"
    direct = _planes.seconds(macs, dtype)
    extended = tuple(n + k - 1 for n, k in zip(shape, k_shape))
    fft = _fftconv.seconds(extended, k_shape, tuple(k - 1 for k in k_shape), shape, batch, dtype)
    return "fft" if fft < direct else "direct"


def _by_fft(x: np.ndarray, k: np.ndarray, start: tuple[int, ...], shape: tuple[int, ...], rule: str,
            cval: float, dtype: npt.DTypeLike) -> np.ndarray:
    """The valid correlation of the extended input with ``k``, by FFTs: a
    convolution with ``k`` flipped, of which the 'valid' region is kept."""
    xe = _planes.extended(x, start, tuple(n + m - 1 for n, m in zip(shape, k.shape)), rule, cval, dtype)
    flipped = k[(slice(None, None, -1),) * k.ndim]
    lo = tuple(m - 1 for m in k.shape)
    return _fftconv.convolve(xe, flipped[None], lo, shape, np.dtype(dtype))

