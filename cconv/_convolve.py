"""``scipy.signal``'s N-D convolutions on cconv's engine, behind :mod:`cconv.signal`.

``convolve``, ``correlate``, ``fftconvolve``, ``oaconvolve`` and
``choose_conv_method``, with SciPy's arguments, checks (in SciPy's order,
so that the first failing one raises SciPy's error), output dtypes and
shapes.  Every one of them is a region of a full convolution of ``in1``
with ``in2`` (with ``in2`` reversed and conjugated for a correlation):

- direct sums: the region as a valid correlation of the zero-extended
  larger operand with the other, flipped, on the engine's 2-D planes
  (``cconv._planes``), summed as ``scipy.signal`` sums: integers exactly
  (modulo 2**bits), floats in their precision, long double, complex;
- FFTs (``cconv._fftconv``): whole transforms, or overlapping tiles of the
  larger operand, on cconv's threads.

Data of rank 1 to 3 (axes where both inputs have size 1 do not count) is
computed here; higher ranks go to SciPy's function (``cconv._fallback``),
as do empty inputs and dtypes cconv's loops do not take (bool with bool,
float16, object).  NaN and Inf stay where a direct sum puts them on every
route: ``fftconvolve`` and ``oaconvolve`` (and ``method='fft'``) do not
spread them over the output as SciPy's FFTs do.
"""

from __future__ import annotations

import functools
import math
import numbers
import operator
import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _fftconv, _planes
from ._fallback import scipy_function, warn_once
from ._nonfinite import all_finite, finite_part, restore
from ._signal import _swap_needed

__all__ = ["convolve", "correlate", "fftconvolve", "oaconvolve", "choose_conv_method"]

Mode = Literal["full", "valid", "same"]
_MODES = ("valid", "same", "full")
_METHODS = ("auto", "direct", "fft")
# The most axes (of size above 1 in either input) computed by cconv.
MAX_RANK = 3
_MODE_ERROR = "Acceptable mode flags are 'valid', 'same', or 'full'."
_METHOD_ERROR = "Acceptable method flags are 'auto', 'direct', or 'fft'."


def convolve(in1: npt.ArrayLike, in2: npt.ArrayLike, mode: str = "full", method: str = "auto") -> Any:
    """Convolve two N-dimensional arrays, as ``scipy.signal.convolve``.

    Parameters
    ----------
    in1, in2 : array_like
        The inputs, of the same number of dimensions.  'valid' swaps them
        if ``in2`` is the larger in every dimension (convolution commutes).
    mode : {'full', 'valid', 'same'}, optional
        The output's size: every overlap ('full', the default), only the
        placements of the smaller input inside the larger ('valid'; one
        must be at least as large as the other in every dimension), or
        ``in1``'s size, centred on the 'full' output ('same').
    method : {'auto', 'direct', 'fft'}, optional
        Direct sums on cconv's compiled loops, FFTs (``fftconvolve``'s
        route), or 'auto' (the default): :func:`choose_conv_method`, with
        cconv's cost model.

    Returns
    -------
    ndarray
        Of dtype ``np.result_type(in1, in2)``; ``in1 * in2`` for two 0-d inputs.

    Raises
    ------
    ValueError
        As SciPy raises it: inputs of different dimensions, an unknown
        ``mode`` or ``method``, 'valid' with neither input containing the other.

    Notes
    -----
    1-D, 2-D and 3-D data run on cconv's engine (axes where both inputs
    have size 1 do not count).  Higher ranks are computed by
    ``scipy.signal.convolve`` itself, with a ``SciPyFallbackWarning`` once
    per process; so are empty inputs, bool-with-bool, float16 and object
    data, exactly as SciPy computes them.

    Integer data is summed exactly, modulo 2**bits, on every method (as
    SciPy's direct method sums it; SciPy's 'fft' rounds a float result);
    float and complex results agree with SciPy's to the rounding of another
    summation order (direct) or of an FFT (relative to the largest output).
    NaN and Inf stay where SciPy's direct sums put them on every method,
    also 'fft', where SciPy spreads them over the whole output (and warns).

    Examples
    --------
    >>> import numpy as np
    >>> from cconv.signal import convolve
    >>> convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    """
    return _convolve_or_correlate(in1, in2, mode, method, correlate=False)


