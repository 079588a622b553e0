"""Fuzz of cconv.testing: rel_error and numerical_gradient.

``rel_error`` against its definition entry by entry (``reference.rel_error``),
infinities and NaN included; ``numerical_gradient`` of the 3-D layer (tiny
inputs: two calls per entry) against SciPy's gradient, with any x, dout and
step ``h``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from cases import METHODS, max_rel_err, names
from hypothesis import event, given
from hypothesis import strategies as st
from reference import rel_error as reference_rel_error
from reference import scipy_backward

import cconv
from cconv.testing import numerical_gradient, rel_error
from fuzz.oracle import Expect, Guard, amax, attempt, check_raised, convert, forward_expect, is_computable, root
from fuzz.strategies import (
    ARRAY_FORMS,
    FUZZ,
    REAL_DTYPES,
    VALID_DTYPES,
    VALID_FORMS,
    Operand,
    conv_shapes,
    operands,
    valid_conv_shapes,
)

# --------------------------------------------------------------------------
# rel_error
# --------------------------------------------------------------------------


@st.composite
def rel_error_case(draw):
    shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple))
    other = draw(st.sampled_from(("same", "same", "scalar", "ones", "random")))
    if other == "same":
        shape_b = shape
    elif other == "scalar":
        shape_b = ()
    elif other == "ones":
        shape_b = tuple(1 for _ in shape)
    else:
        shape_b = draw(st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple))
    a = draw(operands(shape))
    b = draw(operands(shape_b))
    if draw(st.integers(0, 3)) == 0:  # equal arrays: exactly 0
        b = draw(operands(shape, dtypes=REAL_DTYPES, forms=ARRAY_FORMS))
        arr = np.asarray(a.value) if a.arrays else None
        if arr is not None and is_computable(arr.dtype):
            b = Operand(np.array(arr, copy=True), [], "copy of a")
            b.arrays = [b.value]
    return a, b


def _leads_with(message: str, names) -> bool:
    """``message`` starts with one of ``names``: the argument is its subject.

    Stricter than :func:`names` for one-letter names: ``a`` is also the
    article ("b is a masked array").
    """
    return any(re.match(rf"{re.escape(n)}(?!\w)", message) for n in names)


@FUZZ
@given(case=rel_error_case())
def test_fuzz_rel_error(case):
    a, b = case
    guard = Guard(a, b)
    result, exc, _ = attempt(rel_error, a.value, b.value)
    guard.check_unchanged()
    expect = Expect()
    fa = convert(a.value, "a", expect)
    fb = convert(b.value, "b", expect)
    if expect.errors:
        assert exc is not None, f"returned {result!r}; expected one of {expect.errors}"
        wanted = [n for t, n in expect.errors if type(exc) is t]
        assert wanted, f"raised {type(exc).__name__}: {exc}; expected one of {expect.errors}"
        assert _leads_with(str(exc), wanted), f"message names none of {wanted}: {exc}"
        event(f"rel_error {type(exc).__name__}")
        return
    fa, fb = fa.astype(np.float64), fb.astype(np.float64)
    if fa.size == 0 and fb.size == 0:  # documented: 0 for two empty arrays
        assert exc is None, f"raised {type(exc).__name__}: {exc}"
        assert result == 0.0 and type(result) is float
        return
    try:
        bshape = np.broadcast_shapes(fa.shape, fb.shape)
    except ValueError:
        assert exc is not None, f"returned {result!r} for shapes {fa.shape} and {fb.shape}"
        assert type(exc) is ValueError, f"{type(exc).__name__}: {exc}"
        message = str(exc)
        assert names(message, "b") and str(fa.shape) in message and str(fb.shape) in message, message
        assert _leads_with(message, ["a"]), message
        event("rel_error shapes do not broadcast")
        return
    assert exc is None, f"raised {type(exc).__name__}: {exc}"
    assert type(result) is float
    expected = reference_rel_error(fa, fb) if math.prod(bshape) else 0.0
    if math.isnan(expected):  # None in an object array, NaN: NaN out
        assert math.isnan(result)
        return
    assert result == pytest.approx(expected, rel=1e-12, abs=0.0), (result, expected)
    assert 0.0 <= result <= 1.0
    event("rel_error ok")


@st.composite
def special_pair(draw):
    """Float arrays with inf, -inf and NaN, and a second one equal in places."""
    from hypothesis.extra import numpy as hnp

    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4))
    dt = draw(st.sampled_from((np.float64, np.float32)))
    values = st.one_of(st.floats(-1e3, 1e3, width=32), st.sampled_from((np.inf, -np.inf, np.nan, 0.0)))
    a = draw(hnp.arrays(dt, shape, elements=values))
    b = draw(hnp.arrays(dt, shape, elements=values))
    same = draw(hnp.arrays(np.bool_, shape))
    b = np.where(same, a, b).astype(dt)
    return a, b


@FUZZ
@given(case=special_pair())
def test_fuzz_rel_error_special_values(case):
    a, b = case
    result, exc, _ = attempt(rel_error, a, b)
    assert exc is None, f"raised {type(exc).__name__}: {exc}"
    expected = reference_rel_error(a.astype(np.float64), b.astype(np.float64)) if a.size else 0.0
    if math.isnan(expected):
        assert math.isnan(result), result
        event("rel_error NaN")
        return
    assert result == pytest.approx(expected, rel=1e-12, abs=0.0), (result, expected)
    event("rel_error special ok")


# --------------------------------------------------------------------------
# numerical_gradient (tiny inputs: two calls per entry)
# --------------------------------------------------------------------------


GOOD_H = st.one_of(st.floats(1e-6, 1e-1), st.sampled_from((1e-5, np.float64(1e-4), np.float32(1e-3), 1)))

BAD_H = st.sampled_from((0, 0.0, -1e-5, float("nan"), float("inf"), float("-inf"), np.float64(-1),
                         np.float16(1e-9), 10**400, None, "1e-5", [1e-5], np.array([1e-5, 2e-5]),
                         1j, True, np.bool_(True)))


@st.composite
def gradient_case(draw):
    kind = draw(st.sampled_from(("valid",) * 5 + ("x", "dout", "h")))
    if kind == "x":
        xs, ws = draw(conv_shapes())
        xs = tuple(min(s, 4) for s in xs)
        ws = draw(st.sampled_from(((1, 1), (2, 2), (1, 2))))
    else:
        xs, ws = draw(valid_conv_shapes())
        xs = (min(xs[0], 2),) + tuple(min(s, 4) for s in xs[1:])
        ws = tuple(min(s, t) for s, t in zip(ws[-2:], xs[1:]))
    styles = ("normal", "small", "zeros", "const")
    if kind == "x":  # anything at all
        x = draw(operands(xs, styles=styles))
    else:
        x = draw(operands(xs, dtypes=REAL_DTYPES, forms=VALID_FORMS, styles=styles, keep_shape=True))
    w = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(ws)
    n = xs[0] if len(xs) == 3 else 1
    out_shape = (n, max(xs[-2] - ws[0] + 1, 0) if len(xs) >= 2 else 0,
                 max(xs[-1] - ws[1] + 1, 0) if xs else 0)
    if kind == "dout":
        dshape = draw(st.sampled_from((out_shape, (), (1, 1, 1), out_shape[1:],
                                       (out_shape[0] + 2,) + out_shape[1:],
                                       (out_shape[0], out_shape[1] + 2, out_shape[2]))))
        dout = draw(operands(dshape, styles=styles))
    else:
        dout = draw(operands(out_shape, dtypes=VALID_DTYPES, forms=VALID_FORMS, styles=styles,
                             keep_shape=True))
    h = draw(BAD_H if kind == "h" else GOOD_H)
    method = draw(st.sampled_from(METHODS))
    return x, w, dout, h, method


def _h_fault(h):
    """The error a step ``h`` calls for (TypeError or ValueError), or None."""
    if isinstance(h, (bool, np.bool_)) or not isinstance(h, (int, float, np.integer, np.floating)):
        return TypeError
    try:
        value = float(h)
    except OverflowError:
        return ValueError
    return None if math.isfinite(value) and value > 0 else ValueError


@FUZZ
@given(case=gradient_case())
def test_fuzz_numerical_gradient(case):
    x, w, dout, h, method = case
    guard = Guard(x, dout)

    def f(v):
        return cconv.conv_forward(v, w, method=method)[0]

    result, exc, _ = attempt(numerical_gradient, f, x.value, dout.value, h=h)
    guard.check_unchanged()
    expect = Expect()
    h_fault = _h_fault(h)
    if h_fault is not None:
        expect.add(h_fault, "h")
    xa = convert(x.value, "x", expect)
    da = convert(dout.value, "dout", expect)
    if xa is not None and xa.size:
        # f is called with a float64 copy of x: conv_forward's rules apply to it.
        forward_expect(xa, w, expect=expect)
        if da is not None and not expect.errors:
            out_shape = (xa.shape[0], xa.shape[1] - w.shape[0] + 1, xa.shape[2] - w.shape[1] + 1)
            if da.shape != out_shape:  # exactly f(x)'s shape: no broadcasting
                expect.add(ValueError, "dout")

    if exc is not None:
        check_raised(exc, expect)
        return
    assert not expect.errors, f"returned, but expected one of {expect.errors}"
    xf = xa.astype(np.float64)
    assert type(result) is np.ndarray and result.dtype == np.float64
    assert result.shape == xf.shape
    assert result.flags.writeable  # (C order is not promised here)
    for a in guard.arrays:
        assert not np.shares_memory(result, root(a)), "output shares memory with an input"
    if xf.size == 0:
        event("numerical_gradient: empty x")  # no entry to perturb: f is never called
        return
    df = da.astype(np.float64)
    edx, _ = scipy_backward(xf, w, df)
    err = max_rel_err(result, edx, amax(df) * amax(w))
    assert err <= 1e-6, f"numerical gradient off by {err:.3g} (h={h!r}, method={method})"
    event("numerical_gradient ok")
