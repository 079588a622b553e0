"""NaN and Inf stay where the reference puts them, on every route.

An output is NaN, +Inf or -Inf exactly where ``scipy.signal.correlate2d``'s
is (for the 4-D layer: PyTorch's float64 layer), and every other output
equals the finite answer to the usual tolerance: on each method ('direct',
'fft', 'auto'), both dtypes, forward and backward, the 3-D layer, the 4-D
layer's routes, template matching and ``cconv.dask``.  Hypothesis places the
special values (borders and corners included, several at once, mixed) in
``x``, ``w`` and ``dout``.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from unittest import mock

import numpy as np
import pytest
import scipy.signal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import cconv

EXAMPLES = int(os.environ.get("CCONV_FUZZ_EXAMPLES", "40"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SPECIALS = (np.nan, np.inf, -np.inf)
METHODS = ("auto", "direct", "fft")
TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5}


def quiet(fn, *args, **kwargs):
    """A reference computed without NumPy's warnings about inf - inf."""
    with np.errstate(invalid="ignore", over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def assert_same_specials(actual, expected, dtype, what=""):
    """Same NaN / +Inf / -Inf pattern; finite outputs within the normwise tolerance."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, what
    for name, test in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
        mismatch = test(a) != test(e)
        assert not mismatch.any(), f"{what}: {name} differs at {np.argwhere(mismatch)[:5].tolist()}"
    finite = np.isfinite(e)
    if finite.any():
        scale = max(float(np.max(np.abs(e[finite]))), 1e-300)
        err = float(np.max(np.abs(a[finite] - e[finite]))) / scale
        assert err <= TOL[np.dtype(dtype)], f"{what}: normwise error {err:.2e}"


@st.composite
def sprinkled(draw, shape, dtype, most=4):
    """A standard-normal array of ``shape`` with up to ``most`` NaN/Inf, corners favoured."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    if draw(st.booleans()):  # zeros too, so that Inf meets 0
        a[rng.random(shape) < 0.2] = 0.0
    count = draw(st.integers(0, most))
    for _ in range(count):
        index = tuple(
            draw(st.sampled_from([0, n - 1]) | st.integers(0, n - 1)) for n in shape
        )
        a[index] = draw(st.sampled_from(SPECIALS))
    return a.astype(dtype)


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


@contextlib.contextmanager
def restoring_by(strategy):
    """Force the FFT route's way of finding non-finite outputs (or leave the choice)."""
    from cconv import _nonfinite

    limit = {"scatter": 10**9, "fft": -1, "either": _nonfinite._SCATTER_CELLS}[strategy]
    with mock.patch.object(_nonfinite, "_SCATTER_CELLS", limit), \
            mock.patch.object(_nonfinite, "_SCATTER_PER_OUTPUT", 10**9 if strategy == "scatter" else 4):
        yield


@pytest.mark.parametrize("strategy", ["scatter", "fft", "either"])
@FUZZ
@given(case=layer_case(), method=st.sampled_from(METHODS), data=st.data())
def test_layer_3d_forward_and_backward(strategy, case, method, data):
    x, w = case
    with restoring_by(strategy):
        out, cache = cconv.conv_forward(x, w, method=method)
    assert_same_specials(out, quiet(scipy_forward, x, w), x.dtype, f"out ({method})")
    dout = data.draw(sprinkled(out.shape, x.dtype, most=3))
    with restoring_by(strategy):
        dx, dw = cconv.conv_backward(dout, cache, method=method)
    edx, edw = quiet(scipy_backward, x, w, dout)
    assert_same_specials(dx, edx, x.dtype, f"dx ({method})")
    assert_same_specials(dw, edw, x.dtype, f"dw ({method})")


def scipy_forward(x, w):
    w3 = w if w.ndim == 3 else w[None]
    n = max(x.shape[0], w3.shape[0])
    return np.stack([
        scipy.signal.correlate2d(x[min(i, x.shape[0] - 1)].astype(np.float64),
                                 w3[min(i, w3.shape[0] - 1)].astype(np.float64), mode="valid")
        for i in range(n)
    ])


def scipy_backward(x, w, dout):
    w3 = w if w.ndim == 3 else w[None]
    x64, w64, d64 = (a.astype(np.float64) for a in (x, w3, dout))
    dx, dw = np.zeros_like(x64), np.zeros_like(w64)
    # Every term of a broadcast operand's gradient in one sum, as the layer's.
    dx_terms = [[] for _ in range(x.shape[0])]
    dw_terms = [[] for _ in range(w3.shape[0])]
    for i in range(d64.shape[0]):
        xi, wi = min(i, x.shape[0] - 1), min(i, w3.shape[0] - 1)
        dx_terms[xi].append(scipy.signal.correlate2d(d64[i], w64[wi][::-1, ::-1], mode="full"))
        dw_terms[wi].append(scipy.signal.correlate2d(x64[xi], d64[i], mode="valid"))
    for target, terms in ((dx, dx_terms), (dw, dw_terms)):
        for j, parts in enumerate(terms):
            target[j] = np.sum(parts, axis=0)
    return dx, (dw[0] if w.ndim == 2 else dw)


def test_large_filter_fft_keeps_one_nan_local():
    # The case: 128x140 float64, one NaN, a 60x60 filter ('auto' picks the FFT).
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 128, 140))
    x[0, 70, 30] = np.nan
    w = rng.standard_normal((60, 60))
    for method in METHODS:
        out, cache = cconv.conv_forward(x, w, method=method)
        expected = quiet(scipy_forward, x, w)
        assert 0 < np.isnan(expected).sum() < expected.size // 2
        assert_same_specials(out, expected, np.float64, method)


