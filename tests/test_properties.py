"""Hypothesis property tests: random shapes, dtypes, broadcasting and layouts vs SciPy."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import cconv

from cases import (LAYOUTS, assert_fresh_output, assert_unchanged, expected_dtype, max_rel_err,
                   random_array, snapshot, tol, with_layout)
from reference import loop_backward, loop_forward, scipy_backward, scipy_forward

SETTINGS = settings(max_examples=60, deadline=None)

DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int16, np.uint8, np.bool_]
KINDS = ["w2d", "w1", "x1", "equal"]


@st.composite
def conv_cases(draw):
    h = draw(st.integers(1, 12))
    wd = draw(st.integers(1, 12))
    hh = draw(st.integers(1, h))
    ww = draw(st.integers(1, wd))
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
