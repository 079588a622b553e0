"""Fuzz of the 3-D layer: conv_forward and conv_backward.

Any input (see ``strategies.py``) either gives SciPy's result or is refused
as ``oracle.py`` works out; NaN and Inf anywhere in x, w and dout stay where
SciPy puts them, on every method.
"""

from __future__ import annotations

import numpy as np
import pytest
from cases import METHODS, assert_same_specials, expected_dtype, max_rel_err, quiet, restoring_by, specials_tol, tol
from hypothesis import event, given
from hypothesis import strategies as st
from reference import scipy_backward, scipy_forward

import cconv
from fuzz.oracle import (
    HUGE_BYTES,
    Expect,
    Guard,
    amax,
    attempt,
    call_as_expected,
    convert,
    declared_bytes,
    forward_expect,
)
from fuzz.strategies import (
    BAD_METHODS,
    FUZZ,
    JUNK_CACHES,
    REAL_DTYPES,
    VALID_DTYPES,
    VALID_FORMS,
    Operand,
    conv_shapes,
    douts,
    huge_operand,
    junk_cache,
    operands,
    sprinkled,
    valid_conv_shapes,
)

# --------------------------------------------------------------------------
# conv_forward
# --------------------------------------------------------------------------


@st.composite
def forward_case(draw):
    kind = draw(st.sampled_from(("valid",) * 6 + ("any",) * 6 + ("huge",)))
    if kind == "valid":
        xs, ws = draw(valid_conv_shapes())
        return (draw(operands(xs, dtypes=VALID_DTYPES, forms=VALID_FORMS, keep_shape=True)),
                draw(operands(ws, dtypes=VALID_DTYPES, forms=VALID_FORMS, keep_shape=True)))
    if kind == "huge":
        x = draw(huge_operand())
        hh, ww = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        wshape = draw(st.sampled_from(((hh, ww), (1, hh, ww), (x.value.shape[0], hh, ww))))
        w = draw(operands(wshape, dtypes=REAL_DTYPES, forms=("array",)))
        return x, w
    xs, ws = draw(conv_shapes())
    return draw(operands(xs)), draw(operands(ws))


def _run_forward(x: Operand, w: Operand, method) -> None:
    expect = Expect()
    if method not in METHODS:
        expect.add(ValueError, "method")
    xa = convert(x.value, "x", expect)
    wa = convert(w.value, "w", expect)
    forward_expect(xa, wa, expect=expect)
    itemsize = 4 if all(a is not None and a.dtype.kind == "f" and a.dtype.itemsize <= 4
                        for a in (xa, wa)) else 8
    huge = [a for a in (xa, wa) if a is not None and declared_bytes(a, itemsize) >= HUGE_BYTES]
    if huge:
        expect.huge = str(huge[0].shape)
    guard = Guard(x, w)
    result = call_as_expected(expect, guard, cconv.conv_forward, x.value, w.value, method=method)
    if result is None:
        return
    out, cache = result
    dtype = expected_dtype(xa.dtype, wa.dtype)
    assert out.dtype == dtype, f"computed in {out.dtype}, expected {dtype}"
    guard.check_fresh(out)
    expected = scipy_forward(xa, wa)
    err = max_rel_err(out, expected, amax(xa) * amax(wa))
    assert err <= tol(dtype), f"error {err:.3g} > {tol(dtype)} ({dtype}, method={method})"
    assert isinstance(cache, cconv.ConvCache)
    event(f"forward ok {dtype} {method}")


@pytest.mark.parametrize("method", METHODS)
@FUZZ
@given(case=forward_case())
def test_fuzz_conv_forward(method, case):
    _run_forward(*case, method)


@FUZZ
@given(case=forward_case(), method=st.sampled_from(METHODS + BAD_METHODS))
def test_fuzz_conv_forward_any_method(case, method):
    _run_forward(*case, method)


def test_shapes_overflowing_int64_cannot_be_created():
    # Why the fuzz skips them: NumPy itself refuses.
    with pytest.raises(ValueError):
        np.broadcast_to(np.float64(1), (2**32, 2**32, 2**32))


# --------------------------------------------------------------------------
# conv_backward
# --------------------------------------------------------------------------


@st.composite
def backward_case(draw):
    xs, ws = draw(valid_conv_shapes())
    x = draw(operands(xs, dtypes=VALID_DTYPES, forms=VALID_FORMS, keep_shape=True))
    w = draw(operands(ws, dtypes=VALID_DTYPES, forms=VALID_FORMS, keep_shape=True))
    fmethod = draw(st.sampled_from(METHODS))
    n = ws[0] if len(ws) == 3 and xs[0] == 1 else xs[0]
    out_shape = (n, xs[1] - ws[-2] + 1, xs[2] - ws[-1] + 1)
    dout = draw(douts(out_shape, (
        out_shape[1:], out_shape + (1,), (out_shape[0] + 1,) + out_shape[1:],
        (out_shape[0], out_shape[1] + 1, out_shape[2]),
        (out_shape[0], out_shape[1], out_shape[2] + 1), (), (1,) + out_shape[1:],
    )))
    ckind = draw(st.sampled_from(("real",) * 8 + ("other", "junk")))
    junk = draw(st.sampled_from(JUNK_CACHES + ("fake",)))
    method = draw(st.sampled_from(METHODS * 3 + BAD_METHODS[:2]))
    return x, w, fmethod, dout, ckind, junk, method


