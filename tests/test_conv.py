"""The 3-D layer: conv_forward, conv_backward and ConvCache.

Against SciPy (many shapes) and naive NumPy loops (small shapes); every
method, memory layout and dtype; bad input; NaN and Inf; finite-difference
gradients; Hypothesis properties; memory refused up front; float32 on a large
dynamic range.  The fuzz of these functions is in ``fuzz/test_conv.py``.
"""

from __future__ import annotations

import random
import re
import time
import tracemalloc

import numpy as np
import pytest
from cases import (
    LAYOUTS,
    METHODS,
    assert_fresh_output,
    assert_same_specials,
    assert_unchanged,
    expected_dtype,
    max_rel_err,
    quiet,
    random_array,
    snapshot,
    specials_tol,
    tol,
    with_layout,
)
from fuzz.strategies import image_and_filter
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import loop_backward, loop_forward, scipy_backward, scipy_forward

import cconv
from cconv import _validation
from cconv.testing import numerical_gradient, rel_error

# --------------------------------------------------------------------------
# Shape cases
# --------------------------------------------------------------------------


# (H, W, HH, WW): 1x1 filters, filters as large as the image, odd and even
# sizes, non-square images and filters, 1-pixel images, one long axis.
_FIXED_SPATIAL = [
    (1, 1, 1, 1),
    (5, 5, 1, 1),
    (4, 7, 1, 1),
    (7, 4, 7, 4),
    (6, 6, 6, 6),
    (1, 9, 1, 4),
    (9, 1, 3, 1),
    (6, 9, 3, 2),
    (8, 8, 4, 4),
    (9, 7, 5, 3),
    (3, 10, 2, 7),
    (16, 13, 1, 13),
    (12, 12, 12, 1),
    (11, 14, 6, 8),
]


def _random_spatial(count: int, seed: int) -> list[tuple[int, int, int, int]]:
    r = random.Random(seed)
    cases = []
    for _ in range(count):
        h, w = r.randint(1, 24), r.randint(1, 24)
        cases.append((h, w, r.randint(1, h), r.randint(1, w)))
    return cases


# Broadcasting kinds: (leading size of x, leading size of w or None for 2-D w).
BROADCAST = {
    "w2d": (3, None),  # one 2-D filter for every image
    "w1": (3, 1),  # w of shape (1, HH, WW): the same
    "x1": (1, 4),  # K templates against one image
    "equal": (3, 3),  # image n with filter n
    "one": (1, 1),  # a single image and a single filter
    "one_w2d": (1, None),
}


def _shapes(kind, spatial):
    nx, nw = BROADCAST[kind]
    h, w, hh, ww = spatial
    xshape = (nx, h, w)
    wshape = (hh, ww) if nw is None else (nw, hh, ww)
    nout = nx if nw is None else max(nx, nw)
    return xshape, wshape, (nout, h - hh + 1, w - ww + 1)


def _cases(spatial):
    return [
        pytest.param(kind, sp, id=f"{kind}-{sp[0]}x{sp[1]}-f{sp[2]}x{sp[3]}")
        for kind in BROADCAST
        for sp in spatial
    ]


FORWARD_CASES = _cases(_FIXED_SPATIAL + _random_spatial(8, seed=1234))
BACKWARD_CASES = _cases(_FIXED_SPATIAL + _random_spatial(8, seed=4321))
SMALL_CASES = _cases([(1, 1, 1, 1), (4, 5, 2, 3), (5, 4, 5, 1), (6, 6, 3, 3), (3, 7, 3, 7)])


# --------------------------------------------------------------------------
# conv_forward
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind, spatial", FORWARD_CASES)
def test_forward_matches_scipy(kind, spatial, dtype, rng):
    xshape, wshape, oshape = _shapes(kind, spatial)
    x = random_array(rng, xshape, dtype)
    w = random_array(rng, wshape, dtype)

    out, _ = cconv.conv_forward(x, w)

    assert out.shape == oshape
    assert out.dtype == np.dtype(dtype)
    # Reference in float64 on exactly the values cconv saw.
    expected = scipy_forward(x, w)
    assert max_rel_err(out, expected) <= tol(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "xshape, wshape",
    [
        ((4, 64, 64), (4, 7, 7)),
        ((1, 80, 96), (6, 9, 5)),
        ((5, 50, 40), (3, 3)),
        ((2, 33, 33), (1, 33, 1)),
    ],
)
def test_forward_matches_scipy_larger(xshape, wshape, dtype, rng):
    x = random_array(rng, xshape, dtype)
    w = random_array(rng, wshape, dtype)
    out, _ = cconv.conv_forward(x, w)
    assert out.dtype == np.dtype(dtype)
    assert max_rel_err(out, scipy_forward(x, w)) <= tol(dtype)


@pytest.mark.parametrize("kind, spatial", SMALL_CASES)
def test_forward_matches_numpy_loops(kind, spatial, rng):
    xshape, wshape, oshape = _shapes(kind, spatial)
    x = random_array(rng, xshape)
    w = random_array(rng, wshape)
    out, _ = cconv.conv_forward(x, w)
    assert out.shape == oshape
    assert max_rel_err(out, loop_forward(x, w)) <= 1e-12


@pytest.mark.parametrize("kind, spatial", SMALL_CASES)
def test_forward_integer_data_is_exact(kind, spatial, rng):
    # Small integers: every product and partial sum is exact in float64, so
    # any correct summation order gives exactly the loop reference.
    xshape, wshape, _ = _shapes(kind, spatial)
    x = random_array(rng, xshape, np.int64)
    w = random_array(rng, wshape, np.int64)
    out, _ = cconv.conv_forward(x, w)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, loop_forward(x, w))


def test_forward_hand_computed_example():
    # 2x2 box sum over a 4x4 ramp: window sum = 4*top-left + 10.
    x = np.arange(16.0).reshape(1, 4, 4)
    out, _ = cconv.conv_forward(x, np.ones((2, 2)))
    expected = np.array([[[10.0, 14.0, 18.0], [26.0, 30.0, 34.0], [42.0, 46.0, 50.0]]])
    np.testing.assert_array_equal(out, expected)


