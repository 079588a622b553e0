"""cconv.testing: rel_error and numerical_gradient.

Their use on the layers (gradient checks) is in ``test_conv.py`` and
``test_conv2d.py``; their fuzz in ``fuzz/test_testing.py``.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import cconv
from cconv.testing import numerical_gradient, rel_error

# --------------------------------------------------------------------------
# rel_error
# --------------------------------------------------------------------------


def test_rel_error_of_equal_arrays_is_zero():
    a = np.random.default_rng(0).standard_normal((3, 4))
    assert rel_error(a, a.copy()) == 0.0
    assert rel_error(np.zeros(5), np.zeros(5)) == 0.0


def test_rel_error_known_pairs():
    # |1 - 3| / (1 + 3)
    assert rel_error(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5, rel=1e-15)
    # the largest over the elements: max(0, 1/5, 0)
    assert rel_error([1.0, 2.0, -4.0], [1.0, 3.0, -4.0]) == pytest.approx(0.2, rel=1e-15)
    # opposite signs are maximally different
    assert rel_error([2.0], [-2.0]) == pytest.approx(1.0, rel=1e-15)
    # the 1e-8 floor in the denominator: 1e-9 / max(1e-8, 1e-9) = 0.1
    assert rel_error([0.0], [1e-9]) == pytest.approx(0.1, rel=1e-12)


def test_rel_error_is_symmetric_and_a_float():
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(10), rng.standard_normal(10)
    r = rel_error(a, b)
    assert isinstance(r, float)
    assert r == rel_error(b, a)
    expected = np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)))
    assert r == pytest.approx(expected, rel=1e-14)


@pytest.mark.parametrize("which", ["a", "b"])
def test_rel_error_complex(which):
    # Refused, not the imaginary part dropped (rel_error(1+1j, 1-1j) == 0).
    args = {"a": np.array([1 + 1j]), "b": np.array([1 - 1j])}
    if which == "b":
        args["a"] = np.array([1.0])
    with pytest.raises(TypeError, match=rf"^{which}\b.*complex"):
        rel_error(args["a"], args["b"])


@pytest.mark.parametrize("sa, sb", [((0, 3), (1, 3)), ((2, 0), ()), ((0,), (1,)), ((0, 3), (0, 4))])
def test_rel_error_empty(sa, sb):
    # 0.0, as documented.
    assert rel_error(np.ones(sa), np.ones(sb)) == 0.0


def test_rel_error_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"^a\b.*\bb\b.*\(2, 3\).*\(4,\)"):
        rel_error(np.ones((2, 3)), np.ones(4))


def test_rel_error_infinities_and_nan():
    inf = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value" RuntimeWarning either
        assert rel_error([inf, 1.0], [inf, 1.0]) == 0.0
        assert rel_error([-inf, 2.0], [-inf, 2.0]) == 0.0
        assert rel_error([inf, 1.0], [inf, 3.0]) == 0.5  # the finite entry decides
        assert rel_error([inf], [1.0]) == 1.0
        assert rel_error([inf], [-inf]) == 1.0
        assert math.isnan(rel_error([np.nan, 1.0], [np.nan, 1.0]))
        assert math.isnan(rel_error([inf, 1.0], [inf, np.nan]))


# --------------------------------------------------------------------------
# numerical_gradient
# --------------------------------------------------------------------------


def test_numerical_gradient_of_square():
    # d/dx sum(x**2 * dout) = 2 * x * dout; central differences are exact for
    # a quadratic up to rounding.
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4))
    dout = rng.standard_normal((3, 4))
    g = numerical_gradient(lambda v: v**2, x, dout)
    assert g.shape == x.shape
    np.testing.assert_allclose(g, 2 * x * dout, rtol=1e-8, atol=1e-9)


def test_numerical_gradient_of_linear_map():
    # f(x) = A @ x: gradient of sum(f(x) * dout) is A.T @ dout.
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 5))
    x = rng.standard_normal(5)
    dout = rng.standard_normal(4)
    g = numerical_gradient(lambda v: a @ v, x, dout)
    np.testing.assert_allclose(g, a.T @ dout, rtol=1e-8, atol=1e-9)


def test_numerical_gradient_of_sin_is_second_order():
    # The error of central differences is O(h**2): about h**2/6 * |f'''|.
    x = np.linspace(-1.0, 1.0, 7)
    dout = np.ones_like(x)
    g = numerical_gradient(np.sin, x, dout, h=1e-3)
    np.testing.assert_allclose(g, np.cos(x), rtol=0, atol=1e-6)
    # With a larger step the O(h**2) error is visible and of the right size.
    g_big = numerical_gradient(np.sin, x, dout, h=1e-1)
    err = np.abs(g_big - np.cos(x))
    assert np.all(err <= (0.1**2) / 6 * 1.0001)
    assert np.max(err) >= (0.1**2) / 6 * 0.9


def test_numerical_gradient_mixes_outputs_through_dout():
    # f(x) = [x0*x1, x1 + 3*x2]; gradient of 2*f0 - f1 is [2*x1, 2*x0 - 1, -3].
    x = np.array([1.5, -2.0, 0.25])
    dout = np.array([2.0, -1.0])
    g = numerical_gradient(lambda v: np.array([v[0] * v[1], v[1] + 3 * v[2]]), x, dout)
    np.testing.assert_allclose(g, [2 * -2.0, 2 * 1.5 - 1.0, -3.0], rtol=1e-9, atol=1e-9)


def test_numerical_gradient_does_not_modify_x():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 3))
    before = x.copy()
    numerical_gradient(lambda v: np.cumsum(v) * v.ravel(), x, np.ones(x.size))
    np.testing.assert_array_equal(x, before, strict=True)


def test_numerical_gradient_with_read_only_x():
    x = np.arange(6.0).reshape(2, 3)
    x.flags.writeable = False
    g = numerical_gradient(lambda v: 3.0 * v, x, np.ones((2, 3)))
    np.testing.assert_allclose(g, np.full((2, 3), 3.0), rtol=1e-9)


def test_numerical_gradient_uses_the_given_step():
    # For f(x) = x**3 the central difference is 3x**2 + h**2 exactly.
    x = np.array([0.5])
    g = numerical_gradient(lambda v: v**3, x, np.ones(1), h=0.25)
    assert g[0] == pytest.approx(3 * 0.25 + 0.25**2, rel=1e-12)


# --------------------------------------------------------------------------
# numerical_gradient: bad arguments and edge cases, on the 3-D layer
# --------------------------------------------------------------------------


def _f(v):
    return cconv.conv_forward(v, np.ones((2, 2)))[0]


@pytest.mark.parametrize("h", ["1e-5", None, [1e-5], 1j, True])
def test_numerical_gradient_non_numeric_h_names_h(h):
    with pytest.raises(TypeError, match=r"^h\b.*" + re.escape(repr(h))):
        numerical_gradient(_f, np.ones((1, 3, 3)), np.ones((1, 2, 2)), h=h)


@pytest.mark.parametrize("h", [float("inf"), float("nan"), 0, -1e-5, 10**400])
def test_numerical_gradient_rejects_infinite_or_non_positive_h(h):
    with pytest.raises(ValueError, match=r"^h\b.*positive finite"):
        numerical_gradient(_f, np.ones((1, 3, 3)), np.ones((1, 2, 2)), h=h)


@pytest.mark.parametrize("which", ["x", "dout"])
def test_numerical_gradient_complex_input(which):
    # Refused, not cast to real (the imaginary part dropped).
    args = {"x": np.ones((1, 3, 3)), "dout": np.ones((1, 2, 2))}
    args[which] = args[which] * (1 + 1j)
    with pytest.raises(TypeError, match=rf"^{which}\b.*complex"):
        numerical_gradient(_f, args["x"], args["dout"])


@pytest.mark.parametrize("shape", [(5,), (1, 2), (2, 2, 2), (1, 1, 1), (2, 2)])
def test_numerical_gradient_bad_dout_names_dout(shape):
    # dout must have f(x)'s shape exactly: no broadcasting.
    with pytest.raises(ValueError, match=r"^dout\b.*" + re.escape(str(shape))):
        numerical_gradient(_f, np.ones((1, 3, 3)), np.ones(shape))


def test_numerical_gradient_fortran_x():
    x = np.asfortranarray(np.arange(12.0).reshape(1, 3, 4))
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    dout = np.ones((1, 2, 3))
    g = numerical_gradient(lambda v: cconv.conv_forward(v, w)[0], x, dout)
    expected = [[[1, 3, 3, 2], [4, 10, 10, 6], [3, 7, 7, 4]]]  # worked out by hand
    np.testing.assert_allclose(g, expected, rtol=1e-8)


def test_numerical_gradient_empty_x_does_not_call_f():
    def f(v):
        raise AssertionError("f called")

    g = numerical_gradient(f, np.ones((0, 3)), np.ones((7,)))
    assert g.shape == (0, 3) and g.dtype == np.float64
