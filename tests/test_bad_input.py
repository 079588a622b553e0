"""Bad input raises the right exception naming the argument; N = 0; NaN and Inf."""

from __future__ import annotations

import re

import numpy as np
import pytest

import cconv

from cases import max_rel_err, tol
from reference import scipy_backward, scipy_forward


def msg(*names, shapes=()):
    """A regex requiring every argument name (as a word) and every shape, in any order."""
    parts = [rf"\b{re.escape(n)}\b" for n in names]
    parts += [re.escape(str(tuple(s))) for s in shapes]
    return "(?s)" + "".join(f"(?=.*{p})" for p in parts)


def test_msg_helper_is_strict():
    # The helper itself must reject messages missing a part.
    assert re.search(msg("w", shapes=[(5, 3)]), "w has shape (5, 3)")
    assert not re.search(msg("w", shapes=[(5, 3)]), "w has shape (5, 4)")
    assert not re.search(msg("dout"), "the output has the wrong shape")
    assert not re.search(msg("x"), "max is wrong")


# --------------------------------------------------------------------------
# conv_forward: shapes
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "xshape, wshape",
    [
        pytest.param((2, 4, 5), (5, 3), id="taller"),
        pytest.param((2, 4, 5), (3, 6), id="wider"),
        pytest.param((2, 4, 5), (5, 6), id="both"),
        pytest.param((1, 4, 5), (3, 5, 2), id="taller-3d"),
        pytest.param((2, 1, 1), (2, 1, 2), id="one-pixel"),
    ],
)
def test_filter_larger_than_image(xshape, wshape):
    with pytest.raises(ValueError, match=msg("w", shapes=[wshape])):
        cconv.conv_forward(np.ones(xshape), np.ones(wshape))


@pytest.mark.parametrize("xshape", [(2, 0, 5), (2, 5, 0), (1, 0, 0)])
def test_empty_image(xshape):
    with pytest.raises(ValueError, match=msg("x", shapes=[xshape])):
        cconv.conv_forward(np.ones(xshape), np.ones((1, 1)))


@pytest.mark.parametrize("wshape", [(0, 3), (3, 0), (2, 0, 2), (2, 2, 0), (1, 0, 0)])
def test_empty_filter(wshape):
    with pytest.raises(ValueError, match=msg("w", shapes=[wshape])):
        cconv.conv_forward(np.ones((2, 4, 4)), np.ones(wshape))


@pytest.mark.parametrize("xshape", [(7,), (5, 6), (1, 2, 5, 6), ()])
def test_x_not_3d(xshape):
    with pytest.raises(ValueError, match=msg("x", shapes=[xshape])):
        cconv.conv_forward(np.ones(xshape), np.ones((1, 1)))


@pytest.mark.parametrize("wshape", [(3,), (1, 1, 2, 2), ()])
def test_w_not_2d_or_3d(wshape):
    with pytest.raises(ValueError, match=msg("w", shapes=[wshape])):
        cconv.conv_forward(np.ones((2, 5, 5)), np.ones(wshape))


@pytest.mark.parametrize(
    "nx, nw",
    [(2, 3), (3, 2), (4, 5), (0, 2), (2, 0)],
)
def test_incompatible_leading_sizes(nx, nw):
    xshape, wshape = (nx, 5, 5), (nw, 2, 2)
    with pytest.raises(ValueError, match=msg("x", "w", shapes=[xshape, wshape])):
        cconv.conv_forward(np.ones(xshape), np.ones(wshape))


# --------------------------------------------------------------------------
# conv_forward / conv_backward: dtypes
# --------------------------------------------------------------------------

BAD_DTYPE_ARRAYS = {
    "complex128": lambda s: np.ones(s, dtype=np.complex128),
    "complex64": lambda s: np.ones(s, dtype=np.complex64),
    "object": lambda s: np.ones(s).astype(object),
    "str": lambda s: np.full(s, "a"),
    "bytes": lambda s: np.full(s, b"a"),
    "datetime64": lambda s: np.zeros(s, dtype="datetime64[s]"),
    "timedelta64": lambda s: np.zeros(s, dtype="timedelta64[s]"),
    "structured": lambda s: np.zeros(s, dtype=[("a", np.float64), ("b", np.float64)]),
}
if np.dtype(np.longdouble).itemsize > 8:
    BAD_DTYPE_ARRAYS["longdouble"] = lambda s: np.ones(s, dtype=np.longdouble)


@pytest.mark.parametrize("kind", list(BAD_DTYPE_ARRAYS))
def test_bad_dtype_x(kind):
    x = BAD_DTYPE_ARRAYS[kind]((2, 4, 4))
    with pytest.raises(TypeError, match=msg("x")):
        cconv.conv_forward(x, np.ones((2, 2)))


