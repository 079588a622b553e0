"""cconv.conv2d_forward / conv2d_backward: the 4-D layer.

References: ``reference.layer_forward`` / ``layer_backward`` (window views
and einsum, in float64) always; finite differences for the gradients.  The
comparison against PyTorch is in ``test_conv2d_torch.py``, the fuzz in
``fuzz/test_conv2d.py``, eight threads at once in ``test_concurrency.py``.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from cases import (
    assert_fresh_output,
    assert_unchanged,
    expected_dtype,
    max_rel_err,
    names,
    random_array,
    snapshot,
    tol,
    with_layout,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import layer_backward, layer_forward

import cconv
from cconv.testing import numerical_gradient

# (N, C, H, W, F, HH, WW, options): every option, alone and together.
CASES = [
    (2, 3, 8, 9, 4, 3, 3, {}),
    (1, 1, 6, 6, 1, 3, 3, {}),
    (2, 3, 8, 9, 4, 3, 2, {"padding": 1}),
    (2, 2, 9, 7, 3, 3, 3, {"padding": (2, 0)}),
    (2, 2, 9, 9, 3, 3, 3, {"stride": 2}),
    (2, 2, 11, 10, 2, 3, 2, {"stride": (3, 2), "padding": 1}),
    (1, 2, 12, 12, 2, 3, 3, {"dilation": 2}),
    (2, 2, 12, 11, 2, 2, 3, {"dilation": (3, 1), "padding": (2, 1)}),
    (2, 4, 7, 8, 6, 3, 3, {"groups": 2}),
    (1, 6, 7, 7, 6, 3, 3, {"groups": 6, "padding": 1}),  # depthwise
    (1, 6, 7, 7, 12, 3, 3, {"groups": 3, "stride": 2, "dilation": 2, "padding": 2}),
    (2, 3, 8, 8, 4, 3, 3, {"padding": "same"}),
    (2, 2, 8, 9, 3, 4, 2, {"padding": "same"}),  # even filter: extra pixel bottom/right
    (1, 2, 9, 9, 2, 2, 3, {"padding": "same", "dilation": (2, 3)}),
    (2, 3, 7, 7, 2, 3, 3, {"padding": "valid"}),
    (2, 5, 6, 7, 4, 1, 1, {}),  # 1x1: the image is the matrix
    (2, 4, 6, 7, 4, 1, 1, {"stride": 2}),
    (2, 4, 6, 6, 4, 1, 1, {"groups": 2, "padding": 1}),
    (3, 2, 5, 5, 2, 5, 5, {}),  # filter as large as the image
    (1, 2, 3, 3, 2, 5, 5, {"padding": 1}),  # larger than the image, padding makes room
    (2, 3, 5, 30, 2, 3, 3, {"stride": (1, 4)}),
]


def _ids(case):
    n, c, h, w, f, hh, ww, opts = case
    extra = ",".join(f"{k}={v}" for k, v in opts.items())
    return f"x{n}x{c}x{h}x{w}-w{f}x{hh}x{ww}" + (f"-{extra}" if extra else "")


def _make(rng, case, dtype, bias=True):
    n, c, h, w, f, hh, ww, opts = case
    groups = opts.get("groups", 1)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c // groups, hh, ww)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype) if bias else None
    return x, wt, b, opts


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_against_reference(rng, case, dtype):
    x, w, b, opts = _make(rng, case, dtype)
    out, cache = cconv.conv2d_forward(x, w, b, **opts)
    expected = layer_forward(x, w, b, **opts)
    assert out.shape == expected.shape and out.dtype == dtype
    assert max_rel_err(out, expected) <= tol(dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = cconv.conv2d_backward(dout, cache)
    for got, want in zip((dx, dw, db), layer_backward(x, w, dout, **opts)):
        assert got.shape == want.shape and got.dtype == dtype
        assert max_rel_err(got, want) <= tol(dtype)


@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
@pytest.mark.parametrize(
    "case",
    [
        (3, 1, 12, 11, 1, 3, 4, {}),
        (1, 1, 12, 11, 4, 3, 4, {"padding": 2}),
        (1, 1, 40, 37, 2, 15, 9, {"padding": "same"}),
        (4, 1, 9, 9, 1, 9, 9, {"padding": (1, 3)}),
        (1, 1, 12, 11, 2, 1, 4, {"dilation": (3, 1)}),  # one tap high: any dilation there
        (2, 1, 1, 9, 1, 1, 3, {"stride": (5, 1)}),  # one row: a stride past it
    ],
    ids=_ids,
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_single_channel_methods(rng, case, method, dtype):
    """C = 1 with one image or one filter also runs on the 3-D layer's loops and FFTs ('auto'),
    counting the dilation of a one-tap axis and a stride past the padded size as 1."""
    x, w, b, opts = _make(rng, case, dtype)
    out, cache = cconv.conv2d_forward(x, w, b, method=method, **opts)
    assert cache.method in (("direct", "fft") if method == "auto" else (method,))
    assert max_rel_err(out, layer_forward(x, w, b, **opts)) <= tol(dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    for got, want in zip(cconv.conv2d_backward(dout, cache), layer_backward(x, w, dout, **opts)):
        assert got.dtype == dtype
        assert max_rel_err(got, want) <= tol(dtype)


def test_without_bias_db_is_none(rng):
    x, w, _, opts = _make(rng, CASES[2], np.float64, bias=False)
    out, cache = cconv.conv2d_forward(x, w, **opts)
    assert max_rel_err(out, layer_forward(x, w, None, **opts)) <= 1e-12
    dx, dw, db = cconv.conv2d_backward(np.ones_like(out), cache)
    assert db is None


@pytest.mark.parametrize(
    "case",
    [(2, 2, 6, 5, 3, 3, 2, {"stride": 2, "padding": 1}),
     (1, 4, 6, 6, 4, 2, 2, {"groups": 2, "dilation": 2, "padding": "same"}),
     (2, 1, 7, 6, 1, 3, 3, {"padding": 1})],
    ids=_ids,
)
def test_gradients_by_finite_differences(rng, case):
    x, w, b, opts = _make(rng, case, np.float64)
    out, cache = cconv.conv2d_forward(x, w, b, **opts)
    dout = rng.standard_normal(out.shape)
    dx, dw, db = cconv.conv2d_backward(dout, cache)
    num_dx = numerical_gradient(lambda v: cconv.conv2d_forward(v, w, b, **opts)[0], x, dout)
    num_dw = numerical_gradient(lambda v: cconv.conv2d_forward(x, v, b, **opts)[0], w, dout)
    num_db = numerical_gradient(lambda v: cconv.conv2d_forward(x, w, v, **opts)[0], b, dout)
    for got, num in ((dx, num_dx), (dw, num_dw), (db, num_db)):
        np.testing.assert_allclose(got, num, rtol=1e-6, atol=1e-8)


def test_conv2d_backward_dw_bit_reproducible(rng):
    # dw, a sum of partial sums in a fixed order, is the same bits on every call.
    if not cconv._runtime.openmp_enabled():
        pytest.skip("built without OpenMP: one thread")
    x = rng.standard_normal((8, 2, 16, 16))
    w = rng.standard_normal((4, 2, 3, 3))
    with cconv.threads(2):
        out, cache = cconv.conv2d_forward(x, w)
        dout = rng.standard_normal(out.shape)
        first = cconv.conv2d_backward(dout, cache)[1]
        for call in range(200):
            again = cconv.conv2d_backward(dout, cache)[1]
            assert np.array_equal(again, first), (
                f"call {call + 2}: dw differs by {np.abs(again - first).max():.3g}")


def test_large_filter_workspace_stays_small(rng):
    """A 512x512 image with a 60x60 filter: the windows would take 5.9 GB at
    once as one im2col matrix; the tiles keep the extra memory near the output."""
    x = rng.standard_normal((1, 1, 512, 512)).astype(np.float32)
    w = rng.standard_normal((2, 1, 60, 60)).astype(np.float32)
    tracemalloc.start()
    try:
        out, cache = cconv.conv2d_forward(x, w, method="gemm")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < out.nbytes + 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"
    sub = layer_forward(x[:, :, :80, :70], w)  # a corner, by the slow reference
    assert max_rel_err(out[:, :, :21, :11], sub) <= 1e-5


@pytest.mark.parametrize("layout", ["F", "sliced", "negative", "readonly", "unaligned", "byteswapped"])
def test_any_layout_inputs_unchanged(rng, layout):
    x, w, b, opts = _make(rng, CASES[5], np.float64)
    dout = rng.standard_normal(layer_forward(x, w, b, **opts).shape)
    args = [with_layout(a, layout) for a in (x, w, b, dout)]
    before = snapshot(*args)
    out, cache = cconv.conv2d_forward(*args[:3], **opts)
    grads = cconv.conv2d_backward(args[3], cache)
    assert_unchanged(before, args)
    assert max_rel_err(out, layer_forward(x, w, b, **opts)) <= 1e-12
    for got, want in zip(grads, layer_backward(x, w, dout, **opts)):
        assert_fresh_output(got, *args)
        assert max_rel_err(got, want) <= 1e-12
    assert_fresh_output(out, *args)


@pytest.mark.parametrize(
    "dtypes",
    [(np.int32, np.int64, None), (np.bool_, np.float32, np.float32), (np.float16, np.float32, np.float16),
     (np.float32, np.float32, np.float64), (np.float32, np.float64, np.float32), (np.uint8, np.float16, None)],
)
def test_dtype_promotion(rng, dtypes):
    xt, wt, bt = dtypes
    x = random_array(rng, (2, 2, 6, 6), xt)
    w = random_array(rng, (3, 2, 3, 3), wt)
    b = None if bt is None else random_array(rng, (3,), bt)
    expected = expected_dtype(*(d for d in dtypes if d is not None))
    out, cache = cconv.conv2d_forward(x, w, b, padding=1)
    assert out.dtype == expected
    assert max_rel_err(out, layer_forward(x.astype(expected), w.astype(expected),
                                              None if b is None else b.astype(expected), padding=1)) <= tol(expected)
    dx, dw, db = cconv.conv2d_backward(np.ones(out.shape, np.float32), cache)
    assert dx.dtype == dw.dtype == expected


@pytest.mark.parametrize(
    "shape",
    [(0, 2, 5, 5, 3, 2, 3, 3), (2, 2, 5, 5, 0, 2, 3, 3), (2, 0, 5, 5, 3, 0, 3, 3), (2, 2, 0, 5, 3, 2, 1, 1)],
    ids=["no images", "no filters", "no channels", "empty image padded"],
)
def test_empty_sizes(rng, shape):
    n, c, h, w_, f, cg, hh, ww = shape
    x = rng.standard_normal((n, c, h, w_))
    w = rng.standard_normal((f, cg, hh, ww))
    b = rng.standard_normal(f)
    out, cache = cconv.conv2d_forward(x, w, b, padding=1)
    expected = layer_forward(x, w, b, padding=1)
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, atol=1e-14)
    dout = rng.standard_normal(out.shape)
    for got, want in zip(cconv.conv2d_backward(dout, cache), layer_backward(x, w, dout, padding=1)):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_thread_counts_and_blas_setting_restored(rng, threads):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    x, w, b, opts = _make(rng, (5, 4, 10, 9, 6, 3, 3, {"padding": 1, "groups": 2}), np.float64)
    dout = rng.standard_normal((5, 6, 10, 9))
    before = [lib["num_threads"] for lib in threadpoolctl.threadpool_info()]
    saved = cconv.get_num_threads()
    try:
        cconv.set_num_threads(threads)
        out, cache = cconv.conv2d_forward(x, w, b, **opts)
        grads = cconv.conv2d_backward(dout, cache)
    finally:
        cconv.set_num_threads(saved)
    assert [lib["num_threads"] for lib in threadpoolctl.threadpool_info()] == before
    assert max_rel_err(out, layer_forward(x, w, b, **opts)) <= 1e-12
    for got, want in zip(grads, layer_backward(x, w, dout, **opts)):
        assert max_rel_err(got, want) <= 1e-12


# ---------------------------------------------------------------------------
# Bad input: a ValueError / TypeError naming the argument.
# ---------------------------------------------------------------------------

X = np.zeros((2, 4, 8, 8))
W = np.zeros((6, 2, 3, 3))

BAD = [
    ({"x": np.zeros((4, 8, 8))}, ValueError, r"x must be a 4-D array.*\(4, 8, 8\)"),
    ({"w": np.zeros((6, 2, 3))}, ValueError, r"w must be a 4-D array"),
    ({"w": np.zeros((6, 3, 3, 3))}, ValueError, r"w's channel size 3 does not match.*expects C // groups = 2"),
    ({"groups": 1}, ValueError, r"w's channel size 2 does not match.*groups=1 expects C // groups = 4"),
    ({"w": np.zeros((6, 4, 0, 3))}, ValueError, r"w is empty: shape \(6, 4, 0, 3\)"),
    ({"w": np.zeros((6, 2, 9, 3))}, ValueError, r"no output: the filter's height 9.*x's padded height 8"),
    ({"dilation": 4}, ValueError, r"no output: the filter's height 9"),
    ({"b": np.zeros(5)}, ValueError, r"b has length 5, but w has 6 filters"),
    ({"b": np.zeros((6, 1))}, ValueError, r"b must be a 1-D array"),
    ({"b": np.zeros(6, complex)}, TypeError, r"b has unsupported dtype complex128"),
    ({"x": X.astype(complex)}, TypeError, r"x has unsupported dtype complex128"),
    ({"w": np.zeros((6, 4, 3, 3), object)}, TypeError, r"w has unsupported dtype object"),
    ({"stride": 0}, ValueError, r"stride must be at least 1; got 0"),
    ({"stride": (1, -2)}, ValueError, r"stride must be at least 1; got \(1, -2\)"),
    ({"stride": 1.5}, TypeError, r"stride must be an int or a pair of ints; got 1.5"),
    ({"stride": (1, 2, 3)}, ValueError, r"stride must be an int or a pair of ints"),
    ({"stride": True}, TypeError, r"stride must be an int"),
    ({"padding": -1}, ValueError, r"padding must be at least 0; got -1"),
    ({"padding": "full"}, ValueError, r"padding must be an int, a pair of ints, 'valid' or 'same'; got 'full'"),
    ({"padding": "same", "stride": 2}, ValueError, r"padding='same' needs stride 1"),
    ({"padding": None}, TypeError, r"padding must be an int or a pair of ints; got None"),
    ({"dilation": 0}, ValueError, r"dilation must be at least 1; got 0"),
    ({"groups": 0}, ValueError, r"groups must be at least 1; got 0"),
    ({"groups": 3, "w": np.zeros((6, 1, 3, 3))}, ValueError, r"groups=3 must divide both x's channels C=4"),
    ({"groups": 2, "w": np.zeros((5, 2, 3, 3))}, ValueError, r"groups=2 must divide both.*filters F=5"),
    ({"groups": 2.0}, TypeError, r"groups must be an int; got 2.0"),
    ({"method": "fast"}, ValueError, r"method must be one of \('auto', 'gemm', 'direct', 'fft'\); got 'fast'"),
    ({"method": "fft"}, ValueError, r"method='fft' takes a single-channel layer only.*C=4"),
    ({"x": np.ma.zeros((2, 4, 8, 8))}, TypeError, r"x is a masked array"),
]


@pytest.mark.parametrize("option", [
    {"stride": 2**63}, {"stride": (1, 2**64)}, {"stride": np.uint64(2**63)}, {"dilation": 2**63},
], ids=["stride", "stride pair", "stride uint64", "dilation"])
def test_conv2d_option_of_2_63_or_more(option):
    # A 1x1 filter: the window of any stride or dilation fits, one output
    # per stride; the layer is valid by the specification.  Either a result
    # or a ValueError naming the option (no OverflowError).
    x = np.arange(50.0).reshape(1, 2, 5, 5)
    w = np.ones((3, 2, 1, 1))
    (name,) = option
    try:
        out, cache = cconv.conv2d_forward(x, w, **option)
    except ValueError as exc:
        assert names(str(exc), name), str(exc)
        return
    stride = option.get("stride", 1)
    s = (stride, stride) if not isinstance(stride, tuple) else stride
    expected = (x[:, :, :: int(s[0]), :: int(s[1])].sum(axis=1, keepdims=True)
                * np.ones((1, 3, 1, 1)))
    np.testing.assert_allclose(out, expected)


@pytest.mark.parametrize("change,exc,message", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_forward_arguments(change, exc, message):
    args = {"x": X, "w": np.zeros((6, 2, 3, 3)), "b": None, "groups": 2}
    args.update(change)
    x, w, b = args.pop("x"), args.pop("w"), args.pop("b")
    with pytest.raises(exc, match=message):
        cconv.conv2d_forward(x, w, b, **args)


def test_bad_backward_arguments():
    out, cache = cconv.conv2d_forward(X, W, np.zeros(6), groups=2)
    with pytest.raises(ValueError, match=r"dout has shape \(2, 6, 6, 5\), but the forward output had shape \(2, 6, 6, 6\)"):
        cconv.conv2d_backward(np.zeros((2, 6, 6, 5)), cache)
    with pytest.raises(TypeError, match=r"dout has unsupported dtype complex128"):
        cconv.conv2d_backward(out.astype(complex), cache)
    with pytest.raises(ValueError, match=r"cache must be the Conv2dCache returned by cconv.conv2d_forward; got ConvCache"):
        cconv.conv2d_backward(out, cconv.conv_forward(np.zeros((1, 4, 4)), np.zeros((2, 2)))[1])
    with pytest.raises(ValueError, match=r"cache must be the Conv2dCache.*got tuple"):
        cconv.conv2d_backward(out, (X, W))


# ---------------------------------------------------------------------------
# Properties over random options and layouts
# ---------------------------------------------------------------------------


@st.composite
def layers(draw):
    groups = draw(st.integers(1, 3))
    cg, fg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dil = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    same = draw(st.booleans())
    stride = (1, 1) if same else (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    pad = "same" if same else (draw(st.integers(0, 3)), draw(st.integers(0, 3)))
    extent = (dil[0] * (kh - 1) + 1, dil[1] * (kw - 1) + 1)
    low = [max(1, e - 2 * (0 if same else p)) for e, p in zip(extent, (0, 0) if same else pad)]
    h, w = draw(st.integers(low[0], low[0] + 9)), draw(st.integers(low[1], low[1] + 9))
    n = draw(st.integers(1, 3))
    opts = {"stride": stride, "padding": pad, "dilation": dil, "groups": groups}
    return (n, cg * groups, h, w, fg * groups, kh, kw, opts)


@settings(max_examples=60, deadline=None)
@given(case=layers(), dtype=st.sampled_from([np.float64, np.float32]),
       layout=st.sampled_from(["C", "F", "sliced", "negative", "unaligned"]),
       bias=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_property_matches_reference(case, dtype, layout, bias, seed):
    rng = np.random.default_rng(seed)
    x, w, b, opts = _make(rng, case, dtype, bias)
    out, cache = cconv.conv2d_forward(with_layout(x, layout), with_layout(w, layout), b, **opts)
    # Errors on the scale of the sums' terms: a small layer's few outputs
    # may all land near zero by cancellation, far below their terms.
    terms = layer_forward(np.abs(x), np.abs(w), None if b is None else np.abs(b), **opts)
    assert _err(out, layer_forward(x, w, b, **opts), terms) <= tol(dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx, dw, db = cconv.conv2d_backward(with_layout(dout, layout), cache)
    rx, rw, rb = layer_backward(x, w, dout, **opts)
    ax, aw, ab = layer_backward(np.abs(x), np.abs(w), np.abs(dout), **opts)
    assert _err(dx, rx, ax) <= tol(dtype)
    assert _err(dw, rw, aw) <= tol(dtype)
    assert (db is None) if b is None else _err(db, rb, ab) <= tol(dtype)


def _err(got, want, terms):
    """The error on the scale of the largest sum of absolute terms."""
    return max_rel_err(got, want, float(np.max(terms, initial=0.0)))
