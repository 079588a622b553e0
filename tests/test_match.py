"""cconv.match_template and cconv.find_matches.

References: ``reference.match_scores`` (every window scored on its own, in
float64) always; OpenCV's ``matchTemplate`` and scikit-image's
``match_template`` when installed (optional test peers, skipped with the
reason shown; ``.ci/run`` installs them).  The fuzz is in
``fuzz/test_match.py``.
"""

from __future__ import annotations

import tracemalloc
from fractions import Fraction

import numpy as np
import pytest
from cases import MATCH_METHODS as METHODS
from cases import names, run_child
from reference import match_batch, match_scores

import cconv

NORMED_RANGE = {"sqdiff_normed": (0.0, 1.0), "ccorr_normed": (-1.0, 1.0), "ccoeff_normed": (-1.0, 1.0)}


def _tol(dtype, method):
    # sqdiff cancels sum(T**2) + sum(I**2) - 2 sum(T*I): compare on the scale of its terms.
    return 1e-10 if dtype == np.float64 else 2e-5


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "shapes",
    [((13, 17), (4, 5)), ((3, 12, 11), (3, 3)), ((12, 11), (4, 2, 3)), ((2, 9, 10), (2, 4, 4)),
     ((1, 8, 8), (3, 8, 8)), ((7, 6), (1, 1)), ((6, 9), (6, 1))],
    ids=lambda s: f"{s[0]}-{s[1]}",
)
@pytest.mark.parametrize("pad_input", [False, True])
def test_against_reference(rng, shapes, method, dtype, pad_input):
    image = rng.uniform(0, 10, shapes[0]).astype(dtype)
    templates = rng.uniform(0, 10, shapes[1]).astype(dtype)
    got = cconv.match_template(image, templates, method, pad_input=pad_input)
    want = match_batch(image, templates, method, pad_input)
    assert got.shape == want.shape and got.dtype == dtype
    scale = max(np.abs(want).max(), 1.0) if not method.endswith("normed") else 1.0
    assert np.max(np.abs(got - want)) / scale <= _tol(dtype, method)
    if method in NORMED_RANGE:
        low, high = NORMED_RANGE[method]
        assert got.min() >= low and got.max() <= high


def test_finds_the_template_where_it_was_cut(rng):
    image = rng.standard_normal((3, 40, 50))
    templates = np.stack([image[0, 5:15, 7:19], image[1, 20:30, 30:42], image[2, 0:10, 38:50]])
    scores = cconv.match_template(image, templates)
    where = [np.unravel_index(np.argmax(s), s.shape) for s in scores]
    assert where == [(5, 7), (20, 30), (0, 38)]
    np.testing.assert_allclose([s.max() for s in scores], 1.0, atol=1e-12)


# ---------------------------------------------------------------------------
# Flat windows, constant images, large means
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ccorr_normed", "ccoeff_normed", "sqdiff_normed"])
def test_flat_windows_get_the_documented_value(rng, method):
    image = rng.standard_normal((30, 30))
    image[5:20, 3:25] = 4.0 if method == "ccoeff_normed" else 0.0  # flat (ccoeff) / empty (others)
    t = rng.standard_normal((6, 7))
    got = cconv.match_template(image, t, method)
    want = match_scores(image, t, method)
    flat = np.zeros_like(got, dtype=bool)
    flat[5:15, 3:19] = True
    assert np.all(got[flat] == (1.0 if method == "sqdiff_normed" else 0.0))
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got[~flat], want[~flat], atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_constant_image_and_constant_template(dtype):
    image = np.full((20, 25), 7.0, dtype)
    t = np.random.default_rng(0).standard_normal((5, 5)).astype(dtype)
    assert np.all(cconv.match_template(image, t) == 0)
    assert np.all(cconv.match_template(np.random.default_rng(1).standard_normal((20, 25)), np.ones((5, 5))) == 0)


@pytest.mark.parametrize("value", [0.18905338, 1e-3, 12345.678])
def test_constant_template_not_representable_exactly_scores_zero(value):
    # Its mean subtracted leaves rounding of 1e-17 of the value, not zeros:
    # still flat, by the template's own scale.
    image = np.random.default_rng(2).integers(0, 2, (2, 7, 1)).astype(bool)
    scores = cconv.match_template(image, np.full((7, 1), value))
    assert np.all(scores == 0.0)


