"""cconv.ndimage beyond 2-D weights: correlate/convolve with 1-D and 3-D weights,
and correlate1d/convolve1d, against SciPy.

Every expected value comes from ``scipy.ndimage``, never from cconv.
Integer and bool outputs must be SciPy's very integers on every build of
the exact sums; float outputs within the documented tolerance.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.ndimage
from cases import dropin_data as data
from cases import integer_mismatches

from cconv import SciPyFallbackWarning
from cconv import ndimage as cnd

METHODS = ("auto", "direct", "fft")
MODES = ("reflect", "grid-mirror", "mirror", "nearest", "wrap", "grid-wrap", "constant", "grid-constant")
FUNCS = ("correlate", "convolve")
FUNCS_1D = ("correlate1d", "convolve1d")
INT_OUTPUTS = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


def both(name):
    return getattr(cnd, name), getattr(scipy.ndimage, name)




def check(got, expected, exact=False, float32_sums=False):
    assert type(got) is np.ndarray
    assert got.dtype == expected.dtype and got.shape == expected.shape, (got.dtype, got.shape, expected.dtype,
                                                                         expected.shape)
    if exact or expected.dtype.kind in "biu":
        np.testing.assert_array_equal(got, expected, strict=True)
        return
    eps = np.finfo(np.float32 if float32_sums else np.float64).eps
    e = np.asarray(expected, dtype=np.complex128 if expected.dtype.kind == "c" else np.float64)
    scale = max(float(np.max(np.abs(e))) if e.size else 0.0, 1.0)
    assert float(np.max(np.abs(np.asarray(got, dtype=e.dtype) - e), initial=0.0)) <= 64 * eps * scale


# --------------------------------------------------------------------------
# correlate / convolve with 1-D and 3-D weights


CASES = [  # input shape, weights shape, axes
    ((40,), (5,), None), ((17,), (4,), None), ((6, 30), (7,), (1,)), ((6, 5, 9), (3,), (0,)),
    ((12, 11, 10), (3, 3, 3), None), ((9, 10, 8), (2, 5, 4), None), ((2, 8, 9, 10), (3, 2, 3), (1, 2, 3)),
    ((7, 3, 8, 6), (3, 1, 4), (0, 2, 3)), ((8, 9, 10), (1, 3, 1), None),
]


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8, np.int32, np.bool_, np.complex128],
                         ids=lambda d: np.dtype(d).name)
def test_1d_and_3d_weights_every_mode(name, method, dtype, rng):
    ours, theirs = both(name)
    for shape, wshape, axes in CASES:
        x = data(rng, shape, dtype)
        w = data(rng, wshape, np.float64)
        for mode in MODES:
            kwargs = dict(mode=mode, cval=1.5, axes=axes)
            # integer-valued data: the direct float sums are exact, as SciPy's
            check(ours(x, w, method=method, **kwargs), theirs(x, w, **kwargs), exact=method == "direct",
                  float32_sums=dtype == np.float32)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_origins_outputs_and_aliasing(name, method, rng):
    ours, theirs = both(name)
    x = data(rng, (9, 10, 11), np.float64)
    w = data(rng, (3, 4, 2), np.float64)
    for origin in (0, (1, -2, 0), (-1, 1, -1), -1):
        for output in (None, np.float32, "int16", np.zeros(x.shape, np.uint8)):
            expected = theirs(x, w, output=output if not isinstance(output, np.ndarray) else output.copy(),
                              origin=origin, mode="nearest")
            got = ours(x, w, output=output, origin=origin, mode="nearest", method=method)
            check(got, expected, exact=method == "direct")
            if isinstance(output, np.ndarray):
                assert got is output
    with pytest.raises(ValueError, match="origin"):
        ours(x, w, origin=(0, 3, 0), method=method)
    same = x.copy()
    assert ours(same, w, output=same, method=method) is same  # output may be the input
    check(same, theirs(x, w), exact=method == "direct")


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_large_volumes_every_route(name, method, rng):
    ours, theirs = both(name)
    x = data(rng, (40, 36, 44), np.float64, integral=False)
    for w in (data(rng, (3, 3, 3), np.float64, integral=False), data(rng, (7, 7, 7), np.float64, integral=False)):
        check(ours(x, w, method=method, mode="reflect"), theirs(x, w, mode="reflect"))
    s = data(rng, (30000,), np.float64, integral=False)
    w = data(rng, (101,), np.float64, integral=False)
    check(ours(s, w, method=method, mode="wrap"), theirs(s, w, mode="wrap"))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_nan_inf_and_tiny_weights_as_scipy(name, method, rng):
    # correlate skips weights of magnitude up to DBL_EPSILON: 0 * Inf is no NaN there.
    ours, theirs = both(name)
    x = data(rng, (10, 11, 12), np.float64, integral=False)
    x[2, 3, 4], x[7, 7, 7], x[0, 10, 11] = np.nan, np.inf, -np.inf
    tiny = np.array([[[1.0, 1e-17, 0.0], [2.0, 0.0, -1.0]]])
    for w, kwargs in ((data(rng, (3, 2, 3), np.float64, integral=False), {}), (tiny, {}),
                      (tiny, dict(mode="constant", cval=np.nan)), (tiny[0, 0], dict(mode="constant", cval=np.inf))):
        xx = x if w.ndim == 3 else np.where(np.isfinite(x), x, 0)[0, 0]  # a NaN cval with finite data
        got, expected = ours(xx, w, method=method, **kwargs), theirs(xx, w, **kwargs)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_array_equal(np.where(np.isinf(got), got, 0), np.where(np.isinf(expected), expected, 0))
        fin = np.isfinite(expected)
        np.testing.assert_allclose(got[fin], expected[fin], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", FUNCS)
def test_weights_along_more_than_three_axes_go_to_scipy(name, rng, monkeypatch):
    from cconv import _fallback

    monkeypatch.setattr(_fallback, "_warned", set())
    ours, theirs = both(name)
    x = data(rng, (5, 6, 4, 5), np.float64)
    w = data(rng, (2, 3, 2, 3), np.float64)
    with pytest.warns(SciPyFallbackWarning, match=f"cconv.ndimage.{name}: weights along 4 axes"):
        got = ours(x, w, mode="mirror")
    np.testing.assert_array_equal(got, theirs(x, w, mode="mirror"), strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SciPyFallbackWarning)
        ours(x, w)  # warned once per process
        # four axes, of which only three have weights of size above 1: cconv's
        check(ours(x, w[:1], mode="wrap", method="direct"), theirs(x, w[:1], mode="wrap"), exact=True)


# --------------------------------------------------------------------------
# correlate1d / convolve1d


@pytest.mark.parametrize("name", FUNCS_1D)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16, np.uint8, np.bool_, np.complex64],
                         ids=lambda d: np.dtype(d).name)
def test_1d_filters_every_mode_and_axis(name, method, dtype, rng):
    ours, theirs = both(name)
    x = data(rng, (7, 9, 8), dtype)
    for weights in ([1.0, 2.0, 1.0], [1.0, 0.0, -1.0], [3.0, -1.0], [2.0, 1.0, 5.0, -3.0, 1.0], [4.0],
                    list(range(1, 12))):
        w = np.array(weights)
        for axis in (0, 1, -1):
            for mode in MODES:
                kwargs = dict(axis=axis, mode=mode, cval=-2.5)
                check(ours(x, w, method=method, **kwargs), theirs(x, w, **kwargs), exact=method == "direct",
                      float32_sums=dtype in (np.float32, np.complex64))


@pytest.mark.parametrize("name", FUNCS_1D)
@pytest.mark.parametrize("method", METHODS)
def test_1d_filters_origins_outputs_and_errors(name, method, rng):
    ours, theirs = both(name)
    x = data(rng, (6, 20), np.float64)
    w = np.array([1.0, -2.0, 3.0, 0.5])
    for origin in (-2, -1, 0, 1, True, np.int8(1)):
        for output in (None, np.float32, np.zeros(x.shape, np.int16)):
            expected = theirs(x, w, output=output if not isinstance(output, np.ndarray) else output.copy(),
                              origin=origin)
            got = ours(x, w, output=output, origin=origin, method=method)
            check(got, expected, exact=method == "direct")
    bad = [dict(origin=2), dict(origin=1.0), dict(axis=2), dict(axis=1.0), dict(mode="bogus"), dict(mode=["wrap"]),
           dict(cval="1"), dict(output=np.zeros((2, 2))), dict(output="bool")]
    for kwargs in bad:
        with pytest.raises(Exception) as expected:
            theirs(x, w, **kwargs)
        with pytest.raises(type(expected.value)):
            ours(x, w, method=method, **kwargs)
    for weights in ([], [[1.0, 2.0]]):
        with pytest.raises(RuntimeError, match="no filter weights"):
            cnd.correlate1d(x, weights)
    readonly = np.zeros(x.shape)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        ours(x, w, output=readonly)
    with pytest.raises(RuntimeError, match="not supported"):
        ours(x.astype(np.float16), w)


@pytest.mark.parametrize("name", FUNCS_1D)
def test_1d_filters_keep_every_weight(name):
    # correlate1d, unlike correlate, skips no weight: 0 * Inf is NaN.
    ours, theirs = both(name)
    x = np.array([1.0, np.inf, 2.0, np.nan, 3.0, 4.0, 5.0, -np.inf])
    for w in ([1.0, 0.0, 1.0], [1e-17, 2.0, 0.0], [0.0, 0.0]):
        for method in METHODS:
            got, expected = ours(x, w, method=method), theirs(x, w)
            np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
            np.testing.assert_array_equal(np.where(np.isinf(got), got, 0), np.where(np.isinf(expected), expected, 0))


@pytest.mark.parametrize("name", FUNCS_1D)
def test_1d_filters_of_a_long_signal(name, rng):
    # One long line: cut into rows for the threads, on every route.
    ours, theirs = both(name)
    s = data(rng, (200_000,), np.float64, integral=False)
    w = data(rng, (101,), np.float64, integral=False)
    for method in METHODS:
        check(ours(s, w, mode="mirror", method=method), theirs(s, w, mode="mirror"))
    si = (s * 20).astype(np.int32)
    np.testing.assert_array_equal(ours(si, w / 7, output=np.int32), theirs(si, w / 7, output=np.int32), strict=True)


@pytest.mark.parametrize("name", FUNCS_1D)
@pytest.mark.parametrize("size", [1, 2, 5, 30, 61])
def test_1d_filters_of_lines_cut_into_rows(name, size, rng, monkeypatch):
    # Lines cut into rows, made small: the rows inside a line are copied
    # from it directly, those over an edge are extended by the mode; every
    # mode, origin, a reversed view, one and three lines, float and integer
    # outputs (the ordered sums), filters longer than a row.
    from cconv import _planes

    monkeypatch.setattr(_planes, "LINE_CUT", 64)
    monkeypatch.setattr(_planes, "LINE_CHUNK", 16)
    ours, theirs = both(name)
    w = data(rng, (size,), np.float64, integral=False)
    for shape in [(300,), (3, 200)]:
        s = data(rng, shape, np.float64, integral=False)
        for line in (s, s[..., ::-1]):
            for mode in MODES:
                for origin in {0, -(size // 2), (size - 1) // 2}:
                    kw = dict(mode=mode, origin=origin, cval=1.5)
                    check(ours(line, w, method="direct", **kw), theirs(line, w, **kw))
                    li = (line * 20).astype(np.int32)
                    check(ours(li, w / 7, output=np.int32, **kw), theirs(li, w / 7, output=np.int32, **kw))


# --------------------------------------------------------------------------
# Integer outputs: SciPy's doubles, truncated as SciPy truncates them


def _integral_sums(rng, shape, size, symmetry):
    """Weights ``m / d`` (symmetric, antisymmetric or neither) and inputs that
    are multiples of ``d``: every exact sum is an integer, which a double sum
    rounded any other way than SciPy's misses by an ulp."""
    d = int(rng.choice([3, 7, 9, 11, 25]))
    m = rng.integers(-4, 5, size=size)
    if symmetry == "symmetric":
        m = m + m[::-1]
    elif symmetry == "antisymmetric":
        m = m - m[::-1]
    return rng.integers(0, 12, size=shape) * d, m / d