def correlate(in1: npt.ArrayLike, in2: npt.ArrayLike, mode: str = "full", method: str = "auto") -> Any:
    """Cross-correlate two N-dimensional arrays, as ``scipy.signal.correlate``.

    ``z[k] = sum_l in1[l] * conj(in2[l - k + N - 1])`` over the overlaps
    (N the length of ``in2``), per dimension.

    Parameters
    ----------
    in1, in2 : array_like
        The inputs, of the same number of dimensions; ``in2`` is conjugated.
    mode : {'full', 'valid', 'same'}, optional
        As for :func:`convolve`; 'same' is centred on the 'full' output as
        SciPy centres it (for an even ``in2`` one sample before
        ``correlate2d``'s 'same').  'valid' with ``in2`` the larger gives,
        as SciPy's, the reversed and conjugated correlation of ``in2`` with ``in1``.
    method : {'auto', 'direct', 'fft'}, optional
        As for :func:`convolve`.

    Returns
    -------
    ndarray
        Of dtype ``np.result_type(in1, in2)``; ``in1 * conj(in2)`` for two
        0-d inputs.

    Raises
    ------
    ValueError
        As for :func:`convolve`.

    Notes
    -----
    As for :func:`convolve`: rank 1 to 3 on cconv's engine, higher ranks by
    SciPy (warned once), integers exact on every method, NaN and Inf where
    a direct sum puts them.

    Examples
    --------
    >>> import numpy as np
    >>> from cconv.signal import correlate
    >>> correlate([1, 2, 3, 4], [1, 1], mode="valid")
    array([3, 5, 7])
    """
    return _convolve_or_correlate(in1, in2, mode, method, correlate=True)


def fftconvolve(in1: npt.ArrayLike, in2: npt.ArrayLike, mode: str = "full",
                axes: int | Iterable[int] | None = None) -> Any:
    """Convolve two N-dimensional arrays by FFTs, as ``scipy.signal.fftconvolve``.

    Parameters
    ----------
    in1, in2 : array_like
        The inputs, of the same number of dimensions.
    mode : {'full', 'valid', 'same'}, optional
        As for :func:`convolve`, along ``axes``.
    axes : int or sequence of int, optional
        The axes to convolve along (default: all).  Along the others the
        inputs must have the same size or size 1 (broadcast).

    Returns
    -------
    ndarray
        Float (integers and bool as float64, float16 as float32) or complex.

    Raises
    ------
    ValueError
        As SciPy raises it: different dimensions, an unknown ``mode``, bad
        ``axes``, sizes that do not broadcast, 'valid' without containment.

    Notes
    -----
    cconv transforms the whole arrays, or for a small ``in2`` and a large
    ``in1`` overlapping tiles of ``in1`` (overlap-save, as
    :func:`oaconvolve`), whichever its cost model finds less work; the
    transforms are shared out over cconv's threads.  Where its estimates
    find its direct loops faster (short kernels) and the data is finite, it
    sums directly: the same convolution, more exactly.  Results agree with
    SciPy's to the rounding of an FFT, relative to the largest output.

    **The one deliberate difference from SciPy:** NaN and Inf stay local.
    SciPy's FFT spreads a single NaN or Inf over the whole output (and
    ``scipy.signal.convolve`` only warns about it, scipy/scipy#15927);
    cconv transforms the finite parts and writes NaN, +Inf and -Inf where
    the direct sum of the overlapping products has them.

    Convolutions along more than 3 axes (of size above 1) are computed by
    ``scipy.signal.fftconvolve`` itself, with a ``SciPyFallbackWarning``
    once per process; so are empty inputs, float16 and object data.

    Examples
    --------
    >>> import numpy as np
    >>> from cconv.signal import fftconvolve
    >>> x = np.array([1.0, np.nan, 0, 0, 0, 1.0])
    >>> fftconvolve(x, [1.0, 1.0]).round(12) + 0.0  # SciPy's: all NaN
    array([ 1., nan, nan,  0.,  0.,  1.,  1.])
    """
    return _frequency_convolve(in1, in2, mode, axes, "fftconvolve")


def oaconvolve(in1: npt.ArrayLike, in2: npt.ArrayLike, mode: str = "full",
               axes: int | Iterable[int] | None = None) -> Any:
    """Convolve two N-dimensional arrays by overlap-add, as ``scipy.signal.oaconvolve``.

    Same arguments, results and errors as :func:`fftconvolve` (the
    overlap-add method is a way of computing the same convolution): cconv
    tiles the larger input whenever that is less work, so both functions
    run the same route.  NaN and Inf stay local, as in :func:`fftconvolve`.

    Examples
    --------
    >>> import numpy as np
    >>> from cconv.signal import oaconvolve
    >>> oaconvolve(np.arange(6.0), [1.0, -1.0], mode="valid").round(12)
    array([1., 1., 1., 1., 1.])
    """
    return _frequency_convolve(in1, in2, mode, axes, "oaconvolve")