def test_template_equal_to_image(rng):
    image = rng.standard_normal((9, 11))
    for method, best in [("ccoeff_normed", 1.0), ("ccorr_normed", 1.0), ("sqdiff_normed", 0.0), ("sqdiff", 0.0)]:
        got = cconv.match_template(image, image, method)
        assert got.shape == (1, 1)
        assert abs(got[0, 0] - best) < 1e-12


def test_one_pixel_template(rng):
    image = rng.uniform(1, 2, (8, 9))
    t = np.array([[3.0]])
    np.testing.assert_allclose(cconv.match_template(image, t, "ccorr"), 3 * image, rtol=1e-14)
    np.testing.assert_allclose(cconv.match_template(image, t, "ccorr_normed"), 1.0, rtol=1e-14)
    assert np.all(cconv.match_template(image, t, "ccoeff_normed") == 0)  # a 1-pixel template is flat
    np.testing.assert_allclose(cconv.match_template(image, t, "sqdiff"), match_scores(image, t, "sqdiff"))


# Images and templates not in C order (zero strides too): the same scores.
_ORDERS = {
    "fortran": np.asfortranarray,
    "transposed": lambda a: np.ascontiguousarray(a.T).T,
    "zero_stride": lambda a: np.broadcast_to(a[..., :1, :], a.shape),  # rows repeat
}


@pytest.mark.parametrize("which", ["image", "templates"])
@pytest.mark.parametrize("order", list(_ORDERS))
@pytest.mark.parametrize("method", ["ccorr", "ccoeff_normed"])
def test_match_template_not_c_ordered(which, order, method):
    args = {"image": np.arange(30.0).reshape(5, 6) % 7, "templates": np.array([[1.0, 2.0], [0.0, 5.0]])}
    args[which] = _ORDERS[order](args[which])
    want = match_scores(np.array(args["image"]), np.array(args["templates"]), method)
    got = cconv.match_template(args["image"], args["templates"], method)
    np.testing.assert_allclose(got, want, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_large_mean_keeps_precision(rng, dtype):
    """An image of mean 1e6 with unit noise: window variances are 12 orders
    below the squared mean, where whole-image running sums lose them."""
    image = (1e6 + rng.standard_normal((300, 300))).astype(dtype)
    t = rng.standard_normal((16, 16)).astype(dtype)
    got = cconv.match_template(image, t)
    assert got.min() >= -1 and got.max() <= 1
    sub = match_scores(image[:40, :40], t, "ccoeff_normed")
    tol = 1e-9 if dtype == np.float64 else 2e-3  # float32 holds 1e6 + noise to 6e-2
    np.testing.assert_allclose(got[:25, :25], sub, atol=tol)


def test_template_with_nan_scores_nan_everywhere():
    rng = np.random.default_rng(2)
    image = rng.standard_normal((20, 20))
    templates = rng.standard_normal((3, 4, 4))
    templates[1, 2, 2] = np.nan
    scores = cconv.match_template(image, templates)
    assert np.isnan(scores[1]).all()
    assert np.isfinite(scores[[0, 2]]).all()


def test_eye_found_by_match_template_beside_a_nan_block(photograph):
    from cconv import demo

    noisy, template = photograph
    scores = cconv.match_template(noisy, template)
    assert 0 < np.isnan(scores).sum() < scores.size // 10
    (best,) = cconv.find_matches(scores, num=1)
    assert (best.y, best.x) == demo.DEFAULT_BOX[:2]


def test_memory_is_proportional_to_image_and_output(rng):
    image = rng.standard_normal((1024, 1024)).astype(np.float32)
    t = rng.standard_normal((64, 64)).astype(np.float32)
    tracemalloc.start()
    try:
        scores = cconv.match_template(image, t)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # float64 statistics and FFT buffers: a few dozen image-sized arrays at
    # most; one column per template pixel (im2col) would be 4096 of them.
    assert peak < 40 * image.nbytes, f"peak {peak / 2**20:.0f} MiB"
    assert scores.shape == (961, 961)


# ---------------------------------------------------------------------------
# Peers
# ---------------------------------------------------------------------------


def test_against_opencv(rng):
    cv2 = pytest.importorskip("cv2", reason="OpenCV is an optional test peer (pip install opencv-python-headless)")
    codes = {m: getattr(cv2, "TM_" + m.upper()) for m in METHODS}
    for _ in range(25):
        h, w = rng.integers(4, 70, 2)
        hh, ww = rng.integers(1, h + 1), rng.integers(1, w + 1)
        image = rng.uniform(0, 255, (h, w)).astype(np.float32)
        t = rng.uniform(0, 255, (hh, ww)).astype(np.float32)
        for method, code in codes.items():
            got = cconv.match_template(image, t, method)
            want = cv2.matchTemplate(image, t, code)
            scale = max(float(np.abs(want).max()), 1.0) if not method.endswith("normed") else 1.0
            assert got.shape == want.shape
            assert np.max(np.abs(got - want)) / scale <= 1e-4, (method, (h, w, hh, ww))


@pytest.mark.parametrize("pad_input", [False, True])
def test_against_scikit_image(rng, pad_input):
    skimage_feature = pytest.importorskip(
        "skimage.feature", reason="scikit-image is an optional test peer (pip install scikit-image)"
    )
    for _ in range(25):
        h, w = rng.integers(4, 60, 2)
        hh, ww = rng.integers(2, h + 1), rng.integers(2, w + 1)
        image = rng.standard_normal((h, w))
        t = rng.standard_normal((hh, ww))
        got = cconv.match_template(image, t, pad_input=pad_input)
        want = skimage_feature.match_template(image, t, pad_input=pad_input)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-6)