def test_forward_is_correlation_not_convolution():
    # A filter with a single 1 at (0, 1) picks x[r, c + 1]; a convolution
    # (flipped filter) would pick x[r + 1, c] instead.
    x = np.arange(12.0).reshape(1, 3, 4)
    w = np.array([[0.0, 1.0], [0.0, 0.0]])
    out, _ = cconv.conv_forward(x, w)
    np.testing.assert_array_equal(out[0], x[0, :2, 1:4])


def test_forward_templates_each_get_their_own_output():
    # x (1, H, W) against K delta filters: output k is the image shifted by k.
    x = np.arange(30.0).reshape(1, 5, 6)
    w = np.zeros((3, 1, 3))
    for k in range(3):
        w[k, 0, k] = 1.0
    out, _ = cconv.conv_forward(x, w)
    assert out.shape == (3, 5, 4)
    for k in range(3):
        np.testing.assert_array_equal(out[k], x[0, :, k : k + 4])


F16, F32, F64 = np.float16, np.float32, np.float64


FORWARD_DTYPES = [
    (F64, F64, F64),
    (F32, F32, F32),
    (F32, F64, F64),
    (F64, F32, F64),
    (F16, F16, F32),
    (F16, F32, F32),
    (F32, F16, F32),
    (F16, F64, F64),
    (np.int8, np.int8, F64),
    (np.int16, F64, F64),
    (np.int32, np.int32, F64),
    (np.int64, F32, F64),
    (F32, np.int64, F64),
    (np.uint8, np.uint8, F64),
    (np.uint16, F32, F64),
    (np.uint64, np.uint64, F64),
    (np.bool_, np.bool_, F64),
    (np.bool_, F32, F64),
    (F16, np.bool_, F64),
    (np.int8, F16, F64),
]


@pytest.mark.parametrize(
    "xdt, wdt, outdt",
    [pytest.param(*row, id=f"{np.dtype(row[0]).name}-{np.dtype(row[1]).name}") for row in FORWARD_DTYPES],
)
def test_forward_dtype_table(xdt, wdt, outdt, rng):
    x = random_array(rng, (2, 7, 6), xdt)
    w = random_array(rng, (2, 3, 4), wdt)
    out, _ = cconv.conv_forward(x, w)
    assert out.dtype == np.dtype(outdt)
    assert out.dtype == expected_dtype(xdt, wdt)
    assert max_rel_err(out, scipy_forward(x, w)) <= tol(outdt)


def test_forward_python_lists(rng):
    x = random_array(rng, (2, 5, 4))
    w = random_array(rng, (3, 2))
    out, _ = cconv.conv_forward(x.tolist(), w.tolist())
    assert out.dtype == np.float64
    assert max_rel_err(out, scipy_forward(x, w)) <= 1e-12


def test_forward_python_int_lists():
    x = [[[1, 2, 3], [4, 5, 6], [7, 8, 9]]]
    w = [[1, 0], [0, -1]]
    out, _ = cconv.conv_forward(x, w)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [[[1 - 5, 2 - 6], [4 - 8, 5 - 9]]])


# --------------------------------------------------------------------------
# conv_backward
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind, spatial", BACKWARD_CASES)
def test_backward_matches_scipy(kind, spatial, dtype, rng):
    xshape, wshape, oshape = _shapes(kind, spatial)
    x = random_array(rng, xshape, dtype)
    w = random_array(rng, wshape, dtype)
    dout = random_array(rng, oshape, dtype)

    out, cache = cconv.conv_forward(x, w)
    dx, dw = cconv.conv_backward(dout, cache)

    assert dx.shape == x.shape
    assert dw.shape == w.shape
    assert dx.dtype == np.dtype(dtype)
    assert dw.dtype == np.dtype(dtype)
    edx, edw = scipy_backward(x, w, dout)
    assert max_rel_err(dx, edx) <= tol(dtype)
    assert max_rel_err(dw, edw) <= tol(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "xshape, wshape",
    [
        ((4, 48, 48), (4, 7, 7)),
        ((1, 60, 70), (6, 9, 5)),
        ((6, 40, 30), (3, 3)),
        ((2, 33, 33), (1, 33, 1)),
        ((3, 20, 20), (3, 20, 20)),
    ],
)
def test_backward_matches_scipy_larger(xshape, wshape, dtype, rng):
    x = random_array(rng, xshape, dtype)
    w = random_array(rng, wshape, dtype)
    out, cache = cconv.conv_forward(x, w)
    dout = random_array(rng, out.shape, dtype)
    dx, dw = cconv.conv_backward(dout, cache)
    edx, edw = scipy_backward(x, w, dout)
    assert max_rel_err(dx, edx) <= tol(dtype)
    assert max_rel_err(dw, edw) <= tol(dtype)


@pytest.mark.parametrize("kind, spatial", SMALL_CASES)
def test_backward_matches_numpy_loops(kind, spatial, rng):
    xshape, wshape, oshape = _shapes(kind, spatial)
    x = random_array(rng, xshape)
    w = random_array(rng, wshape)
    dout = random_array(rng, oshape)
    _, cache = cconv.conv_forward(x, w)
    dx, dw = cconv.conv_backward(dout, cache)
    edx, edw = loop_backward(x, w, dout)
    assert max_rel_err(dx, edx) <= 1e-12
    assert max_rel_err(dw, edw) <= 1e-12


@pytest.mark.parametrize("kind, spatial", SMALL_CASES)
def test_backward_integer_data_is_exact(kind, spatial, rng):
    xshape, wshape, oshape = _shapes(kind, spatial)
    x = random_array(rng, xshape, np.int32)
    w = random_array(rng, wshape, np.int32)
    dout = random_array(rng, oshape, np.int32)
    _, cache = cconv.conv_forward(x, w)
    dx, dw = cconv.conv_backward(dout, cache)
    assert dx.dtype == dw.dtype == np.float64
    edx, edw = loop_backward(x, w, dout)
    np.testing.assert_array_equal(dx, edx)
    np.testing.assert_array_equal(dw, edw)