@pytest.mark.parametrize("name", FUNCS_1D)
@pytest.mark.parametrize("symmetry", ["symmetric", "antisymmetric", "neither"])
@pytest.mark.parametrize("out", INT_OUTPUTS, ids=lambda d: np.dtype(d).name)
def test_1d_integer_outputs_are_scipys_integers(exact_build, name, symmetry, out):
    pairs = []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        x, w = _integral_sums(rng, (5, 23), [3, 5, 7, 4, 9, 1, 2, 11][seed], symmetry)
        pairs.append((x.astype(np.uint8 if x.max() < 256 and seed % 2 else np.int32), w))
    differ, total = integer_mismatches(*both(name), pairs, out, MODES, METHODS)
    assert differ == 0, f"{differ} of {total} integers differ from SciPy's"


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("out", [np.uint8, np.int32, np.bool_, np.uint64], ids=lambda d: np.dtype(d).name)
def test_1d_and_3d_integer_outputs_are_scipys_integers(exact_build, name, out):
    ours, theirs = both(name)
    for seed in range(4):
        rng = np.random.default_rng(seed)
        for shape, wshape in (((31,), (5,)), ((7, 8, 9), (3, 2, 3)), ((6, 6, 6), (3, 3, 3))):
            d = int(rng.choice([3, 7, 9]))
            x = rng.integers(0, 12, size=shape) * d
            w = rng.integers(-4, 5, size=wshape) / d
            for mode in MODES:
                np.testing.assert_array_equal(ours(x, w, output=out, mode=mode), theirs(x, w, output=out, mode=mode),
                                              strict=True)