@pytest.mark.parametrize("kind", list(BAD_DTYPE_ARRAYS))
def test_bad_dtype_w(kind):
    w = BAD_DTYPE_ARRAYS[kind]((2, 2))
    with pytest.raises(TypeError, match=msg("w")):
        cconv.conv_forward(np.ones((2, 4, 4)), w)


@pytest.mark.parametrize("kind", list(BAD_DTYPE_ARRAYS))
def test_bad_dtype_dout(kind):
    _, cache = cconv.conv_forward(np.ones((2, 4, 4)), np.ones((2, 2)))
    dout = BAD_DTYPE_ARRAYS[kind]((2, 3, 3))
    with pytest.raises(TypeError, match=msg("dout")):
        cconv.conv_backward(dout, cache)


def test_longdouble_rejected_or_platform_lacks_it():
    # Where long double is wider than float64 it must be refused, not rounded.
    if np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(TypeError, match=msg("x")):
        cconv.conv_forward(np.ones((1, 3, 3), dtype=np.longdouble), np.ones((2, 2)))


# --------------------------------------------------------------------------
# conv_backward: dout shape and cache
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "xshape, wshape, doutshape",
    [
        pytest.param((2, 6, 5), (3, 2), (2, 4, 3), id="transposed-spatial"),
        pytest.param((2, 6, 5), (3, 2), (3, 4, 4), id="wrong-n"),
        pytest.param((2, 6, 5), (3, 2), (1, 4, 4), id="n-of-one"),
        pytest.param((2, 6, 5), (3, 2), (2, 6, 5), id="x-shape"),
        pytest.param((2, 6, 5), (3, 2), (4, 4), id="2d"),
        pytest.param((2, 6, 5), (3, 2), (1, 2, 4, 4), id="4d"),
        pytest.param((1, 6, 5), (3, 3, 2), (1, 4, 4), id="x1-wrong-n"),
        pytest.param((1, 6, 5), (3, 3, 2), (3, 4, 5), id="x1-wrong-w"),
        pytest.param((0, 6, 5), (3, 2), (1, 4, 4), id="n0"),
    ],
)
def test_dout_shape_mismatch(xshape, wshape, doutshape):
    out, cache = cconv.conv_forward(np.ones(xshape), np.ones(wshape))
    expected = out.shape
    assert doutshape != expected
    with pytest.raises(ValueError, match=msg("dout", shapes=[doutshape, expected])):
        cconv.conv_backward(np.ones(doutshape), cache)


def test_dout_scalar_rejected():
    _, cache = cconv.conv_forward(np.ones((1, 1, 1)), np.ones((1, 1)))
    with pytest.raises(ValueError, match=msg("dout")):
        cconv.conv_backward(1.0, cache)


@pytest.mark.parametrize(
    "make_cache",
    [
        pytest.param(lambda x, w: (x, w), id="tuple"),
        pytest.param(lambda x, w: [x, w], id="list"),
        pytest.param(lambda x, w: None, id="None"),
        pytest.param(lambda x, w: {"x": x, "w": w}, id="dict"),
        pytest.param(lambda x, w: x, id="array"),
        pytest.param(lambda x, w: "cache", id="str"),
        pytest.param(lambda x, w: cconv.conv_forward(x, w), id="forward-pair"),
    ],
)
def test_bad_cache(make_cache):
    x, w = np.ones((2, 4, 4)), np.ones((2, 2))
    cache = make_cache(x, w)
    with pytest.raises(ValueError, match=msg("cache")):
        cconv.conv_backward(np.ones((2, 3, 3)), cache)


# --------------------------------------------------------------------------
# N = 0
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "xshape, wshape, oshape",
    [
        pytest.param((0, 5, 6), (2, 3), (0, 4, 4), id="x0-w2d"),
        pytest.param((0, 5, 6), (1, 2, 3), (0, 4, 4), id="x0-w1"),
        pytest.param((1, 5, 6), (0, 2, 3), (0, 4, 4), id="x1-w0"),
        pytest.param((0, 5, 6), (0, 2, 3), (0, 4, 4), id="x0-w0"),
        pytest.param((0, 3, 3), (3, 3), (0, 1, 1), id="x0-fullsize"),
    ],
)
def test_empty_batch(xshape, wshape, oshape, dtype):
    x = np.ones(xshape, dtype=dtype)
    w = np.ones(wshape, dtype=dtype)
    out, cache = cconv.conv_forward(x, w)
    assert out.shape == oshape
    assert out.dtype == np.dtype(dtype)
    dout = np.ones(oshape, dtype=dtype)
    dx, dw = cconv.conv_backward(dout, cache)
    assert dx.shape == xshape and dw.shape == wshape
    assert dx.dtype == dw.dtype == np.dtype(dtype)
    # Nothing flowed back: the gradients are all zero (not uninitialised memory).
    np.testing.assert_array_equal(dx, np.zeros(xshape))
    np.testing.assert_array_equal(dw, np.zeros(wshape))


