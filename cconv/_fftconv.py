"""N-D convolution by FFTs, of whole arrays or in overlapping tiles, with NaN and Inf kept local.

The FFT route of the SciPy drop-ins for 1-D, 2-D and 3-D data
(``cconv.signal.fftconvolve``, ``oaconvolve``, ``convolve`` and
``correlate`` with ``method='fft'``, ``cconv.ndimage`` with 1-D and 3-D
weights): a batch of convolutions over the last ``r`` axes, of which only a
region of the full output is wanted.

Two plans, chosen by :func:`plan` from the shapes:

- *whole*: one transform of each operand, as ``scipy.signal.fftconvolve``
  makes it, but of the least size whose circular wrap-around misses the
  wanted region (a 'valid' output needs no padding at all);
- *tiles* (overlap-save): the larger operand is cut into overlapping tiles
  of a fast length ``L`` per axis, each transformed, multiplied by the
  smaller operand's spectrum (made once, at ``L``) and transformed back;
  each tile gives ``L - K + 1`` outputs.  For a small kernel and a large
  image this is less work than one large transform (the kernel is not
  padded to the image's size), and each tile's transforms stay in the
  core's cache.  Groups of tiles are shared out over cconv's threads.

NaN and Inf.  An FFT mixes every input into every output, so one NaN sample
would make the whole result NaN (as ``scipy.signal.fftconvolve`` gives it).
Here the transforms are of the operands' finite parts, and
:func:`restore` then writes NaN, +Inf and -Inf where the direct sum of the
products of overlapping samples has them (for complex data, where the sums
of the parts' products have them), with the value classes and product
table of ``cconv._nonfinite``, in N dimensions.  Samples outside the
operands are no terms: an infinite kernel tap beyond the input's edge adds
no NaN.  A caller that wants zero padding to count (as SciPy's direct N-D
sums have it) passes the padded operand.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import scipy.fft
from numpy.lib.stride_tricks import as_strided

from ._fft import Product, irfft2, rfft2
from ._nonfinite import (
    NAN_BIT,
    NEG_BIT,
    POS_BIT,
    all_finite,
    classes,
    finite_part,
    term_bits,
    term_flags,
    write_flags,
)
from ._threads import for_work, run_jobs
from ._workspace import scratch_array

__all__ = ["transform_dtype", "Plan", "plan", "seconds", "convolve", "restore"]

Shape = tuple[int, ...]


def transform_dtype(*dtypes: np.dtype) -> np.dtype:
    """The dtype the transforms run in, as ``scipy.signal.fftconvolve`` has it.

    Bool and integers become float64 and float16 float32; then NumPy's
    promotion of the operands (complex if either is).
    """
    def one(dt: np.dtype) -> np.dtype:
        if dt.kind in "biu":
            return np.dtype(np.float64)
        if dt == np.float16:
            return np.dtype(np.float32)
        return dt

    return np.result_type(*(one(np.dtype(d)) for d in dtypes))


class Plan(NamedTuple):
    """How :func:`convolve` runs: transform lengths, and tiles if ``tiled``.

    ``lengths`` are the transform sizes per axis; with ``tiled`` the larger
    operand is cut into tiles of those sizes, ``steps`` outputs apart.
    """

    tiled: bool
    lengths: Shape
    steps: Shape


# The most elements of one tile: its spectrum (complex, about half the
# tile) stays within a core's L2 cache.
TILE_ELEMENTS = {1: 2**16, 2: 2**18, 3: 2**18}
# The least tile length per axis: shorter tiles cost more in calls than
# they save in transform length.
MIN_TILE = {1: 1024, 2: 128, 3: 32}
# The fewest elements of a tile worth a transform call of its own (1-D tiles
# are grouped into calls of TILE_CALL_ELEMENTS).
TILE_CALL_ELEMENTS = 2**17
# Cost of the work, in element-transform units: n log2 n per transform, and
# the fixed cost of a transform call (with its share of Python) in the same units.
_CALL_UNITS = 1e5


@functools.lru_cache(maxsize=256)
def plan(s1: Shape, s2: Shape, lo: Shape, out: Shape) -> Plan:
    """Whole transforms or tiles for a convolution of an ``s1`` and an ``s2``
    operand (``s1`` the larger), of which the outputs ``[lo, lo + out)`` are wanted.

    Compares the estimated work: the whole plan transforms both operands and
    the product at the least wrap-free size; the tiled plan transforms each
    tile and its product at a fast length a few times the kernel's, less than
    the whole size on some axis.
    """
    r = len(s1)
    whole = tuple(scipy.fft.next_fast_len(max(n1 + n2 - 1 - o, o + m), real=True)
                  for n1, n2, o, m in zip(s1, s2, lo, out))
    best = Plan(False, whole, out)
    best_cost = 3 * _units(whole) + 3 * _CALL_UNITS
    # Tiles: the same length factor on every axis, the fast length above it.
    for factor in (2, 4, 8, 16, 32):
        lengths = tuple(min(w, scipy.fft.next_fast_len(max(factor * (n2 - 1), MIN_TILE[r]), real=True))
                        for w, n2 in zip(whole, s2))
        if lengths == whole or math.prod(lengths) > TILE_ELEMENTS[r]:
            continue
        steps = tuple(n - n2 + 1 for n, n2 in zip(lengths, s2))
        if min(steps) < 1:
            continue
        tiles = math.prod(-(-m // t) for m, t in zip(out, steps))
        calls = max(1, tiles * math.prod(lengths) // TILE_CALL_ELEMENTS)
        cost = 2 * tiles * _units(lengths) + _units(lengths) + (2 * calls + 1) * _CALL_UNITS
        if cost < best_cost:
            best, best_cost = Plan(True, lengths, steps), cost
    return best


# Seconds per element-transform unit (n log2 n) on 2 cores, per real
# itemsize, and per transform call (see ``_planes.seconds``).
S_PER_UNIT = {4: 0.4e-9, 8: 0.5e-9, 16: 5e-9}
CALL_S = 40e-6


def seconds(s1: Shape, s2: Shape, lo: Shape, out: Shape, batch: int, dtype: npt.DTypeLike) -> float:
    """Estimated seconds of :func:`convolve` for these shapes (``s1`` the larger)."""
    dtype = np.dtype(dtype)
    p = plan(s1, s2, lo, out)
    tiles = math.prod(-(-m // t) for m, t in zip(out, p.steps)) if p.tiled else 1
    real = dtype.itemsize // (2 if dtype.kind == "c" else 1)
    units = batch * (2 * tiles + 1) * _units(p.lengths) * (2 if dtype.kind == "c" else 1)
    return 3 * CALL_S + units * S_PER_UNIT[min(16, max(4, real))]


def _units(lengths: Shape) -> float:
    size = math.prod(lengths)
    return size * math.log2(max(size, 2))


def convolve(a: np.ndarray, b: np.ndarray, lo: Shape, out: Shape, dtype: np.dtype) -> np.ndarray:
    """A region of the batched N-D convolution of ``a`` with ``b``, by FFTs.

    Parameters
    ----------
    a, b : ndarray
        (Ba, *S1) and (Bb, *S2): batches (leading sizes that broadcast) of
        r-D operands, r = ``len(lo)``.
    lo, out : tuple of int
        The wanted outputs ``[lo, lo + out)`` of the full convolution
        ``full[n] = sum_i a[i] * b[n - i]``, ``0 <= lo``, ``lo + out <= S1 + S2 - 1``.
    dtype : dtype
        The transforms' dtype (:func:`transform_dtype`); complex transforms
        if it is complex.

    Returns
    -------
    ndarray of ``dtype``, shape (max(Ba, Bb), *out)
        With NaN and Inf where the direct sum has them (see the module's notes).
    """
    a = np.asarray(a, dtype=dtype)
    b = np.asarray(b, dtype=dtype)
    # The call's thread count, decided once from its transforms' work.
    threads = for_work(max(a.shape[0], b.shape[0]) * _units(tuple(n + m - 1 for n, m in zip(a.shape[1:],
                                                                                          b.shape[1:]))))
    bad = not (all_finite(a) and all_finite(b))
    result = _convolve_finite(finite_part(a) if bad else a, finite_part(b) if bad else b, lo, out, threads)
    if bad:
        restore(result, a, b, lo, threads)
    return result


def _convolve_finite(a: np.ndarray, b: np.ndarray, lo: Shape, out: Shape, threads: int) -> np.ndarray:
    batch = b.shape[0] if a.shape[0] == 1 else a.shape[0]  # leading sizes that broadcast
    result = np.empty((batch, *out), a.dtype)
    if result.size == 0:
        return result
    if a.size == 0 or b.size == 0:
        result[...] = 0
        return result
    # Convolution commutes: the larger operand is the one tiled.
    if math.prod(b.shape[1:]) > math.prod(a.shape[1:]):
        a, b = b, a
    p = plan(a.shape[1:], b.shape[1:], lo, out)
    if p.tiled:
        _tiled(a, b, lo, out, p, result, threads)
    else:
        _whole(a, b, lo, out, p.lengths, result, threads)
    return result


def _transforms(dtype: np.dtype, r: int) -> tuple[Callable[..., np.ndarray], Callable[..., np.ndarray]]:
    """Forward and inverse transforms over the last ``r`` axes, ``f(x, lengths, workers)``
    (1-D ones by ``scipy.fft``'s 1-D functions: less fixed cost per call)."""
    if r == 1:
        if dtype.kind == "c":
            return (lambda x, s, w: scipy.fft.fft(x, s[0], workers=w),
                    lambda x, s, w: scipy.fft.ifft(x, s[0], workers=w, overwrite_x=True))
        return (lambda x, s, w: scipy.fft.rfft(x, s[0], workers=w),
                lambda x, s, w: scipy.fft.irfft(x, s[0], workers=w, overwrite_x=True))
    axes = tuple(range(-r, 0))
    if dtype.kind == "c":
        return (lambda x, s, w: scipy.fft.fftn(x, s, axes=axes, workers=w),
                lambda x, s, w: scipy.fft.ifftn(x, s, axes=axes, workers=w, overwrite_x=True))
    return (lambda x, s, w: scipy.fft.rfftn(x, s, axes=axes, workers=w),
            lambda x, s, w: scipy.fft.irfftn(x, s, axes=axes, workers=w, overwrite_x=True))


def _whole(a: np.ndarray, b: np.ndarray, lo: Shape, out: Shape, lengths: Shape, result: np.ndarray,
           threads: int) -> None:
    """One transform of each operand at ``lengths``; the wanted region of the inverse.

    Real 2-D data in float32 or float64 goes through the engine's 2-D FFTs
    (``cconv._fft``), whose row passes skip the zero padding and whose
    inverse makes only the rows the region keeps, their passes shared out
    over cconv's threads.
    """
    # Samples at or past lo + out are terms of no wanted output: left out
    # (a 'same' region of an in2 over twice in1's size ends before in2 does,
    # and the transform may be shorter than in2).
    kept: tuple[slice, ...] = (slice(None), *(slice(0, o + m) for o, m in zip(lo, out)))
    a, b = a[kept], b[kept]
    if len(lo) == 2 and a.dtype in (np.float32, np.float64):
        crop, shape = (lo[0] + out[0], lo[1] + out[1]), (lengths[0], lengths[1])
        spec_a, spec_b = rfft2([a, b], shape, "new", threads)
        (full,) = irfft2([Product(spec_a, spec_b, False, crop, False)], shape, threads)
        result[...] = full[:, lo[0] :, lo[1] :]
        return
    forward, inverse = _transforms(a.dtype, len(lo))
    spec = forward(a, lengths, threads)
    spec_b = forward(b, lengths, threads)
    if spec.shape == np.broadcast_shapes(spec.shape, spec_b.shape):
        spec *= spec_b
    else:
        spec = spec * spec_b
    full = inverse(spec, lengths, threads)
    region = (slice(None), *(slice(o, o + m) for o, m in zip(lo, out)))
    result[...] = full[region]


def _tiled(a: np.ndarray, b: np.ndarray, lo: Shape, out: Shape, p: Plan, result: np.ndarray, threads: int) -> None:
    """Overlap-save: tiles of ``a`` of ``p.lengths``, ``p.steps`` apart, each
    transformed, multiplied by ``b``'s spectrum and transformed back; each
    keeps its last ``steps`` outputs.

    Tile t along an axis starts at ``a``'s index ``lo + t * step - (k - 1)``
    (``k`` the kernel's size): its circular convolution's entries ``k - 1 +
    j``, ``j < step``, are the outputs ``lo + t * step + j``, free of
    wrap-around.  The work is cut into jobs shared out over cconv's threads:
    a band of tiles along the first axis (a run of them in 1-D), copied from
    ``a`` with its zero padding into the thread's scratch space, then
    transformed a few tiles at a time (so that they stay in the core's
    cache), the outputs written straight into ``result``.
    """
    r = len(lo)
    lengths, steps = p.lengths, p.steps
    kernel = b.shape[1:]
    counts = tuple(-(-m // t) for m, t in zip(out, steps))
    forward, inverse = _transforms(a.dtype, r)
    spec_b = forward(b, lengths, 1)
    first = tuple(o - (k - 1) for o, k in zip(lo, kernel))  # a's index of tile 0's first sample
    spans = tuple(c * t + k - 1 for c, t, k in zip(counts, steps, kernel))  # samples the tiles cover
    group = max(1, TILE_CALL_ELEMENTS // math.prod(lengths))  # tiles per transform call
    keep = (slice(None),) * r + tuple(slice(k - 1, None) for k in kernel)
    # a group's outputs (g0, g1, c2.., T0, T1, T2..) in the order of result's axes
    perm = [v for axis in range(r) for v in (axis, r + axis)]
    per_job = group if r == 1 else 1  # tiles along the first axis per job

    def job(n: int, t0: int, t1: int) -> None:
        # The band of a these tiles read, zero-padded, in scratch space.
        band_start = (first[0] + t0 * steps[0], *first[1:])
        band_shape = ((t1 - t0 - 1) * steps[0] + lengths[0], *spans[1:])
        band = scratch_array("tiles", band_shape, a.dtype)
        src = tuple(slice(max(s, 0), max(min(s + m, size), 0)) for s, m, size in zip(band_start, band_shape,
                                                                                     a.shape[1:]))
        dst = tuple(slice(q.start - s, q.start - s + (q.stop - q.start)) for q, s in zip(src, band_start))
        band.fill(0)
        item: tuple[Any, ...] = (n if a.shape[0] > 1 else 0, *src)
        band[dst] = a[item]
        strides = band.strides
        tiles = as_strided(band, (t1 - t0, *counts[1:], *lengths),
                           (*(t * s for t, s in zip(steps, strides)), *strides), writeable=False)
        kern = spec_b[n if spec_b.shape[0] > 1 else 0]
        groups = range(0, counts[1], group) if r > 1 else range(1)
        for g0 in groups:
            g1 = min(g0 + group, counts[1]) if r > 1 else 0
            chunk = tiles[:, g0:g1] if r > 1 else tiles
            spec = forward(chunk, lengths, 1)
            spec *= kern
            back = inverse(spec, lengths, 1)[keep].transpose(perm)
            back = back.reshape([d0 * d1 for d0, d1 in zip(back.shape[::2], back.shape[1::2])])
            o0 = (t0 * steps[0], *((g0 * steps[1],) if r > 1 else ()), *(0,) * (r - 2))
            where = tuple(slice(o, min(o + m, full)) for o, m, full in zip(o0, back.shape, out))
            into: tuple[Any, ...] = (n, *where)
            result[into] = back[tuple(slice(0, w.stop - w.start) for w in where)]

    jobs = [_bind(job, n, t0, min(t0 + per_job, counts[0]))
            for n in range(result.shape[0]) for t0 in range(0, counts[0], per_job)]
    run_jobs(jobs, threads)


def _bind(fn: Callable[[int, int, int], None], *args: int) -> Callable[[], None]:
    return lambda: fn(*args)


def restore(out: np.ndarray, a: np.ndarray, b: np.ndarray, lo: Shape, threads: int) -> None:
    """Write NaN, +Inf and -Inf into ``out`` where the direct sum has them.

    ``out`` is the region ``[lo, lo + out.shape[1:])`` of the convolution of
    ``a`` (Ba, *S1) with ``b`` (Bb, *S2), computed from their finite parts;
    an output's terms are the products ``a[i] * b[n - i]`` of samples inside
    both.  Complex data as the sums of the parts' products: the real part
    ``re(a) re(b) - im(a) im(b)``, the imaginary part ``re(a) im(b) + im(a) re(b)``.
    """
    if out.dtype.kind == "c":
        parts = [(np.real(a), np.real(b), 1), (np.imag(a), np.imag(b), -1)]
        write_flags(out.real, _sum_flags(out.shape, parts, lo, threads))
        parts = [(np.real(a), np.imag(b), 1), (np.imag(a), np.real(b), 1)]
        write_flags(out.imag, _sum_flags(out.shape, parts, lo, threads))
        return
    write_flags(out, _flags(out.shape, a, b, lo, threads))


def _sum_flags(shape: Shape, parts: Sequence[tuple[np.ndarray, np.ndarray, int]], lo: Shape,
               threads: int) -> np.ndarray:
    """Flags of a sum (sign +1) or difference (-1) of convolutions."""
    total = np.zeros(shape, np.uint8)
    for a, b, sign in parts:
        f = _flags(shape, a, b, lo, threads)
        if sign < 0:  # -x: +Inf and -Inf trade places
            f = (f & NAN_BIT) | ((f & POS_BIT) << 1) | ((f & NEG_BIT) >> 1)
        total |= f
    return total


# Below these, marking outputs cell by cell beats transforming masks.
SCATTER_CELLS = 256
SCATTER_PER_OUTPUT = 4


def _flags(shape: Shape, a: np.ndarray, b: np.ndarray, lo: Shape, threads: int) -> np.ndarray:
    """Bits (NaN, +Inf, -Inf terms) of each output of the real convolution."""
    bad_a = np.argwhere(~np.isfinite(a))
    bad_b = np.argwhere(~np.isfinite(b))
    if len(bad_a) == 0 and len(bad_b) == 0:
        return np.zeros(shape, np.uint8)
    batch = shape[0]
    s1, s2 = a.shape[1:], b.shape[1:]
    reach = (len(bad_a) * (batch // a.shape[0]) * math.prod(min(n, m) for n, m in zip(s2, shape[1:]))
             + len(bad_b) * (batch // b.shape[0]) * math.prod(min(n, m) for n, m in zip(s1, shape[1:])))
    cells = len(bad_a) * (batch // a.shape[0]) + len(bad_b) * (batch // b.shape[0])
    if cells <= SCATTER_CELLS and reach <= SCATTER_PER_OUTPUT * math.prod(shape):
        return _flags_by_scatter(shape, a, b, bad_a, bad_b, lo)
    return _flags_by_fft(shape, a, b, lo, threads)


def _flags_by_scatter(shape: Shape, a: np.ndarray, b: np.ndarray, bad_a: np.ndarray, bad_b: np.ndarray,
                      lo: Shape) -> np.ndarray:
    """Each non-finite cell marks the outputs it is a term of."""
    flags = np.zeros(shape, np.uint8)
    batch, out = shape[0], shape[1:]
    for cells, mine, other in ((bad_a, a, b), (bad_b, b, a)):
        if not len(cells):
            continue
        other_classes = classes(other)
        codes = classes(mine[tuple(cells.T)])
        for (n, *i), code in zip(cells, codes):
            # Output m has the term mine[i] * other[m + lo - i], for
            # m + lo - i inside other.
            m0 = [max(c - o, 0) for c, o in zip(i, lo)]
            m1 = [min(c - o + s, e) for c, o, s, e in zip(i, lo, other.shape[1:], out)]
            if any(p >= q for p, q in zip(m0, m1)):
                continue
            boxes = tuple(slice(p, q) for p, q in zip(m0, m1))
            taps = tuple(slice(p + o - c, q + o - c) for p, q, o, c in zip(m0, m1, lo, i))
            for pair in (range(batch) if mine.shape[0] == 1 else range(n, n + 1)):
                q = pair if other.shape[0] > 1 else 0
                where: tuple[int | slice, ...] = (int(pair), *boxes)
                which: tuple[int | slice, ...] = (int(q), *taps)
                flags[where] |= term_bits(code, other_classes[which])
    return flags


def _flags_by_fft(shape: Shape, a: np.ndarray, b: np.ndarray, lo: Shape, threads: int) -> np.ndarray:
    """Bits of each output, from FFT-counted products of 0/1 class masks (``cconv._nonfinite.term_flags``)."""

    def count(terms: list[tuple[np.ndarray, np.ndarray, str, str]]) -> np.ndarray:
        return sum((_convolve_finite(ma.astype(np.float64), mb.astype(np.float64), lo, shape[1:], threads)
                    for ma, mb, _, _ in terms), np.zeros(shape))

    return term_flags(classes(a), classes(b), count, shape)
