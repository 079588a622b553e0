"""cconv.ndimage.correlate / convolve: the documented claims, against SciPy and plain NumPy.

Every expected value comes from ``scipy.ndimage`` or from the plain-NumPy
reference ``dropin_reference.py`` (np.pad and explicit sums), never from
cconv.
"""

from __future__ import annotations

import importlib.util
import pathlib
import warnings
import zlib

import numpy as np
import pytest
import scipy.ndimage
from cases import dropin_data, integer_mismatches

from cconv import ndimage as cnd


def _load_reference():
    path = pathlib.Path(__file__).resolve().parent / "dropin_reference.py"
    spec = importlib.util.spec_from_file_location("_cconv_dropin_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load_reference()
METHODS = ("auto", "direct", "fft")
FUNCS = ("correlate", "convolve")
MODES = ("reflect", "grid-mirror", "mirror", "nearest", "wrap", "grid-wrap", "constant", "grid-constant")


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


def both(name):
    return getattr(cnd, name), getattr(scipy.ndimage, name)


def assert_close(actual, expected, rtol):
    """Same dtype and shape; values within ``rtol`` of the largest expected magnitude."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    e = np.asarray(expected, dtype=np.complex128 if expected.dtype.kind == "c" else np.float64)
    a = np.asarray(actual, dtype=e.dtype)
    scale = float(np.max(np.abs(e))) if e.size else 0.0
    assert float(np.max(np.abs(a - e), initial=0.0)) <= rtol * max(scale, 1.0)


# --------------------------------------------------------------------------
# Regressions found by the differential fuzz


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("layout", ["F", "transposed", "negative"])
def test_weights_in_any_layout(name, method, layout, rng):
    # Fortran-ordered weights reached the direct loops in Fortran order
    # ("ndarray is not C-contiguous").
    x = rng.standard_normal((9, 8))
    w = rng.standard_normal((3, 4))
    wl = {"F": np.asfortranarray(w), "transposed": np.ascontiguousarray(w.T).T,
          "negative": np.ascontiguousarray(w[::-1, ::-1])[::-1, ::-1]}[layout]
    ours, theirs = both(name)
    assert_close(ours(x, wl, method=method), theirs(x, w), 1e-12)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", [np.float16, np.longdouble, object, "M8[s]"])
def test_empty_input_takes_any_type(name, dtype):
    # SciPy checks the array types per element: an empty input of a type it
    # does not filter gives an empty output of that type, not an error.
    ours, theirs = both(name)
    x = np.zeros((0, 3), dtype=dtype)
    expected = theirs(x, np.ones((2, 2)))
    got = ours(x, np.ones((2, 2)))
    assert got.dtype == expected.dtype and got.shape == expected.shape
    with pytest.raises(RuntimeError, match="array type not supported"):
        ours(np.zeros((2, 3), dtype=dtype), np.ones((2, 2)))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("out", [np.bool_, np.uint8, np.int16, np.int32, np.uint32, np.int64])
def test_integer_output_exact_on_every_method(name, method, out, rng):
    # An FFT sum of integer data is 2.9999999999999996 where SciPy's is 3;
    # truncated into an integer (or bool) output that was off by one.
    x = rng.integers(0, 3, size=(40, 50)).astype(np.float64)
    w = rng.integers(-1, 3, size=(9, 11)).astype(np.float64)
    ours, theirs = both(name)
    expected = theirs(x, w, output=out, mode="constant")
    np.testing.assert_array_equal(ours(x, w, output=out, mode="constant", method=method), expected, strict=True)
    expected = theirs(x > 1, w > 0, mode="wrap")  # bool in, bool out
    np.testing.assert_array_equal(ours(x > 1, w > 0, mode="wrap", method=method), expected, strict=True)


# --------------------------------------------------------------------------
# Integer outputs: SciPy's doubles, truncated as SciPy truncates them (issue 21)


def test_every_build_of_the_exact_sums_is_tested(exact_build_names):
    import platform

    names = set(exact_build_names)
    assert "baseline" in names
    from cconv import _runtime

    if platform.machine() in ("x86_64", "AMD64") and _runtime.cpu_level() >= 3:
        assert "v3" in names  # a build without its twins would test less than it claims


ISSUE_21 = """
import numpy as np, scipy.ndimage as ndi, cconv.ndimage as cn
img = np.random.default_rng(0).integers(0, 256, size=(512, 512)).astype(np.uint8)
for k in (3, 5):
    box = np.ones((k, k)) / k**2
    for method in ("auto", "direct", "fft"):
        assert np.array_equal(ndi.correlate(img, box), cn.correlate(img, box, method=method)), (k, method)
x = np.array([[1, 2, 3], [4, 5, 6]], np.int32)
w = np.array([[-1 / 3], [2 / 3]])
assert np.array_equal(ndi.correlate(x, w, mode="nearest"), cn.correlate(x, w, mode="nearest"))
img = np.arange(12.).reshape(3, 4)
a = ndi.correlate(img, np.ones((2, 2)), mode="constant", cval=np.array(0.5))
b = cn.correlate(img, np.ones((2, 2)), mode="constant", cval=np.array(0.5))
assert np.array_equal(a, b) and a.dtype == b.dtype
h = np.array([[1.5]], np.float16)
for f in (ndi.convolve, cn.convolve):
    try:
        f(h, np.array([[True]]), cval=np.array(0.))
    except RuntimeError as e:
        assert "array type not supported" in str(e)
    else:
        raise AssertionError("no RuntimeError")
import cconv._dispatch as b
print(b.exact_module().__name__)
"""


@pytest.mark.parametrize("kernels", ["baseline", "v3", "v4"])
def test_issue_21_cases_on_every_build(kernels, on_build):
    # The calls of the report, in a process whose kernels are capped at one
    # build (CCONV_KERNELS): the mean filter of uint8 pixels, a 2x1 filter
    # whose exact sums are integers, a 0-d cval, float16 with a 0-d cval.
    on_build(kernels, ISSUE_21)


INT_OUTPUTS = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]


def _integral_sums(rng, shape, wshape):
    """Weights ``m / d`` and inputs that are multiples of ``d``: every exact sum is an integer,
    which a double sum rounded any other way than SciPy's misses by an ulp."""
    d = int(rng.choice([3, 7, 9, 11, 25]))
    w = rng.integers(-4, 5, size=wshape) / d * rng.choice([1, -1])
    x = rng.integers(0, 12, size=shape) * d
    return x, w


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("out", INT_OUTPUTS, ids=lambda d: np.dtype(d).name)
def test_integer_outputs_are_scipys_integers(exact_build, name, out):
    pairs = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        wshape = [(3, 3), (5, 5), (2, 1), (1, 7), (4, 3)][seed % 5]
        x, w = _integral_sums(rng, (13, 17), wshape)
        pairs.append((x.astype(np.uint8 if x.max() < 256 and seed % 2 else np.int32), w))
    differ, total = integer_mismatches(*both(name), pairs, out, MODES, METHODS)
    assert differ == 0, f"{differ} of {total} integers differ from SciPy's"


@pytest.mark.parametrize("name", FUNCS)
def test_mean_filters_of_uint8_images(exact_build, name):
    # The classic box mean of the report: windows whose sum is a multiple
    # of k*k have an exact integer mean, which SciPy's double lands on.
    ours, theirs = both(name)
    img = np.random.default_rng(0).integers(0, 256, size=(96, 128)).astype(np.uint8)
    for k in (3, 5):
        box = np.ones((k, k)) / k**2
        for mode in MODES:
            np.testing.assert_array_equal(ours(img, box, mode=mode), theirs(img, box, mode=mode), strict=True)


def test_integer_outputs_skip_tiny_weights_as_scipy(exact_build):
    # Weights of magnitude at most DBL_EPSILON (and NaN weights) are no
    # terms in SciPy: a NaN under them stays out of the sum, the other
    # terms keep their order.
    x = np.arange(30.0).reshape(5, 6)
    x[2, 3] = np.nan
    w = np.array([[1 / 3, 1e-17, -1 / 7], [2 / 3, 0.0, np.nan]])
    sums = scipy.ndimage.correlate(x, w, output=np.float64)
    defined = np.isfinite(sums)  # elsewhere C's conversion to an integer is undefined
    assert defined.sum() > x.size // 2 and not defined.all()
    for out in (np.int64, np.uint8):
        expected = scipy.ndimage.correlate(x, w, output=out)
        got = cnd.correlate(x, w, output=out)
        np.testing.assert_array_equal(got[defined], expected[defined], strict=True)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_tiny_weights_are_no_terms_on_every_route(name, method, dtype, rng):
    # SciPy keeps the taps with |w| > DBL_EPSILON: neither a tiny weight nor
    # a NaN weight takes part, so no NaN comes of them.
    ours, theirs = both(name)
    x = data(rng, (9, 11), dtype)
    x[4, 5] = np.inf
    w = np.array([[0.5, np.nan, -1.0], [1e-300, 2.0, 0.25]])
    got, expected = ours(x, w, method=method), theirs(x, w)
    assert got.dtype == expected.dtype and not np.isnan(expected).any()
    np.testing.assert_array_equal(np.isinf(got), np.isinf(expected))
    np.testing.assert_array_equal(got[np.isinf(got)], expected[np.isinf(expected)])
    finite = np.isfinite(expected)
    assert_close(got[finite], expected[finite], 64 * np.finfo(dtype).eps)


@pytest.mark.parametrize("axes", [(0, 1), (1, 2), (0, 2)])
def test_integer_outputs_of_a_batch(exact_build, axes):
    rng = np.random.default_rng(3)
    x, w = _integral_sums(rng, (6, 7, 8), (3, 2))
    expected = scipy.ndimage.correlate(x, w, output=np.int32, axes=axes, mode="mirror")
    np.testing.assert_array_equal(cnd.correlate(x, w, output=np.int32, axes=axes, mode="mirror"), expected,
                                  strict=True)


# --------------------------------------------------------------------------
# Results, dtypes and routes, against SciPy


def data(rng, shape, dtype, integral=False):
    return dropin_data(rng, shape, dtype, integral)



def check(ours_result, expected, method, exact=False, float32_sums=False):
    assert type(ours_result) is np.ndarray
    assert ours_result.dtype == expected.dtype and ours_result.shape == expected.shape
    if exact or expected.dtype.kind in "biu":
        np.testing.assert_array_equal(ours_result, expected, strict=True)
        return
    eps = np.finfo(np.float32 if float32_sums else np.float64).eps
    assert_close(ours_result, expected, 64 * eps)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.uint8, np.int64, np.bool_, np.complex128,
                                   np.complex64], ids=lambda d: np.dtype(d).name)