# ---------------------------------------------------------------------------
# find_matches
# ---------------------------------------------------------------------------


def test_find_matches_best_first_with_suppression():
    s = np.zeros((2, 20, 20))
    s[0, 5, 5], s[0, 6, 7], s[0, 15, 15] = 0.9, 0.95, 0.6
    s[1, 5, 5] = 0.8
    got = cconv.find_matches(s, num=10, min_distance=3, threshold=0.5)
    assert [tuple(m) for m in got] == [(0, 6, 7, 0.95), (1, 5, 5, 0.8), (0, 15, 15, 0.6)]
    assert got[0].pair == 0 and got[0].y == 6 and got[0].x == 7
    # without suppression the neighbour comes back
    got = cconv.find_matches(s, num=2, min_distance=0)
    assert [(m.y, m.x) for m in got] == [(6, 7), (5, 5)]


def test_find_matches_lower_is_better_nan_and_plateaus():
    s = np.full((30, 30), 5.0)
    s[3, 4] = np.nan
    s[10, 10], s[25, 2] = 0.5, 1.0
    got = cconv.find_matches(s, num=3, min_distance=5, lower_is_better=True, threshold=2.0)
    assert [(m.y, m.x, m.score) for m in got] == [(10, 10, 0.5), (25, 2, 1.0)]
    flat = cconv.find_matches(np.zeros((400, 400)), num=4, min_distance=150)
    assert len(flat) == 4
    for i, a in enumerate(flat):
        for b in flat[i + 1:]:
            assert max(abs(a.y - b.y), abs(a.x - b.x)) > 150


def test_find_matches_peak_beside_a_suppressed_candidate():
    # 10 is a match; 9 (2 from it) is suppressed; 8 is 4 from 10, 2 from the
    # suppressed 9: by the documented rule ("a better match suppresses the
    # worse") it is the second match.
    s = np.array([[10.0, 0.0, 9.0, 0.0, 8.0]])
    got = cconv.find_matches(s, num=5, min_distance=2)
    assert [tuple(m) for m in got] == [(0, 0, 0, 10.0), (0, 0, 4, 8.0)]

@pytest.mark.parametrize("lower_is_better", [False, True])
def test_find_matches_worst_infinity_is_a_score(lower_is_better):
    worst = np.inf if lower_is_better else -np.inf
    got = cconv.find_matches(np.array([[1.0, worst]]), num=5, min_distance=0,
                             lower_is_better=lower_is_better)
    assert [tuple(m) for m in got] == [(0, 0, 0, 1.0), (0, 0, 1, worst)]

@pytest.mark.parametrize("threshold, want", [(Fraction(19, 2), 2), (10**400, 0), (-10**400, 5)],
                         ids=["fraction", "int 1e400", "int -1e400"])