def test_uint8_mean_of_a_volume(exact_build):
    # The box mean of a uint8 volume: windows summing to a multiple of 27
    # have an exact integer mean, which SciPy's double lands on.
    vol = np.random.default_rng(0).integers(0, 256, size=(20, 24, 28)).astype(np.uint8)
    box = np.ones((3, 3, 3)) / 27
    for mode in ("reflect", "constant", "wrap"):
        np.testing.assert_array_equal(cnd.correlate(vol, box, mode=mode), scipy.ndimage.correlate(vol, box, mode=mode),
                                      strict=True)


BUILDS_SCRIPT = """
import numpy as np, scipy.ndimage as ndi, cconv.ndimage as cn
rng = np.random.default_rng(0)
img = rng.integers(0, 256, size=(64, 96)).astype(np.uint8)
for w in ([1 / 3, 1 / 3, 1 / 3], [1 / 7, 2 / 7, 1 / 7], [-1 / 3, 0, 1 / 3], [1 / 9, 2 / 9, 5 / 9, 1 / 9]):
    for axis in (0, 1):
        assert np.array_equal(ndi.correlate1d(img, w, axis), cn.correlate1d(img, w, axis)), (w, axis)
vol = rng.integers(0, 256, size=(12, 13, 14)).astype(np.uint8)
assert np.array_equal(ndi.correlate(vol, np.ones((3, 3, 3)) / 27), cn.correlate(vol, np.ones((3, 3, 3)) / 27))
import cconv._dispatch as b
print(b.exact_module().__name__)
"""


