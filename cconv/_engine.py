"""The correlation engine: a valid correlation over a batch of pairs, by
the direct loops or by FFTs, planned once per call.

Every pass of the layer (forward, dx, dw) is a valid cross-correlation of
"images" with "kernels" over a batch of pairs, optionally summed over the
pairs (the gradient of a broadcast operand).  For each call, :func:`plan`
decides once, from the shapes: the method (the cost model of
``method='auto'``), the thread count of every loop and transform
(``cconv._threads.for_work``), and the workspace the call allocates, which
the public function's memory check reads.  This module then runs the pass
on the compiled direct loops (``cconv._correlate``, in the build
``cconv._dispatch`` chose), with their task split and loop order, or on the
FFT route (``cconv._fft``); and the sums that must round as SciPy's, on
``cconv._exact``.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import numpy as np

from . import _fft
from ._dispatch import correlate_module as _loops
from ._dispatch import exact_module
from ._threads import SERIAL_WORK, for_work

__all__ = [
    "METHODS",
    "Method",
    "Plan",
    "plan",
    "pair_count",
    "sum_pairs",
    "correlate_direct",
    "correlate_summed",
    "backward_direct",
    "correlate",
    "correlate_exact",
    "correlate_in_order",
    "choose_method",
]

METHODS = ("auto", "direct", "fft")
#: The methods of the 3-D layer, as a type.
Method = Literal["auto", "direct", "fft"]


def pair_count(n1: int, n2: int) -> int:
    """Leading size when n1 operands meet n2 (NumPy broadcasting of one axis)."""
    return n2 if n1 == 1 else n1


class Plan(NamedTuple):
    """How one pass runs, decided once from the validated shapes.

    Attributes
    ----------
    method : {'direct', 'fft'}
        The route: the compiled direct loops, or the FFTs.
    threads : int
        The thread count of every loop and transform of the pass.
    workspace : int
        Upper estimate of the bytes the pass allocates on finite data,
        results included, copies of the inputs not (the public function
        adds those).  Where NaN or Inf need restoring after the FFTs, the
        restoration checks its own needs when it finds them
        (``cconv._nonfinite.restore``).
    """

    method: Literal["direct", "fft"]
    threads: int
    workspace: int


def plan(method: Method, nx: int, nw: int, image_size: tuple[int, int], filter_size: tuple[int, int],
         itemsize: int, backward: bool = False, cached: bool = False) -> Plan:
    """The :class:`Plan` of one pass: ``nx`` images of ``image_size`` with ``nw`` filters.

    ``method`` is resolved by the cost model (:func:`choose_method`);
    ``backward`` plans the dx and dw pass, ``cached`` one whose x and w
    spectra an FFT forward pass left (see :func:`choose_method`).
    """
    npairs = pair_count(nx, nw)
    (ih, iw), (kh, kw) = image_size, filter_size
    if method in ("auto", "direct") and npairs * ih * iw * kh * kw < SERIAL_WORK:
        # Too little work for a second thread, or for the FFTs' fixed cost to pay.
        return Plan("direct", 1, workspace_bytes("direct", nx, nw, image_size, filter_size, itemsize, backward))
    chosen = choose_method(method, nx, nw, image_size, filter_size, itemsize, backward, cached)
    if chosen == "direct":
        work: float = npairs * ih * iw * kh * kw * (2 if backward else 1)
    else:
        p, q = _fft.fft_shape(ih, iw)
        work = (nx + nw + 3 * npairs) * p * q * math.log2(max(p * q, 2))
    threads = for_work(work)
    return Plan(chosen, threads, workspace_bytes(chosen, nx, nw, image_size, filter_size, itemsize, backward, cached,
                                                  threads))


def correlate_direct(x: np.ndarray, k: np.ndarray, reduce: bool, threads: int) -> np.ndarray:
    """Valid correlation of ``x[n]`` with ``k[n]`` by the compiled loops.

    Parameters
    ----------
    x, k : ndarray
        C-contiguous, same dtype, shapes (Nx, IH, IW) and (Nk, KH, KW) with
        leading sizes that broadcast, and KH <= IH, KW <= IW.
    reduce : bool
        Sum over the pairs: the result has leading size 1.
    threads : int
        The loops' thread count.

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
        _loops.correlate_wide(x, k, out, npairs, ROWS_PER_ITEM, threads)
    else:
        # Long dot products (small outputs of large kernels): each item
        # computes a block of output rows over its pairs, reading every
        # pair's images once; whole outputs per item when there are enough
        # tasks to share out, else single rows.
        _loops.correlate_narrow(x, k, out, npairs, oh if tasks >= REDUCE_TASKS else 1, threads)
    return sum_pairs(out) if reduce and tasks > 1 else out


