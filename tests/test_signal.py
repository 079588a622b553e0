"""cconv.signal.correlate2d / convolve2d: the documented claims, against SciPy and plain NumPy.

Every expected value comes from ``scipy.signal`` or from the plain-NumPy
reference ``dropin_reference.py`` (np.pad and sliding windows), never from
cconv.  SciPy is never called where it dies ('full' with 'wrap' or 'symm'
and an empty axis in in1: SIGFPE in SciPy 1.17.1).
"""

from __future__ import annotations

import importlib.util
import zlib
import pathlib

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


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", ["?", "e", "O", "M8[s]", "m8[s]"])
@pytest.mark.parametrize("which", ["both", "in1", "in2"])
def test_types_scipy_does_not_take(name, dtype, which):
    # ValueError("convolve2d not available for this type.") from SciPy's C
    # code, but correlate2d conjugates in2 first: TypeError for times.
    ours, theirs = both(name)
    odd = np.zeros((3, 3), dtype)
    a = odd if which in ("both", "in1") else np.ones((3, 3), "?" if dtype == "?" else "f8")
    k = odd[:2, :2] if which in ("both", "in2") else np.ones((2, 2), "?" if dtype == "?" else "f8")
    try:
        expected = theirs(a, k)
    except (ValueError, TypeError) as e:
        with pytest.raises(type(e)) as got:
            ours(a, k)
        if type(e) is ValueError:
            assert str(got.value) == str(e)
        return
    np.testing.assert_array_equal(ours(a, k), expected, strict=True)