def choose_conv_method(in1: npt.ArrayLike, in2: npt.ArrayLike, mode: str = "full",
                       measure: bool = False) -> Any:
    """The faster method of :func:`convolve` / :func:`correlate` for these
    inputs, as ``scipy.signal.choose_conv_method`` (cconv's cost model).

    Parameters
    ----------
    in1, in2 : array_like
        The inputs the convolution will be given.
    mode : {'full', 'valid', 'same'}, optional
        The convolution's mode.
    measure : bool, optional
        Time cconv's :func:`convolve` with both methods and return the
        faster, with the times.

    Returns
    -------
    method : {'direct', 'fft'}
        What ``method='auto'`` runs.
    times : dict
        Only with ``measure``: seconds per call for 'direct' and 'fft'.

    Notes
    -----
    Integer data is 'direct' (cconv sums it exactly by its direct loops on
    every method), as are bool inputs.  For the calls cconv hands to SciPy
    (rank above 3, bool-with-bool, float16 or object data) this is
    SciPy's own choice.

    Examples
    --------
    >>> import numpy as np
    >>> from cconv.signal import choose_conv_method
    >>> choose_conv_method(np.ones(1000), np.ones(3))
    'direct'
    >>> choose_conv_method(np.ones((1000, 1000)), np.ones((100, 100)))
    'fft'
    """
    volume = np.asarray(in1)
    kernel = np.asarray(in2)
    if measure:
        times = {m: _time_call(functools.partial(convolve, volume, kernel, mode=mode, method=m))
                 for m in ("fft", "direct")}
        return ("fft" if times["fft"] < times["direct"] else "direct"), times
    if _scipys(volume, kernel) is not None:
        return scipy_function("signal", "choose_conv_method")(volume, kernel, mode=mode)
    return _choose(volume, kernel, mode)


def _choose(volume: np.ndarray, kernel: np.ndarray, mode: str) -> str:
    """cconv's 'auto' for arrays cconv computes, with SciPy's checks."""
    if any(a.dtype.kind in "ui" for a in (volume, kernel)):
        # as SciPy does it (an empty integer input raises SciPy's error)
        int(np.max(np.abs(volume))) * int(np.max(np.abs(kernel)))
        return "direct"
    if volume.dtype.kind == "b" and kernel.dtype.kind == "b":
        return "direct"
    if mode not in _MODES:
        raise ValueError(f"Acceptable mode flags are 'valid', 'same', or 'full', not mode={mode}")
    return "fft" if _fft_faster(volume.shape, kernel.shape, mode, np.result_type(volume, kernel)) else "direct"


# --------------------------------------------------------------------------
# convolve and correlate


def _convolve_or_correlate(in1: npt.ArrayLike, in2: npt.ArrayLike, mode: Any, method: Any,
                           correlate: bool) -> Any:
    name = "correlate" if correlate else "convolve"
    a, b = np.asarray(in1), np.asarray(in2)
    if a.ndim == 0 or b.ndim == 0 or a.ndim != b.ndim:
        # a product (0-d), or SciPy's dimension error
        return scipy_function("signal", name)(in1, in2, mode, method)
    why = _scipys(a, b)
    if why is not None:
        if why.startswith("rank"):
            warn_once("signal", name, why, stacklevel=5)
        return scipy_function("signal", name)(in1, in2, mode, method)
    if correlate and mode not in _MODES:
        raise ValueError(_MODE_ERROR)
    if mode == "valid":
        _swap_needed(a.shape, b.shape)  # SciPy's containment check
    if method == "auto":
        method = _choose(a, b, mode)
    if method not in ("direct", "fft"):
        raise ValueError(_METHOD_ERROR)
    if mode not in _MODES:
        raise ValueError(_MODE_ERROR)
    common = np.result_type(a, b)
    kernel = _reversed(b) if correlate else b
    return _region(a, kernel, mode, method, common)


def _reversed(b: np.ndarray) -> np.ndarray:
    """``b`` reversed along every axis, conjugated if complex (SciPy's ``_reverse_and_conj``)."""
    r = b[(slice(None, None, -1),) * b.ndim]
    return r.conj() if r.dtype.kind == "c" else r