def test_every_mode_matches_scipy(name, method, dtype, rng):
    ours, theirs = both(name)
    x = data(rng, (7, 9), dtype, integral=True)
    for wshape in [(3, 3), (2, 4), (1, 5), (9, 12)]:  # odd, even, 1xN, larger than x
        w = data(rng, wshape, np.float64, integral=True)
        for mode in MODES:
            got = ours(x, w, mode=mode, cval=1.5, method=method)
            # integer-valued data: the direct sums are exact, as SciPy's
            check(got, theirs(x, w, mode=mode, cval=1.5), method, exact=method == "direct",
                  float32_sums=dtype in (np.float32, np.complex64))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_weights_every_route(name, method, dtype, rng):
    ours, theirs = both(name)
    x = data(rng, (90, 110), dtype)
    w = data(rng, (21, 17), np.float64)
    for mode in ("reflect", "constant", "wrap"):
        check(ours(x, w, mode=mode, method=method), theirs(x, w, mode=mode), method,
              float32_sums=dtype == np.float32)


@pytest.mark.parametrize("name", FUNCS)
def test_grid_aliases(name, rng):
    ours, theirs = both(name)
    x, w = data(rng, (6, 5), np.float64), data(rng, (3, 4), np.float64)
    for alias, mode in (("grid-mirror", "reflect"), ("grid-wrap", "wrap"), ("grid-constant", "constant")):
        got = ours(x, w, mode=alias, cval=2.0)
        np.testing.assert_array_equal(got, ours(x, w, mode=mode, cval=2.0), strict=True)
        check(got, theirs(x, w, mode=alias, cval=2.0), "auto")


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_origins_and_their_range(name, method, rng):
    ours, theirs = both(name)
    x = data(rng, (8, 9), np.float64, integral=True)
    for wshape in [(3, 4), (4, 5), (2, 2), (1, 6)]:
        w = data(rng, wshape, np.float64, integral=True)
        lo = [-(n // 2) for n in wshape]
        hi = [(n - 1) // 2 for n in wshape]
        for origin in [(lo[0], hi[1]), (hi[0], lo[1]), (0, 0), lo[0] if wshape[0] == wshape[1] else (0, lo[1])]:
            check(ours(x, w, origin=origin, mode="nearest", method=method),
                  theirs(x, w, origin=origin, mode="nearest"), method, exact=method == "direct")
            # reference: convolve flips the weights and maps origin o to -o - (1 - n % 2)
            o = [origin] * 2 if np.ndim(origin) == 0 else origin
            expected = ref.ndimage_sum(x, w, "nearest", 0.0, o, convolve=name == "convolve", dtype=np.float64)
            assert_close(ours(x, w, origin=origin, mode="nearest", method=method), expected, 1e-12)
        for bad in [(lo[0] - 1, 0), (0, hi[1] + 1)]:
            with pytest.raises(ValueError, match="Invalid origin"):
                theirs(x, w, origin=bad)
            with pytest.raises(ValueError, match="Invalid origin"):
                ours(x, w, origin=bad, method=method)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_output_array_dtype_and_aliasing(name, method, rng):
    ours, theirs = both(name)
    x = data(rng, (6, 7), np.float64, integral=True)
    w = data(rng, (3, 2), np.float64, integral=True)
    for dt in (np.float32, np.int16, np.uint32, np.bool_, "float64", np.dtype(np.int8)):
        check(ours(x, w, output=dt, method=method), theirs(x, w, output=dt), method, exact=method == "direct")
    out = np.zeros((6, 7), np.int32)
    assert ours(x, w, output=out, method=method) is out  # returned as is
    np.testing.assert_array_equal(out, theirs(x, w, output=np.int32), strict=True)
    y, z = x.copy(), x.copy()  # output is the input itself
    assert ours(y, w, output=y, method=method) is y
    theirs(z, w, output=z)
    check(y, z, method, exact=method == "direct")
    for bad in (np.zeros((6, 6)), np.zeros((7, 6))):
        with pytest.raises(RuntimeError, match="output shape"):
            ours(x, w, output=bad)
    ro = np.zeros((6, 7))
    ro.flags.writeable = False
    with pytest.raises(ValueError) as expected:
        theirs(x, w, output=ro)
    with pytest.raises(type(expected.value)):
        ours(x, w, output=ro)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_c_casts_into_bool_and_unsigned_outputs(name, method):
    # bool is uint8(x) != 0 (0.5 and 256 are False); uint32 goes through int64
    # (-1 is 4294967295); integers truncate toward zero.
    ours, theirs = both(name)
    x = np.array([[0.5, 256.0, -1.0, 2.7, -2.7, 1e3, 70000.5, -3.2]])
    w = np.ones((1, 1))
    for dt in (np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64):
        expected = theirs(x, w, output=dt)
        np.testing.assert_array_equal(ours(x, w, output=dt, method=method), expected, strict=True)
        np.testing.assert_array_equal(expected, ref.c_cast(x, dt), strict=True)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_cval_is_a_double(name, method, rng):
    ours, theirs = both(name)
    x = data(rng, (5, 6), np.int16)
    w = data(rng, (3, 3), np.float64, integral=True)
    for cval in (np.float32(0.1), 2, -1.5, np.int64(3), np.nan, np.inf, True):
        got = ours(x, w, output=np.float64, mode="constant", cval=cval, method=method)
        expected = theirs(x, w, output=np.float64, mode="constant", cval=cval)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        fin = np.isfinite(expected)
        assert_close(got[fin], expected[fin], 1e-12)
    for cval in ("1", None, [1.0]):
        with pytest.raises(TypeError):
            theirs(x, w, mode="constant", cval=cval)
        with pytest.raises(TypeError):
            ours(x, w, mode="constant", cval=cval)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_complex_through_real_parts(name, method, rng):
    # correlate conjugates complex weights, convolve does not.
    ours, theirs = both(name)
    x = data(rng, (6, 7), np.complex128, integral=True)
    xr = data(rng, (6, 7), np.float64, integral=True)
    w = data(rng, (3, 2), np.complex128, integral=True)
    wr = data(rng, (3, 2), np.float64, integral=True)
    exact = method == "direct"
    for a, b in ((x, w), (x, wr), (xr, w)):
        check(ours(a, b, mode="constant", cval=2.0, method=method), theirs(a, b, mode="constant", cval=2.0),
              method, exact=exact)
    check(ours(x, w, mode="constant", cval=1 + 2j, method=method), theirs(x, w, mode="constant", cval=1 + 2j),
          method, exact=exact)
    wk = np.conj(w) if name == "correlate" else w
    expected = ours(xr, wk.real, method=method) + 1j * ours(xr, wk.imag, method=method)
    check(ours(xr, w, method=method), expected, method, exact=exact)
    with pytest.raises(ValueError, match="complex-valued cval"):
        ours(xr, w, mode="constant", cval=1j)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = ours(x, w, output=np.float32, method=method)
    assert got.dtype == np.complex64 and [w.category for w in caught] == [UserWarning]
    with pytest.raises(RuntimeError, match="complex dtype"):
        ours(x, w, output=np.zeros((6, 7)))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_tiny_weights_are_no_terms(name, method):
    # |w| <= DBL_EPSILON is skipped by SciPy: 1e-17 * Inf is no NaN there.
    ours, theirs = both(name)
    x = np.ones((6, 7))
    x[2, 3], x[4, 1] = np.inf, np.nan
    w = np.array([[1e-17, 1.0, -2.0], [0.0, 3.0, 2.2e-16], [1.0, 1e-300, 0.5]])
    got, expected = ours(x, w, method=method), theirs(x, w)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_array_equal(np.where(np.isinf(got), got, 0), np.where(np.isinf(expected), expected, 0))
    fin = np.isfinite(expected)
    assert_close(got[fin], expected[fin], 1e-12)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_stay_where_scipy_puts_them(name, method, dtype, rng):
    ours, theirs = both(name)
    x = data(rng, (40, 30), dtype)
    x[3, 5], x[20, 29], x[39, 0] = np.nan, np.inf, -np.inf
    w = data(rng, (7, 6), np.float64)
    w[0, 0] = 0.0
    for mode in MODES:
        got, expected = ours(x, w, mode=mode, method=method), theirs(x, w, mode=mode)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
        np.testing.assert_array_equal(np.where(np.isinf(got), got, 0), np.where(np.isinf(expected), expected, 0))
        fin = np.isfinite(expected)
        assert_close(got[fin], expected[fin], 1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_nd_input_with_two_axes_is_a_batch(name, method, rng):
    ours, theirs = both(name)
    x = data(rng, (3, 6, 2, 7), np.float64, integral=True)
    w = data(rng, (3, 4), np.float64, integral=True)
    for axes, origin in (((1, 3), (0, 1)), ((3, 1), (1, 0)), ((-3, -1), (-1, 1)), ((0, 2), 0)):
        check(ours(x, w, axes=axes, origin=origin, mode="mirror", method=method),
              theirs(x, w, axes=axes, origin=origin, mode="mirror"), method, exact=method == "direct")
    with pytest.raises(ValueError, match="unique"):
        ours(x, w, axes=(1, -3))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("mode", ["reflect", "grid-mirror"])
def test_reflect_far_beyond_the_edge(name, method, mode, rng):
    # SciPy 1.17.1 is wrong (and run to run different) when the weights reach
    # 4n or more samples before the start of an axis of length n: checked
    # against the plain-NumPy reference instead.
    ours, _ = both(name)
    x = data(rng, (2, 3), np.float64, integral=True)
    for wshape, origin in (((1, 25), 0), ((19, 1), 0), ((9, 9), (4, 4)), ((20, 27), (-3, 2))):
        w = data(rng, wshape, np.float64, integral=True)
        expected = ref.ndimage_sum(x, w, mode, 0.0, origin, convolve=name == "convolve", dtype=np.float64)
        assert_close(ours(x, w, mode=mode, origin=origin, method=method), expected, 1e-12)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", [">f8", ">f4", ">i4", ">u2", ">c16"])
def test_byteswapped_input_gives_native_output(name, dtype, rng):
    # SciPy makes the default output by the input dtype's name: native order.
    ours, theirs = both(name)
    x = data(rng, (5, 6), np.dtype(dtype).newbyteorder("="), integral=True).astype(dtype)
    w = data(rng, (3, 2), np.float64, integral=True)
    expected = theirs(x, w)
    got = ours(x, w, method="direct")
    assert got.dtype.str == expected.dtype.str
    np.testing.assert_array_equal(got, expected, strict=True)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_weights_skipped_gives_zeros(name, method, dtype):
    # Weights all of magnitude <= DBL_EPSILON are no terms at all: SciPy's
    # output is 0 even where the input is NaN or infinite (cconv gave NaN).
    ours, theirs = both(name)
    x = np.array([[np.nan, 1.0, np.inf], [2.0, -np.inf, 3.0]], dtype)
    for w in (np.zeros((1, 2)), np.array([[False, False]]), np.full((2, 2), 1e-17)):
        expected = theirs(x, w)
        np.testing.assert_array_equal(ours(x, w, method=method), expected, strict=True)
        np.testing.assert_array_equal(expected, np.zeros_like(x), strict=True)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("wdtype", [np.complex128, np.float64])
def test_complex_output_may_be_the_input(name, method, wdtype, rng):
    # output=input gives the filter of the input as it was.  (SciPy 1.17.1
    # filters the imaginary part from the real part's result there: not
    # copied.)
    ours, theirs = both(name)
    x = data(rng, (5, 6), np.complex128, integral=True)
    w = data(rng, (3, 2), wdtype, integral=True)
    expected = theirs(x.copy(), w)  # into a separate array
    y = x.copy()
    assert ours(y, w, output=y, method=method) is y
    check(y, expected, method, exact=method == "direct")


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
@pytest.mark.parametrize("dtype", ["f8", "f4", "i4", "u1", "c16"])
@pytest.mark.parametrize("wshape", [(1, 1), (3, 2)])
def test_result_outlives_the_next_call(name, method, dtype, wshape, rng):
    # The extended copy of the input lives in scratch space reused by the
    # next call: no result may be (or view) that space.
    ours, _ = both(name)
    w = rng.integers(1, 4, size=wshape).astype(dtype)
    first = ours(rng.integers(0, 9, size=(9, 8)).astype(dtype), w, mode="nearest", method=method)
    kept = first.copy()
    ours(rng.integers(0, 9, size=(9, 8)).astype(dtype), w, mode="nearest", method=method)
    np.testing.assert_array_equal(first, kept, strict=True)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_origin_as_a_0d_array_as_scipy(dtype):
    # SciPy tests origin with np.iterable: a 0-d array is one origin for
    # every axis (and a float16 input then fails on its type, not on that).
    x = np.arange(20.0).reshape(4, 5).astype(dtype)
    for name in FUNCS:
        ours, theirs = both(name)
        try:
            expected = theirs(x, np.ones((2, 2)), origin=np.array(0))
        except RuntimeError:
            with pytest.raises(RuntimeError):
                ours(x, np.ones((2, 2)), origin=np.array(0))
            continue
        np.testing.assert_array_equal(ours(x, np.ones((2, 2)), origin=np.array(0)), expected, strict=True)


# --------------------------------------------------------------------------
# The 2-D filter of float outputs (cconv._filter2d), each path forced in each
# build: the interior read in place, the edge strips gathered by index, or
# everything from gathered strips; and the output written in place.


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("path", ["auto", "interior", "strips"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_filter_paths_match_scipy_exactly(correlate_build, name, path, dtype, rng, monkeypatch):
    # Integer-valued data: the direct sums are exact, so every path must give
    # SciPy's numbers bit for bit: every mode, odd and even sizes, images
    # smaller than the weights, rows wider than a vector block, origins, and
    # views with negative strides.
    from cconv import _filter2d

    monkeypatch.setattr(_filter2d, "PATH", path)
    ours, theirs = both(name)
    for shape in [(7, 9), (8, 6), (2, 3), (21, 75)]:
        x = data(rng, shape, dtype, integral=True)
        for view in (x, x[::-1], x[:, ::-1], x[::-2, ::-1]):
            for wshape, origin in [((3, 3), 0), ((4, 2), (-2, 0)), ((5, 7), (1, -3)), ((1, 4), (0, 1))]:
                w = data(rng, wshape, np.float64, integral=True)
                for mode in MODES:
                    expected = theirs(view, w, mode=mode, cval=-2.5, origin=origin)
                    got = ours(view, w, mode=mode, cval=-2.5, origin=origin, method="direct")
                    check(got, expected, "direct", exact=True)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
def test_bool_output_bytes_as_scipy(name, method, rng):
    # SciPy casts each double to an unsigned char into a bool output: a sum
    # of 2 is the byte 2 (True, but not the byte 1).  The same bytes.
    ours, theirs = both(name)
    x = rng.integers(0, 4, size=(9, 10)).astype(np.float64)
    w = np.array([[1.0, 0.5], [0.25, 1.0]])
    for out in (bool, np.zeros(x.shape, bool)):
        expected = theirs(x, w, output=out if out is bool else out.copy())
        got = ours(x, w, output=out if out is bool else out.copy(), method=method)
        np.testing.assert_array_equal(got.view(np.uint8), expected.view(np.uint8), strict=True)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_of_the_sums_dtype_is_written_in_place(name, method, dtype, rng):
    # The output array itself, a strided view of a larger array, a Fortran
    # array, a view with negative strides, and the input itself: each comes
    # back with SciPy's result, and nothing beside the view is written.
    ours, theirs = both(name)
    x = data(rng, (30, 41), dtype)
    w = data(rng, (5, 4), np.float64)
    expected = theirs(x, w, mode="mirror")
    big = np.full((40, 60), 9.0, dtype)
    for out in (np.empty_like(x), big[3:33, 5:46], np.asfortranarray(np.empty_like(x)),
                np.empty_like(x)[::-1, ::-1]):
        assert ours(x, w, output=out, mode="mirror", method=method) is out
        check(out, expected, method, float32_sums=dtype == np.float32)
    assert np.all(big[:3] == 9) and np.all(big[33:] == 9) and np.all(big[:, :5] == 9) and np.all(big[:, 46:] == 9)
    same = x.copy()
    assert ours(same, w, output=same, mode="mirror", method=method) is same
    check(same, expected, method, float32_sums=dtype == np.float32)
    batch = data(rng, (3, 30, 41), dtype)  # a batch along a middle axis, filtered over axes (0, 2)
    out = np.empty_like(batch)
    assert ours(batch, w, output=out, mode="wrap", axes=(0, 2), method=method) is out
    check(out, theirs(batch, w, mode="wrap", axes=(0, 2)), method, float32_sums=dtype == np.float32)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_direct_filter_makes_no_image_sized_array(name, dtype, rng):
    # The direct route reads the input in place and writes the output in
    # place: after a first call (which makes the kept scratch rows), a call
    # allocates a small part of the image's size, not an extended copy.
    import tracemalloc

    ours, theirs = both(name)
    x = data(rng, (300, 400), dtype)
    w = data(rng, (5, 5), np.float64)
    out = np.empty_like(x)
    ours(x, w, output=out, mode="nearest", method="direct")
    tracemalloc.start()
    try:
        ours(x, w, output=out, mode="nearest", method="direct")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 8, peak
    check(out, theirs(x, w, mode="nearest"), "direct", float32_sums=dtype == np.float32)
