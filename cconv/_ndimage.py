"""``scipy.ndimage``'s filters on cconv's engine, behind :mod:`cconv.ndimage`.

SciPy's argument rules first, in SciPy's order (so that the first failing
check raises SciPy's error), then the filter: for a float output, the 2-D
filter of ``cconv._filter2d`` (the boundary rule applied inside the direct
loop, which reads the input in place and writes an output of the sums'
dtype in place; or FFTs of an extended copy); for an integer or bool
output, the double sums in SciPy's own order (``cconv._exact``) over the
input extended by the rule.
"""

from __future__ import annotations

import math
import operator
import warnings
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _engine, _filter2d, _ndfilter
from ._boundary import extend
from ._engine import METHODS, Method
from ._fallback import scipy_function, warn_once
from ._nonfinite import finite_part, restore
from ._validation import check_choice, check_memory

__all__ = ["correlate", "convolve"]

# The most axes (of weights of size above 1) cconv filters along; SciPy the rest.
MAX_AXES = 3


# SciPy's modes, and the extension rule each one is for a filter.
_RULES = {"reflect": "symmetric", "grid-mirror": "symmetric", "mirror": "mirror", "nearest": "nearest",
          "wrap": "wrap", "grid-wrap": "wrap", "constant": "fill", "grid-constant": "fill"}
# Input and output dtypes SciPy's filters take (complex through real parts).
_TYPES = frozenset("?bBhHiIlLqQfd")
_EPS = np.finfo(np.float64).eps


def correlate(input: npt.ArrayLike, weights: npt.ArrayLike, output: npt.ArrayLike | npt.DTypeLike | None = None,
              mode: str = "reflect", cval: float = 0.0, origin: int | tuple[int, int] = 0, *,
              axes: tuple[int, int] | None = None,
              method: Literal["auto", "direct", "fft"] = "auto") -> np.ndarray:
    """Multidimensional correlation in 2-D, as ``scipy.ndimage.correlate``.

    Parameters
    ----------
    input : array_like
        2-D, or N-D with ``axes`` naming the two axes to filter.
    weights : array_like
        2-D weights (complex weights are conjugated, as SciPy does).
    output : ndarray or dtype, optional
        Where to put the result, or its dtype (default: ``input``'s).  The
        result is cast into it with C's rules: truncation toward zero for
        integers.  An array may be ``input`` itself; it is returned.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'grid-constant', 'grid-mirror', 'grid-wrap'}, optional
        How ``input`` extends past its edges: half-sample symmetric
        ('reflect', 'grid-mirror'), ``cval`` ('constant', 'grid-constant'),
        the edge value ('nearest'), whole-sample symmetric ('mirror'), or
        periodic ('wrap', 'grid-wrap'), repeated as far as the weights reach.
    cval : scalar, optional
        The value past the edges for 'constant', used as a double.
    origin : int or (int, int), optional
        Shifts the weights: ``-(k // 2) <= origin <= (k - 1) // 2`` for
        weights of size ``k`` along that axis.
    axes : (int, int), optional
        The two axes of ``input`` to filter; the others are a batch.
    method : {'auto', 'direct', 'fft'}, optional
        Keyword only, cconv's own: 'direct' runs the compiled loops, 'fft'
        multiplies FFTs of the extended input, 'auto' (the default) asks
        cconv's cost model.  An integer or bool ``output`` is always summed
        by the direct loops: truncation would turn an FFT's rounding error
        into an off-by-one.

    Returns
    -------
    output : ndarray
        The result (``output`` itself when it was given as an array).

    Raises
    ------
    RuntimeError, ValueError, TypeError
        Where SciPy raises them, with SciPy's messages (an unknown mode, a
        bad origin or output shape, an unsupported dtype, ...).
    NotImplementedError
        For what cconv does not do in 2-D (a RuntimeError, as SciPy's
        refusals are): weights of another rank than 2, or other than two
        axes; the message names the SciPy function to use.

    Notes
    -----
    SciPy's 'reflect' and 'grid-mirror' give wrong results, different from
    run to run, when the weights reach 4n or more samples before the start
    of an axis of length n; cconv extends by the documented reflection
    there too.  NaN and Inf in ``input`` propagate as in SciPy on every
    method.  The inputs are never modified.

    Examples
    --------
    >>> import numpy as np
    >>> from cconv.ndimage import correlate
    >>> correlate(np.arange(9.0).reshape(3, 3), np.ones((3, 3)) / 9, mode="nearest")
    array([[1.33333333, 2.        , 2.66666667],
           [3.33333333, 4.        , 4.66666667],
           [5.33333333, 6.        , 6.66666667]])
    """
    return _correlate_or_convolve(input, weights, output, mode, cval, origin, axes, method, convolution=False)