def _scipys(a: np.ndarray, b: np.ndarray) -> str | None:
    """Why SciPy computes this call (None: cconv does): the rank, or data cconv's loops do not take."""
    if a.size == 0 or b.size == 0:
        return "empty"
    rank = sum(1 for n1, n2 in zip(a.shape, b.shape) if n1 != 1 or n2 != 1)
    if rank > MAX_RANK:
        return f"rank {rank} (cconv computes rank 1 to {MAX_RANK})"
    try:
        common = np.result_type(a, b)
    except TypeError:
        return "dtype"
    if not (common.kind in "iu" or common.kind == "c" or (common.kind == "f" and common.itemsize >= 4)) or \
            np.float16 in (a.dtype.type, b.dtype.type):
        return "dtype"
    return None


def _full_region(mode: str, n1: int, n2: int) -> tuple[int, int]:
    """First index and size of ``mode``'s outputs in the full convolution's coordinates."""
    if mode == "full":
        return 0, n1 + n2 - 1
    if mode == "same":
        return (n2 - 1) // 2, n1
    return min(n1, n2) - 1, abs(n1 - n2) + 1  # valid


def _region(a: np.ndarray, b: np.ndarray, mode: str, method: str, common: np.dtype) -> np.ndarray:
    """The ``mode`` region of the full convolution of ``a`` with ``b``, in ``common``."""
    out_shape = tuple(_full_region(mode, n1, n2)[1] for n1, n2 in zip(a.shape, b.shape))
    # Axes where both inputs have size 1 are left out, and put back at the end.
    axes = [i for i, (n1, n2) in enumerate(zip(a.shape, b.shape)) if n1 != 1 or n2 != 1] or [a.ndim - 1]
    a_, b_ = (x.reshape([x.shape[i] for i in axes]) for x in (a, b))
    lo, shape = zip(*(_full_region(mode, n1, n2) for n1, n2 in zip(a_.shape, b_.shape)))
    # SciPy's direct sums zero-pad the larger input ('full'; in1 for 'same')
    # and slide the other over it: that one is the image here too, so that
    # an infinite tap over the padding gives SciPy's NaN.
    if mode != "same" and (mode == "valid" and not all(n1 >= n2 for n1, n2 in zip(a_.shape, b_.shape))
                           or mode == "full" and b_.size > a_.size):
        a_, b_ = b_, a_
    # SciPy's 1-D direct route is NumPy's convolve, which sums only the
    # overlapping products: no padding terms.
    padding_terms = not (a.ndim == 1 and (mode != "same" or a.size >= b.size))
    if method == "fft" and common.kind in "iu":
        method = "direct"  # integers: exact sums
    if method == "fft":
        out = _by_fft(a_, b_, lo, shape, padding_terms and not all_finite(b_)).astype(common, copy=False)
    else:
        out = _direct(a_.astype(common, copy=False), b_.astype(common, copy=False), lo, shape, padding_terms)
    return out.reshape(out_shape)


def _direct(a: np.ndarray, b: np.ndarray, lo: tuple[int, ...], shape: tuple[int, ...],
            padding_terms: bool, batched: bool = False) -> np.ndarray:
    """Direct sums: ``a`` zero-extended, correlated 'valid' with ``b`` flipped.

    With ``batched``, ``a`` is a batch (B, *S1) of items, each convolved
    with ``b``.  Complex data as the sums of the parts' products, as SciPy's
    N-D sums and NumPy's 1-D ones multiply (``(1+0j) * (inf+infj)`` is
    ``nan+nanj``, not C's ``inf+infj``).
    """
    if a.dtype.kind == "c":
        def part(x: np.ndarray, y: np.ndarray) -> np.ndarray:
            return _direct(x, y, lo, shape, padding_terms, batched)

        out = np.empty(a.shape[:1] + shape if batched else shape, a.dtype)
        with np.errstate(invalid="ignore", over="ignore"):
            out.real = part(a.real, b.real) - part(a.imag, b.imag)
            out.imag = part(a.real, b.imag) + part(a.imag, b.real)
        return out
    flipped = np.ascontiguousarray(b[(slice(None, None, -1),) * b.ndim])
    start = tuple(o - (n - 1) for o, n in zip(lo, b.shape))
    zero = np.zeros((), a.dtype)
    if batched:
        return _planes.correlate(a, flipped, start, shape, "fill", zero, a.dtype, "typed")
    if padding_terms or a.dtype.kind != "f" or all_finite(flipped):
        return _planes.correlate(a[None], flipped, start, shape, "fill", zero, a.dtype, "typed")[0]
    # NumPy's 1-D convolve: an infinite tap over the zero padding is no term.
    out = _planes.correlate(finite_part(a)[None], finite_part(flipped), start, shape, "fill", zero, a.dtype,
                            "typed")
    (n,), (s0,) = a.shape, start
    end = s0 + shape[0] + b.shape[0] - 1
    restore(out[:, None], a[None, None, max(s0, 0) : min(end, n)], flipped[None, None], reduce=False,
            pad=(0, 0, max(-s0, 0), max(end - n, 0)), pad_zeros=False)
    return out[0]


