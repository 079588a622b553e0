"""Hardening: float32 precision on a large dynamic range.

float32 on a 256x256 image with a 60x60 filter, inputs of a large dynamic
range (1e6 * randn + randn) or of mixed magnitudes (1e-3 .. 1e3): forward,
dx and dw within 1e-5 normwise of float64 on the same float32 inputs.  The
references are SciPy's (tests/reference.py).  The errors are printed (``-s``).
"""

from __future__ import annotations

import numpy as np
import pytest

import cconv

from cases import max_rel_err
from reference import scipy_backward, scipy_forward


# --------------------------------------------------------------------------
# float32 precision on a large dynamic range
# --------------------------------------------------------------------------

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