def test_backward_hand_computed_example():
    # All-ones 3x3 image, 2x2 filter, 2x2 dout: dx counts how many windows
    # cover each pixel, dw sums each window position over the 4 outputs.
    _, cache = cconv.conv_forward(np.ones((1, 3, 3)), np.ones((2, 2)))
    dx, dw = cconv.conv_backward(np.ones((1, 2, 2)), cache)
    np.testing.assert_array_equal(dx, [[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]])
    np.testing.assert_array_equal(dw, [[4.0, 4.0], [4.0, 4.0]])


def test_backward_single_upstream_pixel():
    # dout with one 1 at (k, r, c): dx[k] is the filter placed at (r, c),
    # dw[k] is the window of x at (r, c).
    rng = np.random.default_rng(7)
    x = rng.standard_normal((2, 6, 7))
    w = rng.standard_normal((2, 3, 2))
    _, cache = cconv.conv_forward(x, w)
    dout = np.zeros((2, 4, 6))
    dout[1, 2, 3] = 1.0
    dx, dw = cconv.conv_backward(dout, cache)
    edx = np.zeros_like(x)
    edx[1, 2:5, 3:5] = w[1]
    np.testing.assert_array_equal(dx, edx)
    np.testing.assert_array_equal(dw[0], np.zeros((3, 2)))
    np.testing.assert_array_equal(dw[1], x[1, 2:5, 3:5])


def test_backward_sums_over_broadcast_axis(rng):
    # x (1, H, W) against K filters: dx is the sum of K per-filter gradients;
    # x (N, H, W) with one 2-D filter: dw is the sum of N per-image gradients.
    x = random_array(rng, (1, 8, 9))
    w = random_array(rng, (4, 3, 3))
    dout = random_array(rng, (4, 6, 7))
    _, cache = cconv.conv_forward(x, w)
    dx, _ = cconv.conv_backward(dout, cache)
    per_filter = []
    for k in range(4):
        _, c = cconv.conv_forward(x, w[k])
        per_filter.append(cconv.conv_backward(dout[k : k + 1], c)[0])
    assert max_rel_err(dx, np.sum(per_filter, axis=0)) <= 1e-12
    assert max_rel_err(dx, scipy_backward(x, w, dout)[0]) <= 1e-12

    x = random_array(rng, (5, 8, 9))
    w2 = random_array(rng, (3, 4))
    dout = random_array(rng, (5, 6, 6))
    _, cache = cconv.conv_forward(x, w2)
    _, dw = cconv.conv_backward(dout, cache)
    assert dw.shape == (3, 4)
    expected = sum(scipy_backward(x[n : n + 1], w2, dout[n : n + 1])[1] for n in range(5))
    assert max_rel_err(dw, expected) <= 1e-12


def test_backward_cache_is_reusable(rng):
    # The same cache serves several backward calls with different douts.
    x = random_array(rng, (2, 7, 7))
    w = random_array(rng, (2, 3, 3))
    _, cache = cconv.conv_forward(x, w)
    for _ in range(3):
        dout = random_array(rng, (2, 5, 5))
        dx, dw = cconv.conv_backward(dout, cache)
        edx, edw = scipy_backward(x, w, dout)
        assert max_rel_err(dx, edx) <= 1e-12
        assert max_rel_err(dw, edw) <= 1e-12


# The result dtype is the promotion of x, w and dout.
BACKWARD_DTYPES = [
    (F64, F64, F64, F64),
    (F32, F32, F32, F32),
    (F32, F32, F64, F64),
    (F32, F64, F32, F64),
    (F64, F32, F32, F64),
    (F16, F16, F16, F32),
    (F16, F32, F16, F32),
    (F32, F32, F16, F32),
    (F16, F16, F64, F64),
    (F32, F32, np.int32, F64),
    (F32, F32, np.bool_, F64),
    (np.int64, np.int64, np.int64, F64),
    (np.int8, F32, F32, F64),
    (np.uint8, np.uint8, F32, F64),
    (np.bool_, np.bool_, np.bool_, F64),
    (F32, np.bool_, F32, F64),
]


@pytest.mark.parametrize(
    "xdt, wdt, ddt, outdt",
    [
        pytest.param(*row, id="-".join(np.dtype(d).name for d in row[:3]))
        for row in BACKWARD_DTYPES
    ],
)
def test_backward_dtype_table(xdt, wdt, ddt, outdt, rng):
    x = random_array(rng, (2, 7, 6), xdt)
    w = random_array(rng, (3, 4), wdt)
    dout = random_array(rng, (2, 5, 3), ddt)
    _, cache = cconv.conv_forward(x, w)
    dx, dw = cconv.conv_backward(dout, cache)
    assert dx.dtype == np.dtype(outdt)
    assert dw.dtype == np.dtype(outdt)
    assert dx.dtype == expected_dtype(xdt, wdt, ddt)
    edx, edw = scipy_backward(x, w, dout)
    assert max_rel_err(dx, edx) <= tol(outdt)
    assert max_rel_err(dw, edw) <= tol(outdt)


def test_backward_float32_forward_float64_dout_is_accurate(rng):
    # Promoted to float64, the gradients must be float64-accurate on the
    # float32 values of x and w.
    x = random_array(rng, (3, 20, 20), np.float32)
    w = random_array(rng, (3, 5, 5), np.float32)
    dout = random_array(rng, (3, 16, 16), np.float64)
    _, cache = cconv.conv_forward(x, w)
    dx, dw = cconv.conv_backward(dout, cache)
    assert dx.dtype == dw.dtype == np.float64
    edx, edw = scipy_backward(x, w, dout)
    assert max_rel_err(dx, edx) <= 1e-12
    assert max_rel_err(dw, edw) <= 1e-12


