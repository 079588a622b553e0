"""cconv.ndimage.correlate / convolve: the documented claims, against SciPy and plain NumPy.

Every expected value comes from ``scipy.ndimage`` or from the plain-NumPy
reference ``dropin_reference.py`` (np.pad and explicit sums), never from
cconv.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np
import pytest
import scipy.ndimage

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