def test_empty_batch_gradients_are_zero_even_after_other_work(rng):
    # Fill the allocator with non-zero garbage first, so that an output left
    # uninitialised would very likely show it.
    for _ in range(20):
        junk = rng.standard_normal((4, 5, 5)) + 100.0
        del junk
    _, cache = cconv.conv_forward(np.ones((0, 12, 12)), np.ones((5, 5)))
    for _ in range(5):
        dx, dw = cconv.conv_backward(np.ones((0, 8, 8)), cache)
        np.testing.assert_array_equal(dw, np.zeros((5, 5)))
        assert dx.shape == (0, 12, 12)
    _, cache = cconv.conv_forward(np.ones((1, 12, 12)), np.ones((0, 5, 5)))
    dx, dw = cconv.conv_backward(np.ones((0, 8, 8)), cache)
    np.testing.assert_array_equal(dx, np.zeros((1, 12, 12)))
    assert dw.shape == (0, 5, 5)


# --------------------------------------------------------------------------
# NaN and Inf propagate as in scipy.signal.correlate2d
# --------------------------------------------------------------------------


def _assert_same_nonfinite(actual, expected, tol):
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected))
    np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(actual), np.isneginf(expected))
    finite = np.isfinite(expected)
    assert finite.any()
    a, e = actual[finite], expected[finite]
    assert np.max(np.abs(a - e)) <= tol * np.max(np.abs(e))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("wshape", [(3, 2), (2, 3, 2)])
def test_nan_and_inf_in_x_propagate_like_scipy(wshape, dtype, rng):
    x = rng.standard_normal((2, 9, 10)).astype(dtype)
    x[0, 2, 3] = np.nan
    x[0, 4, 4] = np.inf  # some windows hold both: NaN there
    x[1, 7, 8] = -np.inf
    x[1, 0, 0] = np.nan
    # No zero filter taps (inf * 0 would be NaN): |w| >= 0.5, mixed signs.
    w = (rng.uniform(0.5, 1.5, wshape) * rng.choice([-1.0, 1.0], wshape)).astype(dtype)
    out, cache = cconv.conv_forward(x, w)
    expected = scipy_forward(x, w)
    assert np.isnan(expected).any() and np.isinf(expected).any()
    _assert_same_nonfinite(out, expected, tol(dtype))

    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw = cconv.conv_backward(dout, cache)
    edx, edw = scipy_backward(x, w, dout)
    # dx depends on w and dout only: finite.
    assert np.all(np.isfinite(dx))
    assert max_rel_err(dx, edx) <= tol(dtype)
    # dw sums over windows holding NaN and Inf: non-finite as in SciPy.
    np.testing.assert_array_equal(np.isnan(dw), np.isnan(edw))
    np.testing.assert_array_equal(np.isinf(dw), np.isinf(edw))


def test_inf_in_w_propagates_like_scipy(rng):
    x = rng.uniform(0.5, 1.5, (1, 6, 6))
    x[0, 0, :] *= -1.0
    w = rng.standard_normal((2, 2))
    w[1, 1] = np.inf
    out, _ = cconv.conv_forward(x, w)
    expected = scipy_forward(x, w)
    np.testing.assert_array_equal(np.isposinf(out), np.isposinf(expected))
    np.testing.assert_array_equal(np.isneginf(out), np.isneginf(expected))
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))


def test_nan_does_not_leak_between_images(rng):
    x = rng.standard_normal((3, 6, 6))
    x[1, 3, 3] = np.nan
    w = rng.standard_normal((3, 3))
    out, _ = cconv.conv_forward(x, w)
    assert np.all(np.isfinite(out[0])) and np.all(np.isfinite(out[2]))
    expected = scipy_forward(x, w)
    np.testing.assert_array_equal(np.isnan(out), np.isnan(expected))


def test_inf_times_zero_tap_is_nan_like_scipy():
    # Inf meets a zero filter tap: IEEE gives NaN (no skipping of zero taps);
    # +Inf and -Inf in one window also give NaN.
    x = np.ones((1, 4, 4))
    x[0, 1, 1] = np.inf
    x[0, 2, 2] = -np.inf
    w = np.array([[1.0, 0.0], [0.0, 1.0]])
    out, _ = cconv.conv_forward(x, w)
    expected = scipy_forward(x, w)
    # Hand-derived: windows with Inf on a zero tap are NaN, on a one tap +-Inf.
    hand = np.array([[np.inf, np.nan, 2.0], [np.nan, np.nan, np.nan], [2.0, np.nan, -np.inf]])
    np.testing.assert_array_equal(expected[0], hand)
    np.testing.assert_array_equal(out, expected)