def test_backward_python_list_dout(rng):
    x = random_array(rng, (2, 5, 6))
    w = random_array(rng, (2, 2, 3))
    dout = random_array(rng, (2, 4, 4))
    _, cache = cconv.conv_forward(x, w)
    dx, dw = cconv.conv_backward(dout.tolist(), cache)
    edx, edw = scipy_backward(x, w, dout)
    assert max_rel_err(dx, edx) <= 1e-12
    assert max_rel_err(dw, edw) <= 1e-12


# --------------------------------------------------------------------------
# Methods: 'direct', 'fft' and 'auto' each give SciPy's answer
# --------------------------------------------------------------------------


# Forced on forward and backward, both dtypes, shapes that exercise each loop
# order of the direct kernels (wide strips with and without ragged ends,
# narrow dot products with and without the four-output blocks) and the sums
# over the pairs of a broadcast operand.
METHOD_SHAPES = [
    # (nx, nw, H, W, HH, WW)
    (1, 1, 40, 70, 3, 3),  # wide rows: full strips plus an overlapping last one
    (3, 3, 13, 17, 4, 5),  # rows narrower than one strip
    (1, 4, 20, 9, 20, 1),  # filter as tall as the image
    (4, 1, 8, 8, 1, 1),  # 1x1 filter
    (1, 1, 30, 30, 29, 30),  # filter almost the image: narrow dot products
    (5, 1, 40, 40, 3, 3),  # broadcast filter: dw summed over pairs in tasks
    (1, 6, 40, 33, 5, 7),  # broadcast image: dx summed over pairs in tasks
    (2, 2, 9, 130, 2, 67),  # narrow outputs in blocks of four plus a tail
]


@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", METHOD_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_method_matches_scipy(method, dtype, shape, rng):
    nx, nw, h, w, hh, ww = shape
    x = random_array(rng, (nx, h, w), dtype)
    k = random_array(rng, (nw, hh, ww), dtype)
    out, cache = cconv.conv_forward(x, k, method=method)
    dout = random_array(rng, out.shape, dtype)
    dx, dw = cconv.conv_backward(dout, cache, method=method)
    exp_out = scipy_forward(x, k)
    exp_dx, exp_dw = scipy_backward(x, k, dout)
    for got, exp in ((out, exp_out), (dx, exp_dx), (dw, exp_dw)):
        assert got.dtype == dtype and got.shape == exp.shape
        assert got.flags["C_CONTIGUOUS"]
        assert max_rel_err(got, exp) <= tol(dtype)


@pytest.mark.parametrize("forward", ["direct", "fft"])
@pytest.mark.parametrize("backward", ["direct", "fft"])
def test_backward_method_independent_of_forward(forward, backward, rng):
    """An FFT backward after a direct forward (no spectra cached) and vice versa."""
    x = random_array(rng, (2, 31, 29), np.float64)
    k = random_array(rng, (7, 6), np.float64)
    out, cache = cconv.conv_forward(x, k, method=forward)
    dout = random_array(rng, out.shape, np.float64)
    dx, dw = cconv.conv_backward(dout, cache, method=backward)
    exp_dx, exp_dw = scipy_backward(x, k, dout)
    assert max_rel_err(dx, exp_dx) <= 1e-12
    assert max_rel_err(dw, exp_dw) <= 1e-12


def test_fft_backward_promotes_with_dout(rng):
    """float32 spectra in the cache are not reused for a float64 dout."""
    x = random_array(rng, (1, 24, 24), np.float32)
    k = random_array(rng, (5, 5), np.float32)
    out, cache = cconv.conv_forward(x, k, method="fft")
    dout = random_array(rng, out.shape, np.float64)
    dx, dw = cconv.conv_backward(dout, cache, method="fft")
    assert dx.dtype == dw.dtype == np.float64
    exp_dx, exp_dw = scipy_backward(x, k, dout)
    assert max_rel_err(dx, exp_dx) <= 1e-12
    assert max_rel_err(dw, exp_dw) <= 1e-12


