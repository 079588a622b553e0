"""``scipy.ndimage.correlate1d`` and ``convolve1d`` on cconv's engine, behind :mod:`cconv.ndimage`.

SciPy's argument rules in SciPy's order (the Python layer's, then its C
layer's argument parsing, then the array types), then the lines along
``axis`` filtered by ``cconv._ndfilter.correlate_lines`` and stored with
C's casts.
"""

from __future__ import annotations

import math
import operator
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from . import _ndfilter
from ._engine import METHODS
from ._ndimage import _RULES, _TYPES, _as_double, _get_output, _store, complex_parts
from ._validation import check_choice

__all__ = ["correlate1d", "convolve1d"]


def correlate1d(input: npt.ArrayLike, weights: npt.ArrayLike, axis: int = -1,
                output: npt.ArrayLike | npt.DTypeLike | None = None, mode: str = "reflect", cval: float = 0.0,
                origin: int = 0, *, method: Literal["auto", "direct", "fft"] = "auto") -> np.ndarray:
    """1-D correlation along an axis, as ``scipy.ndimage.correlate1d``.

    Parameters
    ----------
    input : array_like
        Any number of dimensions: each line along ``axis`` is filtered.
    weights : array_like
        1-D, at least one weight (complex weights are conjugated, as SciPy does).
    axis : int, optional
        The axis to filter along (default: the last).
    output : ndarray or dtype, optional
        Where to put the result, or its dtype (default: ``input``'s); cast
        into it with C's rules (truncation toward zero for integers).  An
        array may be ``input`` itself; it is returned.
    mode : {'reflect', 'constant', 'nearest', 'mirror', 'wrap', 'grid-constant', 'grid-mirror', 'grid-wrap'}, optional
        How ``input`` extends past its edges, as for
        :func:`cconv.ndimage.correlate`.
    cval : scalar, optional
        The value past the edges for 'constant', used as a double.
    origin : int, optional
        Shifts the weights: ``-(len(weights) // 2) <= origin <= (len(weights) - 1) // 2``.
    method : {'auto', 'direct', 'fft'}, optional
        Keyword only, cconv's own: the compiled direct loops, FFTs of the
        extended lines, or 'auto' (cconv's cost model).  An integer or bool
        ``output`` is always summed by the direct loops.

    Returns
    -------
    output : ndarray
        The lines along ``axis`` filtered, in ``input``'s shape (``output``
        itself when it was given as an array).

    Raises
    ------
    RuntimeError, ValueError, TypeError
        Where SciPy raises them (no weights, an unknown mode, a bad axis or
        origin, a read-only output, an unsupported dtype, ...).

    Notes
    -----
    As in SciPy, the sums are doubles with the weights as float64, and
    every weight is a term (unlike ``correlate``, none is skipped).  Into an
    integer or bool output, cconv computes SciPy's very doubles (for odd
    symmetric or antisymmetric weights SciPy adds, or subtracts, the two
    samples of a weight before multiplying; cconv does too), so the
    truncated integers are SciPy's.  A float output is summed in another
    order, within the documented tolerance; float32 input into float32
    output in float32.  NaN and Inf propagate as in SciPy on every method.

    Examples
    --------
    >>> import numpy as np
    >>> from cconv.ndimage import correlate1d
    >>> correlate1d(np.array([2, 8, 0, 4, 1, 9, 9, 0]), [1, 3])
    array([ 8, 26,  8, 12,  7, 28, 36,  9])
    """
    return _correlate1d(input, weights, axis, output, mode, cval, origin, method)


