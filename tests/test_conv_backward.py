"""conv_backward against SciPy (many shapes) and against naive NumPy loops (small shapes)."""

from __future__ import annotations

import random

import numpy as np
import pytest

import cconv

from cases import expected_dtype, max_rel_err, random_array, tol
from reference import loop_backward, scipy_backward

# (H, W, HH, WW): see test_conv_forward.py for the reasoning behind the cases.
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


SPATIAL = _FIXED_SPATIAL + _random_spatial(8, seed=4321)

BROADCAST = {
    "w2d": (3, None),
    "w1": (3, 1),
    "x1": (1, 4),
    "equal": (3, 3),
    "one": (1, 1),
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


SMALL_CASES = [
    pytest.param(kind, sp, id=f"{kind}-{sp[0]}x{sp[1]}-f{sp[2]}x{sp[3]}")
    for kind in BROADCAST
    for sp in [(1, 1, 1, 1), (4, 5, 2, 3), (5, 4, 5, 1), (6, 6, 3, 3), (3, 7, 3, 7)]
]


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


# --------------------------------------------------------------------------
# dtype table: result dtype is the promotion of x, w and dout
# --------------------------------------------------------------------------

F16, F32, F64 = np.float16, np.float32, np.float64
DTYPE_TABLE = [
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
        for row in DTYPE_TABLE
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
