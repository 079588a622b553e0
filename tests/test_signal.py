"""cconv.signal.correlate2d / convolve2d: the documented claims, against SciPy and plain NumPy.

Every expected value comes from ``scipy.signal`` or from the plain-NumPy
reference ``dropin_reference.py`` (np.pad and sliding windows), never from
cconv.  SciPy is never called where it dies ('full' with 'wrap' or 'symm'
and an empty axis in in1: SIGFPE in SciPy 1.17.1).
"""

from __future__ import annotations

import importlib.util
import pathlib
import zlib

import numpy as np
import pytest
import scipy.signal

from cconv import signal as csig


def _load_reference():
    path = pathlib.Path(__file__).resolve().parent / "dropin_reference.py"
    spec = importlib.util.spec_from_file_location("_cconv_dropin_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load_reference()
METHODS = ("auto", "direct", "fft")
FUNCS = ("correlate2d", "convolve2d")


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def both(name):
    return getattr(csig, name), getattr(scipy.signal, name)


# --------------------------------------------------------------------------
# Regressions


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("boundary", ["wrap", "symm"])
@pytest.mark.parametrize("shape1, shape2, outcome", [
    ((0, 3), (2, 0), ValueError),    # SciPy: SIGFPE (a row of in2 wraps over no rows)
    ((0, 3), (2, 2), ValueError),    # SciPy: SIGFPE
    ((3, 0), (2, 2), ValueError),    # SciPy: SIGFPE (a column wraps over no columns)
    ((3, 0), (0, 2), (2, 1)),        # SciPy: zeros, no row of in2 to read
    ((0, 0), (1, 1), (0, 0)),        # SciPy: empty, no output to compute
])
def test_full_periodic_boundary_of_empty_in1(name, boundary, shape1, shape2, outcome):
    # cconv refuses exactly where SciPy divides by zero, and returns SciPy's
    # zeros elsewhere; (0, 3) with (2, 0) returned zeros where SciPy dies.
    ours, _ = both(name)
    if outcome is ValueError:
        with pytest.raises(ValueError, match="non-empty in1"):
            ours(np.ones(shape1), np.ones(shape2), "full", boundary)
    else:
        got = ours(np.ones(shape1), np.ones(shape2), "full", boundary)
        np.testing.assert_array_equal(got, np.zeros(outcome), strict=True)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("boundary", ["wrap", "symm"])
def test_valid_periodic_boundary_of_empty_in1_axis_matches_scipy(name, boundary):
    ours, theirs = both(name)
    a, b = np.ones((3, 0)), np.ones((2, 0))
    np.testing.assert_array_equal(ours(a, b, "valid", boundary), theirs(a, b, "valid", boundary), strict=True)


def _nonfinite_equal(actual, expected):
    """NaN and +-Inf at the same places in both parts, the finite values close."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    for a, e in ((actual.real, expected.real), (actual.imag, expected.imag)):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e))
        np.testing.assert_array_equal(np.where(np.isinf(a), a, 0), np.where(np.isinf(e), e, 0))
        fin = np.isfinite(e)
        np.testing.assert_allclose(a[fin], e[fin], rtol=1e-5, atol=1e-5 * max(1.0, float(np.abs(e[fin]).max(initial=0))))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
def test_complex_infinities_multiply_as_c(name, method, dtype, boundary):
    # SciPy multiplies with C's complex '*' (C99 Annex G): (3+1j) * (nan+infj)
    # is -inf+infj and (1+0j) * (inf+infj) is inf+infj, where products of
    # the parts give nan+nanj.
    ours, theirs = both(name)
    a = np.ones((5, 6), dtype)
    a[1, 2] = complex(np.inf, np.inf)
    a[3, 0] = complex(np.nan, 1)
    a[4, 5] = complex(-np.inf, 0)
    b = np.array([[1 + 0j, 2 - 1j, 0], [0j, 1j, 3]], dtype)
    for mode in ("full", "same", "valid"):
        _nonfinite_equal(ours(a, b, mode, boundary, method=method), theirs(a, b, mode, boundary))
    k = np.array([[3 + 1j, complex(np.nan, -np.inf)]], dtype)  # a non-finite tap reaches every output
    _nonfinite_equal(ours(a, k, "same", boundary, method=method), theirs(a, k, "same", boundary))
    fill = complex(np.inf, np.inf)
    _nonfinite_equal(ours(np.ones((2, 3), dtype), b, "full", "fill", fill, method=method),
                     theirs(np.ones((2, 3), dtype), b, "full", "fill", fill))


# --------------------------------------------------------------------------
# Results, dtypes and routes, against SciPy

REAL_DTYPES = [np.float32, np.float64, np.longdouble, np.int8, np.uint8, np.int16, np.int32, np.uint32,
               np.int64, np.uint64, np.complex64, np.complex128]
MODES = ("full", "same", "valid")
BOUNDARIES = ("fill", "wrap", "symm")


def random_data(rng, shape, dtype, integral=False):
    dt = np.dtype(dtype)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)
    def part():
        return rng.integers(-8, 9, size=shape).astype(np.float64) if integral else rng.standard_normal(shape)
    if dt.kind == "c":
        return (part() + 1j * part()).astype(dt)
    return part().astype(dt)


def assert_matches_scipy(actual, expected, method, integral):
    """Exact for integers (and integer-valued data on the direct loops); else normwise close."""
    assert type(actual) is np.ndarray
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    if expected.dtype.kind in "iu" or (integral and method == "direct"):
        np.testing.assert_array_equal(actual, expected, strict=True)
        return
    eps = np.finfo(expected.dtype).eps
    scale = max(float(np.max(np.abs(expected.astype(np.clongdouble)))), 1.0) if expected.size else 1.0
    err = float(np.max(np.abs(actual.astype(np.clongdouble) - expected), initial=0.0))
    assert err <= 64 * eps * scale, (err, scale)


def _route_cases():
    # Floating point: every method, Gaussian and integer-valued data (exact on
    # the direct loops).  Integers are summed exactly whatever the method:
    # one method each.
    for dtype in (np.float32, np.float64, np.longdouble, np.complex64, np.complex128):
        for method in METHODS:
            for integral in (False, True):
                yield pytest.param(dtype, method, integral,
                                   id=f"{np.dtype(dtype).name}-{method}-{'integral' if integral else 'gauss'}")
    for i, dtype in enumerate((np.int8, np.uint8, np.int16, np.int32, np.uint32, np.int64, np.uint64)):
        yield pytest.param(dtype, METHODS[i % 3], False, id=f"{np.dtype(dtype).name}-{METHODS[i % 3]}")


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype, method, integral", list(_route_cases()))
def test_every_mode_and_boundary_matches_scipy(name, dtype, method, integral, rng):
    ours, theirs = both(name)
    a = random_data(rng, (7, 9), dtype, integral)
    for kshape in [(3, 4), (1, 5), (9, 12)]:  # even, 1xN, larger than in1
        k = random_data(rng, kshape, dtype, integral)
        for mode in MODES:
            for boundary in BOUNDARIES:
                fill = 2 if boundary == "fill" else 0
                assert_matches_scipy(ours(a, k, mode, boundary, fill, method=method),
                                     theirs(a, k, mode, boundary, fill), method, integral)
    k = random_data(rng, (1, 1), dtype, integral)  # 1x1
    assert_matches_scipy(ours(a, k, "same", method=method), theirs(a, k, "same"), method, integral)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_large_kernel_routes_agree_with_scipy(name, method, rng):
    # Big enough for 'auto' to take FFTs.
    ours, theirs = both(name)
    for dtype in (np.float32, np.float64, np.complex128):
        a = random_data(rng, (120, 90), dtype)
        k = random_data(rng, (31, 17), dtype)
        for mode, boundary in (("full", "fill"), ("same", "wrap"), ("valid", "symm")):
            assert_matches_scipy(ours(a, k, mode, boundary, method=method), theirs(a, k, mode, boundary), method,
                                 False)


@pytest.mark.parametrize("dt1, dt2", [("u1", "i1"), ("u1", "f4"), ("i2", "f4"), ("i8", "f4"), ("u8", "i8"),
                                      ("?", "i1"), ("?", "f8"), ("f4", "c8"), ("f8", "c8"), ("i4", "c8"),
                                      ("u4", "i4"), ("g", "f4"), ("f4", "f4")])
@pytest.mark.parametrize("name", FUNCS)
def test_output_dtype_is_result_type(name, dt1, dt2, rng):
    ours, theirs = both(name)
    a = (rng.integers(0, 2, size=(4, 5))).astype(dt1)
    k = (rng.integers(0, 2, size=(2, 3))).astype(dt2)
    got, expected = ours(a, k), theirs(a, k)
    assert got.dtype == np.result_type(a, k) == expected.dtype
    np.testing.assert_array_equal(got, expected, strict=True)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_integers_wrap_in_the_result_dtype(name, method):
    ours, theirs = both(name)
    a = np.array([[200, 100]], np.uint8)
    k = np.array([[2]], np.uint8)
    np.testing.assert_array_equal(ours(a, k, method=method), np.array([[144, 200]], np.uint8), strict=True)
    big = np.full((3, 3), 2**62, np.int64)
    np.testing.assert_array_equal(ours(big, np.full((2, 2), 3, np.int64), method=method),
                                  theirs(big, np.full((2, 2), 3, np.int64)), strict=True)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", ["?", "e", "O", "M8[s]", "m8[s]"])
@pytest.mark.parametrize("which", ["both", "in1", "in2"])
def test_types_scipy_does_not_take(name, dtype, which):
    # ValueError("convolve2d not available for this type.") from SciPy's C
    # code, but correlate2d conjugates in2 first: TypeError for times (on
    # NumPy < 2.3 a DeprecationWarning, an error under the suite's filter).
    ours, theirs = both(name)
    odd = np.zeros((3, 3), dtype)
    a = odd if which in ("both", "in1") else np.ones((3, 3), "?" if dtype == "?" else "f8")
    k = odd[:2, :2] if which in ("both", "in2") else np.ones((2, 2), "?" if dtype == "?" else "f8")
    try:
        expected = theirs(a, k)
    except (ValueError, TypeError, DeprecationWarning) as e:
        with pytest.raises(type(e)) as got:
            ours(a, k)
        # The wording too, except for times: which of SciPy's C checks
        # refuses them first (the type, or the fill value's cast) varies with
        # the NumPy and SciPy build (CPython 3.12's wheels differ from 3.11's).
        if type(e) is ValueError and np.dtype(dtype).kind not in "mM":
            assert str(got.value) == str(e)
        return
    np.testing.assert_array_equal(ours(a, k), expected, strict=True)


@pytest.mark.parametrize("name", FUNCS)
def test_same_crop_of_the_full_output(name, rng):
    # correlate2d: full[kh // 2 :, kw // 2 :]; convolve2d: full[(kh - 1) // 2 :, ...]
    ours, _ = both(name)
    a = rng.integers(-5, 6, size=(6, 7)).astype(np.int64)
    for kshape in [(2, 2), (3, 4), (4, 5), (1, 6)]:
        k = rng.integers(-5, 6, size=kshape).astype(np.int64)
        full = ref.correlate2d(a, k, "full", convolve=name == "convolve2d")
        kh, kw = kshape
        r, c = ((kh - 1) // 2, (kw - 1) // 2) if name == "convolve2d" else (kh // 2, kw // 2)
        np.testing.assert_array_equal(ours(a, k, "same"), full[r : r + 6, c : c + 7], strict=True)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_valid_swaps_the_larger_input_first(name, method, rng):
    ours, theirs = both(name)
    small = random_data(rng, (2, 3), np.complex128, integral=True)
    big = random_data(rng, (5, 6), np.complex128, integral=True)
    got = ours(small, big, "valid", method=method)
    assert_matches_scipy(got, theirs(small, big, "valid"), method, integral=True)
    assert_matches_scipy(got, ref.correlate2d(small, big, "valid", convolve=name == "convolve2d")
                         .astype(np.complex128), method, integral=True)
    with pytest.raises(ValueError, match="at least as large"):
        ours(np.ones((2, 5)), np.ones((3, 4)), "valid")


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("boundary", ["wrap", "symm"])
@pytest.mark.parametrize("method", METHODS)
def test_boundaries_repeat_as_far_as_needed(name, boundary, method, rng):
    # A kernel many times the image's size sees the periodic extension.
    ours, _ = both(name)
    a = rng.integers(-4, 5, size=(2, 3)).astype(np.float64)
    k = rng.integers(-4, 5, size=(9, 13)).astype(np.float64)
    for mode in ("full", "same"):
        expected = ref.correlate2d(a, k, mode, boundary, convolve=name == "convolve2d").astype(np.float64)
        got = ours(a, k, mode, boundary, method=method)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9 * max(1, np.abs(expected).max()))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("fillvalue", [1j, [1, 2], [], np.array([3]), np.array(2.5), 300, -1, np.float32(1.5),
                                       np.nan, np.inf, True, np.array([1 + 1j])], ids=repr)
@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.float32, np.complex64])
def test_fillvalue_converts_as_scipy(name, fillvalue, dtype):
    ours, theirs = both(name)
    a = np.arange(6).reshape(2, 3).astype(dtype)
    k = np.ones((2, 2), dtype)

    def outcome(f):
        import warnings
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                r = f(a, k, "full", "fill", fillvalue)
            except Exception as e:  # noqa: BLE001
                r = type(e)
        return r, sorted({w.category.__name__ for w in caught})

    (got, got_warn), (expected, expected_warn) = outcome(ours), outcome(theirs)
    assert got_warn == expected_warn
    if isinstance(expected, type):
        assert got is expected
    else:
        np.testing.assert_array_equal(got, expected, strict=True)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("boundary", BOUNDARIES)
def test_nan_and_inf_stay_where_scipy_puts_them(name, method, dtype, boundary, rng):
    ours, theirs = both(name)
    a = rng.standard_normal((30, 40)).astype(dtype)
    a[3, 5], a[20, 30], a[29, 0] = np.nan, np.inf, -np.inf
    k = rng.standard_normal((5, 4)).astype(dtype)
    k[0, 0] = 0  # 0 * Inf is NaN in a direct sum
    for mode in MODES:
        got, expected = ours(a, k, mode, boundary, method=method), theirs(a, k, mode, boundary)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_array_equal(np.where(np.isinf(got), got, 0), np.where(np.isinf(expected), expected, 0))
        fin = np.isfinite(expected)
        np.testing.assert_allclose(got[fin], expected[fin], rtol=0, atol=1e-4 if dtype == np.float32 else 1e-11)
    kk = k.copy()
    kk[1, 1] = np.inf  # an infinite tap: every output
    got, expected = ours(a, kk, "same", boundary, method=method), theirs(a, kk, "same", boundary)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.where(np.isinf(got), got, 0), np.where(np.isinf(expected), expected, 0))


LAYOUTS = {
    "F": np.asfortranarray,
    "sliced": lambda a: np.repeat(np.repeat(a, 2, 0), 3, 1)[::2, ::3],
    "negative": lambda a: np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1],
    "transposed": lambda a: np.ascontiguousarray(a.T).T,
}


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("layout", list(LAYOUTS) + ["readonly"])
@pytest.mark.parametrize("dtype", [np.float64, np.int32, np.complex64])
def test_layouts_and_inputs_untouched(name, layout, dtype, rng):
    ours, theirs = both(name)
    a = random_data(rng, (6, 8), dtype, integral=True)
    k = random_data(rng, (3, 2), dtype, integral=True)
    if layout == "readonly":
        la, lk = a.copy(), k.copy()
        la.flags.writeable = lk.flags.writeable = False
    else:
        la, lk = LAYOUTS[layout](a), LAYOUTS[layout](k)
    before = la.copy(), lk.copy()
    for method in METHODS:
        got = ours(la, lk, "same", "symm", method=method)
        assert_matches_scipy(got, theirs(a, k, "same", "symm"), method, integral=True)
        assert got.flags.c_contiguous and got.flags.writeable
        assert not np.shares_memory(got, la) and not np.shares_memory(got, lk)
    np.testing.assert_array_equal(la, before[0], strict=True)
    np.testing.assert_array_equal(lk, before[1], strict=True)


@pytest.mark.parametrize("name", FUNCS)
def test_argument_errors_as_scipy(name):
    ours, theirs = both(name)
    for args, kwargs in [((np.ones(3), np.ones((2, 2))), {}), ((np.ones((3, 3)), np.ones((2, 2)), "bogus"), {}),
                         ((np.ones((3, 3)), np.ones((2, 2)), "full", "bogus"), {}),
                         ((np.ones((3, 3)), np.ones((2, 2)), "full", "reflect"), {}),
                         ((np.ones((0, 0)), np.ones((0, 0))), {})]:
        with pytest.raises(ValueError) as expected:
            theirs(*args, **kwargs)
        with pytest.raises(type(expected.value)):
            ours(*args, **kwargs)
    with pytest.raises(ValueError, match="method"):
        ours(np.ones((3, 3)), np.ones((2, 2)), method="FFT")


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
@pytest.mark.parametrize("dtype", ["f8", "f4", "i4", "u1", "c16"])
@pytest.mark.parametrize("kshape", [(1, 1), (3, 2)])
def test_result_outlives_the_next_call(name, method, dtype, kshape, rng):
    # The padded copy of in1 lives in scratch space reused by the next call:
    # no result may be (or view) that space.
    ours, theirs = both(name)
    k = rng.integers(1, 4, size=kshape).astype(dtype)
    first = ours(rng.integers(0, 9, size=(9, 8)).astype(dtype), k, "same", "symm", method=method)
    kept = first.copy()
    ours(rng.integers(0, 9, size=(9, 8)).astype(dtype), k, "same", "symm", method=method)
    np.testing.assert_array_equal(first, kept, strict=True)


# --------------------------------------------------------------------------
# The 2-D filter under the float routes (cconv._filter2d), each path forced
# in each build: the interior read in place, the edge strips gathered by
# index, or everything from gathered strips.


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("path", ["auto", "interior", "strips"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8, np.int16])
def test_filter_paths_match_scipy_exactly(correlate_build, name, path, dtype, rng, monkeypatch):
    # Integer-valued data: the direct sums are exact, so every path must give
    # SciPy's numbers bit for bit (integers of up to 16 bits run the filter
    # in double and wrap into their type); odd and even sizes, in1 smaller
    # than in2, rows wider than a vector block, and views with negative
    # strides.
    from cconv import _filter2d

    monkeypatch.setattr(_filter2d, "PATH", path)
    ours, theirs = both(name)
    for shape in [(7, 9), (8, 6), (2, 3), (21, 75)]:
        a = random_data(rng, shape, dtype, integral=True)
        for view in (a, a[::-1], a[:, ::-1], a[::-2, ::-1]):
            for kshape in [(3, 3), (4, 2), (5, 7), (1, 4)]:
                k = random_data(rng, kshape, dtype, integral=True)
                fits = all(s >= t for s, t in zip(view.shape, kshape)) or all(
                    s <= t for s, t in zip(view.shape, kshape))
                for mode in MODES if fits else ("full", "same"):
                    for boundary in BOUNDARIES:
                        assert_matches_scipy(ours(view, k, mode, boundary, 2, method="direct"),
                                             theirs(view, k, mode, boundary, 2), "direct", True)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("scale", [1, 2**12, 2**14, 2**45, 2**60],
                         ids=["float32", "near-2**23", "double", "near-2**52", "wrapping"])
def test_small_integers_exact_on_either_route(name, scale, rng):
    # uint8 data with int64 weights: sums below 2**23 run in float32 on the
    # filter, below 2**52 in double, larger ones on the integer loops, where
    # they wrap as SciPy's.
    ours, theirs = both(name)
    a = rng.integers(0, 256, size=(19, 23), dtype=np.uint8)
    k = rng.integers(-4, 5, size=(3, 4)) * scale
    for mode in MODES:
        for boundary in BOUNDARIES:
            np.testing.assert_array_equal(ours(a, k, mode, boundary, 7), theirs(a, k, mode, boundary, 7),
                                          strict=True)