@pytest.mark.parametrize("bad", ["FFT", "spectral", None, 1])
def test_unknown_method_is_a_value_error(bad):
    with pytest.raises(ValueError, match=r"method must be one of"):
        cconv.conv_forward(np.ones((1, 4, 4)), np.ones((2, 2)), method=bad)
    _, cache = cconv.conv_forward(np.ones((1, 4, 4)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"method must be one of"):
        cconv.conv_backward(np.ones((1, 3, 3)), cache, method=bad)


# --------------------------------------------------------------------------
# Memory layouts: any layout gives the C-contiguous result; inputs untouched; outputs fresh
# --------------------------------------------------------------------------


# Which of x, w, dout get the unusual layout.
TARGETS = ["x", "w", "dout", "all"]

LAYOUT_SHAPES = [
    pytest.param((3, 9, 8), (3, 4, 3), id="equal"),
    pytest.param((1, 9, 8), (4, 2, 5), id="x1"),
    pytest.param((3, 7, 10), (3, 3), id="w2d"),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("xshape, wshape", LAYOUT_SHAPES)
def test_layout_gives_c_contiguous_result(xshape, wshape, layout, target, dtype, rng):
    x = random_array(rng, xshape, dtype)
    w = random_array(rng, wshape, dtype)
    out_c, cache_c = cconv.conv_forward(x, w)
    dout = random_array(rng, out_c.shape, dtype)
    dx_c, dw_c = cconv.conv_backward(dout, cache_c)

    lx = with_layout(x, layout) if target in ("x", "all") else x.copy()
    lw = with_layout(w, layout) if target in ("w", "all") else w.copy()
    ld = with_layout(dout, layout) if target in ("dout", "all") else dout.copy()
    before = snapshot(lx, lw, ld)

    out, cache = cconv.conv_forward(lx, lw)
    dx, dw = cconv.conv_backward(ld, cache)

    # Native dtype of the same kind and size, whatever the byte order given.
    for r in (out, dx, dw):
        assert r.dtype == np.dtype(dtype)
    # The kernels see identical values, so the results are identical.
    np.testing.assert_array_equal(out, out_c, strict=True)
    np.testing.assert_array_equal(dx, dx_c, strict=True)
    np.testing.assert_array_equal(dw, dw_c, strict=True)
    # ... and right.
    edx, edw = scipy_backward(x, w, dout)
    assert max_rel_err(out, scipy_forward(x, w)) <= tol(dtype)
    assert max_rel_err(dx, edx) <= tol(dtype)
    assert max_rel_err(dw, edw) <= tol(dtype)
    # Inputs untouched (values and writeability).
    assert_unchanged(before, (lx, lw, ld))
    if "readonly" in layout and target != "all":
        assert not {"x": lx, "w": lw, "dout": ld}[target].flags.writeable
    # Outputs are new C-contiguous arrays.
    for r in (out, dx, dw):
        assert_fresh_output(r, lx, lw, ld)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layout_with_promotion(layout, rng):
    # A layout that needs both a dtype conversion and a layout change.
    x = random_array(rng, (2, 8, 7), np.int16)
    w = random_array(rng, (2, 3, 3), np.float32)
    dout = random_array(rng, (2, 6, 5), np.float16)
    lx, lw, ld = (with_layout(a, layout) for a in (x, w, dout))
    before = snapshot(lx, lw, ld)
    out, cache = cconv.conv_forward(lx, lw)
    dx, dw = cconv.conv_backward(ld, cache)
    assert out.dtype == dx.dtype == dw.dtype == np.float64
    edx, edw = scipy_backward(x, w, dout)
    assert max_rel_err(out, scipy_forward(x, w)) <= 1e-12
    assert max_rel_err(dx, edx) <= 1e-12
    assert max_rel_err(dw, edw) <= 1e-12
    assert_unchanged(before, (lx, lw, ld))
    for r in (out, dx, dw):
        assert_fresh_output(r, lx, lw, ld)


def test_strided_views_of_a_shared_buffer(rng):
    # x, w and dout all views into one buffer: the outputs must not alias it
    # and it must come back unchanged.
    buf = rng.standard_normal((4, 20, 20))
    x = buf[:, ::2, ::3]  # (4, 10, 7)
    w = buf[::-1, 1:4, 19:15:-1]  # (4, 3, 4), negative strides
    dout = buf[:, 10:18, 12:16]  # (4, 8, 4), overlapping x
    before = buf.copy()
    out, cache = cconv.conv_forward(x, w)
    dx, dw = cconv.conv_backward(dout, cache)
    np.testing.assert_array_equal(buf, before)
    for r in (out, dx, dw):
        assert_fresh_output(r, buf)
    edx, edw = scipy_backward(x, w, dout)
    assert max_rel_err(out, scipy_forward(x, w)) <= 1e-12
    assert max_rel_err(dx, edx) <= 1e-12
    assert max_rel_err(dw, edw) <= 1e-12


def test_transposed_image_axes(rng):
    # x built as (N, W, H) and handed over as .transpose(0, 2, 1).
    xt = rng.standard_normal((2, 11, 6))
    x = xt.transpose(0, 2, 1)  # (2, 6, 11), non-contiguous
    w = np.asfortranarray(rng.standard_normal((4, 3)))
    out, cache = cconv.conv_forward(x, w)
    assert max_rel_err(out, scipy_forward(x, w)) <= 1e-12
    dout = rng.standard_normal(out.shape)[:, ::-1, :]
    dx, dw = cconv.conv_backward(dout, cache)
    edx, edw = scipy_backward(x, w, dout)
    assert max_rel_err(dx, edx) <= 1e-12
    assert max_rel_err(dw, edw) <= 1e-12
    assert dx.flags["C_CONTIGUOUS"] and dw.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("wshape", [(3, 3), (1, 3, 3), (2, 3, 3), (1, 1), (2, 1, 1), (6, 6)])
def test_c_contiguous_float64_outputs_do_not_alias_inputs(wshape, rng):
    # The easiest case to alias by accident: inputs already in the kernel's
    # dtype and layout, so no conversion copy is made.
    x = rng.standard_normal((2, 6, 6))
    w = rng.standard_normal(wshape)
    out, cache = cconv.conv_forward(x, w)
    dout = rng.standard_normal(out.shape)
    dx, dw = cconv.conv_backward(dout, cache)
    for r in (out, dx, dw):
        assert_fresh_output(r, x, w, dout)
    assert not np.shares_memory(dx, dw)
    assert not np.shares_memory(out, dx) and not np.shares_memory(out, dw)
    # Writing into the outputs must not disturb the inputs or a later call.
    xs, ws, ds = snapshot(x, w, dout)
    out[...] = 7.0
    dx[...] = 7.0
    dw[...] = 7.0
    assert_unchanged((xs, ws, ds), (x, w, dout))
    dx2, dw2 = cconv.conv_backward(dout, cache)
    edx, edw = scipy_backward(x, w, dout)
    assert max_rel_err(dx2, edx) <= 1e-12
    assert max_rel_err(dw2, edw) <= 1e-12


# --------------------------------------------------------------------------
# Bad input raises the right exception naming the argument
# --------------------------------------------------------------------------


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


# conv_forward / conv_backward: dtypes
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
# NaN and Inf stay where scipy.signal.correlate2d puts them
# --------------------------------------------------------------------------


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
    assert np.isfinite(expected).any()
    assert_same_specials(out, expected, tol(dtype))

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


def test_large_filter_fft_keeps_one_nan_local():
    # The case: 128x140 float64, one NaN, a 60x60 filter ('auto' picks the FFT).
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 128, 140))
    x[0, 70, 30] = np.nan
    w = rng.standard_normal((60, 60))
    for method in METHODS:
        out, cache = cconv.conv_forward(x, w, method=method)
        expected = quiet(scipy_forward, x, w)
        assert 0 < np.isnan(expected).sum() < expected.size // 2
        assert_same_specials(out, expected, specials_tol(np.float64), method)