@pytest.mark.parametrize("kernels", ["baseline", "v3", "v4"])
def test_integer_outputs_on_every_build(kernels, on_build):
    # In a process whose kernels are capped at one build (CCONV_KERNELS).
    on_build(kernels, BUILDS_SCRIPT)


@pytest.mark.parametrize("name", FUNCS + FUNCS_1D)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.uint8], ids=lambda d: np.dtype(d).name)
def test_results_are_new_arrays_that_outlive_the_next_call(name, method, dtype, rng):
    # Extended copies and rows live in scratch space reused by the next call;
    # a result (also one returned in place of the output cconv made) is a new,
    # C-contiguous array of its own.
    ours, _ = both(name)
    w = np.array([1.0, 2.0, 1.0]) if name in FUNCS_1D else data(rng, (3, 2, 3), np.float64)
    for shape in ((9, 10, 11), (20_000,)) if name in FUNCS_1D else ((9, 10, 11),):
        x = data(rng, shape, dtype)
        first = ours(x, w, method=method)
        kept = first.copy()
        ours(data(rng, shape, dtype), w, method=method)
        np.testing.assert_array_equal(first, kept, strict=True)
        assert first.flags.c_contiguous and first.flags.owndata or first.base is not None and \
            first.base.nbytes == first.nbytes
        assert not np.shares_memory(first, x)