# Work items of the direct loops: blocks of this many output rows (a
# multiple of every build's register block; items of 8 rows of a 128-wide
# image were too small to share: two threads ran the 3x3 batch no faster
# than one, 0.44 against 0.37 ms, where items of 32 take 0.27-0.29), and at
# most this many partial sums for a reduced output.
ROWS_PER_ITEM = 32
REDUCE_TASKS = 8


def correlate_summed(x: np.ndarray, k: np.ndarray, threads: int, out: np.ndarray | None = None) -> np.ndarray:
    """``sum_n correlate2d(x[n], k[n], 'valid')`` by the compiled loops, in one task.

    One output plane of a 3-D valid correlation, from its ``N`` depth taps:
    ``x`` (N, IH, IW) and ``k`` (N, KH, KW) as for :func:`correlate_direct`.
    Unlike ``correlate_direct(..., reduce=True)`` there are no partial sums
    to add up after: each block of outputs accumulates every pair in
    registers (parallel over the blocks of rows, on ``threads`` threads).
    Returns (1, OH, OW), written into ``out`` if given (C-contiguous, of
    that shape and x's dtype).
    """
    oh, ow = x.shape[1] - k.shape[1] + 1, x.shape[2] - k.shape[2] + 1
    if out is None:
        out = np.empty((1, oh, ow), dtype=x.dtype)
    if oh * ow >= k.shape[1] * k.shape[2]:
        _loops.correlate_wide(x, k, out, x.shape[0], ROWS_PER_ITEM, threads)
    else:
        _loops.correlate_narrow(x, k, out, x.shape[0], 1, threads)
    return out