def test_inf_signs_and_inf_meeting_zero_on_every_method():
    # +Inf times a negative tap is -Inf, times zero NaN; +Inf and -Inf in one window: NaN.
    x = np.ones((1, 8, 9))
    x[0, 2, 2] = np.inf
    x[0, 5, 6] = -np.inf
    w = np.array([[1.0, -2.0], [0.0, 3.0]])
    expected = quiet(scipy_forward, x, w)
    assert np.isposinf(expected).any() and np.isneginf(expected).any() and np.isnan(expected).any()
    for method in METHODS:
        for dtype in (np.float64, np.float32):
            out, _ = cconv.conv_forward(x.astype(dtype), w.astype(dtype), method=method)
            assert_same_specials(out, expected, specials_tol(dtype), f"{method} {np.dtype(dtype).name}")


@pytest.mark.parametrize("method", METHODS)
def test_nan_in_dout_stays_local(method):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 40, 41))
    w = rng.standard_normal((25, 25))
    out, cache = cconv.conv_forward(x, w, method=method)
    dout = rng.standard_normal(out.shape)
    dout[1, 3, 4] = np.nan
    dx, dw = cconv.conv_backward(dout, cache, method=method)
    edx, edw = quiet(scipy_backward, x, w, dout)
    assert np.isfinite(dx[0]).all() and 0 < np.isnan(dx[1]).sum() < dx[1].size
    assert_same_specials(dx, edx, specials_tol(np.float64), "dx")
    assert_same_specials(dw, edw, specials_tol(np.float64), "dw")


@pytest.mark.parametrize("method", METHODS)
def test_eye_found_by_conv_forward_beside_a_nan_block(photograph, method):
    from cconv import demo

    noisy, template = photograph
    out, _ = cconv.conv_forward(noisy[None], template, method=method)
    expected = quiet(scipy_forward, noisy[None], template)[0]
    assert_same_specials(out[0], expected, specials_tol(np.float64), method)
    y, x = np.unravel_index(np.nanargmax(out[0]), out[0].shape)
    assert (y, x) == demo.DEFAULT_BOX[:2]


# --------------------------------------------------------------------------
# Gradients against finite differences (cconv.testing.numerical_gradient)
# --------------------------------------------------------------------------


# (xshape, wshape), one per broadcasting case.
BROADCAST_CASES = {
    "w2d": ((3, 5, 6), (3, 2)),
    "w1": ((3, 5, 6), (1, 3, 2)),
    "x1": ((1, 5, 6), (4, 3, 2)),
    "equal": ((2, 6, 5), (2, 2, 3)),
    "one": ((1, 4, 4), (1, 4, 4)),
    "one_w2d": ((1, 6, 4), (1, 1)),
}


def _forward_out(x, w):
    return cconv.conv_forward(x, w)[0]


@pytest.mark.parametrize("kind", list(BROADCAST_CASES))
def test_gradients_match_finite_differences(kind, rng):
    xshape, wshape = BROADCAST_CASES[kind]
    x = rng.standard_normal(xshape)
    w = rng.standard_normal(wshape)
    out, cache = cconv.conv_forward(x, w)
    dout = rng.standard_normal(out.shape)
    dx, dw = cconv.conv_backward(dout, cache)

    dx_num = numerical_gradient(lambda v: _forward_out(v, w), x, dout, h=1e-5)
    dw_num = numerical_gradient(lambda v: _forward_out(x, v), w, dout, h=1e-5)

    assert dx_num.shape == dx.shape and dw_num.shape == dw.shape
    # The layer is linear, so central differences only carry rounding error
    # (about eps * |out| / h ~ 1e-10 here): the normwise error is tiny.
    assert max_rel_err(dx, dx_num) <= 1e-7
    assert max_rel_err(dw, dw_num) <= 1e-7


@pytest.mark.parametrize("kind", list(BROADCAST_CASES))
def test_gradients_exact_with_dyadic_data(kind, rng):
    # Small-integer data and a power-of-two step: x +- h, every product and
    # every sum is exact in float64, so the central difference of this linear
    # layer equals the true gradient exactly, and so must conv_backward.  This
    # lets the notebook's elementwise rel_error be held to (almost) zero.
    xshape, wshape = BROADCAST_CASES[kind]
    x = rng.integers(-4, 5, size=xshape).astype(np.float64)
    w = rng.integers(-4, 5, size=wshape).astype(np.float64)
    out, cache = cconv.conv_forward(x, w)
    dout = rng.integers(-4, 5, size=out.shape).astype(np.float64)
    dx, dw = cconv.conv_backward(dout, cache)

    h = 2.0**-8
    dx_num = numerical_gradient(lambda v: _forward_out(v, w), x, dout, h=h)
    dw_num = numerical_gradient(lambda v: _forward_out(x, v), w, dout, h=h)

    assert rel_error(dx, dx_num) <= 1e-12
    assert rel_error(dw, dw_num) <= 1e-12


def test_reference_gradients_match_finite_differences(rng):
    # Sanity check of the SciPy references the rest of the suite trusts.
    x = rng.standard_normal((1, 5, 6))
    w = rng.standard_normal((3, 2, 3))
    dout = rng.standard_normal((3, 4, 4))
    edx, edw = scipy_backward(x, w, dout)
    dx_num = numerical_gradient(lambda v: scipy_forward(v, w), x, dout)
    dw_num = numerical_gradient(lambda v: scipy_forward(x, v), w, dout)
    assert max_rel_err(edx, dx_num) <= 1e-7
    assert max_rel_err(edw, dw_num) <= 1e-7


# --------------------------------------------------------------------------
# Hypothesis properties: random shapes, dtypes, broadcasting and layouts
# --------------------------------------------------------------------------


SETTINGS = settings(max_examples=60, deadline=None)

DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int16, np.uint8, np.bool_]
KINDS = ["w2d", "w1", "x1", "equal"]