def test_inf_signs_and_inf_meeting_zero_on_every_method():
    # +Inf times a negative tap is -Inf, times zero NaN; +Inf and -Inf in one window: NaN.
    x = np.ones((1, 8, 9))
    x[0, 2, 2] = np.inf
    x[0, 5, 6] = -np.inf
    w = np.array([[1.0, -2.0], [0.0, 3.0]])
    expected = quiet(scipy_forward, x, w)
    assert np.isposinf(expected).any() and np.isneginf(expected).any() and np.isnan(expected).any()
    for method in METHODS:
        for dtype in (np.float64, np.float32):
            out, _ = cconv.conv_forward(x.astype(dtype), w.astype(dtype), method=method)
            assert_same_specials(out, expected, dtype, f"{method} {np.dtype(dtype).name}")


@pytest.mark.parametrize("method", METHODS)
def test_nan_in_dout_stays_local(method):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 40, 41))
    w = rng.standard_normal((25, 25))
    out, cache = cconv.conv_forward(x, w, method=method)
    dout = rng.standard_normal(out.shape)
    dout[1, 3, 4] = np.nan
    dx, dw = cconv.conv_backward(dout, cache, method=method)
    edx, edw = quiet(scipy_backward, x, w, dout)
    assert np.isfinite(dx[0]).all() and 0 < np.isnan(dx[1]).sum() < dx[1].size
    assert_same_specials(dx, edx, np.float64, "dx")
    assert_same_specials(dw, edw, np.float64, "dw")


# ---------------------------------------------------------------------------
# Template matching
# ---------------------------------------------------------------------------

MATCH_METHODS = ("sqdiff", "sqdiff_normed", "ccorr", "ccorr_normed", "ccoeff", "ccoeff_normed")


def window_covers(bad, hh, ww):
    """Whether each valid window of a 2-D mask holds a True: a loop, as the spec reads."""
    ho, wo = bad.shape[0] - hh + 1, bad.shape[1] - ww + 1
    return np.array([[bad[r:r + hh, c:c + ww].any() for c in range(wo)] for r in range(ho)])


