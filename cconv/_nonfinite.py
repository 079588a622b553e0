"""NaN and infinities on the FFT route: kept where a direct sum puts them.

A direct sum propagates IEEE special values by itself: an output is NaN when
one of its terms is NaN (a NaN operand, ``Inf * 0``) or when both ``+Inf``
and ``-Inf`` terms meet in it, else ``+Inf`` or ``-Inf`` when a term of that
sign is present, else finite.  An FFT mixes every input into every output,
so a single NaN pixel would make the whole result NaN.

So the FFT route transforms the *finite part* of its operands (non-finite
values replaced by zeros), which gives every output the value its finite
terms sum to, and then :func:`restore` writes NaN, ``+Inf`` and ``-Inf``
where the direct sum has them.  Which terms of an output are non-finite
depends only on the classes of the two values multiplied (NaN, +Inf, -Inf,
zero, positive, negative).  :func:`restore` finds them one of two ways:

- a few non-finite cells (a dead pixel, an infinite filter tap): each one
  marks the outputs it reaches, a slice per cell;
- many: each kind of non-finite term is counted by a correlation of 0/1
  class masks, taken by FFT in float64 and rounded (exact for any count
  below 2**40 or so).

Detection costs nothing on finite data: the DC term of a spectrum sums every
value of its operand, and no IEEE addition or multiplication turns a
non-finite value finite, so a finite DC term means a finite operand
(:func:`any_nonfinite`).  A DC term that overflowed on finite but huge data
only sends the call through :func:`restore`, which then finds nothing to
restore.

Zero padding counts as zeros multiplied by the filter, as in
``scipy.signal.correlate2d(..., mode='full')``: an infinite filter tap over
padding gives NaN.  The input gradient of the 4-D layer, as PyTorch defines
it, has no terms there at all (``pad_zeros=False``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import scipy.fft

from ._validation import check_memory

__all__ = ["any_nonfinite", "all_finite", "finite_part", "restore", "classes", "term_bits", "term_flags",
           "write_flags", "NAN_BIT", "POS_BIT", "NEG_BIT", "ZERO", "NONE"]

# Cells around an image: (top, bottom, left, right).
Pad = tuple[int, int, int, int]


def any_nonfinite(spec: np.ndarray) -> bool:
    """Whether the operand of ``spec`` (a batch of 2-D spectra) held NaN or Inf."""
    return not np.isfinite(spec[..., 0, 0]).all()


def all_finite(a: np.ndarray) -> bool:
    """Whether every value of ``a`` is finite.

    For a large ``a``, whether its sum is: one pass, no temporary array (a
    finite but huge ``a`` may overflow its sum, and then only takes the
    slower, exact path).  A small one is tested value by value, cheaper
    than setting up NumPy's error state for the sum.
    """
    if a.size <= 4096:
        return bool(np.isfinite(a).all())
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.isfinite(np.sum(a)))


def finite_part(a: np.ndarray) -> np.ndarray:
    """``a`` with every NaN and infinity replaced by zero (a new array)."""
    return np.where(np.isfinite(a), a, a.dtype.type(0))


# Value classes, and what the product of two classes contributes to a sum.
NAN, PINF, MINF, ZERO, POS, NEG, NONE = range(7)  # NONE: padding that is no term
NAN_BIT, POS_BIT, NEG_BIT = 1, 2, 4
_PRODUCT = np.zeros((7, 7), dtype=np.uint8)
_PRODUCT[NAN, :NONE] = _PRODUCT[:NONE, NAN] = NAN_BIT
for _a, _b, _bit in ((PINF, PINF, POS_BIT), (PINF, MINF, NEG_BIT), (MINF, MINF, POS_BIT),
                     (PINF, ZERO, NAN_BIT), (MINF, ZERO, NAN_BIT),
                     (PINF, POS, POS_BIT), (PINF, NEG, NEG_BIT), (MINF, POS, NEG_BIT), (MINF, NEG, POS_BIT)):
    _PRODUCT[_a, _b] = _PRODUCT[_b, _a] = _bit


def classes(a: np.ndarray, pad: Pad | None = None, pad_class: int = ZERO) -> np.ndarray:
    """The class of every value of ``a`` (uint8), padded with ``pad_class``."""
    c = np.full(a.shape, POS, dtype=np.uint8)
    c[a < 0] = NEG
    c[a == 0] = ZERO
    c[a == np.inf] = PINF
    c[a == -np.inf] = MINF
    c[np.isnan(a)] = NAN
    if pad is not None:
        top, bottom, left, right = pad
        c = np.pad(c, ((0, 0), (top, bottom), (left, right)), constant_values=pad_class)
    return c


def term_bits(a_classes: np.ndarray | np.integer, b_classes: np.ndarray) -> np.ndarray:
    """The bits (NAN_BIT, POS_BIT, NEG_BIT) of the term a * b, for classes (:func:`classes`) of values of a and b."""
    return _PRODUCT[a_classes, b_classes]


def restore(out: np.ndarray, x: np.ndarray, k: np.ndarray, *, reduce: bool, pad: Pad | None = None,
            pad_zeros: bool = True, absent_k: np.ndarray | None = None) -> None:
    """Write NaN, +Inf and -Inf into ``out`` where the direct sum has them.

    Parameters
    ----------
    out : ndarray, shape (npairs or 1, Ho, Wo)
        The valid correlation of ``x`` (padded by ``pad``) with ``k``.
        Every output with a non-finite term is written; the others must
        already hold the sum of their (finite) terms, as a correlation of
        the operands' finite parts gives.  Changed in place.
    x, k : ndarray
        The operands as given, (Nx, H, W) and (Nk, HK, WK), with leading
        sizes that broadcast.
    reduce : bool
        ``out`` sums over the pairs.
    pad : (top, bottom, left, right), optional
        Cells around ``x``: zeros multiplied by ``k`` (``pad_zeros``), or
        no terms at all.
    absent_k : bool ndarray, optional
        Taps of ``k`` that are no terms at all (SciPy's ndimage skips
        weights of magnitude up to DBL_EPSILON); ``k`` holds 0 there.
    """
    pad = pad or (0, 0, 0, 0)
    k_classes = classes(k)
    if absent_k is not None:
        k_classes[np.broadcast_to(absent_k, k.shape)] = NONE
    bad_x = np.argwhere(~np.isfinite(x))
    bad_k = np.argwhere(~np.isfinite(k))
    npairs = max(x.shape[0], k.shape[0])
    (hk, wk), (ho, wo) = k.shape[1:], out.shape[1:]
    # Cells, each taken with every pair it is part of, and the outputs they reach.
    cells = len(bad_x) * (npairs // x.shape[0]) + len(bad_k) * (npairs // k.shape[0])
    reach = (len(bad_x) * (npairs // x.shape[0]) * min(hk, ho) * min(wk, wo)
             + len(bad_k) * (npairs // k.shape[0]) * ho * wo)
    if cells <= _SCATTER_CELLS and reach <= _SCATTER_PER_OUTPUT * out.size:
        flags = _flags_by_scatter(out.shape, x, k, k_classes, bad_x, bad_k, reduce, pad, pad_zeros)
    else:
        check_memory(_fft_bytes(x.shape, k.shape, out.shape, pad),
                     lambda: f"restoring NaN and Inf of a correlation of x{x.shape} with k{k.shape}")
        flags = _flags_by_fft(out.shape, x, k_classes, reduce, pad, pad_zeros)
    write_flags(out, flags)


def write_flags(out: np.ndarray, flags: np.ndarray) -> None:
    """NaN, +Inf or -Inf into ``out`` where ``flags`` (of :func:`term_flags`) has such terms.

    An output with a NaN term, or with both +Inf and -Inf terms, is NaN;
    else one with an infinite term is that infinity.
    """
    pos, neg = (flags & POS_BIT) != 0, (flags & NEG_BIT) != 0
    nan = ((flags & NAN_BIT) != 0) | (pos & neg)
    out[pos] = np.inf
    out[neg] = -np.inf
    out[nan] = np.nan


# Below these, marking outputs cell by cell beats transforming masks.
_SCATTER_CELLS = 256
_SCATTER_PER_OUTPUT = 4


def _pairs_of(index: int, n: int, npairs: int) -> range:
    """The pairs an operand with leading size ``n`` takes its ``index`` into."""
    return range(npairs) if n == 1 else range(index, index + 1)


def _flags_by_scatter(shape: tuple[int, ...], x: np.ndarray, k: np.ndarray, k_classes: np.ndarray,
                      bad_x: np.ndarray, bad_k: np.ndarray, reduce: bool, pad: Pad, pad_zeros: bool) -> np.ndarray:
    """Bits of the non-finite terms of each output, marked cell by cell."""
    flags = np.zeros(shape, dtype=np.uint8)
    npairs = max(x.shape[0], k.shape[0])
    (hk, wk), (ho, wo) = k.shape[1:], shape[1:]
    top, _, left, _ = pad
    if len(bad_x):
        x_values = x[tuple(bad_x.T)]
        for (n, r, c), value in zip(bad_x, x_values):
            code = classes(np.array([value]))[0]
            r, c = r + top, c + left  # in the padded image
            i0, i1 = max(r - hk + 1, 0), min(r, ho - 1)
            j0, j1 = max(c - wk + 1, 0), min(c, wo - 1)
            if i0 > i1 or j0 > j1:
                continue
            for p in _pairs_of(n, x.shape[0], npairs):
                kn = p if k.shape[0] != 1 else 0
                # Output (i, j) meets this cell at tap (r - i, c - j).
                taps = k_classes[kn, r - i1 : r - i0 + 1, c - j1 : c - j0 + 1][::-1, ::-1]
                flags[0 if reduce else p, i0 : i1 + 1, j0 : j1 + 1] |= _PRODUCT[code, taps]
    if len(bad_k):
        x_classes = classes(x, pad, ZERO if pad_zeros else NONE)
        k_values = k[tuple(bad_k.T)]
        for (n, a, b), value in zip(bad_k, k_values):
            code = classes(np.array([value]))[0]
            for p in _pairs_of(n, k.shape[0], npairs):
                xn = p if x.shape[0] != 1 else 0
                # Output (i, j) meets this tap at image cell (i + a, j + b).
                flags[0 if reduce else p] |= _PRODUCT[x_classes[xn, a : a + ho, b : b + wo], code]
    return flags


# Each kind of non-finite term, as (class of the image value, class of the
# filter value) pairs of masks.  "any" is every value, padding included.
_NAN_TERMS = (("nan", "any"), ("any", "nan"), ("inf", "zero"), ("zero", "inf"))
_POS_TERMS = (("pinf", "pos+"), ("minf", "neg-"), ("pos", "pinf"), ("neg", "minf"))
_NEG_TERMS = (("pinf", "neg-"), ("minf", "pos+"), ("pos", "minf"), ("neg", "pinf"))
_DENSE = frozenset(("any", "zero", "pos", "neg", "pos+", "neg-"))
_MASKS = {
    "any": (NAN, PINF, MINF, ZERO, POS, NEG),
    "nan": (NAN,),
    "inf": (PINF, MINF),
    "pinf": (PINF,),
    "minf": (MINF,),
    "zero": (ZERO,),
    "pos": (POS,),
    "neg": (NEG,),
    "pos+": (POS, PINF),
    "neg-": (NEG, MINF),
}


def _fft_bytes(x_shape: tuple[int, ...], k_shape: tuple[int, ...], out_shape: tuple[int, ...], pad: Pad) -> int:
    """Upper bound of the bytes :func:`_flags_by_fft` allocates: the class arrays and masks,
    a float64 spectrum of every mask of either operand, the products and the counts."""
    (nx, h, w), nk = x_shape, k_shape[0]
    top, bottom, left, right = pad
    h, w = h + top + bottom, w + left + right
    p, q = (scipy.fft.next_fast_len(n, real=True) for n in (h, w))
    spectrum = p * (q // 2 + 1) * 16
    masks = len(_MASKS)
    npairs = max(nx, nk)
    return (masks + 1) * (nx * h * w + math.prod(k_shape)) + masks * (nx + nk) * spectrum \
        + npairs * (2 * spectrum + p * q * 8) + math.prod(out_shape)


def _flags_by_fft(shape: tuple[int, ...], x: np.ndarray, k_classes: np.ndarray, reduce: bool, pad: Pad,
                  pad_zeros: bool) -> np.ndarray:
    """Bits of the non-finite terms of each output, from FFT-counted masks."""
    x_classes = classes(x, pad, ZERO if pad_zeros else NONE)
    size = x_classes.shape[1:]
    fft_shape = tuple(scipy.fft.next_fast_len(n, real=True) for n in size)
    spectra: dict[int, dict[str, np.ndarray]] = {id(x_classes): {}, id(k_classes): {}}

    def spectrum(mask: np.ndarray, side: np.ndarray, name: str) -> np.ndarray:
        if name not in spectra[id(side)]:
            spectra[id(side)][name] = scipy.fft.rfft2(mask.astype(np.float64), s=fft_shape)
        return spectra[id(side)][name]

    def count(terms: list[tuple[np.ndarray, np.ndarray, str, str]]) -> np.ndarray:
        total = sum(spectrum(mx, x_classes, nx) * np.conj(spectrum(mk, k_classes, nk)) for mx, mk, nx, nk in terms)
        if reduce and total.shape[0] != 1:
            total = total.sum(axis=0, keepdims=True)
        return scipy.fft.irfft2(total, s=fft_shape)[:, : shape[1], : shape[2]]

    return term_flags(x_classes, k_classes, count, shape)


def term_flags(a_classes: np.ndarray, b_classes: np.ndarray,
               count: Callable[[list[tuple[np.ndarray, np.ndarray, str, str]]], np.ndarray],
               shape: tuple[int, ...]) -> np.ndarray:
    """Bits of the non-finite terms of each output of a correlation of ``a`` with ``b``, from counts.

    Parameters
    ----------
    a_classes, b_classes : ndarray
        The classes (:func:`classes`) of the two operands' values.
    count : callable
        Given the pairs ``(mask of a, mask of b, name, name)`` of one kind
        of term (0/1 masks, bool), the sum over those pairs of the number of
        such terms of each output (the correlation of the masks, by
        whatever route the caller correlates: FFTs, the 4-D layer's
        kernels), of ``shape``.
    shape : tuple of int
        The outputs' shape.

    Returns
    -------
    ndarray of uint8, shape ``shape``
        NAN_BIT, POS_BIT and NEG_BIT of the kinds of term each output has,
        for :func:`write_flags`.
    """
    masks: dict[tuple[int, str], np.ndarray | None] = {}

    def mask(side: np.ndarray, name: str) -> np.ndarray | None:
        key = (id(side), name)
        if key not in masks:
            m = np.isin(side, _MASKS[name])
            masks[key] = m if m.any() else None
        return masks[key]

    flags = np.zeros(shape, dtype=np.uint8)
    for bit, kinds in ((NAN_BIT, _NAN_TERMS), (POS_BIT, _POS_TERMS), (NEG_BIT, _NEG_TERMS)):
        terms = []
        for a_class, b_class in kinds:
            # The non-finite class of the pair first: it is usually empty,
            # and then the dense one's mask is never made.
            first, second = ((b_classes, b_class), (a_classes, a_class)) if a_class in _DENSE else \
                ((a_classes, a_class), (b_classes, b_class))
            m1 = mask(*first)
            m2 = None if m1 is None else mask(*second)
            if m1 is None or m2 is None:
                continue
            ma, mb = (m1, m2) if first[0] is a_classes else (m2, m1)
            terms.append((ma, mb, a_class, b_class))
        if terms:
            flags[count(terms) > 0.5] |= bit
    return flags
