"""Fuzz of the 4-D layer: conv2d_forward and conv2d_backward.

Besides any input of ``strategies.py``: (N, C, H, W) shapes with groups,
filters larger than the padded image and channels that do not match; every
option (stride, padding, dilation, groups) valid in every spelling (int,
NumPy integer, tuple or list pair, 'valid'/'same', large strides) and invalid
(0, negative, float, None, bool, string, 1- and 3-tuples); a bias absent, of
the wrong length or ndim or dtype; each method; and in the backward pass,
dout of the wrong dtype or shape, and caches that are not a ``Conv2dCache``
(the 3-D layer's ``ConvCache`` among them).  The reference is the
window/einsum ``layer_forward``/``layer_backward``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from cases import METHODS_2D, expected_dtype, max_rel_err, tol
from hypothesis import assume, event, given
from hypothesis import strategies as st
from reference import layer_backward, layer_forward, layer_output_shape, layer_padding

import cconv
from fuzz.oracle import HUGE_BYTES, Expect, Guard, amax, call_as_expected, convert, declared_bytes
from fuzz.strategies import (
    ARRAY_FORMS,
    BAD_METHODS,
    FLOAT32_DTYPES,
    FUZZ,
    JUNK_CACHES,
    REAL_DTYPES,
    VALID_DTYPES,
    VALID_FORMS,
    Operand,
    douts,
    huge_operand,
    junk_cache,
    operands,
)

# --------------------------------------------------------------------------
# options
# --------------------------------------------------------------------------


BAD_METHODS_2D = BAD_METHODS + ("GEMM", "im2col", ("gemm",))

_NUMPY_INTS = (np.int64, np.int32, np.int16, np.uint8, np.uint64)

# Valid but large: window offsets beyond 32 bits, and beyond int64.
BIG_STRIDES = (2**31, 2**40 + 3, np.int64(2**33), 2**63, np.uint64(2**64 - 1), 2**70)


def _option_int(lo: int, hi: int, big=()):
    small = st.integers(lo, hi)
    numpy = st.builds(lambda t, v: t(v), st.sampled_from(_NUMPY_INTS), st.integers(lo, hi))
    return st.one_of(small, small, numpy, *([st.sampled_from(big)] if big else []))


def _option(lo: int, hi: int, big=()):
    """An int option as PyTorch takes it: one int (also NumPy's) or a pair (tuple or list)."""
    one = _option_int(lo, hi, big)
    return st.one_of(one, one, st.tuples(one, one), st.lists(one, min_size=2, max_size=2))


# Wrong in form or value, for any of stride, dilation, padding, groups.
BAD_OPTIONS = st.sampled_from((
    0, -1, -2, np.int64(-3), (1, 0), (0, 1), [1, -1], (-1, -1), 1.0, 1.5, np.float64(2.0),
    None, True, False, np.bool_(True), (1, True), (np.bool_(False), 1), "1", "", "full",
    "SAME", (1, 2, 3), (1,), (), [1, 1, 1], (1.0, 1), (None, 1), 1j, ("same", 1), {1, 2},
))


def _pair_fault(value, minimum: int):
    """``(pair, faults)``: the option as two ints, or None and the error types it calls for.

    The specification: an int, or a pair (tuple or list) of ints, each at
    least ``minimum``; bools are not ints, NumPy integers are.  A sequence of
    another length is "not an int or a pair": either error type may say so.
    """
    items = value if isinstance(value, (tuple, list)) else (value, value)
    faults = set()
    if len(items) != 2:
        faults |= {ValueError, TypeError}
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            faults.add(TypeError)
        elif v < minimum:
            faults.add(ValueError)
    if faults:
        return None, faults
    return (int(items[0]), int(items[1])), set()


@dataclass
class Options2d:
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: object = 1

    def kwargs(self):
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                "groups": self.groups}


def _options_expect(opts: Options2d, expect: Expect):
    """Each option checked on its own: (stride, padding, dilation, groups), None where faulty.

    ``padding`` comes back as 'valid', 'same' or a pair of ints.
    """
    stride, faults = _pair_fault(opts.stride, 1)
    for exc in faults:
        expect.add(exc, "stride")
    dilation, faults = _pair_fault(opts.dilation, 1)
    for exc in faults:
        expect.add(exc, "dilation")
    if isinstance(opts.padding, str):
        padding = opts.padding if opts.padding in ("valid", "same") else None
        if padding is None:
            expect.add(ValueError, "padding")
    else:
        padding, faults = _pair_fault(opts.padding, 0)
        for exc in faults:
            expect.add(exc, "padding")
    groups = opts.groups
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
        expect.add(TypeError, "groups")
        groups = None
    elif groups < 1:
        expect.add(ValueError, "groups")
        groups = None
    else:
        groups = int(groups)
    if padding == "same" and stride is not None and stride != (1, 1):
        expect.add(ValueError, "padding")  # 'same' needs stride 1
        expect.add(ValueError, "stride")
    return stride, padding, dilation, groups


