"""Fuzz of template matching: match_template and find_matches.

``match_template`` gets (H, W) and (N, H, W) images and (HH, WW) and
(K, HH, WW) templates (templates larger than the image, leading sizes that
do not broadcast, empty ones, wrong ndims, junk), each of the six methods
and unknown ones, ``pad_input`` bools and non-bools, and a huge image.  Each
score map is checked against ``reference.match_scores`` on its pair: the
normalised scores within 1e-9 (float64) / 2e-4 (float32) absolute (more on
nearly flat windows, by the first-order bound of ``_normed_tol``), in their
range, and exactly the documented value (0; sqdiff_normed 1) on windows or
templates that are flat (constant for ccoeff_normed, all zero for the
others); the others normwise on the scale of their terms.  NaN and Inf
pixels make exactly the windows over them NaN.

``find_matches`` gets score maps of distinct values (with NaN and
infinities) and with ties, of every real dtype and layout (junk and wrong
ndims too), and every option valid and invalid.  Every match must be a
non-NaN score of the map that meets the threshold, best first, no two in one
map within ``min_distance``; on maps whose candidates are distinct, the list
must be exactly that of ``reference.greedy_matches``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from cases import MATCH_METHODS, expected_dtype, max_rel_err, quiet
from hypothesis import event, given
from hypothesis import strategies as st
from reference import broadcast_pairs, greedy_matches, match_scores, scipy_forward, window_covers

import cconv
from fuzz.oracle import HUGE_BYTES, Expect, Guard, amax, call_as_expected, convert, declared_bytes, forward_expect
from fuzz.strategies import (
    FLOAT32_DTYPES,
    FUZZ,
    REAL_DTYPES,
    SPECIALS,
    VALID_DTYPES,
    VALID_FORMS,
    Operand,
    conv_shapes,
    huge_operand,
    operands,
    valid_conv_shapes,
)

# --------------------------------------------------------------------------
# match_template
# --------------------------------------------------------------------------


BAD_MATCH_METHODS = (None, "", "CCOEFF_NORMED", "TM_CCOEFF_NORMED", "ccoeff-normed", "auto", 3,
                     ("ccorr",), b"ccorr")

PAD_INPUTS = (False, True, np.bool_(True), np.bool_(False))

BAD_PAD_INPUTS = (None, 0, 1, "True", "", np.int64(1), 1.0, [True])

# The normalised scores, their range and the score of a flat window.
NORMED = {"ccoeff_normed": ((-1.0, 1.0), 0.0), "ccorr_normed": ((-1.0, 1.0), 0.0),
          "sqdiff_normed": ((0.0, 1.0), 1.0)}

# Normalised scores: absolute.  The others: normwise, as in ../test_match.py,
# with the size of their terms as the floor (_match_floor).
MATCH_TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-10}

NORMED_TOL = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-9}


def _normed_tol(method: str, img: np.ndarray, t: np.ndarray, dtype) -> np.ndarray:
    """Per window, the absolute error a normalised score may carry.

    ``NORMED_TOL``, plus the first-order error of the pieces on a window
    that is nearly flat: the window's variance (energy) V, taken from sums
    slid across the image, is off by up to the module's documented
    ``n * max(8 * eps64, (8 * eps)**2) * scale**2``, which moves the score
    by that over 2V; the correlation, summed in ``dtype``, is off by about
    ``n * eps * max|T| * scale``, over sqrt(V * sum T^2).  A window of two
    pixels 3e-4 apart has V = 5e-8, and scores -1 only to within 3e-9.
    ``img`` is padded as the reference pads; ``t`` is the template.
    """
    eps, n = float(np.finfo(dtype).eps), t.size
    windows = np.lib.stride_tricks.sliding_window_view(img, t.shape)
    if method == "ccoeff_normed":
        windows = windows - windows.mean(axis=(-2, -1), keepdims=True)
        t = t - t.mean()
        scale = amax(img - img.mean())
    else:
        scale = amax(img)
    v = np.sum(windows * windows, axis=(-2, -1))
    base = NORMED_TOL[np.dtype(dtype)]
    with np.errstate(divide="ignore", invalid="ignore"):
        tol = (base + n * max(8 * np.finfo(np.float64).eps, (8 * eps) ** 2) * scale**2 / (2 * v)
               + n * eps * amax(t) * scale / np.sqrt(v * np.sum(t * t)))
    return np.where((v > 0) & (np.sum(t * t) > 0), tol, base)  # flat: scored exactly, checked apart


@st.composite
def match_case(draw):
    """(image, templates): valid pairs, anything at all, or a huge image."""
    kind = draw(st.sampled_from(("valid",) * 6 + ("any",) * 5 + ("huge",)))
    if kind == "huge":
        x = draw(huge_operand())
        if x.value.shape[0] == 1 and draw(st.booleans()):  # (H, W), still huge
            x = Operand(x.value[0], [x.value[0]], f"huge broadcast {x.value.shape[1:]}")
        hh, ww = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        n = x.value.shape[0] if x.value.ndim == 3 else 1
        tshape = draw(st.sampled_from(((hh, ww), (1, hh, ww), (n, hh, ww), (2, hh, ww))))
        return x, draw(operands(tshape, dtypes=REAL_DTYPES, forms=("array",)))
    if kind == "valid":
        xs, ts = draw(valid_conv_shapes())
        dtypes = draw(st.sampled_from((VALID_DTYPES, VALID_DTYPES, FLOAT32_DTYPES)))
        ops = (dict(dtypes=dtypes, forms=VALID_FORMS, keep_shape=True),) * 2
    else:  # wrong ndims, sizes 0 and 1, templates larger than the image, every dtype and junk
        xs, ts = draw(conv_shapes())
        ops = (dict(),) * 2
    if len(xs) == 3 and xs[0] == 1 and draw(st.booleans()):
        xs = xs[1:]  # one (H, W) image
    x = draw(operands(xs, **ops[0]))
    if kind == "valid" and 0 not in xs[:1] + ts[:1] and draw(st.booleans()):
        # Templates cut from the image (plus noise): scores near the best,
        # where sqdiff_normed is not clipped to 1.
        x3 = np.asarray(x.value).reshape((-1,) + xs[-2:])
        cuts = []
        for k in range(ts[0] if len(ts) == 3 else 1):
            i = k if x3.shape[0] > 1 else 0
            y0, x0 = draw(st.integers(0, xs[-2] - ts[-2])), draw(st.integers(0, xs[-1] - ts[-1]))
            cuts.append(x3[i, y0:y0 + ts[-2], x0:x0 + ts[-1]])
        t = np.array(np.stack(cuts).reshape(ts))
        noise = draw(st.sampled_from((0.0, 0.0, 1e-3, 0.3)))
        if noise:
            rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
            t = (t + noise * rng.standard_normal(ts)).astype(t.dtype if t.dtype.kind == "f" else "f8")
        return x, Operand(t, [t], f"cut from the image, noise {noise}")
    return x, draw(operands(ts, **ops[1]))


def _match_expect(ia, ta, expect: Expect) -> None:
    """The shape rules: those of conv_forward, with (H, W) one image."""
    if ia is not None and ia.ndim not in (2, 3):
        expect.add(ValueError, "image")
        ia = None
    x3 = None if ia is None else ia.reshape((1,) * (3 - ia.ndim) + ia.shape)
    forward_expect(x3, ta, "image", "templates", expect)


def _match_floor(method: str, img: np.ndarray, t: np.ndarray) -> float:
    """The size of the terms of an unnormalised score (of the one pair)."""
    n = t.size
    if method == "sqdiff":
        return n * (amax(t) + amax(img)) ** 2
    if method == "ccoeff":
        return n * amax(t - t.mean()) * amax(img - img.mean())
    return n * amax(t) * amax(img)


def _check_match_pair(got, img2, t2, method, pad_input, dtype) -> None:
    """One score map against the reference, flat windows exactly."""
    want = match_scores(img2, t2, method, pad_input)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.all(np.isfinite(got)), "a score is not finite"
    img, t = img2.astype(np.float64), t2.astype(np.float64)
    hh, ww = t.shape
    if pad_input:  # as the reference pads
        img = np.pad(img, ((hh // 2, hh - 1 - hh // 2), (ww // 2, ww - 1 - ww // 2)))
    if method not in NORMED:
        err = max_rel_err(got, want, _match_floor(method, img, t))
        if method == "ccoeff":
            # Centring a template rounds: T' = T - mean(T) sums to about
            # n * eps * max|T|, not 0, and meets a window's mean of I'.  A
            # constant template scores that (7e-17, say), not 0; measured
            # against the terms T' I' (all near 0 then) it is a large error.
            # It is absolute, so it is taken off before the relative check.
            eps, n = float(np.finfo(dtype).eps), t.size
            slack = 4 * n * eps * (amax(t) * amax(img - img.mean()) + amax(t - t.mean()) * amax(img))
            excess = np.maximum(np.abs(got.astype(np.float64) - want) - slack, 0)
            err = max_rel_err(want + excess, want, _match_floor(method, img, t))
        assert err <= MATCH_TOL[dtype], f"{method}: error {err:.3g} > {MATCH_TOL[dtype]} ({dtype})"
        return
    (low, high), flat_value = NORMED[method]
    assert got.min() >= low and got.max() <= high, f"{method} outside [{low}, {high}]"
    windows = np.lib.stride_tricks.sliding_window_view(img, (hh, ww))
    if method == "ccoeff_normed":  # no variance
        flat = (windows.max(axis=(-2, -1)) == windows.min(axis=(-2, -1))) | (t.max() == t.min())
    else:  # no energy
        flat = ~windows.any(axis=(-2, -1)) | (not t.any())
    assert np.all(got[flat] == flat_value), f"{method}: a flat window does not score {flat_value}"
    excess = (np.abs(got - want) - _normed_tol(method, img, t, dtype))[~flat]
    assert np.all(excess <= 0), f"{method}: error above its bound by {excess.max():.3g} ({dtype})"
    event(f"match_template flat windows: {'none' if not flat.any() else 'all' if flat.all() else 'some'}")


def _run_match(x: Operand, t: Operand, method, pad_input) -> None:
    expect = Expect()
    if not isinstance(method, str) or method not in MATCH_METHODS:
        expect.add(ValueError, "method")
    if not isinstance(pad_input, (bool, np.bool_)):
        expect.add(TypeError, "pad_input")
    ia = convert(x.value, "image", expect)
    ta = convert(t.value, "templates", expect)
    _match_expect(ia, ta, expect)
    itemsize = 4 if all(a is not None and a.dtype.kind == "f" and a.dtype.itemsize <= 4
                        for a in (ia, ta)) else 8
    if ia is not None and declared_bytes(ia, itemsize) >= HUGE_BYTES:
        expect.huge = str(ia.shape)
    guard = Guard(x, t)
    result = call_as_expected(expect, guard, cconv.match_template, x.value, t.value, method=method,
                              pad_input=pad_input)
    if result is None:
        return
    dtype = expected_dtype(ia.dtype, ta.dtype)
    assert result.dtype == dtype, f"computed in {result.dtype}, expected {dtype}"
    guard.check_fresh(result)
    x3 = ia.reshape((1,) * (3 - ia.ndim) + ia.shape)
    t3 = ta.reshape((1,) * (3 - ta.ndim) + ta.shape)
    n, pairs = broadcast_pairs(x3.shape[0], t3.shape[0])
    size = x3.shape[1:] if pad_input else (x3.shape[1] - t3.shape[1] + 1, x3.shape[2] - t3.shape[2] + 1)
    shape = size if ia.ndim == 2 and ta.ndim == 2 else (n, *size)
    assert result.shape == shape, (result.shape, shape)
    for p, (i, j) in enumerate(pairs):
        _check_match_pair(result.reshape((n, *size))[p], x3[i], t3[j], method,
                          bool(pad_input), dtype)
    event(f"match_template ok {dtype} {method} pad_input={bool(pad_input)}")


@pytest.mark.parametrize("method", MATCH_METHODS)
@FUZZ
@given(case=match_case(), pad_input=st.sampled_from(PAD_INPUTS))
def test_fuzz_match_template(method, case, pad_input):
    _run_match(*case, method, pad_input)


@FUZZ
@given(case=match_case(), method=st.sampled_from(MATCH_METHODS + BAD_MATCH_METHODS),
       pad_input=st.sampled_from(PAD_INPUTS * 2 + BAD_PAD_INPUTS))
def test_fuzz_match_template_any_args(case, method, pad_input):
    _run_match(*case, method, pad_input)


@FUZZ
@given(
    seed=st.integers(0, 2**32 - 1),
    method=st.sampled_from(MATCH_METHODS),
    dtype=st.sampled_from([np.float64, np.float32]),
    size=st.tuples(st.integers(4, 30), st.integers(4, 30), st.integers(1, 12), st.integers(1, 12)),
    count=st.integers(1, 5),
    pad_input=st.booleans(),
)
def test_match_template_windows_over_bad_pixels_score_nan(seed, method, dtype, size, count, pad_input):
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
    want = match_scores(filled.astype(dtype), template.astype(dtype), method, pad_input)
    if (~covered).any():
        padded = np.pad(filled, ((hh // 2, hh - 1 - hh // 2), (ww // 2, ww - 1 - ww // 2))) if pad_input else filled
        tol = _normed_tol(method, padded, template, dtype) if method in NORMED else NORMED_TOL[np.dtype(dtype)]
        scale = max(float(np.max(np.abs(want))), 1.0)
        excess = (np.abs(scores - want) / scale - tol)[~covered]
        assert np.all(excess <= 0), f"{method}: error above its bound by {excess.max():.3g} ({dtype})"
    # The plain correlation: non-finite exactly where correlate2d's is.
    if method == "ccorr" and not pad_input:
        expected = quiet(scipy_forward, image.astype(dtype)[None], template.astype(dtype))[0]
        np.testing.assert_array_equal(~np.isfinite(scores), ~np.isfinite(expected))
    for match in cconv.find_matches(scores, num=3, min_distance=1, lower_is_better=method.startswith("sqdiff")):
        assert np.isfinite(match.score)


# --------------------------------------------------------------------------
# find_matches
# --------------------------------------------------------------------------


# Score maps: distinct values (their order is the answer), with NaN and
# infinities, and ties.  ('wide' integers are not drawn: their float64
# rounding, which the comparison with a threshold uses, makes ties.)
SCORE_STYLES = ("distinct",) * 4 + ("specials",) * 3 + ("small", "zeros", "const", "normal")

SCORE_DTYPES = REAL_DTYPES + (np.dtype("f8"),) * 6 + (np.dtype("f4"),) * 2

GOOD_NUMS = st.one_of(st.integers(1, 12), st.sampled_from(
    (np.int64(3), np.int32(1), np.uint8(2), np.uint64(2**64 - 1), 2**70)))

BAD_NUMS = st.sampled_from((0, -1, np.int64(0), -2**70, 1.0, 2.5, np.float64(3), None, "3",
                            True, np.bool_(True), [3], 1j))

GOOD_DISTANCES = st.one_of(st.integers(0, 2), st.integers(0, 2), st.integers(0, 12), st.sampled_from(
    (np.int64(2), np.uint8(0), np.int16(1), 100, np.uint64(1000), 2**40, np.int64(2**62), 2**70)))

BAD_DISTANCES = st.sampled_from((-1, -5, np.int64(-1), -2**70, 1.0, 2.0, np.float32(1), None, "2",
                                 True, np.bool_(False), [1], 1j))

# (A Fraction or an int beyond float: ../test_match.py, test_find_matches_threshold_beyond_float.)
GOOD_THRESHOLDS = st.one_of(
    st.none(), st.none(), st.none(), st.floats(-30, 30), st.floats(allow_nan=False),
    st.integers(-10, 10),
    st.sampled_from((np.float32(0.5), np.float64(-1.5), np.int64(2), np.uint8(0), np.float16(1.5),
                     np.inf, -np.inf, -0.0)))

BAD_THRESHOLDS = st.sampled_from((np.nan, np.float32(np.nan), "0.5", True, np.bool_(False), 1j,
                                  [0.5], b"1", {0.5}))

LOWER_IS_BETTER = (False, True, np.bool_(True), np.bool_(False))

BAD_LOWER_IS_BETTER = (0, 1, None, "True", np.int64(1), 1.0, [True])


@st.composite
def find_matches_case(draw):
    """(scores, num, min_distance, threshold, lower_is_better)."""
    kind = draw(st.sampled_from(("valid",) * 6 + ("scores",) * 2 + ("options",) * 2))
    side = st.one_of(st.integers(1, 9), st.integers(1, 9), st.integers(0, 9))
    h, w = draw(side), draw(side)
    if kind == "scores":  # any ndim, every dtype and junk form
        shape = draw(st.sampled_from(((3, h, w), (h, w), (1, 1, h, w), (w,), ())))
        scores = draw(operands(shape))
    else:
        shape = (h, w) if draw(st.booleans()) else (draw(st.sampled_from((1, 2, 3, 0))), h, w)
        scores = draw(operands(shape, dtypes=SCORE_DTYPES, forms=VALID_FORMS, styles=SCORE_STYLES,
                               keep_shape=True))
    bad = kind == "options"
    bad_one = draw(st.sampled_from(("num", "min_distance", "threshold", "lower_is_better", "all")))

    def option(name, good, wrong):
        return draw(wrong if bad and bad_one in (name, "all") else good)

    threshold = option("threshold", GOOD_THRESHOLDS, BAD_THRESHOLDS)
    values = np.asarray(scores.value) if scores.arrays else None
    if (not bad and values is not None and values.size and values.dtype.kind in "biuf"
            and draw(st.booleans())):  # a score of the map: ">=" and "<=" hold with equality
        threshold = values.reshape(-1)[draw(st.integers(0, values.size - 1))].item()
        if isinstance(threshold, float) and math.isnan(threshold):
            threshold = None
        elif isinstance(threshold, bool):
            threshold = int(threshold)
    return (scores, option("num", GOOD_NUMS, BAD_NUMS),
            option("min_distance", GOOD_DISTANCES, BAD_DISTANCES), threshold,
            option("lower_is_better", st.sampled_from(LOWER_IS_BETTER),
                   st.sampled_from(BAD_LOWER_IS_BETTER)))


def _count_fault(value, name: str, low: int, expect: Expect) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        expect.add(TypeError, name)
    elif value < low:
        expect.add(ValueError, name)


@FUZZ
@given(case=find_matches_case())
def test_fuzz_find_matches(case):
    scores, num, min_distance, threshold, lower_is_better = case
    expect = Expect()
    sa = convert(scores.value, "scores", expect)
    if sa is not None and sa.ndim not in (2, 3):
        expect.add(ValueError, "scores")
    _count_fault(num, "num", 1, expect)
    _count_fault(min_distance, "min_distance", 0, expect)
    if threshold is not None:
        if isinstance(threshold, (bool, np.bool_)) or not isinstance(
                threshold, (int, float, np.integer, np.floating)):
            expect.add(TypeError, "threshold")
        elif math.isnan(threshold):
            expect.add(TypeError, "threshold")
            expect.add(ValueError, "threshold")
    if not isinstance(lower_is_better, (bool, np.bool_)):
        expect.add(TypeError, "lower_is_better")
    guard = Guard(scores)
    result = call_as_expected(expect, guard, cconv.find_matches, scores.value, num=num,
                              min_distance=min_distance, threshold=threshold,
                              lower_is_better=lower_is_better)
    if result is None:
        return
    s3 = sa.reshape((1,) * (3 - sa.ndim) + sa.shape)
    f3 = s3.astype(np.float64)
    good = -f3 if lower_is_better else f3
    candidate = ~np.isnan(f3)
    if threshold is not None:
        candidate &= (f3 <= threshold) if lower_is_better else (f3 >= threshold)

    # The properties, whatever the ties.
    assert type(result) is list and len(result) <= num
    for i, m in enumerate(result):
        assert type(m) is cconv.Match and all(type(v) is int for v in m[:3]), m
        k, y, x = m[:3]
        assert 0 <= k < f3.shape[0] and 0 <= y < f3.shape[1] and 0 <= x < f3.shape[2], m
        assert m.score == s3[k, y, x], f"{m}: the map holds {s3[k, y, x]!r}"
        assert candidate[k, y, x], f"{m}: NaN, or beyond the threshold {threshold!r}"
        if i:
            assert good[result[i - 1][:3]] >= good[k, y, x], f"not best first: {result}"
        for other in result[:i]:
            near = other.pair == k and max(abs(other.y - y), abs(other.x - x)) <= min_distance
            assert not near, f"{other} and {m} within {min_distance}"

    # The exact answer, where the order is unambiguous.
    values = good[candidate]
    if np.unique(values).size < values.size:
        event("find_matches: ties (properties only)")
        return
    want = greedy_matches(good, candidate, int(num), int(min_distance))
    assert [m[:3] for m in result] == want, f"{result}, expected {want}"
    event(f"find_matches exact, {len(want)} matches")
