"""Helpers to check a convolution layer's values and gradients.

These are the checks the original notebook ran by hand, packaged so a student
can gradient-check a layer of their own against cconv, or cconv against
anything else.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = ["rel_error", "numerical_gradient"]


def rel_error(a, b) -> float:
    """Largest elementwise relative error between two arrays.

    ``max(|a - b| / max(1e-8, |a| + |b|))``, the notebook's definition: 0 for
    equal arrays, close to 1 for unrelated ones.  The ``1e-8`` floor keeps
    entries where both arrays are (near) zero from dividing by zero.

    Parameters
    ----------
    a, b : array_like
        Arrays of the same shape (or shapes that broadcast).

    Returns
    -------
    float

    Examples
    --------
    >>> from cconv.testing import rel_error
    >>> rel_error([1.0, 2.0], [1.0, 2.0])
    0.0
    >>> round(rel_error([1.0], [3.0]), 6)
    0.5
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.size == 0 and b.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b))))


def numerical_gradient(
    f: Callable[[np.ndarray], np.ndarray], x, dout, h: float = 1e-5
) -> np.ndarray:
    """Central-difference gradient of ``sum(f(x) * dout)`` with respect to ``x``.

    Each entry of ``x`` in turn is moved by ``+h`` and ``-h``, and the slope
    ``sum((f(x + h) - f(x - h)) * dout) / (2h)`` is its gradient entry.  This
    is exact, up to rounding, for any ``f`` linear in ``x``, such as a
    convolution layer, and has O(h**2) error otherwise.  It costs two calls of
    ``f`` per entry of ``x``: use small arrays.

    Parameters
    ----------
    f : callable
        Takes an array shaped like ``x`` and returns an array shaped like
        ``dout``.
    x : array_like
        The point to differentiate at; it is not modified (``f`` sees a
        float64 copy).
    dout : array_like
        Upstream derivative, shaped like ``f(x)``.
    h : float, optional
        The step, ``1e-5`` by default.

    Returns
    -------
    ndarray of float64, shaped like ``x``

    Examples
    --------
    >>> import numpy as np
    >>> from cconv.testing import numerical_gradient
    >>> x = np.array([1.0, 2.0, 3.0])
    >>> np.round(numerical_gradient(lambda v: v ** 2, x, np.ones(3)), 6)
    array([2., 4., 6.])
    """
    if not h > 0:
        raise ValueError(f"h must be a positive step; got {h!r}")
    point = np.array(x, dtype=np.float64, order="C")  # a private copy we may perturb
    dout = np.asarray(dout, dtype=np.float64)
    grad = np.empty_like(point)
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
