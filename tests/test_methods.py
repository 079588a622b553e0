"""Every way cconv can compute a pass gives SciPy's answer.

``method='direct'`` and ``method='fft'`` are forced on forward and backward
for every broadcasting case, both dtypes, and shapes that exercise each loop
order of the direct kernels (wide strips with and without ragged ends, narrow
dot products with and without the four-output blocks).
"""

from __future__ import annotations

import numpy as np
import pytest

import cconv

from cases import max_rel_err, random_array, tol
from reference import scipy_backward, scipy_forward

SHAPES = [
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
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
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