def backward_direct(x: np.ndarray, w: np.ndarray, dout: np.ndarray, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """dx and dw of ``out[n] = correlate2d(x[n], w[n], 'valid')`` by the compiled loops.

    ``x`` (Nx, H, W), ``w`` (Nw, KH, KW), ``dout`` (npairs, OH, OW), one
    floating dtype, C-contiguous; on ``threads`` threads.  dx is the full correlation of ``dout``
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
        dx = correlate_direct(padded, flipped, nx == 1 and npairs != 1, threads)
        dw = correlate_direct(x, dout, nw == 1 and npairs != 1, threads)
        return dx, dw
    rows = FUSED_ROWS
    blocks = -(-ih // rows)
    dx = np.empty_like(x)
    partial = np.zeros((npairs * blocks, kh, kw))
    ow = dout.shape[2]
    scratch = np.empty((threads, (rows + kh - 1) * (ow + 2 * (kw - 1)) + kw * ow), dx.dtype)
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


def correlate(x: np.ndarray, k: np.ndarray, plan: Plan) -> np.ndarray:
    """Valid correlation of ``x[n]`` with ``k[n]`` (float32 or float64), as ``plan`` says.

    ``x`` and ``k`` as for :func:`correlate_direct`.  NaN and Inf stay
    where a direct sum puts them on every method.
    """
    if plan.method == "direct":
        return correlate_direct(x, k, False, plan.threads)
    return _fft.correlate(x, k, plan.threads)[0]


# The unsigned type of each integer width: its wrap-around arithmetic gives
# the bits of the signed type's too.
_UNSIGNED = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def correlate_exact(x: np.ndarray, k: np.ndarray, threads: int | None = None) -> np.ndarray:
    """Valid correlation of ``x[n]`` with ``k[n]`` summed in their own type, exactly.

    ``x`` and ``k``: C-contiguous, native, of one integer dtype (summed
    modulo 2**bits, as NumPy and SciPy's signal module sum) or long double;
    leading sizes that broadcast.  On ``threads`` threads (default: as
    its work asks, ``cconv._threads.for_work``).
    """
    npairs = pair_count(x.shape[0], k.shape[0])
    shape = (npairs, x.shape[1] - k.shape[1] + 1, x.shape[2] - k.shape[2] + 1)
    dtype = x.dtype
    view = np.dtype(_UNSIGNED[dtype.itemsize]) if dtype.kind in "iu" else dtype
    out = np.empty(shape, view)
    if threads is None:
        threads = for_work(math.prod(shape) * k.shape[1] * k.shape[2])
    exact_module().correlate_exact(x.view(view), k.view(view), out, threads)
    return out.view(dtype)


def correlate_in_order(x: np.ndarray, k: np.ndarray, present: np.ndarray, out: np.ndarray | None = None,
                       threads: int | None = None) -> np.ndarray:
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
    threads : int, optional
        The loops' thread count (default: as the work asks,
        ``cconv._threads.for_work``).

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
    if threads is None:
        threads = for_work(out.size * toff.size)
    exact_module().correlate_ordered(x.reshape(-1), starts, toff, tw, flat, threads)
    return out


# Cost model of method="auto", measured on a 2-core AVX-512 machine
# (benchmarks/bench.py prints the comparison it is judged by).  Direct work
# is multiply-adds at the rate of the loop order the shapes select; FFT work
# is size * log2(size) per image transformed, plus a fixed cost per transform
# call.  Only the ratio of the two estimates matters.
_DIRECT_MACS_PER_S = {  # (narrow, itemsize) -> multiply-adds per second
    (False, 4): 110e9,  # the register blocks of correlate_kernels.h, 2 threads, 7x7-25x25
    (False, 8): 60e9,
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
                    itemsize: int, backward: bool, cached: bool = False, threads: int = 1) -> int:
    """Upper bound of the bytes one pass allocates on finite data, results included,
    copies of the inputs not: the arrays of the route the plan takes, stage by stage."""
    npairs = pair_count(nx, nw)
    (ih, iw), (kh, kw) = image_size, filter_size
    oh, ow = ih - kh + 1, iw - kw + 1
    if method == "direct":
        if not backward:
            return npairs * oh * ow * itemsize
        flipped = nw * kh * kw * itemsize
        if nx == npairs and npairs:  # the fused pass: dx, dw's double partials and sum, the threads' rows
            blocks = -(-ih // FUSED_ROWS)
            scratch = threads * ((FUSED_ROWS + kh - 1) * (ow + 2 * (kw - 1)) + kw * ow) * itemsize
            return flipped + nx * ih * iw * itemsize + (npairs * blocks + nw) * kh * kw * 8 + nw * kh * kw * itemsize \
                + scratch
        # dout padded for dx; dx and dw with their partial sums where a broadcast operand is reduced
        padded = npairs * (ih + kh - 1) * (iw + kw - 1) * itemsize

        def reduced(size: int, reduce: bool) -> int:
            tasks = min(npairs, REDUCE_TASKS) if reduce else npairs
            return (tasks + (reduce and tasks > 1)) * size * itemsize

        return flipped + padded + reduced(ih * iw, nx == 1 and npairs != 1) + reduced(kh * kw, nw == 1 and npairs != 1)
    p, q = _fft.fft_shape(ih, iw)
    spectrum = p * (q // 2 + 1) * 2 * itemsize
    plane = p * q * itemsize
    # Transforms: the spectra, and the temporaries of their passes (at most the
    # largest operand's spectrum at a time).
    taken = (npairs if cached else nx + nw + npairs) if backward else nx + nw
    # Inverses: the products, as much again for their column passes, the row passes'
    # planes; a reduced product's chunks of pairs.
    inverses = 2 if backward else 1
    products = inverses * npairs * (2 * spectrum + plane) + min(npairs, 8) * spectrum
    if backward:
        results = (nx * ih * iw + nw * kh * kw) * itemsize
    else:
        results = npairs * oh * ow * itemsize
    return (taken + max(nx, nw, npairs if backward else 0)) * spectrum + products + results


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
    shape = _fft.fft_shape(ih, iw)
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