@st.composite
def conv_cases(draw):
    h, wd, hh, ww = draw(image_and_filter(largest=12))
    n = draw(st.integers(0, 3))
    kind = draw(st.sampled_from(KINDS))
    if kind == "w2d":
        xshape, wshape, nout = (n, h, wd), (hh, ww), n
    elif kind == "w1":
        xshape, wshape, nout = (n, h, wd), (1, hh, ww), n
    elif kind == "x1":
        xshape, wshape, nout = (1, h, wd), (n, hh, ww), n
    else:
        xshape, wshape, nout = (n, h, wd), (n, hh, ww), n
    return {
        "xshape": xshape,
        "wshape": wshape,
        "oshape": (nout, h - hh + 1, wd - ww + 1),
        "dtypes": tuple(draw(st.sampled_from(DTYPES)) for _ in range(3)),
        "layouts": tuple(draw(st.sampled_from(LAYOUTS)) for _ in range(3)),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


@SETTINGS
@given(case=conv_cases())
def test_forward_and_backward_match_scipy(case):
    rng = np.random.default_rng(case["seed"])
    xdt, wdt, ddt = case["dtypes"]
    x = random_array(rng, case["xshape"], xdt)
    w = random_array(rng, case["wshape"], wdt)
    dout = random_array(rng, case["oshape"], ddt)
    lx, lw, ld = (with_layout(a, lay) for a, lay in zip((x, w, dout), case["layouts"]))
    before = snapshot(lx, lw, ld)

    out, cache = cconv.conv_forward(lx, lw)
    fdt = expected_dtype(xdt, wdt)
    assert out.shape == case["oshape"]
    assert out.dtype == fdt
    assert max_rel_err(out, scipy_forward(x, w)) <= tol(fdt)

    dx, dw = cconv.conv_backward(ld, cache)
    bdt = expected_dtype(xdt, wdt, ddt)
    assert dx.shape == x.shape and dw.shape == w.shape
    assert dx.dtype == bdt and dw.dtype == bdt
    edx, edw = scipy_backward(x, w, dout)
    assert max_rel_err(dx, edx) <= tol(bdt)
    assert max_rel_err(dw, edw) <= tol(bdt)

    assert_unchanged(before, (lx, lw, ld))
    for r in (out, dx, dw):
        assert_fresh_output(r, lx, lw, ld)


@st.composite
def small_float64_cases(draw):
    case = draw(conv_cases())
    case["dtypes"] = (np.float64,) * 3
    return case


@SETTINGS
@given(case=small_float64_cases())
def test_matches_numpy_loops(case):
    rng = np.random.default_rng(case["seed"])
    x = random_array(rng, case["xshape"])
    w = random_array(rng, case["wshape"])
    dout = random_array(rng, case["oshape"])
    lx, lw, ld = (with_layout(a, lay) for a, lay in zip((x, w, dout), case["layouts"]))
    out, cache = cconv.conv_forward(lx, lw)
    dx, dw = cconv.conv_backward(ld, cache)
    edx, edw = loop_backward(x, w, dout)
    assert max_rel_err(out, loop_forward(x, w)) <= 1e-12
    assert max_rel_err(dx, edx) <= 1e-12
    assert max_rel_err(dw, edw) <= 1e-12


@SETTINGS
@given(case=small_float64_cases(), a=st.floats(-4, 4), b=st.floats(-4, 4))
def test_backward_is_linear_in_dout(case, a, b):
    # conv_backward(a*d1 + b*d2) = a*conv_backward(d1) + b*conv_backward(d2),
    # checked normwise against the scale of the individual terms.
    rng = np.random.default_rng(case["seed"])
    x = random_array(rng, case["xshape"])
    w = random_array(rng, case["wshape"])
    d1 = random_array(rng, case["oshape"])
    d2 = random_array(rng, case["oshape"])
    _, cache = cconv.conv_forward(x, w)
    dx1, dw1 = cconv.conv_backward(d1, cache)
    dx2, dw2 = cconv.conv_backward(d2, cache)
    dx, dw = cconv.conv_backward(a * d1 + b * d2, cache)
    for g, g1, g2 in ((dx, dx1, dx2), (dw, dw1, dw2)):
        scale = max(1.0, float(np.max(np.abs(g1), initial=0)), float(np.max(np.abs(g2), initial=0)))
        err = float(np.max(np.abs(g - (a * g1 + b * g2)), initial=0))
        assert err <= 1e-12 * scale * (abs(a) + abs(b) + 1)
    # and the combination itself is right
    edx, edw = scipy_backward(x, w, a * d1 + b * d2)
    assert max_rel_err(dx, edx) <= 1e-12
    assert max_rel_err(dw, edw) <= 1e-12


# --------------------------------------------------------------------------
# Memory: calls that would need more than the machine has are refused up front
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_huge_declared_image_is_refused_before_allocating(method, dtype):
    # 320 GB of float64 as the kernels would need it, declared with zero
    # strides: refused, not attempted (MemoryError exactly: NumPy's
    # _ArrayMemoryError would mean it tried), quickly and before allocating.
    x = np.broadcast_to(dtype(1), (1, 200_000, 200_000))
    start = time.perf_counter()
    tracemalloc.start()
    try:
        with pytest.raises(MemoryError, match=r"x\(1, 200000, 200000\).*GiB") as info:
            cconv.conv_forward(x, np.ones((3, 3), dtype), method=method)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 1.0
    assert type(info.value) is MemoryError
    assert peak < 64 * 2**20, f"allocated {peak / 2**20:.0f} MiB before refusing"


def _traced_peak(fn, between=None):
    """(result, peak bytes traced while ``fn`` ran), in a new Python thread: its
    per-thread scratch space starts empty, so the call allocates all it uses.

    ``fn`` runs once untraced first, in a thread of its own, so that one-time
    Python state is not counted as the call's workspace: the caches a first
    call fills and, on Python 3.10, the frame objects each function keeps for
    reuse (some 10 KB along the engine's call chain).  ``between``, if given,
    is called after that first run.
    """
    import threading

    box = {}

    def run(traced):
        if traced:
            tracemalloc.start()
        try:
            box["result"] = fn()
            if traced:
                box["peak"] = tracemalloc.get_traced_memory()[1]
        finally:
            if traced:
                tracemalloc.stop()

    for traced in (False, True):
        t = threading.Thread(target=run, args=(traced,))
        t.start()
        t.join()
        if between is not None and not traced:
            between()
    return box["result"], box["peak"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xshape, wshape", [((3, 120, 130), (5, 7)), ((1, 200, 190), (4, 31, 29)),
                                            ((6, 64, 64), (6, 9, 9)), ((2, 90, 80), (1, 60, 50))])
