"""The correlation engine: a valid correlation over a batch of pairs, by
the direct loops or by FFTs, and the cost model that chooses between them.

Every pass of the layer (forward, dx, dw) is a valid cross-correlation of
"images" with "kernels" over a batch of pairs, optionally summed over the
pairs (the gradient of a broadcast operand).  This module turns that one
operation into calls of the compiled direct loops (``cconv._correlate``, in
the build ``cconv._build`` chose), with their task split and loop order, or
into FFTs (``scipy.fft``), and estimates which is faster.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import scipy.fft

from . import _fft
from ._build import correlate_module as _loops
from ._build import exact_module
from ._fft import Product
from ._nonfinite import any_nonfinite, finite_part, restore
from ._threads import get_num_threads

__all__ = [
    "METHODS",
    "pair_count",
    "sum_pairs",
    "correlate_direct",
    "correlate_summed",
    "backward_direct",
    "fft_shape",
    "spectrum",
    "finite_spectra",
    "Product",
    "correlate_spectra",
    "correlate_fft",
    "correlate",
    "correlate_exact",
    "correlate_in_order",
    "choose_method",
    "workspace_bytes",
]

METHODS = ("auto", "direct", "fft")
#: The methods of the 3-D layer, as a type.
Method = Literal["auto", "direct", "fft"]


def pair_count(n1: int, n2: int) -> int:
    """Leading size when n1 operands meet n2 (NumPy broadcasting of one axis)."""
    return n2 if n1 == 1 else n1


def correlate_direct(x: np.ndarray, k: np.ndarray, reduce: bool) -> np.ndarray:
    """Valid correlation of ``x[n]`` with ``k[n]`` by the compiled loops.

    Parameters
    ----------
    x, k : ndarray
        C-contiguous, same dtype, shapes (Nx, IH, IW) and (Nk, KH, KW) with
        leading sizes that broadcast, and KH <= IH, KW <= IW.
    reduce : bool
        Sum over the pairs: the result has leading size 1.

    Returns
    -------
    ndarray of shape (npairs or 1, IH - KH + 1, IW - KW + 1)
    """
    npairs = pair_count(x.shape[0], k.shape[0])
    oh, ow = x.shape[1] - k.shape[1] + 1, x.shape[2] - k.shape[2] + 1
    if npairs == 0:
        return np.zeros((1 if reduce else 0, oh, ow), dtype=x.dtype)
    # A reduced output is summed from partial sums, one per task: enough
    # tasks to keep the threads busy, few enough that adding them up after
    # costs little.  The count never depends on the thread count, so that
    # neither do the results.
    tasks = min(npairs, REDUCE_TASKS) if reduce else npairs
    out = np.empty((tasks, oh, ow), dtype=x.dtype)
    if oh * ow >= k.shape[1] * k.shape[2]:
        # Strips of output columns, accumulated tap by tap in blocks of rows.
        _loops.correlate_wide(x, k, out, npairs, ROWS_PER_ITEM)
    else:
        # Long dot products (small outputs of large kernels): each item
        # computes a block of output rows over its pairs, reading every
        # pair's images once; whole outputs per item when there are enough
        # tasks to share out, else single rows.
        _loops.correlate_narrow(x, k, out, npairs, oh if tasks >= REDUCE_TASKS else 1)
    return sum_pairs(out) if reduce and tasks > 1 else out


# Work items of the direct loops: blocks of this many output rows (a
# multiple of every build's register block), and at most this many partial
# sums for a reduced output.
ROWS_PER_ITEM = 8
REDUCE_TASKS = 8


def correlate_summed(x: np.ndarray, k: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``sum_n correlate2d(x[n], k[n], 'valid')`` by the compiled loops, in one task.

    One output plane of a 3-D valid correlation, from its ``N`` depth taps:
    ``x`` (N, IH, IW) and ``k`` (N, KH, KW) as for :func:`correlate_direct`.
    Unlike ``correlate_direct(..., reduce=True)`` there are no partial sums
    to add up after: each block of outputs accumulates every pair in
    registers (parallel over the blocks of rows).  Returns (1, OH, OW),
    written into ``out`` if given (C-contiguous, of that shape and x's dtype).
    """
    oh, ow = x.shape[1] - k.shape[1] + 1, x.shape[2] - k.shape[2] + 1
    if out is None:
        out = np.empty((1, oh, ow), dtype=x.dtype)
    if oh * ow >= k.shape[1] * k.shape[2]:
        _loops.correlate_wide(x, k, out, x.shape[0], ROWS_PER_ITEM)
    else:
        _loops.correlate_narrow(x, k, out, x.shape[0], 1)
    return out