def convolve1d(input: npt.ArrayLike, weights: npt.ArrayLike, axis: int = -1,
               output: npt.ArrayLike | npt.DTypeLike | None = None, mode: str = "reflect", cval: float = 0.0,
               origin: int = 0, *, method: Literal["auto", "direct", "fft"] = "auto") -> np.ndarray:
    """1-D convolution along an axis, as ``scipy.ndimage.convolve1d``.

    The weights are reversed (and not conjugated) and ``origin`` becomes
    ``-origin``, one less for an even length, as SciPy does; otherwise as
    :func:`correlate1d`.

    Examples
    --------
    The same line and weights as :func:`correlate1d`'s example, convolved:

    >>> import numpy as np
    >>> from cconv.ndimage import convolve1d
    >>> convolve1d(np.array([2, 8, 0, 4, 1, 9, 9, 0]), [1, 3])
    array([14, 24,  4, 13, 12, 36, 27,  0])
    """
    weights = np.asarray(weights)
    weights = weights[::-1]
    origin = -origin
    if not weights.shape[0] & 1:
        origin -= 1
    if weights.dtype.kind == "c":  # conjugated here, so that correlate1d's conjugation undoes it
        weights = weights.conj()
    return _correlate1d(input, weights, axis, output, mode, cval, origin, method)


def _correlate1d(input: Any, weights: Any, axis: Any, output: Any, mode: Any, cval: Any, origin: Any,
                 method: Any) -> np.ndarray:
    check_choice(method, "method", METHODS)
    input = np.asarray(input)
    weights = np.asarray(weights)
    if input.dtype.kind == "c" or weights.dtype.kind == "c":
        if weights.dtype.kind == "c":
            weights = weights.conj().astype(np.complex128, copy=False)
        output = _get_output(output, input, complex_output=True)

        def real_filter(x: np.ndarray, w: np.ndarray, out: np.ndarray | None, c: Any) -> np.ndarray:
            return _correlate1d(x, w, axis, out, mode, c, origin, method)

        return complex_parts(real_filter, input, weights, output, cval)
    fresh = not isinstance(output, np.ndarray)  # cconv makes the output array
    output = _get_output(output, input)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or weights.shape[0] < 1:
        raise RuntimeError("no filter weights given")
    axis = _axis_index(axis, input.ndim)
    size = len(weights)
    if origin < -(size // 2) or origin > (size - 1) // 2:
        raise ValueError("Invalid origin; origin must satisfy -(len(weights) // 2) <= origin <= "
                         "(len(weights)-1) // 2")
    if not isinstance(mode, str) or mode not in _RULES:
        raise RuntimeError("boundary mode not supported")
    # SciPy's C layer parses its arguments in order: the output array (which
    # must be writeable), cval as a C double, the origin as an index; only
    # then, filling its line buffers, does it meet the array types.
    axis = operator.index(axis)
    if not output.flags.writeable:
        raise ValueError("output array is read-only.")
    cval = _as_double(cval)
    origin = operator.index(origin)
    for a in (input, output):
        if a.dtype.char not in _TYPES:
            raise RuntimeError(f"array type {a.dtype!r} not supported")
    # (axes before, the axis, axes after): the lines along ``axis`` in place
    shape = input.shape
    x = input.reshape(math.prod(shape[:axis]), shape[axis] if input.ndim else 1, math.prod(shape[axis + 1 :]))
    float32 = input.dtype == np.float32 and output.dtype == np.float32
    result = _ndfilter.correlate_lines(x, weights, origin, _RULES[mode], cval, method,
                                       np.float32 if float32 else np.float64, ordered=output.dtype.kind in "biu")
    if fresh and result.dtype == output.dtype:  # the result itself, not a copy of it
        return np.ascontiguousarray(result).reshape(shape)
    _store(output, result.reshape(shape))
    return output


# numpy.exceptions (NumPy >= 1.25) holds AxisError (a ValueError and
# IndexError); NumPy 1.24 has it at the top.
_AxisError = getattr(np, "exceptions", np).AxisError


def _axis_index(axis: Any, ndim: int) -> Any:
    """``axis`` checked and made non-negative as SciPy's Python layer does it:
    an AxisError out of range (a float axis passes here, as in SciPy, and
    fails as an integer argument of the C layer later)."""
    if axis < -ndim or axis >= ndim:
        raise _AxisError(f"axis {axis} is out of bounds for array of dimension {ndim}")
    return axis + ndim if axis < 0 else axis