def convolve(input: npt.ArrayLike, weights: npt.ArrayLike, output: npt.ArrayLike | npt.DTypeLike | None = None,
             mode: str = "reflect", cval: float = 0.0, origin: int | tuple[int, int] = 0, *,
             axes: tuple[int, int] | None = None,
             method: Literal["auto", "direct", "fft"] = "auto") -> np.ndarray:
    """Multidimensional convolution in 2-D, as ``scipy.ndimage.convolve``.

    The weights are flipped (and not conjugated) and ``origin`` becomes
    ``-origin``, one less for an even size, as SciPy does; otherwise as
    :func:`correlate`.

    Examples
    --------
    Sums of 2x2 windows, zeros past the edges (an even size: the window of
    an output reaches one sample on, not back):

    >>> import numpy as np
    >>> from cconv.ndimage import convolve
    >>> convolve(np.arange(12.0).reshape(3, 4), np.ones((2, 2)), mode="constant")
    array([[10., 14., 18., 10.],
           [26., 30., 34., 18.],
           [17., 19., 21., 11.]])
    """
    return _correlate_or_convolve(input, weights, output, mode, cval, origin, axes, method, convolution=True)


def _correlate_or_convolve(input: npt.ArrayLike, weights: npt.ArrayLike, output: Any, mode: Any, cval: Any,
                           origin: Any, axes: Any, method: Method, convolution: bool) -> np.ndarray:
    check_choice(method, "method", METHODS)
    input = np.asarray(input)
    weights = np.asarray(weights)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        return _complex(input, weights, output, mode, cval, origin, axes, method, convolution)
    axes = _check_axes(axes, input.ndim)
    weights = np.asarray(weights, dtype=np.float64)
    if len(axes) < input.ndim and weights.ndim != len(axes):
        raise RuntimeError(f"weights.ndim ({weights.ndim}) must match len(axes) ({len(axes)})")
    rank = sum(1 for n in weights.shape if n > 0) + input.ndim - len(axes)
    if rank != input.ndim:
        raise RuntimeError(f"weights.ndim ({rank}) must match len(axes) ({len(axes)})")
    origins = _normalize_sequence(origin, len(axes))
    # The weights' axes follow the filtered axes in increasing order; each
    # origin goes with the axis it was given for.
    axes, origins = (list(t) for t in zip(*sorted(zip(axes, origins)))) if axes else ([], [])
    axes = tuple(axes)
    if convolution:
        weights = weights[(slice(None, None, -1),) * weights.ndim]
        origins = [-o - (0 if n & 1 else 1) for o, n in zip(origins, weights.shape)]
    for o, n in zip(origins, weights.shape):
        if o < -(n // 2) or o > (n - 1) // 2:
            raise ValueError(
                "Invalid origin; origin must satisfy -(weights.shape[k] // 2) <= origin[k] <= "
                "(weights.shape[k]-1) // 2"
            )
    fresh = not isinstance(output, np.ndarray)  # cconv makes the output array
    output = _get_output(output, input)
    if not isinstance(mode, str) and isinstance(mode, Iterable):
        raise RuntimeError("A sequence of modes is not supported")
    if mode not in _RULES:
        raise RuntimeError("boundary mode not supported")
    # SciPy's C layer takes its arguments in order: the output array (which
    # must be writeable), then cval as a C double, then the origins as
    # integers; only then, filtering, does it meet the array types.
    if not output.flags.writeable and not np.may_share_memory(input, output):
        raise ValueError("output array is read-only.")
    cval = _as_double(cval)
    origins = [_as_index(o) for o in origins]
    # SciPy checks the types element by element: an empty input takes any.
    if input.size and (input.dtype.char not in _TYPES or output.dtype.char not in _TYPES):
        raise RuntimeError("array type not supported")
    if not output.flags.writeable:  # SciPy wrote to a temporary, then fails to copy it back
        raise ValueError("assignment destination is read-only")
    if len(axes) != 2:
        return _other_rank(input, weights, output, axes, mode, cval, origins, method,
                           "convolve" if convolution else "correlate", fresh)
    view = _axes_last(output, axes)
    if output.dtype.kind in "biu":
        # Truncation turns one ulp into an off-by-one: SciPy's doubles, summed its way.
        result = _filter_in_order(input, weights, axes, _RULES[mode], cval, origins)
    else:
        dtype = np.dtype(np.float32 if input.dtype == np.float32 and output.dtype == np.float32 else np.float64)
        # An output of the sums' own dtype is written in place (through a
        # fresh result where it overlaps the input).
        into = view if output.dtype == dtype and not np.may_share_memory(input, output) else None
        result = _filter(input, weights, axes, _RULES[mode], cval, origins, method, dtype, into)
        if result is into:
            return output
    _store(view, result)
    return output


def _other_rank(input: np.ndarray, weights: np.ndarray, output: np.ndarray, axes: tuple[int, ...], mode: str,
                cval: float, origins: list[int], method: Method, name: str, fresh: bool) -> np.ndarray:
    """Weights along other than two axes: ``cconv._ndfilter`` if at most three
    have a size above 1 (the others read no neighbour: a batch); else SciPy.
    ``fresh``: ``output`` was made here, so a result of its dtype and
    layout may take its place instead of being copied into it."""
    kept = [i for i, n in enumerate(weights.shape) if n != 1] or [len(axes) - 1]
    if not axes or len(kept) > MAX_AXES:
        if axes:
            warn_once("ndimage", name, f"weights along {len(kept)} axes (cconv filters along 1 to {MAX_AXES})",
                      stacklevel=6)
        return scipy_function("ndimage", "correlate")(input, weights, output, mode, cval, origins, axes=axes)
    axes = tuple(axes[i] for i in kept)
    weights = np.ascontiguousarray(weights.reshape([weights.shape[i] for i in kept]))
    last = tuple(range(-len(axes), 0))
    in_place = axes == tuple(range(input.ndim - len(axes), input.ndim))  # already the last axes
    x = input if in_place else np.moveaxis(input, axes, last)
    float32 = input.dtype == np.float32 and output.dtype == np.float32
    batch = math.prod(x.shape[: -len(axes)])
    result = _ndfilter.correlate(x.reshape(batch, *x.shape[-len(axes):]), weights, [origins[i] for i in kept],
                                 _RULES[mode], cval, method, np.float32 if float32 else np.float64,
                                 ordered=output.dtype.kind in "biu")
    if fresh and in_place and result.dtype == output.dtype:
        return np.ascontiguousarray(result).reshape(output.shape)
    _store(output if in_place else np.moveaxis(output, axes, last), result.reshape(x.shape))
    return output


def _extended(x: np.ndarray, weights: np.ndarray, rule: str, cval: float, origins: list[int],
              dtype: npt.DTypeLike) -> np.ndarray:
    """``x`` (..., H, W) as a batch (B, H + KH - 1, W + KW - 1) extended by ``rule``.

    Output ``[i, j]`` reads the window at ``[i, j]`` of the result: an
    array to read, in the calling thread's scratch space, valid until its
    next extension (see ``cconv._boundary.extend``).
    """
    h, w = x.shape[-2:]
    (kh, kw), (oh, ow) = weights.shape, origins
    # out[i] reads input[i - kh // 2 - origin + a] for taps a = 0 .. kh - 1.
    r0, c0 = -(kh // 2) - oh, -(kw // 2) - ow
    return extend(x.reshape(-1, h, w), (r0, r0 + h + kh - 1), (c0, c0 + w + kw - 1), rule, cval, dtype,
                  scratch=True)


def _check_memory(input: np.ndarray, x: np.ndarray, weights: np.ndarray, itemsize: int, workspace: int,
                  extended: bool = True, result: bool = True) -> None:
    """The memory check of a filter of ``x`` (..., H, W): ``workspace``, its extended copy, and the result
    and its conversion to the output's type (at most 8 bytes a value), unless they are not made (a direct
    filter reads ``x`` in place; an output of the sums' dtype is written in place)."""
    (h, w), (kh, kw) = x.shape[-2:], weights.shape
    batch = x.size // (h * w)
    check_memory(batch * ((h + kh - 1) * (w + kw - 1) * itemsize * extended + h * w * (itemsize + 8) * result)
                 + workspace, lambda: f"correlate(input{input.shape}, weights{weights.shape})")


def _filter(input: np.ndarray, weights: np.ndarray, axes: tuple[int, ...], rule: str, cval: float,
            origins: list[int], method: Method, dtype: np.dtype, into: np.ndarray | None = None) -> np.ndarray:
    """The filtered image in ``dtype``, with the filtered axes last: (..., H, W).

    Written into ``into`` (that shape and dtype) where given, and returned.
    """
    x = _axes_last(input, axes)
    present = _terms(weights)
    terms = np.count_nonzero(present)
    if input.size == 0 or not terms:  # no terms at all: zeros, even over NaN and Inf
        if into is None:
            return np.zeros(x.shape, dtype)
        into[...] = 0
        return into
    (h, w), (kh, kw) = x.shape[-2:], weights.shape
    batch = x.size // (h * w)
    skipped = ~present
    # (C order: np.where keeps a Fortran or transposed layout, the loops take C)
    k = np.ascontiguousarray(weights if terms == weights.size else np.where(skipped, 0.0, weights), dtype=dtype)
    if terms < weights.size:
        with np.errstate(invalid="ignore", over="ignore"):
            nonfinite = not (np.isfinite(np.sum(x)) and (rule != "fill" or np.isfinite(cval)))
        if nonfinite:  # NaN and Inf must not meet the skipped taps: restore them without those
            plan = _engine.plan(method, batch, 1, (h + kh - 1, w + kw - 1), (kh, kw), dtype.itemsize)
            _check_memory(input, x, weights, dtype.itemsize, plan.workspace)
            xe = _extended(x, weights, rule, cval, origins, dtype)
            out = _engine.correlate(finite_part(xe), k[None], plan)
            restore(out, xe, k[None], reduce=False, absent_k=skipped[None])
            return out.reshape(x.shape)
    plan = _filter2d.plan(method, batch, (h, w), (kh, kw), dtype.itemsize)
    images = x.reshape(batch, h, w)
    converted = images.dtype != dtype or not np.may_share_memory(images, x)
    # The output as a batch, if that is a view of it (else through a fresh result).
    target = None if into is None else into.reshape(batch, h, w)
    in_place = target is not None and np.may_share_memory(target, into)
    _check_memory(input, x, weights, dtype.itemsize, plan.workspace, extended=converted, result=not in_place)
    r0, c0 = -(kh // 2) - origins[0], -(kw // 2) - origins[1]
    result = _filter2d.filter2d(images.astype(dtype, copy=False), k, rule, cval, (r0, c0), (h, w), plan,
                                target if in_place else None)
    if into is None:
        return result.reshape(x.shape)
    if not in_place:
        into[...] = result.reshape(into.shape)
    return into


def _filter_in_order(input: np.ndarray, weights: np.ndarray, axes: tuple[int, ...], rule: str, cval: float,
                     origins: list[int]) -> np.ndarray:
    """The filtered image as SciPy's doubles (float64), with the filtered axes last: (..., H, W).

    Each output is SciPy's sum: from 0.0, the terms of the weights of
    magnitude above DBL_EPSILON one after the other in C order, each
    product and addition rounded, no fused multiply-add.
    """
    x = _axes_last(input, axes)
    present = _terms(weights)
    if input.size == 0 or not present.any():  # no terms at all: zeros, even over NaN and Inf
        return np.zeros(x.shape)
    _check_memory(input, x, weights, 8, 0)
    xe = _extended(x, weights, rule, cval, origins, np.float64)
    return _engine.correlate_in_order(xe, np.ascontiguousarray(weights), present).reshape(x.shape)


def _axes_last(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``a`` with the two filtered ``axes`` (sorted) last: ``a`` itself where they are already."""
    return a if axes[0] == a.ndim - 2 and axes[1] == a.ndim - 1 else np.moveaxis(a, axes, (-2, -1))


def _terms(weights: np.ndarray) -> np.ndarray:
    """The taps that are terms of SciPy's sums: weights of magnitude above DBL_EPSILON (not NaN)."""
    return np.abs(weights) > _EPS


def _store(output: np.ndarray, result: np.ndarray) -> None:
    """``output[...] = result`` with C's casts, as SciPy's filters store doubles."""
    dt = output.dtype
    with np.errstate(invalid="ignore", over="ignore"):
        if dt.kind == "b":  # npy_bool is an unsigned char, and gets the byte C's cast makes (2 stays 2)
            output, result = output.view(np.uint8), result.astype(np.uint8)
        elif dt == np.uint32:  # C converts through a 64-bit integer
            result = result.astype(np.int64)
        np.copyto(output, result, casting="unsafe")


def _complex(input: np.ndarray, weights: np.ndarray, output: Any, mode: Any, cval: Any, origin: Any,
             axes: Any, method: Method, convolution: bool) -> np.ndarray:
    """SciPy's complex filtering: real filters of the real and imaginary parts."""
    if weights.dtype.kind == "c" and not convolution:
        weights = weights.conj()
    output = _get_output(output, input, complex_output=True)

    def real_filter(x: np.ndarray, w: np.ndarray, out: np.ndarray | None, c: Any) -> np.ndarray:
        return _correlate_or_convolve(x, w, out, mode, c, origin, axes, method, convolution)

    return complex_parts(real_filter, input, weights, output, cval)


def complex_parts(real_filter: Callable[[np.ndarray, np.ndarray, np.ndarray | None, Any], np.ndarray],
                  input: np.ndarray, weights: np.ndarray, output: np.ndarray, cval: Any) -> np.ndarray:
    """SciPy's complex filtering into the complex ``output``: ``real_filter(x, w, out, cval)``
    of the real and imaginary parts of ``input`` and ``weights`` (one of them complex)."""
    complex_input, complex_weights = input.dtype.kind == "c", weights.dtype.kind == "c"
    if not complex_input and np.iscomplexobj(cval):
        raise ValueError("Cannot provide a complex-valued cval when the input is real.")
    if np.may_share_memory(input, output):
        # The parts below are written one after the other into ``output``;
        # read from a copy, so that no part sees another's result (SciPy
        # 1.17.1 does: with output=input its imaginary part is filtered from
        # the real part's result).
        input = input.copy()
    # The same real filters as SciPy's, into the same arrays, so that each
    # part is stored (and rounded) in the same dtype as SciPy's.
    with np.errstate(invalid="ignore", over="ignore"):
        if complex_input and complex_weights:
            real_filter(input.real, weights.real, output.real, np.real(cval))
            output.real -= real_filter(input.imag, weights.imag, None, np.imag(cval))
            real_filter(input.real, weights.imag, output.imag, np.real(cval))
            output.imag += real_filter(input.imag, weights.real, None, np.imag(cval))
        elif complex_input:
            real_filter(input.real, weights, output.real, np.real(cval))
            real_filter(input.imag, weights, output.imag, np.imag(cval))
        else:
            real_filter(input, weights.real, output.real, cval)
            real_filter(input, weights.imag, output.imag, cval)
    return output


def _get_output(output: object, input: np.ndarray, complex_output: bool = False) -> np.ndarray:
    """The output array, as SciPy's ``_get_output`` makes or checks it.

    A new one is made empty, not zeroed as SciPy's is: every element is
    written, and a zeroed array of many megabytes is mapped lazily, so the
    filter would pay its page faults.
    """
    if output is None:
        if complex_output:
            return np.empty(input.shape, dtype=np.promote_types(input.dtype, np.complex64))
        # by name, as SciPy: a byte-swapped input gives a native output
        native = input.dtype.isnative and input.dtype.kind in "biuf"  # its own name (and much faster)
        return np.empty(input.shape, dtype=input.dtype if native else input.dtype.name)
    if isinstance(output, (type, np.dtype)):
        if complex_output and np.dtype(output).kind != "c":
            warnings.warn("promoting specified output dtype to complex", stacklevel=4)
            output = np.promote_types(output, np.complex64)
        return np.empty(input.shape, dtype=output)
    if isinstance(output, str):
        dtype = np.dtype(output)
        if complex_output and dtype.kind != "c":
            raise RuntimeError("output must have complex dtype")
        if not issubclass(dtype.type, np.number):
            raise RuntimeError("output must have numeric dtype")
        return np.empty(input.shape, dtype=dtype)
    output = np.asarray(output)
    if output.shape != input.shape:
        raise RuntimeError("output shape not correct")
    if complex_output and output.dtype.kind != "c":
        raise RuntimeError("output must have complex dtype")
    return output


def _check_axes(axes: Any, ndim: int) -> tuple[int, ...]:
    """``axes`` checked and made non-negative, as SciPy's ``_check_axes``."""
    if axes is None:
        return tuple(range(ndim))
    if np.isscalar(axes):
        scalar: Any = axes
        axes = (operator.index(scalar),)
    elif isinstance(axes, Iterable):
        axes = tuple(operator.index(ax) for ax in axes)
        for ax in axes:
            if ax < -ndim or ax > ndim - 1:
                raise ValueError(f"specified axis: {ax} is out of range")
        axes = tuple(ax % ndim if ax < 0 else ax for ax in axes)
    else:
        raise ValueError("axes must be an integer, iterable of integers, or None")
    if len(set(axes)) != len(axes):
        raise ValueError("axes must be unique")
    return axes


def _normalize_sequence(value: Any, rank: int) -> list[Any]:
    """A scalar repeated ``rank`` times, or a sequence of length ``rank``."""
    if isinstance(value, str) or not np.iterable(value):  # a 0-d array is a scalar here, as in SciPy
        return [value] * rank
    values = list(value)
    if len(values) != rank:
        raise RuntimeError("sequence argument must have length equal to input rank")
    return values


def _as_double(cval: Any) -> float:
    """``cval`` as C's ``double`` argument takes it (``PyFloat_AsDouble``).

    A float, or any object with ``__float__`` (a NumPy scalar, a 0-d array)
    or ``__index__``, converted by it; anything else (a string, None,
    Python's complex) is a TypeError.
    """
    if type(cval) is float:
        return cval
    kind = type(cval)
    if not (hasattr(kind, "__float__") or hasattr(kind, "__index__")):
        raise TypeError(f"must be real number, not {kind.__name__}")
    return float(cval)


def _as_index(origin: Any) -> int:
    """An origin as SciPy's C layer takes it: an integer, not a bool."""
    if isinstance(origin, (bool, np.bool_)):
        raise TypeError("an integer is required")
    return operator.index(origin)