class _FakeCache:
    """Duck-types a cache: has x, w and out_shape, but is no ConvCache."""

    def __init__(self, x, w):
        self.x, self.w = x, w
        self.out_shape = (x.shape[0], x.shape[1] - w.shape[1] + 1, x.shape[2] - w.shape[2] + 1)
        self._x, self._w, self._w_ndim, self._spectra = x, w, 3, None


@FUZZ
@given(case=backward_case())
def test_fuzz_conv_backward(case):
    x, w, fmethod, dout, ckind, junk, method = case
    guard = Guard(x, w, dout)
    fwd, exc, _ = attempt(cconv.conv_forward, x.value, w.value, method=fmethod)
    assert exc is None, f"valid forward call raised {type(exc).__name__}: {exc}"
    out, cache = fwd
    xa, wa = np.asarray(x.value), np.asarray(w.value)  # what the forward pass saw
    if ckind == "other":  # a real cache, of another (valid) forward call
        xa = np.ones((2, 6, 5), np.float32)
        wa = np.full((3, 2), 0.5)
        cache = cconv.conv_forward(xa, wa)[1]
    elif ckind == "junk":
        fake = _FakeCache(np.array(xa, dtype=np.float64).reshape((-1,) + xa.shape[-2:]),
                          np.array(wa, dtype=np.float64).reshape((-1,) + wa.shape[-2:]))
        cache = junk_cache(junk, xa, wa, fake=fake)

    expect = Expect()
    if method not in METHODS:
        expect.add(ValueError, "method")
    if not isinstance(cache, cconv.ConvCache):
        expect.add(ValueError, "cache")
    da = convert(dout.value, "dout", expect)
    w3 = wa if wa.ndim == 3 else wa[np.newaxis]
    nx, nw = xa.shape[0], w3.shape[0]
    out_shape = (nw if nx == 1 else nx, xa.shape[1] - w3.shape[1] + 1, xa.shape[2] - w3.shape[2] + 1)
    if da is not None and da.shape != out_shape:
        expect.add(ValueError, "dout")

    result = call_as_expected(expect, guard, cconv.conv_backward, dout.value, cache, method=method)
    if result is None:
        return
    dx, dw = result
    dtype = expected_dtype(expected_dtype(xa.dtype, wa.dtype), expected_dtype(da.dtype))
    assert dx.dtype == dtype and dw.dtype == dtype, (dx.dtype, dw.dtype, dtype)
    assert dx.shape == xa.shape and dw.shape == wa.shape
    guard.check_fresh(dx, dw)
    for r in (dx, dw):
        assert not np.shares_memory(r, out)
    edx, edw = scipy_backward(xa, wa, da)
    limit = tol(dtype)
    err_dx = max_rel_err(dx, edx, amax(da) * amax(wa))
    err_dw = max_rel_err(dw, edw, amax(da) * amax(xa))
    assert err_dx <= limit, f"dx error {err_dx:.3g} > {limit} ({dtype}, {fmethod} -> {method})"
    assert err_dw <= limit, f"dw error {err_dw:.3g} > {limit} ({dtype}, {fmethod} -> {method})"
    # The cache is not consumed or changed by a backward pass.
    again = cconv.conv_backward(dout.value, cache, method=method)
    assert np.array_equal(again[0], dx) and np.array_equal(again[1], dw)
    event(f"backward ok {dtype} {fmethod}->{method}")


# --------------------------------------------------------------------------
# NaN and Inf, against SciPy
# --------------------------------------------------------------------------


@st.composite
def layer_case(draw):
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    h, w = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    hh, ww = draw(st.integers(1, h)), draw(st.integers(1, w))
    form = draw(st.sampled_from(["shared", "shared3", "pairs", "templates"]))
    n = draw(st.integers(1, 3))
    nx, wshape = {
        "shared": (n, (hh, ww)),
        "shared3": (n, (1, hh, ww)),
        "pairs": (n, (n, hh, ww)),
        "templates": (1, (n, hh, ww)),
    }[form]
    x = draw(sprinkled((nx, h, w), dtype))
    k = draw(sprinkled(wshape, dtype, most=2))
    return x, k


@pytest.mark.parametrize("strategy", ["scatter", "fft", "either"])
@FUZZ
@given(case=layer_case(), method=st.sampled_from(METHODS), data=st.data())
def test_fuzz_nan_and_inf_like_scipy(strategy, case, method, data):
    x, w = case
    with restoring_by(strategy):
        out, cache = cconv.conv_forward(x, w, method=method)
    assert_same_specials(out, quiet(scipy_forward, x, w), specials_tol(x.dtype), f"out ({method})", (x, w))
    dout = data.draw(sprinkled(out.shape, x.dtype, most=3))
    with restoring_by(strategy):
        dx, dw = cconv.conv_backward(dout, cache, method=method)
    edx, edw = quiet(scipy_backward, x, w, dout)
    assert_same_specials(dx, edx, specials_tol(x.dtype), f"dx ({method})", (dout, w))
    assert_same_specials(dw, edw, specials_tol(x.dtype), f"dw ({method})", (x, dout))