def test_find_matches_threshold_beyond_float(threshold, want):
    s = np.array([[1.0, 0.0, 9.5, 0.0, 10.0]])
    try:
        got = cconv.find_matches(s, num=5, min_distance=0, threshold=threshold)
    except (TypeError, ValueError) as exc:  # refused: it must say why
        assert names(str(exc), "threshold"), f"{type(exc).__name__}: {exc}"
        return
    assert len(got) == want, got

@pytest.mark.parametrize("min_distance", ["2**31", "2**40", "2**61", "np.int64(2**62)"])
def test_find_matches_huge_min_distance(min_distance, tmp_path):
    # A valid distance (an int >= 0): one match per map, as for any distance
    # beyond the map.  In a child process, so a crash fails only this test.
    code = (
        "import warnings, numpy as np, cconv\n"
        "warnings.simplefilter('error')\n"
        "s = np.arange(12.0).reshape(3, 4)\n"
        f"got = cconv.find_matches(s, num=5, min_distance={min_distance})\n"
        "assert [tuple(m) for m in got] == [(0, 2, 3, 11.0)], got\n"
    )

    run_child(code, tmp_path)


def test_matching_the_demo_case_end_to_end(rng):
    image = rng.standard_normal((100, 120))
    t = image[40:55, 60:80].copy()
    scores = cconv.match_template(image + 0.3 * rng.standard_normal(image.shape), t)
    (best,) = cconv.find_matches(scores, num=1)
    assert (best.pair, best.y, best.x) == (0, 40, 60) and 0.9 < best.score <= 1


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------

BAD_MATCH = [
    ({"image": np.zeros(5)}, ValueError, r"image must be a 2-D or 3-D array.*\(5,\)"),
    ({"templates": np.zeros((1, 2, 3, 3))}, ValueError, r"templates must be a 2-D or 3-D array"),
    ({"templates": np.zeros((9, 3))}, ValueError, r"templates \(9, 3\) is larger than image \(8, 8\)"),
    ({"templates": np.zeros((0, 3))}, ValueError, r"templates is empty: shape \(0, 3\)"),
    ({"image": np.zeros((0, 8))}, ValueError, r"image is empty"),
    ({"image": np.zeros((2, 8, 8)), "templates": np.zeros((3, 2, 2))}, ValueError, r"do not broadcast"),
    ({"method": "TM_CCOEFF_NORMED"}, ValueError, r"method must be one of .*got 'TM_CCOEFF_NORMED'"),
    ({"method": None}, ValueError, r"method must be one of"),
    ({"pad_input": "yes"}, TypeError, r"pad_input must be True or False; got 'yes'"),
    ({"image": np.zeros((8, 8), complex)}, TypeError, r"image has unsupported dtype complex128"),
    ({"templates": np.zeros((2, 2), object)}, TypeError, r"templates has unsupported dtype object"),
    ({"image": [[1, 2], [3]]}, ValueError, r"image could not be converted"),
]


@pytest.mark.parametrize("change,exc,message", BAD_MATCH, ids=[str(i) for i in range(len(BAD_MATCH))])
def test_bad_match_template_arguments(change, exc, message):
    args = {"image": np.zeros((8, 8)), "templates": np.ones((3, 3)), "method": "ccoeff_normed", "pad_input": False}
    args.update(change)
    with pytest.raises(exc, match=message):
        cconv.match_template(**args)


@pytest.mark.parametrize(
    "kwargs,exc,message",
    [({"scores": np.zeros(4)}, ValueError, r"scores must be a 2-D or 3-D array"),
     ({"scores": np.zeros((3, 3), complex)}, TypeError, r"scores has unsupported dtype"),
     ({"num": 0}, ValueError, r"num must be at least 1; got 0"),
     ({"num": 2.0}, TypeError, r"num must be an int; got 2.0"),
     ({"min_distance": -1}, ValueError, r"min_distance must be at least 0"),
     ({"threshold": "high"}, TypeError, r"threshold must be a real number or None"),
     ({"threshold": float("nan")}, TypeError, r"threshold must be a real number or None; got nan"),
     ({"lower_is_better": 1}, TypeError, r"lower_is_better must be True or False")],
)
def test_bad_find_matches_arguments(kwargs, exc, message):
    args = {"scores": np.zeros((4, 4))}
    args.update(kwargs)
    with pytest.raises(exc, match=message):
        cconv.find_matches(**args)
