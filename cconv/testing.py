"""Helpers to check a convolution layer's values and gradients.

These are the checks the original notebook ran by hand, packaged so a student
can gradient-check a layer of their own against cconv, or cconv against
anything else.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from ._validation import as_real_array

__all__ = ["rel_error", "numerical_gradient"]


def _real_float64(value: object, name: str) -> npt.NDArray[np.float64]:
    """``value`` as a float64 array under cconv's dtype policy.

    bool, integers and floats of at most 64 bits are accepted; complex,
    object, string, datetime, structured and long-double arrays and masked
    arrays raise ``TypeError``, ragged lists ``ValueError``, each naming
    ``name`` (see :func:`cconv._validation.as_real_array`).
    """
    return np.asarray(as_real_array(value, name), dtype=np.float64)


def rel_error(a: npt.ArrayLike, b: npt.ArrayLike) -> float:
    """Largest elementwise relative error between two arrays.

    ``max(|a - b| / max(1e-8, |a| + |b|))``, the notebook's definition: 0 for
    equal arrays, at most 1, close to 1 for unrelated ones.  The ``1e-8``
    floor keeps entries where both arrays are (near) zero from dividing by
    zero.

    Special values: an infinity equal to the other array's entry (``inf``
    against ``inf``) counts as no error, against anything else as the
    largest error, 1.  A NaN in either array makes the result NaN.  Empty
    arrays (also arrays whose broadcast shape is empty) give 0.0.

    Parameters
    ----------
    a, b : array_like
        Real arrays (bool, integer or float) of the same shape, or of shapes
        that broadcast.  Compared in float64.

    Returns
    -------
    float

    Raises
    ------
    TypeError
        If ``a`` or ``b`` is complex (compare real and imaginary parts, or
        ``abs``, separately), or of another non-real dtype, or masked.
    ValueError
        If ``a`` or ``b`` is ragged, or their shapes do not broadcast.

    Examples
    --------
    >>> from cconv.testing import rel_error
    >>> rel_error([1.0, 2.0], [1.0, 2.0])
    0.0
    >>> round(rel_error([1.0], [3.0]), 6)
    0.5
    """
    a = _real_float64(a, "a")
    b = _real_float64(b, "b")
    if a.size == 0 and b.size == 0:
        return 0.0
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(
            f"a and b must have the same shape, or shapes that broadcast; "
            f"got a of shape {a.shape} and b of shape {b.shape}"
        ) from None
    if math.prod(shape) == 0:
        return 0.0
    with np.errstate(invalid="ignore"):  # inf - inf, inf / inf: handled below
        err = np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))
        err = np.where(a == b, 0.0, err)  # equal infinities: no error
        err = np.where(np.isinf(a) | np.isinf(b), np.where(a == b, 0.0, 1.0), err)
        err = np.where(np.isnan(a) | np.isnan(b), np.nan, err)
    return float(np.max(err))


def numerical_gradient(
    f: Callable[[npt.NDArray[np.float64]], npt.ArrayLike], x: npt.ArrayLike, dout: npt.ArrayLike, h: float = 1e-5
) -> npt.NDArray[np.float64]:
    """Central-difference gradient of ``sum(f(x) * dout)`` with respect to ``x``.

    Each entry of ``x`` in turn is moved by ``+h`` and ``-h``, and the slope
    ``sum((f(x + h) - f(x - h)) * dout) / (2h)`` is its gradient entry.  This
    is exact, up to rounding, for any ``f`` linear in ``x``, such as a
    convolution layer, and has O(h**2) error otherwise.  It costs two calls of
    ``f`` per entry of ``x``, and one more to check ``dout``'s shape: use
    small arrays.

    Parameters
    ----------
    f : callable
        Takes an array shaped like ``x`` and returns a real array shaped like
        ``dout``.
    x : array_like
        The point to differentiate at: a real array (bool, integer or float).
        It is not modified (``f`` sees a float64 copy).  If it is empty, ``f``
        is not called and an empty gradient is returned.
    dout : array_like
        Upstream derivative: a real array of exactly the shape of ``f(x)``.
    h : float, optional
        The step, a positive finite real number; ``1e-5`` by default.

    Returns
    -------
    ndarray of float64, shaped like ``x``

    Raises
    ------
    TypeError
        If ``h`` is not a real number (a bool, a string, an array, a complex
        number), or ``x``, ``dout`` or ``f(x)`` is complex, of another
        non-real dtype, or masked.
    ValueError
        If ``h`` is not positive and finite, ``x`` or ``dout`` is ragged, or
        ``dout``'s shape is not ``f(x)``'s.

    Examples
    --------
    >>> import numpy as np
    >>> from cconv.testing import numerical_gradient
    >>> x = np.array([1.0, 2.0, 3.0])
    >>> np.round(numerical_gradient(lambda v: v ** 2, x, np.ones(3)), 6)
    array([2., 4., 6.])
    """
    if isinstance(h, (bool, np.bool_)) or not isinstance(h, (int, float, np.integer, np.floating)):
        raise TypeError(
            f"h must be a real number, the finite-difference step; got {h!r} of type {type(h).__name__}"
        )
    try:
        step = float(h)
    except OverflowError:  # an int beyond float range
        step = math.inf
    if not (math.isfinite(step) and step > 0):
        raise ValueError(f"h must be a positive finite step; got {h!r}")
    h = step
    # A private, C-ordered copy we may perturb (reshape(-1) must be a view).
    point = np.array(_real_float64(x, "x"), dtype=np.float64, order="C", copy=True)
    dout = _real_float64(dout, "dout")
    grad = np.empty_like(point)
    if point.size == 0:
        return grad
    out = _real_float64(f(point), "the output of f")
    if out.shape != dout.shape:
        raise ValueError(
            f"dout must have the shape of the output of f, {out.shape}; "
            f"got dout of shape {dout.shape}"
        )
    flat, gflat = point.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        saved = flat[i]
        flat[i] = saved + h
        up = np.sum(np.asarray(f(point), dtype=np.float64) * dout)
        flat[i] = saved - h
        down = np.sum(np.asarray(f(point), dtype=np.float64) * dout)
        flat[i] = saved
        gflat[i] = (up - down) / (2.0 * h)
    return grad