def _by_fft(a: np.ndarray, b: np.ndarray, lo: tuple[int, ...], shape: tuple[int, ...],
            pad_a: bool) -> np.ndarray:
    """The region by FFTs; with ``pad_a``, ``a``'s zero padding counts as terms
    (an infinite sample of ``b`` over it gives NaN, as SciPy's direct N-D sums)."""
    dtype = _fftconv.transform_dtype(a.dtype, b.dtype)
    if pad_a:
        widths = [(n - 1, n - 1) for n in b.shape]
        a = np.pad(a.astype(dtype, copy=False), widths)
        lo = tuple(o + n - 1 for o, n in zip(lo, b.shape))
    return _fftconv.convolve(a[None], b[None], lo, shape, dtype)[0]


# --------------------------------------------------------------------------
# fftconvolve and oaconvolve


def _frequency_convolve(in1: npt.ArrayLike, in2: npt.ArrayLike, mode: Any, axes: Any, name: str) -> Any:
    a, b = np.asarray(in1), np.asarray(in2)
    given_axes = axes
    if a.ndim == b.ndim == 0 or a.ndim != b.ndim or a.size == 0 or b.size == 0 or \
            a.dtype.kind not in "biufc" or b.dtype.kind not in "biufc" or np.float16 in (a.dtype.type, b.dtype.type):
        # SciPy's product, dimension error, empty result; data cconv does not transform (object, float16)
        return scipy_function("signal", name)(in1, in2, mode=mode, axes=given_axes)
    noaxes = axes is None
    axes = _fft_axes(axes, a.ndim)
    if not noaxes and not axes:
        raise ValueError("when provided, axes cannot be empty")
    s1, s2 = a.shape, b.shape
    axes = [ax for ax in axes if s1[ax] != 1 and s2[ax] != 1]
    if not all(s1[ax] == s2[ax] or s1[ax] == 1 or s2[ax] == 1 for ax in range(a.ndim) if ax not in axes):
        raise ValueError(f"incompatible shapes for in1 and in2: {s1} and {s2}")
    if mode == "valid" and _swap_needed(tuple(s1[ax] for ax in axes), tuple(s2[ax] for ax in axes)):
        a, b = b, a
        s1, s2 = s2, s1
    if len(axes) > MAX_RANK:
        warn_once("signal", name, f"rank {len(axes)} (cconv convolves along 1 to {MAX_RANK} axes)", stacklevel=5)
        return scipy_function("signal", name)(in1, in2, mode=mode, axes=given_axes)
    if mode not in _MODES:
        raise ValueError("acceptable mode flags are 'valid', 'same', or 'full'")
    if mode == "same":
        # SciPy centres every axis on in1's size: where in1 has size 1 and
        # in2 more, one (the middle) item of in2's
        middle = tuple(slice((n2 - 1) // 2, (n2 + 1) // 2) if ax not in axes and n1 == 1 else slice(None)
                       for ax, (n1, n2) in enumerate(zip(s1, s2)))
        b = b[middle]
        s2 = b.shape
    if not axes:  # no axis to convolve along: SciPy's broadcast product
        return np.array(a * b)
    dtype = _fftconv.transform_dtype(a.dtype, b.dtype)
    # The batch: every other axis, broadcast; the convolved axes last.
    rest = [ax for ax in range(a.ndim) if ax not in axes]
    batch_shape = tuple(max(s1[ax], s2[ax]) for ax in rest)
    a_ = _batched(a, rest, axes, batch_shape)
    b_ = _batched(b, rest, axes, batch_shape)
    lo, shape = zip(*(_full_region(mode, s1[ax], s2[ax]) for ax in axes))
    out = _fft_or_direct(a_, b_, lo, shape, dtype)
    # back to the input's axis order
    out = out.reshape(*batch_shape, *shape)
    order = rest + axes
    return np.ascontiguousarray(np.moveaxis(out, range(a.ndim), order))  # a copy only if axes moved


def _fft_or_direct(a: np.ndarray, b: np.ndarray, lo: tuple[int, ...], shape: tuple[int, ...],
                   dtype: np.dtype) -> np.ndarray:
    """The region of the batched convolution of ``a`` (Ba, *S1) with ``b``
    (Bb, *S2), in ``dtype``: by FFTs, or by cconv's direct sums where its
    estimates find them faster and the data is finite (the same convolution,
    summed more exactly; NaN and Inf always take the FFT route, whose
    locality is the overlapping products')."""
    batch = b.shape[0] if a.shape[0] == 1 else a.shape[0]
    s1, s2 = a.shape[1:], b.shape[1:]
    big, small = (s1, s2) if math.prod(s1) >= math.prod(s2) else (s2, s1)
    direct = _planes.seconds(batch * math.prod(shape) * math.prod(small), dtype)
    if direct < _fftconv.seconds(big, small, lo, shape, batch, dtype) and all_finite(a) and all_finite(b):
        a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
        if math.prod(s2) > math.prod(s1):  # the smaller operand is the kernel
            a, b = b, a
        if b.shape[0] == 1:
            return _direct(a, b[0], lo, shape, True, batched=True)
        return np.stack([_direct(a[i if a.shape[0] > 1 else 0][None], b[i], lo, shape, True, batched=True)[0]
                         for i in range(batch)])
    return _fftconv.convolve(a, b, lo, shape, dtype)


def _batched(x: np.ndarray, rest: list[int], axes: list[int], batch_shape: tuple[int, ...]) -> np.ndarray:
    """``x`` with ``rest`` first (broadcast to ``batch_shape``, flattened) and ``axes`` last."""
    moved = np.moveaxis(x, rest + axes, range(x.ndim))
    own = moved.shape[: len(rest)]
    if own == batch_shape or math.prod(own) == 1:
        return moved.reshape(math.prod(own), *moved.shape[len(rest):])
    moved = np.broadcast_to(moved, (*batch_shape, *moved.shape[len(rest):]))
    return moved.reshape(math.prod(batch_shape), *moved.shape[len(rest):])


def _fft_axes(axes: Any, ndim: int) -> list[int]:
    """``axes`` checked and made non-negative as ``scipy.fft``'s helper does it."""
    if axes is None:
        return list(range(ndim))
    if isinstance(axes, numbers.Number):
        axes = (axes,)
    try:
        out = [operator.index(ax) for ax in axes]
    except TypeError as e:
        raise ValueError("axes must be a scalar or iterable of integers") from e
    out = [ax + ndim if ax < 0 else ax for ax in out]
    if any(ax >= ndim or ax < 0 for ax in out):
        raise ValueError("axes exceeds dimensionality of input")
    if len(set(out)) != len(out):
        raise ValueError("all axes must be unique")
    return out


@functools.lru_cache(maxsize=256)
def _fft_faster(s1: tuple[int, ...], s2: tuple[int, ...], mode: str, dtype: np.dtype) -> bool:
    """Whether cconv's FFT route is expected to beat its direct sums for
    these shapes (the estimates of ``_planes`` and ``_fftconv``)."""
    kept = [i for i, (n1, n2) in enumerate(zip(s1, s2)) if n1 != 1 or n2 != 1] or [len(s1) - 1]
    s1, s2 = tuple(s1[i] for i in kept), tuple(s2[i] for i in kept)  # axes where both are 1 do not count
    region = [_full_region(mode, n1, n2) for n1, n2 in zip(s1, s2)]
    outputs = math.prod(n for _, n in region)
    taps = min(math.prod(s1), math.prod(s2)) if mode != "same" else math.prod(s2)
    direct = _planes.seconds(outputs * taps, dtype)
    big, small = (s1, s2) if math.prod(s1) >= math.prod(s2) else (s2, s1)
    fft = _fftconv.seconds(big, small, tuple(o for o, _ in region), tuple(n for _, n in region), 1, dtype)
    return fft < direct


def _time_call(fn: Callable[[], object]) -> float:
    """Seconds per call of ``fn``: enough calls for 5 ms, best of three."""
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        elapsed = time.perf_counter() - t0
        if elapsed >= 5e-4 or number >= 10**6:
            break
        number *= 10
    if elapsed > 1:
        return elapsed / number
    number *= 10
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best / number