@FUZZ
@given(
    seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from(MATCH_METHODS),
    dtype=st.sampled_from([np.float64, np.float32]),
    size=st.tuples(st.integers(4, 30), st.integers(4, 30), st.integers(1, 12), st.integers(1, 12)),
    count=st.integers(1, 5),
    pad_input=st.booleans(),
)
def test_match_template_windows_over_bad_pixels_score_nan(seed, method, dtype, size, count, pad_input, ref):
    rng = np.random.default_rng(seed)
    h, w, hh, ww = size
    hh, ww = min(hh, h), min(ww, w)
    image = rng.uniform(-1, 1, (h, w)) + 3.0
    template = rng.uniform(-1, 1, (hh, ww))
    bad = np.zeros((h, w), dtype=bool)
    for _ in range(count):
        r = rng.choice([0, h - 1, int(rng.integers(0, h))])
        c = rng.choice([0, w - 1, int(rng.integers(0, w))])
        bad[r, c] = True
    image[bad] = rng.choice(SPECIALS, size=int(bad.sum()))
    scores = cconv.match_template(image.astype(dtype), template.astype(dtype), method, pad_input=pad_input)
    if pad_input:
        bad = np.pad(bad, ((hh // 2, hh - 1 - hh // 2), (ww // 2, ww - 1 - ww // 2)))
    covered = window_covers(bad, hh, ww)
    np.testing.assert_array_equal(np.isnan(scores), covered)
    assert np.isfinite(scores[~covered]).all()
    # Elsewhere, the scores of the image with other values in those pixels.
    filled = image.copy()
    filled[~np.isfinite(filled)] = rng.uniform(2, 4, int((~np.isfinite(filled)).sum()))
    want = ref.match_scores(filled.astype(dtype), template.astype(dtype), method, pad_input)
    if (~covered).any():
        scale = max(float(np.max(np.abs(want))), 1.0)
        err = float(np.max(np.abs(scores[~covered] - want[~covered]))) / scale
        assert err <= (1e-9 if dtype == np.float64 else 2e-4)
    # The plain correlation: non-finite exactly where correlate2d's is.
    if method == "ccorr" and not pad_input:
        expected = quiet(scipy.signal.correlate2d, image.astype(dtype).astype(np.float64),
                         template.astype(dtype).astype(np.float64), mode="valid")
        np.testing.assert_array_equal(~np.isfinite(scores), ~np.isfinite(expected))
    for match in cconv.find_matches(scores, num=3, min_distance=1, lower_is_better=method.startswith("sqdiff")):
        assert np.isfinite(match.score)


def test_template_with_nan_scores_nan_everywhere():
    rng = np.random.default_rng(2)
    image = rng.standard_normal((20, 20))
    templates = rng.standard_normal((3, 4, 4))
    templates[1, 2, 2] = np.nan
    scores = cconv.match_template(image, templates)
    assert np.isnan(scores[1]).all()
    assert np.isfinite(scores[[0, 2]]).all()


@pytest.fixture(scope="module")
def photograph():
    pytest.importorskip("matplotlib", reason="the photograph is matplotlib's (pip install 'cconv[demo]')")
    from cconv import demo

    img = demo.load_grey(demo.default_image_path())
    img = img - img.mean()
    template = demo.cut_template(img, demo.DEFAULT_BOX)
    noisy = demo.add_noise(img, 50.0, 0)
    noisy[540:545, 3:13] = np.nan  # a 5x10 block of dead pixels far below the eye
    return noisy, template


@pytest.mark.parametrize("method", METHODS)
def test_eye_found_by_conv_forward_beside_a_nan_block(photograph, method):
    from cconv import demo

    noisy, template = photograph
    out, _ = cconv.conv_forward(noisy[None], template, method=method)
    expected = quiet(scipy.signal.correlate2d, noisy, template, mode="valid")
    assert_same_specials(out[0], expected, np.float64, method)
    y, x = np.unravel_index(np.nanargmax(out[0]), out[0].shape)
    assert (y, x) == demo.DEFAULT_BOX[:2]


def test_eye_found_by_match_template_beside_a_nan_block(photograph):
    from cconv import demo

    noisy, template = photograph
    scores = cconv.match_template(noisy, template)
    assert 0 < np.isnan(scores).sum() < scores.size // 10
    (best,) = cconv.find_matches(scores, num=1)
    assert (best.y, best.x) == demo.DEFAULT_BOX[:2]


# ---------------------------------------------------------------------------
# The 4-D layer, against PyTorch's float64 layer
# ---------------------------------------------------------------------------


@st.composite
def layer_4d_case(draw):
    c = draw(st.sampled_from([1, 1, 2]))
    n, f = draw(st.sampled_from([(1, 1), (1, 3), (2, 1), (2, 2)]))
    h, w = draw(st.integers(3, 14)), draw(st.integers(3, 14))
    pad = draw(st.integers(0, 2))
    hh, ww = draw(st.integers(1, min(4, h + 2 * pad))), draw(st.integers(1, min(4, w + 2 * pad)))
    x = draw(sprinkled((n, c, h, w), np.float64))
    k = draw(sprinkled((f, c, hh, ww), np.float64, most=2))
    single = c == 1 and (n == 1 or f == 1)
    method = draw(st.sampled_from(("auto", "gemm", "direct", "fft") if single else ("auto", "gemm")))
    return x, k, pad, method


@pytest.mark.parametrize("strategy", ["scatter", "fft"])
@FUZZ
@given(case=layer_4d_case(), data=st.data())
def test_layer_4d_against_torch(strategy, case, data):
    torch = pytest.importorskip("torch")
    x, w, pad, method = case
    with restoring_by(strategy):
        out, cache = cconv.conv2d_forward(x, w, padding=pad, method=method)
    dout = data.draw(sprinkled(out.shape, np.float64, most=3))
    with restoring_by(strategy):
        dx, dw, _ = cconv.conv2d_backward(dout, cache)
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    ot = torch.nn.functional.conv2d(xt, wt, padding=pad)
    gx, gw = torch.autograd.grad(ot, (xt, wt), torch.from_numpy(dout))
    assert_same_specials(out, ot.detach().numpy(), np.float64, f"out ({method})")
    assert_same_specials(dx, gx.numpy(), np.float64, f"dx ({method})")
    assert_same_specials(dw, gw.numpy(), np.float64, f"dw ({method})")


# ---------------------------------------------------------------------------
# cconv.dask
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_dask_layer_on_a_chunked_image(method):
    da = pytest.importorskip("dask.array")
    import dask

    import cconv.dask as cd

    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 60, 64))
    x[0, 0, 0] = np.nan
    x[0, 31, 33] = np.inf  # beside a chunk edge
    x[1, 59, 10] = -np.inf
    w = rng.standard_normal((9, 9))
    w[4, 4] = 0.0
    xd = da.from_array(x, chunks=(1, 30, 32))
    with dask.config.set(scheduler="sync"):
        out, cache = cd.conv_forward(xd, w, method=method)
        got = out.compute()
        assert_same_specials(got, quiet(scipy_forward, x, w), np.float64, "out")
        dout = rng.standard_normal(got.shape)
        dout[1, 20, 20] = np.nan
        dx, dw = cd.conv_backward(da.from_array(dout, chunks=(1, 20, 25)), cache)
        edx, edw = quiet(scipy_backward, x, w, dout)
        assert_same_specials(dx.compute(), edx, np.float64, "dx")
        assert_same_specials(dw.compute(), edw, np.float64, "dw")


def test_dask_match_template_on_a_chunked_image():
    da = pytest.importorskip("dask.array")
    import dask

    import cconv.dask as cd

    rng = np.random.default_rng(4)
    image = rng.standard_normal((80, 90))
    image[40, 45] = np.nan
    template = rng.standard_normal((7, 6))
    with dask.config.set(scheduler="sync"):
        got = cd.match_template(da.from_array(image, chunks=(40, 45)), template).compute()
    np.testing.assert_array_equal(np.isnan(got), window_covers(~np.isfinite(image), 7, 6))
