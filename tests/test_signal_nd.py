"""cconv.signal's N-D calls: convolve, correlate, fftconvolve, oaconvolve, choose_conv_method.

Every expected value comes from ``scipy.signal`` (its direct method, whose
sums are exact for integer-valued data) or from a plain-NumPy direct sum
written here, never from cconv.  The documented claims are checked on
every method and on both of cconv's FFT plans (whole transforms and tiles).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import scipy.signal
from cases import dropin_data

from cconv import SciPyFallbackWarning, _fftconv, threads
from cconv import signal as csig

METHODS = ("auto", "direct", "fft")
MODES = ("full", "same", "valid")
FUNCS = ("convolve", "correlate")
FFT_FUNCS = ("fftconvolve", "oaconvolve")


def both(name):
    return getattr(csig, name), getattr(scipy.signal, name)


def data(rng, shape, dtype, integral=True):
    return dropin_data(rng, shape, dtype, integral, high=10)



def assert_close(actual, expected, rtol):
    """Same dtype and shape; values within ``rtol`` of the largest expected magnitude."""
    assert type(actual) is np.ndarray
    assert actual.dtype == expected.dtype and actual.shape == expected.shape, (actual.dtype, actual.shape,
                                                                               expected.dtype, expected.shape)
    e = np.asarray(expected, dtype=np.clongdouble if expected.dtype.kind == "c" else np.longdouble)
    scale = float(np.max(np.abs(e))) if e.size else 0.0
    assert float(np.max(np.abs(np.asarray(actual, dtype=e.dtype) - e), initial=0.0)) <= rtol * max(scale, 1.0)


def tolerance(dtype):
    real = np.empty(0, dtype).real.dtype
    return 64 * float(np.finfo(real).eps) if real.kind == "f" else 0.0


def same_nonfinite(actual, expected):
    for a, e in ((actual.real, expected.real), (actual.imag, expected.imag)) if expected.dtype.kind == "c" else \
            ((actual, expected),):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg="NaN not where expected")
        np.testing.assert_array_equal(np.where(np.isinf(a), a, 0), np.where(np.isinf(e), e, 0),
                                      err_msg="+-Inf not where expected")


def overlap_sum(a, b):
    """The full convolution as a plain direct sum of the products of overlapping
    samples (no padding: terms only where both operands have samples)."""
    out = np.zeros(tuple(n + m - 1 for n, m in zip(a.shape, b.shape)), np.result_type(a, b, np.float64))
    with np.errstate(all="ignore"):
        for j in np.ndindex(*b.shape):
            window = tuple(slice(i, i + n) for i, n in zip(j, a.shape))
            out[window] = out[window] + a * b[j]
    return out


# --------------------------------------------------------------------------
# convolve and correlate: results and dtypes, against SciPy's direct method


SHAPES = {1: [((13,), (4,)), ((5,), (9,)), ((8,), (8,))],
          2: [((9, 11), (3, 4)), ((4, 6), (5, 2)), ((6, 6), (6, 6))],
          3: [((6, 7, 5), (3, 2, 4)), ((3, 4, 5), (4, 3, 2)), ((5, 1, 6), (2, 1, 3))]}


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int32, np.uint8, np.int64, np.complex128,
                                   np.complex64, np.longdouble], ids=lambda d: np.dtype(d).name)
def test_every_mode_rank_and_method_as_scipy(name, method, rank, dtype, rng):
    ours, theirs = both(name)
    for s1, s2 in SHAPES[rank]:
        a, b = data(rng, s1, dtype), data(rng, s2, dtype)
        for mode in MODES:
            if mode == "valid" and not (all(p >= q for p, q in zip(s1, s2)) or all(p <= q for p, q in zip(s1, s2))):
                continue
            with warnings.catch_warnings():
                # SciPy 1.15-1.16 deprecated long double here; 1.17 kept it
                warnings.filterwarnings("ignore", "dtype=.* is not supported", DeprecationWarning)
                expected = theirs(a, b, mode, method="direct")
            got = ours(a, b, mode, method=method)
            if np.dtype(dtype).kind in "iu" or method == "direct" and np.dtype(dtype) != np.longdouble:
                # integers always, integer-valued floats on the direct sums: exactly SciPy's
                np.testing.assert_array_equal(got, expected, strict=True)
            else:
                assert_close(got, expected, tolerance(dtype))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dt1, dt2", [("i1", "u1"), ("u1", "f4"), ("i2", "f8"), ("f4", "c8"), ("?", "i4"),
                                      ("i8", "u8"), ("f4", "f8")])
def test_output_dtype_is_scipys(name, dt1, dt2, rng):
    ours, theirs = both(name)
    a, b = data(rng, (5, 6), dt1), data(rng, (2, 3), dt2)
    for method in METHODS:
        assert ours(a, b, method=method).dtype == theirs(a, b, method="direct").dtype


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_integers_are_exact_and_wrap_on_every_method(name, method):
    # SciPy's direct sums wrap modulo 2**bits (uint8 200 * 2 is 144); its
    # FFT route rounds a float, which fails for large values.  cconv sums
    # integers exactly on every method.
    ours, theirs = both(name)
    a = np.array([200, 100, 7], np.uint8)
    np.testing.assert_array_equal(ours(a, np.array([2, 1], np.uint8), method=method),
                                  theirs(a, np.array([2, 1], np.uint8), method="direct"), strict=True)
    big = np.array([2**40 + 1, 3, 2**41 - 1], np.int64)
    np.testing.assert_array_equal(ours(big, big[::-1], method=method), theirs(big, big[::-1], method="direct"),
                                  strict=True)
    x = np.random.default_rng(5).integers(-2**31, 2**31, size=(40, 30)).astype(np.int64)
    np.testing.assert_array_equal(ours(x, x[:7, :5], "same", method=method),
                                  theirs(x, x[:7, :5], "same", method="direct"), strict=True)


@pytest.mark.parametrize("name", FUNCS)
def test_large_inputs_every_method_and_fft_plan(name, rng):
    # Sizes where 'auto' picks the FFTs, and where the FFT route tiles.
    ours, theirs = both(name)
    for s1, s2 in [((300, 280), (31, 29)), ((20000,), (101,)), ((40, 44, 38), (7, 5, 6)), ((150, 160), (140, 90))]:
        a, b = data(rng, s1, np.float64, integral=False), data(rng, s2, np.float64, integral=False)
        for mode in MODES:
            expected = theirs(a, b, mode, method="fft")
            for method in METHODS:
                assert_close(ours(a, b, mode, method=method), expected, 1e-12)


@pytest.mark.parametrize("name", FUNCS)
def test_long_signals_cut_into_rows_as_scipy(name, rng, monkeypatch):
    # A long 1-D signal is cut into rows for the threads (made small here):
    # rows inside it are copied straight from it, those over its ends are
    # zero-extended; kernels longer than a row, reversed views, integers.
    from cconv import _planes

    monkeypatch.setattr(_planes, "LINE_CUT", 64)
    monkeypatch.setattr(_planes, "LINE_CHUNK", 16)
    ours, theirs = both(name)
    for n1, n2 in [(300, 1), (300, 7), (257, 40), (40, 257), (500, 101)]:
        for dtype in (np.float64, np.int32):
            a, b = data(rng, (n1,), dtype), data(rng, (n2,), dtype)
            for a1 in (a, a[::-1]):
                for mode in MODES:
                    np.testing.assert_array_equal(ours(a1, b, mode, method="direct"),
                                                  theirs(a1, b, mode, method="direct"), strict=True)


def test_fft_route_tiles_a_large_input_with_a_small_kernel():
    assert _fftconv.plan((2048, 2048), (31, 31), (0, 0), (2078, 2078)).tiled
    assert _fftconv.plan((10**6,), (101,), (0,), (10**6 + 100,)).tiled
    assert not _fftconv.plan((300, 300), (280, 290), (0, 0), (579, 589)).tiled
    assert csig.choose_conv_method(np.ones((1000, 1000)), np.ones((60, 60))) == "fft"
    assert csig.choose_conv_method(np.ones(1000), np.ones(3)) == "direct"


@pytest.mark.parametrize("name", FUNCS)
def test_same_is_centred_as_scipy_centres_it(name, rng):
    # For an even in2, correlate's 'same' starts one sample before
    # correlate2d's; convolve's is convolve2d's.
    ours, theirs = both(name)
    a, b = data(rng, (7, 8), np.float64), data(rng, (4, 2), np.float64)
    np.testing.assert_array_equal(ours(a, b, "same"), theirs(a, b, "same", method="direct"), strict=True)
    if name == "convolve":
        np.testing.assert_array_equal(ours(a, b, "same"), scipy.signal.convolve2d(a, b, "same"), strict=True)
    else:
        assert not np.array_equal(ours(a, b, "same"), scipy.signal.correlate2d(a, b, "same"))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_valid_swaps_the_larger_input_first(name, method, rng):
    ours, theirs = both(name)
    for s1, s2 in [((3,), (8,)), ((2, 3), (5, 7)), ((2, 2, 2), (3, 3, 3))]:
        a, b = data(rng, s1, np.complex128), data(rng, s2, np.complex128)
        np.testing.assert_array_equal(ours(a, b, "valid", method="direct"), theirs(a, b, "valid", method="direct"),
                                      strict=True)
        assert_close(ours(a, b, "valid", method=method), theirs(a, b, "valid", method="direct"), 1e-13)
    with pytest.raises(ValueError, match="at least as large"):
        ours(np.ones((2, 3)), np.ones((3, 2)), "valid", method=method)


@pytest.mark.parametrize("name", FUNCS)
def test_axes_where_both_have_size_one_are_a_batch(name, rng):
    # (1, 1, 5, 1, 6) is a 2-D convolution: on cconv's engine, no fallback.
    ours, theirs = both(name)
    a, b = data(rng, (1, 1, 9, 1, 8), np.float64), data(rng, (1, 1, 3, 1, 4), np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SciPyFallbackWarning)
        for mode in MODES:
            for method in METHODS:  # (the cost model of 'auto' too counts only the other axes)
                assert_close(ours(a, b, mode, method=method), theirs(a, b, mode, method="direct"), 1e-13)
            assert_close(ours(a[:1, :1, :1], b[:1, :1, :1], mode), theirs(a[:1, :1, :1], b[:1, :1, :1], mode), 0)


# --------------------------------------------------------------------------
# NaN and Inf


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("rank", [1, 2, 3])
def test_nan_and_inf_stay_where_scipys_direct_sums_put_them(name, method, rank, rng):
    # SciPy's N-D direct sums count in1's zero padding as terms (an infinite
    # tap over it gives NaN); its 1-D route is NumPy's convolve, which does
    # not.  cconv gives the same on every method, also 'fft'.
    ours, theirs = both(name)
    s1, s2 = SHAPES[rank][0]
    for trial in range(6):
        a, b = data(rng, s1, np.float64, integral=False), data(rng, s2, np.float64, integral=False)
        a.flat[rng.integers(a.size, size=2)] = [np.nan, np.inf][trial % 2], -np.inf
        if trial >= 2:
            b.flat[rng.integers(b.size)] = [np.inf, -np.inf, np.nan, 0.0][trial - 2]
        b.flat[0] = 0.0  # 0 * Inf is NaN
        for mode in MODES:
            with np.errstate(all="ignore"):
                expected = theirs(a, b, mode, method="direct")
            got = ours(a, b, mode, method=method)
            same_nonfinite(got, expected)
            fin = np.isfinite(expected)
            np.testing.assert_allclose(got[fin], expected[fin], rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", FFT_FUNCS)
def test_fftconvolve_keeps_nan_and_inf_local_where_scipy_spreads_them(name, rng):
    # The one deliberate difference from SciPy (scipy/scipy#15927): SciPy's
    # FFT makes every output NaN from a single NaN sample; cconv's has NaN,
    # +Inf and -Inf where the direct sum of the overlapping products has them.
    ours, theirs = both(name)
    for s1, s2 in [((200,), (9,)), ((40, 50), (5, 4)), ((12, 14, 10), (3, 4, 2)), ((3000,), (31,))]:
        a, b = data(rng, s1, np.float64, integral=False), data(rng, s2, np.float64, integral=False)
        a.flat[7], a.flat[a.size // 2], a.flat[-3] = np.nan, np.inf, -np.inf
        b.flat[1] = 0.0
        expected = overlap_sum(a, b)
        with np.errstate(all="ignore"):
            spread = theirs(a, b)
        # SciPy: NaN everywhere (fftconvolve), or over whole blocks (oaconvolve)
        assert np.isnan(spread).all() if name == "fftconvolve" else np.isnan(spread).sum() > np.isnan(expected).sum()
        got = ours(a, b)
        same_nonfinite(got, expected)
        fin = np.isfinite(expected)
        assert fin.sum() > expected.size // 2  # most outputs are finite, as in a direct sum
        np.testing.assert_allclose(got[fin], expected[fin], rtol=0, atol=1e-11 * np.abs(expected[fin]).max())
        # an infinite kernel tap: +Inf or -Inf over the overlaps, NaN where it meets +-Inf
        bb = b.copy()
        bb.flat[-1] = np.inf
        same_nonfinite(ours(a, bb), overlap_sum(a, bb))


@pytest.mark.parametrize("name", FFT_FUNCS)
def test_many_nonfinite_samples(name, rng):
    # Many NaN and Inf: the FFT-counted masks, not the cell-by-cell marks.
    ours, _ = both(name)
    a = data(rng, (60, 70), np.float64, integral=False)
    a[rng.random(a.shape) < 0.1] = np.inf
    a[rng.random(a.shape) < 0.1] = -np.inf
    a[rng.random(a.shape) < 0.05] = np.nan
    b = data(rng, (4, 5), np.float64, integral=False)
    b[0, 0] = 0.0
    same_nonfinite(ours(a, b), overlap_sum(a, b))
    z, w = np.empty(a.shape, complex), np.empty(b.shape, complex)
    z.real, z.imag, w.real, w.imag = a, np.roll(a, 3), b, b[::-1, ::-1]
    expected = np.empty((63, 74), complex)
    with np.errstate(invalid="ignore"):  # the sums of the parts' products: Inf - Inf is NaN
        expected.real = overlap_sum(a, b) - overlap_sum(z.imag, w.imag)
        expected.imag = overlap_sum(a, w.imag) + overlap_sum(z.imag, b)
    same_nonfinite(ours(z, w), expected)


# --------------------------------------------------------------------------
# fftconvolve and oaconvolve


@pytest.mark.parametrize("name", FFT_FUNCS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int16, np.bool_, np.complex64, np.complex128,
                                   np.longdouble], ids=lambda d: np.dtype(d).name)
def test_fft_functions_match_scipy(name, dtype, rng):
    ours, theirs = both(name)
    for s1, s2 in itertools.chain(*SHAPES.values()):
        a, b = data(rng, s1, dtype, integral=False), data(rng, s2, dtype, integral=False)
        for mode in MODES:
            try:
                expected = theirs(a, b, mode)
            except ValueError:
                with pytest.raises(ValueError):
                    ours(a, b, mode)
                continue
            assert_close(ours(a, b, mode), expected, 1e-4 if np.dtype(dtype) in (np.float32, np.complex64) else 1e-12)


@pytest.mark.parametrize("name", FFT_FUNCS)
@pytest.mark.parametrize("route", ["fft", "direct"])
def test_fft_functions_on_both_routes(name, route, rng, monkeypatch):
    # cconv's fftconvolve sums directly where its estimates find that faster
    # (finite data): both routes give SciPy's results.
    from cconv import _planes

    monkeypatch.setattr(_planes, "seconds", lambda macs, dtype: np.inf if route == "fft" else 0.0)
    ours, theirs = both(name)
    # (a 'same' region of an in2 more than twice in1's size starts late: the
    # transforms must still hold all of in2)
    for s1, s2 in [*itertools.chain(*SHAPES.values()), ((300, 200), (9, 31)), ((5000,), (61,)), ((13,), (40,)),
                   ((5, 30), (21, 4)), ((3, 4, 2), (9, 2, 7))]:
        for dtype in (np.float64, np.float32, np.complex128):
            a, b = data(rng, s1, dtype, integral=False), data(rng, s2, dtype, integral=False)
            for mode in MODES:
                if mode == "valid" and not (all(p >= q for p, q in zip(s1, s2)) or all(p <= q for p, q in zip(s1, s2))):
                    continue
                assert_close(ours(a, b, mode), theirs(a, b, mode), 1e-4 if dtype == np.float32 else 1e-12)
        a = data(rng, (4, 300), np.float64, integral=False)
        assert_close(ours(a, a[:1, :20], axes=1), theirs(a, a[:1, :20], axes=1), 1e-12)
        assert_close(ours(a, a[:, :20], axes=1), theirs(a, a[:, :20], axes=1), 1e-12)


@pytest.mark.parametrize("name", FFT_FUNCS)
def test_axes_and_broadcasting(name, rng):
    ours, theirs = both(name)
    cases = [((5, 30), (1, 7), 1), ((5, 30), (5, 7), -1), ((4, 20, 3), (1, 6, 3), [1]), ((8, 1, 30), (1, 6, 9), (0, 2)),
             ((6, 20, 22), (6, 3, 4), (1, 2)), ((2, 9, 8, 7), (1, 3, 2, 3), (1, 2, 3)), ((3, 1, 9), (1, 6, 4), None),
             ((4, 1, 12), (4, 5, 3), 2)]
    for s1, s2, axes in cases:
        a, b = data(rng, s1, np.float64, integral=False), data(rng, s2, np.float64, integral=False)
        for mode in MODES:
            try:
                expected = theirs(a, b, mode, axes=axes)
            except ValueError as e:
                with pytest.raises(ValueError, match=str(e)[:20]):
                    ours(a, b, mode, axes=axes)
                continue
            assert_close(ours(a, b, mode, axes=axes), expected, 1e-12)


@pytest.mark.parametrize("name", FFT_FUNCS)
def test_results_do_not_depend_on_the_thread_count(name, rng):
    ours, _ = both(name)
    a, b = data(rng, (700, 600), np.float64, integral=False), data(rng, (15, 17), np.float64, integral=False)
    with threads(1):
        one = ours(a, b, "same")
    with threads(2):
        two = ours(a, b, "same")
    np.testing.assert_array_equal(one, two, strict=True)


# --------------------------------------------------------------------------
# Errors, fallbacks, layouts


@pytest.mark.parametrize("name", FUNCS + FFT_FUNCS)
def test_argument_errors_as_scipy(name):
    ours, theirs = both(name)
    fft = name in FFT_FUNCS
    cases = [((np.ones(3), np.ones((2, 2))), {}), ((np.ones((3, 3)), np.ones((2, 2)), "bogus"), {}),
             ((np.ones((2, 3)), np.ones((3, 2)), "valid"), {}), (([1], 2), {}), ((1, [2]), {})]
    cases += [((np.ones(3), np.ones(2)), {"axes": ax}) for ax in ([], [1], [-2], [0, 0], [1.5], [[0]])] if fft else \
        [((np.ones(3), np.ones(2)), {"method": "bacon"}), ((np.ones(3), np.ones(2), "same"), {"method": "FFT"})]
    for args, kwargs in cases:
        with pytest.raises(Exception) as expected:
            theirs(*args, **kwargs)
        with pytest.raises(type(expected.value), match=None if not fft else str(expected.value)[:15]):
            ours(*args, **kwargs)


@pytest.mark.parametrize("name", FUNCS + FFT_FUNCS)
def test_higher_ranks_go_to_scipy_with_one_warning(name, rng, monkeypatch):
    from cconv import _fallback

    monkeypatch.setattr(_fallback, "_warned", set())
    ours, theirs = both(name)
    a, b = data(rng, (3, 4, 3, 5), np.float64), data(rng, (2, 2, 2, 3), np.float64)
    with pytest.warns(SciPyFallbackWarning, match=f"cconv.signal.{name}: .*rank 4"):
        got = ours(a, b)
    np.testing.assert_array_equal(got, theirs(a, b), strict=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ours(a, b, "same")  # once per process


@pytest.mark.parametrize("name", FUNCS + FFT_FUNCS)
def test_calls_scipy_computes_itself(name, rng):
    # Empty and 0-d inputs, bool-with-bool, float16 and object data: SciPy's
    # own results (or errors), without a warning.
    ours, theirs = both(name)
    cases = [(np.array(3.0), np.array(2.0)), (np.zeros(0), np.ones(3)), (np.ones(4, bool), np.ones(2, bool)),
             (np.ones(5, np.float16), np.ones(3, np.float16)), (np.arange(4).astype(object), np.ones(2, object))]
    with warnings.catch_warnings():
        warnings.simplefilter("error", SciPyFallbackWarning)
        for a, b in cases:
            try:
                expected = theirs(a, b)
            except Exception as e:  # noqa: BLE001 - the class must match
                with pytest.raises(type(e)):
                    ours(a, b)
                continue
            got = ours(a, b)
            np.testing.assert_array_equal(got, expected)
            assert np.asarray(got).dtype == np.asarray(expected).dtype


LAYOUTS = {
    "F": np.asfortranarray,
    "negative": lambda a: np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1],
    "sliced": lambda a: np.repeat(np.repeat(a, 2, 0), 3, 1)[::2, ::3],
    "byteswapped": lambda a: a.astype(a.dtype.newbyteorder()),
}


@pytest.mark.parametrize("name", FUNCS + FFT_FUNCS)
@pytest.mark.parametrize("layout", list(LAYOUTS) + ["readonly"])
def test_layouts_and_inputs_untouched(name, layout, rng):
    ours, theirs = both(name)
    a, b = data(rng, (9, 8), np.float64), data(rng, (3, 2), np.float64)
    if layout == "readonly":
        la, lb = a.copy(), b.copy()
        la.flags.writeable = lb.flags.writeable = False
    else:
        la, lb = LAYOUTS[layout](a), LAYOUTS[layout](b)
    before = la.copy(), lb.copy()
    got = ours(la, lb, "same")
    assert_close(got, theirs(a, b, "same"), 1e-12)
    assert not np.shares_memory(got, la) and not np.shares_memory(got, lb)
    np.testing.assert_array_equal(la, before[0], strict=True)
    np.testing.assert_array_equal(lb, before[1], strict=True)


def test_choose_conv_method():
    choose = csig.choose_conv_method
    assert choose(np.ones(8), np.ones(6)) == "direct"
    assert choose(np.ones((2000, 2000)), np.ones((80, 80))) == "fft"
    assert choose(np.ones((2000, 2000), np.int64), np.ones((80, 80), np.int64)) == "direct"  # exact sums
    assert choose(np.ones(4, bool), np.ones(2, bool)) == "direct"
    method, times = choose(np.ones(50), np.ones(5), measure=True)
    assert method in ("direct", "fft") and set(times) == {"direct", "fft"}
    assert method == min(times, key=times.get)
    with pytest.raises(ValueError):
        choose(np.zeros(0, int), np.ones(3, int))  # as SciPy: the max of an empty integer input
    with pytest.raises(ValueError):
        choose(np.ones(3), np.ones(3), mode="bogus")