def backward_direct(x: np.ndarray, w: np.ndarray, dout: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """dx and dw of ``out[n] = correlate2d(x[n], w[n], 'valid')`` by the compiled loops.

    ``x`` (Nx, H, W), ``w`` (Nw, KH, KW), ``dout`` (npairs, OH, OW), one
    floating dtype, C-contiguous.  dx is the full correlation of ``dout``
    with the flipped filter, summed over the pairs where ``x`` is
    broadcast; dw the valid correlation of ``x`` with ``dout``, summed
    where ``w`` is.  When every pair has its own image (Nx = npairs), one
    fused pass reads each row of ``x`` and ``dout`` once for both.
    """
    (nx, ih, iw), (nw, kh, kw) = x.shape, w.shape
    npairs = dout.shape[0]
    flipped = np.ascontiguousarray(w[:, ::-1, ::-1])
    if nx != npairs or npairs == 0:
        # dx: a valid correlation of dout zero-padded by the filter size - 1.
        padded = np.zeros((npairs, ih + kh - 1, iw + kw - 1), dtype=dout.dtype)
        padded[:, kh - 1 : ih, kw - 1 : iw] = dout
        dx = correlate_direct(padded, flipped, reduce=nx == 1 and npairs != 1)
        dw = correlate_direct(x, dout, reduce=nw == 1 and npairs != 1)
        return dx, dw
    rows = FUSED_ROWS
    blocks = -(-ih // rows)
    dx = np.empty_like(x)
    partial = np.zeros((npairs * blocks, kh, kw))
    ow = dout.shape[2]
    scratch = np.empty((get_num_threads(), (rows + kh - 1) * (ow + 2 * (kw - 1)) + kw * ow), dx.dtype)
    _loops.backward_fused(x, flipped, dout, dx, partial, scratch, rows)
    with np.errstate(invalid="ignore", over="ignore"):  # where +Inf meets -Inf: NaN, no warning
        if nw == 1:
            dw = partial.sum(axis=0, keepdims=True)
        else:
            dw = partial.reshape(npairs, blocks, kh, kw).sum(axis=1)
    return dx, dw.astype(x.dtype)


# Rows of dx (and dout) one item of the fused backward pass covers.
FUSED_ROWS = 16


def sum_pairs(a: np.ndarray) -> np.ndarray:
    """``a`` summed over its first axis, kept; where +Inf meets -Inf, NaN without a warning."""
    with np.errstate(invalid="ignore", over="ignore"):
        return a.sum(axis=0, keepdims=True)


def fft_shape(ih: int, iw: int) -> tuple[int, int]:
    """Transform size for images of ih x iw: no padding beyond a fast length.

    A valid correlation never reads the circular wrap-around, and the full
    correlation of the dx pass wraps only into zeros, so the image's own size
    is enough.
    """
    return (scipy.fft.next_fast_len(ih, real=True), scipy.fft.next_fast_len(iw, real=True))


def spectrum(a: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Real 2-D FFT of every (H, W) slice of ``a``, zero-padded to ``shape``."""
    return _fft.rfft2([a], shape)[0]


def finite_spectra(arrays: Sequence[np.ndarray], shape: tuple[int, int],
                   memory: _fft.Memory = "new") -> list[tuple[np.ndarray, bool]]:
    """The spectrum of each array's finite part, and whether the array held NaN or Inf.

    The arrays are transformed together (their 1-D transforms shared out
    over the threads at once), into ``memory`` (see ``cconv._fft.rfft2``).
    On finite data this is :func:`spectrum` plus a look at the DC terms;
    otherwise the transform is taken again with the non-finite values zeroed
    (see ``cconv._nonfinite``).
    """
    specs = _fft.rfft2(arrays, shape, memory)
    result = []
    for a, spec in zip(arrays, specs):
        bad = any_nonfinite(spec)
        result.append((spectrum(finite_part(a), shape) if bad else spec, bad))
    return result


def correlate_spectra(products: Sequence[Product], shape: tuple[int, int]) -> list[np.ndarray]:
    """Inverse FFT of each product ``a * b`` (``a * conj(b)`` with ``conj``), cropped.

    With ``conj`` a product gives the circular correlation of the two
    operands, otherwise their circular convolution.  ``reduce`` sums over
    the pairs in frequency space first, so only one inverse transform is
    made.  The products are inverted together.
    """
    return _fft.irfft2(products, shape)


def correlate_fft(x: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], bool]:
    """Valid correlation of ``x[n]`` with ``k[n]`` by FFTs, NaN and Inf kept local.

    Returns the result (npairs, IH - KH + 1, IW - KW + 1), the spectra of
    the operands' finite parts (for a backward pass to reuse) and whether
    either operand held NaN or Inf.
    """
    shape = fft_shape(*x.shape[1:])
    # Kept buffers: the spectra live in the ConvCache, which cconv alone reads.
    (spec_x, bad_x), (spec_k, bad_k) = finite_spectra([x, k], shape, "kept")
    (ih, iw), (kh, kw) = x.shape[1:], k.shape[1:]
    (out,) = correlate_spectra([Product(spec_x, spec_k, True, (ih - kh + 1, iw - kw + 1), False)], shape)
    if bad_x or bad_k:
        restore(out, x, k, reduce=False)
    return out, (spec_x, spec_k), bad_x or bad_k


def correlate(x: np.ndarray, k: np.ndarray, method: Method = "auto") -> np.ndarray:
    """Valid correlation of ``x[n]`` with ``k[n]`` (float32 or float64), by ``method``.

    ``x`` and ``k`` as for :func:`correlate_direct`; 'auto' asks the cost
    model.  NaN and Inf stay where a direct sum puts them on every method.
    """
    method = choose_method(method, x.shape[0], k.shape[0], x.shape[1:], k.shape[1:], x.dtype.itemsize,
                           backward=False)
    if method == "direct":
        return correlate_direct(x, k, reduce=False)
    return correlate_fft(x, k)[0]


# The unsigned type of each integer width: its wrap-around arithmetic gives
# the bits of the signed type's too.
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def correlate_exact(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Valid correlation of ``x[n]`` with ``k[n]`` summed in their own type, exactly.

    ``x`` and ``k``: C-contiguous, native, of one integer dtype (summed
    modulo 2**bits, as NumPy and SciPy's signal module sum) or long double;
    leading sizes that broadcast.
    """
    npairs = pair_count(x.shape[0], k.shape[0])
    shape = (npairs, x.shape[1] - k.shape[1] + 1, x.shape[2] - k.shape[2] + 1)
    dtype = x.dtype
    view = np.dtype(_UNSIGNED[dtype.itemsize]) if dtype.kind in "iu" else dtype
    out = np.empty(shape, view)
    exact_module().correlate_exact(x.view(view), k.view(view), out, get_num_threads())
    return out.view(dtype)


def correlate_in_order(x: np.ndarray, k: np.ndarray, present: np.ndarray,
                       out: np.ndarray | None = None) -> np.ndarray:
    """Valid correlation of each ``x[n]`` with ``k``, summed as ``scipy.ndimage`` sums.

    Parameters
    ----------
    x : ndarray
        float64, C-contiguous, (N, *S): N inputs of any rank, already
        extended past their edges.
    k : ndarray
        float64 weights of the same rank as S, no larger than S.
    present : ndarray of bool, shape of ``k``
        The taps that are terms; the others are left out of the sum (SciPy
        leaves out weights of magnitude at most DBL_EPSILON).
    out : ndarray, optional
        Where to write the result (float64, C-contiguous, of its shape).

    Returns
    -------
    ndarray of float64, shape (N, *(S - k.shape + 1))
        Each output summed from 0.0 one term at a time, in the C order of
        the taps, every product and addition rounded to double, with no
        fused multiply-add: SciPy's double, so that its truncation to an
        integer gives SciPy's integer.
    """
    n, spatial = x.shape[0], x.shape[1:]
    out_shape = tuple(s - t + 1 for s, t in zip(spatial, k.shape))
    if out is None:
        out = np.empty((n, *out_shape))
    if out.size == 0 or not present.any():
        out[...] = 0
        return out
    steps = np.array(x.strides[1:], dtype=np.intp) // x.itemsize
    toff = np.ascontiguousarray(np.argwhere(present) @ steps, dtype=np.intp)
    tw = np.ascontiguousarray(k[present], dtype=np.float64)
    # The first element of each output row (all axes but the last), in x.
    rows = np.indices((n, *out_shape[:-1])).reshape(len(out_shape), -1).T
    starts = np.ascontiguousarray(rows @ np.concatenate([[math.prod(spatial)], steps[:-1]]), dtype=np.intp)
    flat = out.reshape(-1, out_shape[-1])
    exact_module().correlate_ordered(x.reshape(-1), starts, toff, tw, flat, get_num_threads())
    return out


# Cost model of method="auto", measured on a 2-core AVX-512 machine
# (benchmarks/bench.py prints the comparison it is judged by).  Direct work
# is multiply-adds at the rate of the loop order the shapes select; FFT work
# is size * log2(size) per image transformed, plus a fixed cost per transform
# call.  Only the ratio of the two estimates matters.
_DIRECT_MACS_PER_S = {  # (narrow, itemsize) -> multiply-adds per second
    (False, 4): 80e9,
    (False, 8): 37e9,
    (True, 4): 9e9,
    (True, 8): 4.6e9,
}
_FFT_S_PER_UNIT = {4: 0.134e-9, 8: 0.187e-9}  # transforms, products, crops
_FFT_S_PER_CALL = 40e-6
_CALL_S = 40e-6


def _direct_seconds(npairs: int, out_size: tuple[int, int], k_size: tuple[int, int], itemsize: int) -> float:
    narrow = out_size[0] * out_size[1] < k_size[0] * k_size[1]
    macs = npairs * out_size[0] * out_size[1] * k_size[0] * k_size[1]
    return _CALL_S + macs / _DIRECT_MACS_PER_S[narrow, itemsize]


def _fft_seconds(images: int, calls: int, shape: tuple[int, int], itemsize: int) -> float:
    size = shape[0] * shape[1]
    units = images * size * math.log2(max(size, 2))
    return calls * _FFT_S_PER_CALL + units * _FFT_S_PER_UNIT[itemsize]


def workspace_bytes(method: str, nx: int, nw: int, image_size: tuple[int, int], filter_size: tuple[int, int],
                    itemsize: int, backward: bool, cached: bool = False) -> int:
    """Upper estimate of the bytes one pass allocates, inputs' copies aside."""
    npairs = pair_count(nx, nw)
    (ih, iw), (kh, kw) = image_size, filter_size
    out = npairs * (ih - kh + 1) * (iw - kw + 1) * itemsize
    grads = (nx * ih * iw + nw * kh * kw) * itemsize
    if method == "direct":
        if backward:  # dout padded for dx, then dx and dw (and dw's partial sums)
            return npairs * (ih + kh - 1) * (iw + kw - 1) * itemsize + 2 * grads
        return out
    p, q = fft_shape(ih, iw)
    spectrum = p * (q // 2 + 1) * 2 * itemsize
    inputs = 0 if cached else (nx + nw) * spectrum
    if backward:  # dout's spectrum, two products, two inverse transforms, dx and dw
        return inputs + 3 * npairs * spectrum + 2 * npairs * p * q * itemsize + grads
    return inputs + npairs * (spectrum + p * q * itemsize) + out


def choose_method(method: Method, nx: int, nw: int, image_size: tuple[int, int], filter_size: tuple[int, int],
                  itemsize: int, backward: bool, cached: bool = False) -> Literal["direct", "fft"]:
    """Resolve ``method`` ('auto', 'direct' or 'fft') for one pass.

    ``cached``: the spectra of x and w are at hand (an FFT forward pass).
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    npairs = pair_count(nx, nw)
    if npairs == 0:  # nothing to transform: the direct path returns the empty sums
        return "direct"
    if method != "auto":
        return method
    (ih, iw), (kh, kw) = image_size, filter_size
    out_size = (ih - kh + 1, iw - kw + 1)
    shape = fft_shape(ih, iw)
    if backward:
        if nx == npairs:
            # The fused pass (backward_direct): dx as a correlation of the
            # image's size, dw's products in the same register blocks.
            direct = 2 * _direct_seconds(npairs, (ih, iw), (kh, kw), itemsize)
        else:
            direct = _direct_seconds(npairs, (ih, iw), (kh, kw), itemsize) + _direct_seconds(
                npairs, (kh, kw), out_size, itemsize
            )
        # one forward transform (dout) and two inverse (dx, dw), and those of
        # x and w unless the forward pass left them in the cache
        if cached:
            fft = _fft_seconds(3 * npairs, 3, shape, itemsize)
        else:
            fft = _fft_seconds(nx + nw + 3 * npairs, 5, shape, itemsize)
    else:
        fft = _fft_seconds(nx + nw + npairs, 3, shape, itemsize)
        direct = _direct_seconds(npairs, out_size, (kh, kw), itemsize)
    return "fft" if fft < direct else "direct"
