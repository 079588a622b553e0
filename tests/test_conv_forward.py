"""conv_forward against SciPy (many shapes) and against naive NumPy loops (small shapes)."""

from __future__ import annotations

import random

import numpy as np
import pytest

import cconv

from cases import expected_dtype, max_rel_err, random_array, tol
from reference import loop_forward, scipy_forward

# --------------------------------------------------------------------------
# Shape cases (shared in spirit with test_conv_backward.py; written out here
# because test modules cannot import each other under --import-mode=importlib)
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


SPATIAL = _FIXED_SPATIAL + _random_spatial(8, seed=1234)

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


CASES = [
    pytest.param(kind, sp, id=f"{kind}-{sp[0]}x{sp[1]}-f{sp[2]}x{sp[3]}")
    for kind in BROADCAST
    for sp in SPATIAL
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kind, spatial", CASES)
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


SMALL_CASES = [
    pytest.param(kind, sp, id=f"{kind}-{sp[0]}x{sp[1]}-f{sp[2]}x{sp[3]}")
    for kind in BROADCAST
    for sp in [(1, 1, 1, 1), (4, 5, 2, 3), (5, 4, 5, 1), (6, 6, 3, 3), (3, 7, 3, 7)]
]


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


# --------------------------------------------------------------------------
# dtype table
# --------------------------------------------------------------------------

F16, F32, F64 = np.float16, np.float32, np.float64
DTYPE_TABLE = [
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
    [pytest.param(*row, id=f"{np.dtype(row[0]).name}-{np.dtype(row[1]).name}") for row in DTYPE_TABLE],
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