def test_plan_workspace_bounds_the_traced_peak(method, dtype, xshape, wshape, rng):
    # The memory check reads the plan's workspace: it must bound what the
    # passes really allocate (here the inputs need no copy), give or take a
    # few Python objects and the buffers of getbufsize() elements per operand
    # that NumPy before 2.3 takes for a reduction over a strided axis (dw).
    from cconv import _engine

    x = random_array(rng, xshape, dtype)
    w = random_array(rng, wshape, dtype)
    slack = 4096 + 2 * np.getbufsize() * x.itemsize
    w3 = w.reshape((1,) * (3 - w.ndim) + w.shape)
    fwd = _engine.plan(method, x.shape[0], w3.shape[0], x.shape[1:], w3.shape[1:], x.itemsize)
    (out, cache), peak = _traced_peak(lambda: cconv.conv_forward(x, w, method=method))
    assert peak <= fwd.workspace + slack, (fwd, peak)
    dout = random_array(rng, out.shape, dtype)
    bwd = _engine.plan(method, x.shape[0], w3.shape[0], x.shape[1:], w3.shape[1:], x.itemsize, backward=True,
                       cached=cache.spectra_in(np.dtype(dtype)) is not None)
    _, peak = _traced_peak(lambda: cconv.conv_backward(dout, cache, method=method))
    assert peak <= bwd.workspace + slack, (bwd, peak)


def test_restoring_nan_checks_its_own_memory(monkeypatch, rng):
    # The plan's workspace holds on finite data; restoring many NaN after the
    # FFTs allocates more, and checks that itself before it does.
    from cconv import _validation

    x = random_array(rng, (2, 150, 160), np.float64)
    x[rng.random(x.shape) < 0.05] = np.nan
    w = random_array(rng, (21, 19), np.float64)
    asked = []
    real = _validation.check_memory

    def recorded(nbytes, what):
        asked.append((nbytes, what()))
        return real(nbytes, what)

    monkeypatch.setattr("cconv._nonfinite.check_memory", recorded)
    monkeypatch.setattr("cconv._fft.check_memory", recorded)
    (_, cache), peak = _traced_peak(lambda: cconv.conv_forward(x, w, method="fft"), between=asked.clear)
    from cconv import _engine

    plan = _engine.plan("fft", 2, 1, x.shape[1:], w.shape, 8)
    assert any("NaN" in what for _, what in asked)
    assert peak <= plan.workspace + sum(n for n, _ in asked), (plan, peak, asked)


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_budget_is_checked_in_both_passes(monkeypatch, method):
    x = np.zeros((40, 1024, 1024))  # 320 MiB
    w = np.ones((3, 3))
    out, cache = cconv.conv_forward(x, w, method="direct")
    # Pretend only 300 MiB are free: each pass allocates at least an output
    # as large as x, so both must be refused, and a small call still runs.
    monkeypatch.setattr(_validation, "_available_bytes", lambda: 300 * 2**20)
    with pytest.raises(MemoryError, match=r"conv_forward\(x\(40, 1024, 1024\)"):
        cconv.conv_forward(x, w, method=method)
    with pytest.raises(MemoryError, match=r"conv_backward\(dout\(40, 1022, 1022\)"):
        cconv.conv_backward(out, cache, method=method)
    small, _ = cconv.conv_forward(np.ones((1, 64, 64)), w, method=method)
    assert small.shape == (1, 62, 62)


# --------------------------------------------------------------------------
# float32 on a large dynamic range
# --------------------------------------------------------------------------


# A 256x256 image and a 60x60 filter, inputs of a large dynamic range
# (1e6 * randn + randn) or of mixed magnitudes (1e-3 .. 1e3): forward, dx and
# dw within 1e-5 normwise of float64 on the same float32 inputs.
H = W = 256
HH = WW = 60
F32_TOL = 1e-5


def _dynamic(rng, shape):
    """Values like 1e6 * randn + randn: seven digits of float32 all in use."""
    return (1e6 * rng.standard_normal(shape) + rng.standard_normal(shape)).astype(np.float32)


def _mixed(rng, shape):
    """Random signs, magnitudes spread log-uniformly over 1e-3 .. 1e3."""
    sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return (sign * 10.0 ** rng.uniform(-3, 3, size=shape)).astype(np.float32)


@pytest.fixture(scope="module")
def precision_cases():
    """Inputs (float32) and their float64 references, computed once per kind."""
    cases = {}
    for seed, (kind, make) in enumerate((("dynamic", _dynamic), ("mixed", _mixed))):
        rng = np.random.default_rng(9000 + seed)
        x = make(rng, (1, H, W))
        w = make(rng, (HH, WW))
        dout = make(rng, (1, H - HH + 1, W - WW + 1))
        # The reference sees exactly the float32-rounded values, in float64.
        out64 = scipy_forward(x, w)
        dx64, dw64 = scipy_backward(x, w, dout)
        cases[kind] = (x, w, dout, out64, dx64, dw64)
    return cases


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("kind", ["dynamic", "mixed"])
def test_float32_precision_large_dynamic_range(precision_cases, kind, method):
    x, w, dout, out64, dx64, dw64 = precision_cases[kind]
    out, cache = cconv.conv_forward(x, w, method=method)
    dx, dw = cconv.conv_backward(dout, cache, method=method)
    errors = {}
    for name, got, expected in (("out", out, out64), ("dx", dx, dx64), ("dw", dw, dw64)):
        assert got.dtype == np.float32, f"{name} computed in {got.dtype}"
        errors[name] = max_rel_err(got, expected)
    print(f"\n{kind}/{method}: " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    bad = {k: v for k, v in errors.items() if not v <= F32_TOL}
    assert not bad, f"float32 {kind} inputs, method={method}: normwise errors {bad} > {F32_TOL}"
