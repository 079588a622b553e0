"""Memory layouts: any layout gives the C-contiguous result; inputs untouched; outputs fresh."""

from __future__ import annotations

import numpy as np
import pytest

import cconv

from cases import (LAYOUTS, assert_fresh_output, assert_unchanged, max_rel_err, random_array,
                   snapshot, tol, with_layout)
from reference import scipy_backward, scipy_forward


# Which of x, w, dout get the unusual layout.
TARGETS = ["x", "w", "dout", "all"]

SHAPES = [
    pytest.param((3, 9, 8), (3, 4, 3), id="equal"),
    pytest.param((1, 9, 8), (4, 2, 5), id="x1"),
    pytest.param((3, 7, 10), (3, 3), id="w2d"),
]


def _run(x, w, dout):
    out, cache = cconv.conv_forward(x, w)
    dx, dw = cconv.conv_backward(dout, cache)
    return out, dx, dw


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("xshape, wshape", SHAPES)
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
