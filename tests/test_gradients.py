"""Finite-difference gradient checks of the 3-D layer (cconv.testing: test_testing.py)."""

from __future__ import annotations

import numpy as np
import pytest

import cconv
from cconv.testing import numerical_gradient, rel_error

from cases import max_rel_err
from reference import scipy_backward, scipy_forward

# --------------------------------------------------------------------------
# Gradient checks of the layer: numerical_gradient of conv_forward vs conv_backward
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