def _single_channel(xshape, wshape, stride, dilation) -> bool:
    return (xshape[1] == 1 and stride == (1, 1) and dilation == (1, 1)
            and (xshape[0] == 1 or wshape[0] == 1))


def _conv2d_expect(xa, wa, ba, has_b, opts: Options2d, method, expect: Expect):
    """The faults of a conv2d_forward call; returns the layer (or None if it is refused).

    The layer: (stride, pads, dilation, groups, output shape, padding as the
    reference takes it: 'valid', 'same' or a pair).
    """
    if not isinstance(method, str) or method not in METHODS_2D:
        expect.add(ValueError, "method")
    stride, padding, dilation, groups = _options_expect(opts, expect)
    if xa is not None and xa.ndim != 4:
        expect.add(ValueError, "x")
        xa = None
    if wa is not None and wa.ndim != 4:
        expect.add(ValueError, "w")
        wa = None
    if wa is not None and (wa.shape[2] == 0 or wa.shape[3] == 0):
        expect.add(ValueError, "w")
        wa = None
    if has_b and ba is not None:
        if ba.ndim != 1:
            expect.add(ValueError, "b")
        elif wa is not None and ba.shape[0] != wa.shape[0]:
            expect.add(ValueError, "b")
    if xa is None or wa is None:
        return None
    (n, c, h, wd), (f, cg, hh, ww) = xa.shape, wa.shape
    if groups is not None:
        if c % groups or f % groups or cg * groups != c:
            for name in ("groups", "x", "w"):
                expect.add(ValueError, name)
    if padding is None or dilation is None or stride is None:
        return None
    pads = layer_padding(padding, wa.shape, dilation)
    out_hw = []
    for size, (lo, hi), k, d, s in zip((h, wd), pads, (hh, ww), dilation, stride):
        extent = d * (k - 1) + 1
        if size + lo + hi < extent:  # no output
            for name in ("x", "w", "padding", "dilation"):
                expect.add(ValueError, name)
            return None
        out_hw.append((size + lo + hi - extent) // s + 1)
    # A stride past the padded size (one output) and the dilation of a
    # one-tap axis change nothing: the layer counts them as 1.
    steps = tuple(min(st_, size + lo + hi) for st_, size, (lo, hi) in zip(stride, (h, wd), pads))
    spread = tuple(1 if k == 1 else d for k, d in zip((hh, ww), dilation))
    if method == "fft" and not _single_channel(xa.shape, wa.shape, steps, spread):
        expect.add(ValueError, "method")
    if groups is None:
        return None
    return stride, pads, dilation, groups, (n, f, *out_hw), padding


# --------------------------------------------------------------------------
# conv2d_forward
# --------------------------------------------------------------------------


def _bias_operand(draw, f: int, kind: str, dtypes=VALID_DTYPES):
    if kind == "none":
        return Operand(None, [], "no bias", saved=None)
    if kind == "valid":
        return draw(operands((f,), dtypes=dtypes, forms=VALID_FORMS, keep_shape=True))
    if kind == "length":
        return draw(operands((f + draw(st.sampled_from((1, 2))),) if f < 2 or draw(st.booleans())
                             else (f - 1,), dtypes=REAL_DTYPES, forms=ARRAY_FORMS))
    if kind == "ndim":
        return draw(operands(draw(st.sampled_from(((), (1, f), (f, 1), (f, f)))), dtypes=REAL_DTYPES,
                             forms=ARRAY_FORMS))
    return draw(operands((f,)))  # anything: every dtype, junk forms


def _valid_operands_2d(draw, xs, ws, bkind):
    """x, w and b (of kind ``bkind``) of real dtypes and array-like forms."""
    dtypes = draw(st.sampled_from((VALID_DTYPES, VALID_DTYPES, FLOAT32_DTYPES)))
    return (draw(operands(xs, dtypes=dtypes, forms=VALID_FORMS, keep_shape=True)),
            draw(operands(ws, dtypes=dtypes, forms=VALID_FORMS, keep_shape=True)),
            _bias_operand(draw, ws[0], bkind, dtypes))


@st.composite
def conv2d_layers(draw, single=None):
    """A valid layer: (x shape, w shape, Options2d), in any valid spelling of the options.

    ``single``: the single-channel layer ('direct'/'fft' apply): C = 1,
    stride 1, dilation 1, one image or one filter.
    """
    single = draw(st.booleans()) if single is None else single
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if single:
        g, cg = 1, 1
        n, fg = draw(st.sampled_from(((1, 1), (1, 2), (1, 3), (2, 1), (3, 1), (0, 1), (1, 0))))
        stride = draw(st.sampled_from((1, (1, 1), [1, 1], np.int64(1), np.uint8(1))))
        dilation = draw(st.sampled_from((1, (1, 1), np.int32(1))))
    else:
        g = draw(st.sampled_from((1, 1, 1, 2, 3)))
        cg = draw(st.sampled_from((1, 1, 2, 3, 0)))
        fg = draw(st.sampled_from((1, 1, 2, 0)))
        n = draw(st.sampled_from((1, 1, 2, 3, 0)))
        stride = draw(_option(1, 3, BIG_STRIDES))
        dilation = draw(_option(1, 3, BIG_STRIDES))
    sp, _ = _pair_fault(stride, 1)
    dp, _ = _pair_fault(dilation, 1)
    if dp[0] > 8:
        kh = 1  # a large dilation: only a filter one tap high fits
    if dp[1] > 8:
        kw = 1
    choices = [_option(0, 2), st.just("valid")] + ([st.just("same")] * 2 if sp == (1, 1) else [])
    padding = draw(st.one_of(*choices))
    groups = draw(st.sampled_from((g, g, np.int64(g), np.uint8(g))))
    pads = layer_padding(padding if isinstance(padding, str) else _pair_fault(padding, 0)[0],
                         (0, 0, kh, kw), dp)
    sizes = []
    for (lo, hi), k, d in zip(pads, (kh, kw), dp):
        low = max(0, d * (k - 1) + 1 - lo - hi)  # 0: an empty image the padding makes room for
        sizes.append(draw(st.integers(max(low, 1 if padding == "same" else 0), low + 6)))
    xshape = (n, cg * g, *sizes)
    wshape = (fg * g, cg, kh, kw)
    return xshape, wshape, Options2d(stride, padding, dilation, groups)


@st.composite
def any_options(draw):
    def one(good):
        return draw(st.one_of(good, good, good, BAD_OPTIONS))
    return Options2d(
        stride=one(_option(1, 3, BIG_STRIDES)),
        padding=one(st.one_of(_option(0, 2), st.sampled_from(("valid", "same")))),
        dilation=one(_option(1, 3, BIG_STRIDES)),
        groups=one(_option_int(1, 3)),
    )


@st.composite
def huge_operand_4d(draw):
    """A zero-stride (N, C, H, W) view declaring more than HUGE_BYTES."""
    x3 = draw(huge_operand())
    c = draw(st.sampled_from((1, 1, 2)))
    n, h, wd = x3.value.shape
    assume(n * c * h * wd * x3.value.dtype.itemsize < 2**63)  # as huge_operand: NumPy's limit
    x = np.broadcast_to(x3.value[:, np.newaxis], (n, c, h, wd))
    return Operand(x, [x], f"huge broadcast {x.shape} {x.dtype}")


@st.composite
def conv2d_forward_case(draw, method=None):
    """(x, w, b, Options2d, method): valid layers, anything at all, or a huge x."""
    kind = draw(st.sampled_from(("valid",) * 6 + ("any",) * 5 + ("huge",)))
    if method is None:
        method = draw(st.sampled_from(METHODS_2D + BAD_METHODS_2D))
    if kind == "valid":
        single = True if method in ("direct", "fft") and draw(st.integers(0, 3)) else None
        xs, ws, opts = draw(conv2d_layers(single=single))
        bkind = draw(st.sampled_from(("none", "valid", "valid", "valid")))
        return (*_valid_operands_2d(draw, xs, ws, bkind), opts, method)
    if kind == "huge":
        x = draw(huge_operand_4d())
        n, c = x.value.shape[:2]
        f = draw(st.sampled_from((1, 2, c)))
        ws = (f, c, draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        w = draw(operands(ws, dtypes=REAL_DTYPES, forms=("array",)))
        b = _bias_operand(draw, f, draw(st.sampled_from(("none", "valid"))))
        opts = Options2d(stride=draw(_option(1, 2)), padding=draw(_option(0, 1)))
        return x, w, b, opts, method
    # anything: wrong ndims, sizes 0 and 1, filters larger than the padded
    # image, channels that do not match, every dtype and junk form
    n = draw(st.sampled_from((1, 1, 2, 0)))
    c = draw(st.sampled_from((1, 2, 3, 4, 0)))
    h, wd = draw(st.integers(0, 7)), draw(st.integers(0, 7))
    f = draw(st.sampled_from((1, 2, 3, 4, 0)))
    cg = draw(st.sampled_from((c, c, 1, 2, 0)))
    hh, ww = draw(st.integers(0, h + 3)), draw(st.integers(0, wd + 3))
    x4, w4 = (n, c, h, wd), (f, cg, hh, ww)
    xs = draw(st.sampled_from((x4,) * 8 + ((), (wd,), (h, wd), (c, h, wd), (1,) + x4)))
    ws = draw(st.sampled_from((w4,) * 8 + ((hh, ww), (cg, hh, ww), (1,) + w4)))
    bkind = draw(st.sampled_from(("none", "valid", "valid", "length", "ndim", "any")))
    return (draw(operands(xs)), draw(operands(ws)), _bias_operand(draw, f, bkind),
            draw(any_options()), method)


def _run_conv2d_forward(x: Operand, w: Operand, b: Operand, opts: Options2d, method):
    expect = Expect()
    xa = convert(x.value, "x", expect)
    wa = convert(w.value, "w", expect)
    has_b = b.value is not None
    ba = convert(b.value, "b", expect) if has_b else None
    layer = _conv2d_expect(xa, wa, ba, has_b, opts, method, expect)
    present = [a for a in (xa, wa, ba) if a is not None]
    itemsize = 4 if all(a.dtype.kind == "f" and a.dtype.itemsize <= 4 for a in present) else 8
    if xa is not None and xa.ndim == 4 and declared_bytes(xa, itemsize) >= HUGE_BYTES:
        expect.huge = str(xa.shape)
    guard = Guard(x, w, b)
    result = call_as_expected(expect, guard, cconv.conv2d_forward, x.value, w.value, b.value,
                              **opts.kwargs(), method=method)
    if result is None:
        return None
    out, cache = result
    stride, pads, dilation, groups, out_shape, padding = layer
    dtype = expected_dtype(*(a.dtype for a in present))
    assert out.dtype == dtype, f"computed in {out.dtype}, expected {dtype}"
    assert out.shape == out_shape, (out.shape, out_shape)
    guard.check_fresh(out)
    assert isinstance(cache, cconv.Conv2dCache), type(cache)
    expected = layer_forward(xa, wa, ba, stride=stride, padding=padding, dilation=dilation,
                             groups=groups)
    err = max_rel_err(out, expected, max(amax(xa) * amax(wa), amax(ba) if has_b else 0.0))
    assert err <= tol(dtype), f"error {err:.3g} > {tol(dtype)} ({dtype}, method={method})"
    event(f"conv2d_forward ok {dtype} {method}")
    return out, cache, (xa, wa, ba, stride, padding, dilation, groups)


@pytest.mark.parametrize("method", METHODS_2D)
@FUZZ
@given(data=st.data())
def test_fuzz_conv2d_forward(method, data):
    _run_conv2d_forward(*data.draw(conv2d_forward_case(method=method)))


@FUZZ
@given(case=conv2d_forward_case())
def test_fuzz_conv2d_forward_any_method(case):
    _run_conv2d_forward(*case)


# --------------------------------------------------------------------------
# conv2d_backward
# --------------------------------------------------------------------------


@st.composite
def conv2d_backward_case(draw):
    xs, ws, opts = draw(conv2d_layers())
    x, w, b = _valid_operands_2d(draw, xs, ws, draw(st.sampled_from(("none", "valid"))))
    sp, dp = _pair_fault(opts.stride, 1)[0], _pair_fault(opts.dilation, 1)[0]
    single = _single_channel(xs, ws, sp, dp)
    fmethod = draw(st.sampled_from(METHODS_2D if single else ("auto", "gemm")))
    padding = opts.padding if isinstance(opts.padding, str) else _pair_fault(opts.padding, 0)[0]
    out_shape = layer_output_shape(xs, ws, sp, padding, dp)
    n, f, ho, wo = out_shape
    dout = draw(douts(out_shape, (
        out_shape[1:], out_shape + (1,), (n + 1, f, ho, wo), (n, f + 1, ho, wo),
        (n, f, ho + 1, wo), (n, f, ho, wo + 1), (), (1, 1, 1, 1) if out_shape != (1, 1, 1, 1)
        else (1, 1, 1, 2), (n, f, wo, ho) if ho != wo else (n, f, ho, wo + 2),
    )))
    ckind = draw(st.sampled_from(("real",) * 8 + ("other", "junk")))
    junk = draw(st.sampled_from(JUNK_CACHES + ("fake", "conv3d", "conv3d")))
    return x, w, b, opts, fmethod, dout, ckind, junk


class _FakeConv2dCache:
    """Duck-types a Conv2dCache (its public and private attributes), but is none."""

    def __init__(self, cache):
        for name in ("x", "w", "out_shape", "method"):
            setattr(self, name, getattr(cache, name))
        for name in cconv.Conv2dCache.__slots__:
            setattr(self, name, getattr(cache, name))


# Another valid forward call: its cache, passed with a dout drawn for the first.
_OTHER_2D = dict(x=np.linspace(-1, 1, 2 * 4 * 7 * 6, dtype=np.float32).reshape(2, 4, 7, 6),
                 w=np.linspace(1, -2, 6 * 2 * 3 * 3).reshape(6, 2, 3, 3), b=np.arange(6.0),
                 stride=2, padding=1, dilation=1, groups=2)


@FUZZ
@given(case=conv2d_backward_case())
def test_fuzz_conv2d_backward(case):
    x, w, b, opts, fmethod, dout, ckind, junk = case
    guard = Guard(x, w, b, dout)
    fwd = _run_conv2d_forward(x, w, b, opts, fmethod)  # checked like any forward call
    assert fwd is not None, "a valid forward call was refused"
    out, cache, (xa, wa, ba, stride, padding, dilation, groups) = fwd
    if ckind == "other":
        o = _OTHER_2D
        xa, wa, ba = o["x"], o["w"], o["b"]
        stride, padding, dilation, groups = (2, 2), (1, 1), (1, 1), 2
        cache = cconv.conv2d_forward(xa, wa, ba, stride=2, padding=1, groups=2)[1]
    elif ckind == "junk":
        cache = junk_cache(junk, xa, wa, tuple=(out, cache), fake=_FakeConv2dCache(cache),
                           # The 3-D layer's cache is not the 4-D layer's.
                           conv3d=cconv.conv_forward(np.ones((1, 4, 4)), np.ones((2, 2)))[1])
    has_b = ba is not None

    expect = Expect()
    if not isinstance(cache, cconv.Conv2dCache):
        expect.add(ValueError, "cache")
    da = convert(dout.value, "dout", expect)
    out_shape = layer_output_shape(xa.shape, wa.shape, stride, padding, dilation)
    if da is not None and da.shape != out_shape:
        expect.add(ValueError, "dout")

    result = call_as_expected(expect, guard, cconv.conv2d_backward, dout.value, cache)
    if result is None:
        return
    dx, dw, db = result
    fdtype = expected_dtype(*(a.dtype for a in (xa, wa, ba) if a is not None))
    dtype = expected_dtype(fdtype, expected_dtype(da.dtype))
    grads = (dx, dw) + ((db,) if has_b else ())
    assert all(g.dtype == dtype for g in grads), ([g.dtype for g in grads], dtype)
    assert dx.shape == xa.shape and dw.shape == wa.shape
    if has_b:
        assert db.shape == (wa.shape[0],)
    else:
        assert db is None, "db for a forward pass without bias"
    guard.check_fresh(*grads)
    for g in grads:
        assert not np.shares_memory(g, out)
    edx, edw, edb = layer_backward(xa, wa, da, stride=stride, padding=padding,
                                   dilation=dilation, groups=groups)
    limit = tol(dtype)
    errs = {"dx": max_rel_err(dx, edx, amax(da) * amax(wa)), "dw": max_rel_err(dw, edw, amax(da) * amax(xa))}
    if has_b:
        errs["db"] = max_rel_err(db, edb, amax(da))
    bad = {k: v for k, v in errs.items() if not v <= limit}
    assert not bad, f"errors {bad} > {limit} ({dtype}, {cache.method})"
    # The cache is not consumed or changed by a backward pass: the same
    # results again, bit for bit.
    again = cconv.conv2d_backward(dout.value, cache)
    again = (again[0], again[1]) + ((again[2],) if has_b else ())
    for name, a, g in zip(("dx", "dw", "db"), again, grads):
        assert np.array_equal(a, g), f"{name} of a second call differs"
    event(f"conv2d_backward ok {dtype} {cache.method}")
