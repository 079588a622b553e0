"""Differential fuzz of the SciPy drop-ins against SciPy (issue #14).

``cconv.signal.correlate2d`` / ``convolve2d`` and ``cconv.ndimage.correlate``
/ ``convolve`` are called with what Hypothesis draws, and so is SciPy's
function of the same name, with the same arguments (the N-D functions of
issue 25 -- ``convolve`` / ``correlate``, ``fftconvolve`` / ``oaconvolve``,
1-D and 3-D weights, ``correlate1d`` / ``convolve1d`` -- at the end, each
with its own notes):

- shapes: 0 to 8 samples an axis, kernels larger than the image, 1x1, 1xN,
  empty axes (SciPy is never called where it dies: 'full' with 'wrap' or
  'symm' and an empty axis in ``in1``, SIGFPE in SciPy 1.17.1);
- every mode and boundary (and their aliases, and invalid names), fill
  values of every kind (Python and NumPy scalars, complex, NaN, out of
  range, arrays of one, none or two elements), cval, origins in and out of
  range, ``output`` as None, a dtype, a string or an array (also the input
  itself), N-D inputs with two ``axes``;
- every dtype and mixed pairs (bool, all integers, float16/32/64, long
  double, complex, object), values over the whole integer range (sums that
  wrap), integer-valued or Gaussian floats, NaN and +-Inf sprinkled in;
- layouts: C, Fortran, sliced, negative strides, transposed, read-only,
  byte-swapped;
- every ``method``.

The results must have SciPy's dtype and shape and its values: exactly for
integer results; for floats, NaN and +-Inf at the same places and the rest
within a norm-relative tolerance (the error of a sum of n terms against
the largest absolute sum of terms); and where SciPy raises, cconv raises
the same class.  The inputs are never modified.

SciPy 1.17.1's ndimage 'reflect' / 'grid-mirror' are wrong (and differ from
run to run) when the weights reach 4n or more samples before the start of
an axis of length n: there the reference is ``dropin_reference`` (plain
NumPy) instead.

``CCONV_FUZZ_EXAMPLES`` sets the examples per test (default 40).
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import warnings

import numpy as np
import pytest
import scipy.ndimage
import scipy.signal
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

import cconv._convolve
import cconv.ndimage
import cconv.signal


def _load_reference():
    path = pathlib.Path(__file__).resolve().parents[1] / "dropin_reference.py"
    spec = importlib.util.spec_from_file_location("_cconv_dropin_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ref = _load_reference()

EXAMPLES = int(os.environ.get("CCONV_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
)

METHODS = ("auto", "direct", "fft")
ALL_DTYPES = "?bBhHiIlLqQefdgFDG"
LAYOUTS = ("C", "F", "sliced", "negative", "transposed", "readonly", "byteswapped")


# --------------------------------------------------------------------------
# Arrays


def _values(rng: np.random.Generator, shape, dtype: np.dtype, kind: str) -> np.ndarray:
    """Random values of ``dtype``: 'small' integer-valued, 'full' range, or 'normal' floats;
    'nonfinite' adds NaN and +-Inf to floats."""
    if dtype.kind == "O":
        return rng.integers(-3, 4, size=shape).astype(object)
    if dtype.kind == "b":
        return rng.random(shape) < 0.5
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if kind == "full":
            return rng.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)
        return rng.integers(max(info.min, -4), min(info.max, 4), size=shape, endpoint=True).astype(dtype)
    real = np.empty(0, dtype).real.dtype

    def part():
        if kind == "small":
            return rng.integers(-4, 5, size=shape).astype(real)
        v = (rng.standard_normal(shape) * rng.choice([1e-3, 1.0, 1e3])).astype(real)
        if kind == "nonfinite" and v.size:
            n = rng.integers(1, max(2, v.size // 3) + 1)
            idx = rng.integers(0, v.size, size=n)
            v.flat[idx] = rng.choice(np.array([np.nan, np.inf, -np.inf], dtype=real), size=n)
        return v

    if dtype.kind == "c":
        z = np.empty(shape, dtype)
        z.real, z.imag = part(), part()
        return z
    return part().astype(dtype)


def with_layout(a: np.ndarray, layout: str) -> np.ndarray:
    """``a`` (same dtype, shape, values) in another memory layout."""
    if layout == "C":
        return np.array(a, order="C")
    if layout == "F":
        return np.array(a, order="F")
    if layout == "transposed":
        return np.array(a.T, order="C").T
    if layout == "sliced":
        big = np.zeros(tuple(2 * n + 1 for n in a.shape), dtype=a.dtype)
        view = big[tuple(slice(1, None, 2) for _ in a.shape)]
        view[...] = a
        return view
    if layout == "negative":
        flip = (slice(None, None, -1),) * a.ndim
        return np.array(a[flip])[flip]
    if layout == "readonly":
        b = np.array(a)
        b.flags.writeable = False
        return b
    if layout == "byteswapped":
        return a.astype(a.dtype.newbyteorder())
    raise ValueError(layout)


def _mostly(usual, rare, percent=90):
    """``usual`` ``percent`` % of the time, else ``rare``."""
    return st.integers(0, 99).flatmap(lambda n: usual if n < percent else rare)


@st.composite
def arrays(draw, shape, dtype, kinds=("small", "full", "normal", "nonfinite")):
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(kinds))
    return with_layout(_values(rng, shape, dtype, kind), draw(st.sampled_from(LAYOUTS)))


# --------------------------------------------------------------------------
# Calls and comparisons


def _call(f, *args, **kwargs):
    """(result, exception, warning categories) of ``f(*args, **kwargs)``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with np.errstate(all="ignore"):
                return f(*args, **kwargs), None, sorted({w.category.__name__ for w in caught})
        except Exception as e:  # noqa: BLE001 - the fuzz compares exception classes
            return None, e, sorted({w.category.__name__ for w in caught})


def _snapshot(*arrays):
    return [(a, np.array(a, copy=True)) for a in arrays if isinstance(a, np.ndarray)]


def _unchanged(snaps):
    for a, copy in snaps:
        np.testing.assert_array_equal(a, copy, strict=True)


def _finite(a: np.ndarray) -> np.ndarray:
    """``a`` with its NaN and Inf set to 0; for complex, in each part on its own (an element of
    NaN real part keeps its imaginary part: cconv sums the parts apart, and so rounds them)."""
    a = np.asarray(a)
    if a.dtype.kind == "c":
        return _finite(a.real) + 1j * _finite(a.imag)
    return np.where(np.isfinite(a), a, 0) if a.dtype.kind == "f" else a


def assert_same_values(actual: np.ndarray, expected: np.ndarray, scale: float, terms: int):
    """Exact for integers and bool; for floats and complex: NaN and +-Inf where SciPy has them,
    the rest within a few roundings of each of ``terms`` terms of absolute sum ``scale``."""
    assert actual.dtype == expected.dtype, (actual.dtype, expected.dtype)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if expected.dtype.kind not in "fc":
        np.testing.assert_array_equal(actual, expected)
        return
    parts = (lambda z: (z.real, z.imag)) if expected.dtype.kind == "c" else (lambda z: (z,))
    eps = float(np.finfo(expected.dtype).eps)
    for a, e in zip(parts(actual), parts(expected)):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg="NaN not where SciPy has it")
        np.testing.assert_array_equal(np.where(np.isinf(a), a, 0), np.where(np.isinf(e), e, 0),
                                      err_msg="+-Inf not where SciPy has it")
        a64 = np.where(np.isfinite(a), a, 0).astype(np.longdouble)
        e64 = np.where(np.isfinite(e), e, 0).astype(np.longdouble)
        err = float(np.max(np.abs(a64 - e64))) if a.size else 0.0
        bound = 8 * (terms + 8) * eps * scale
        assert err <= bound, f"max error {err:.3g} > {bound:.3g} (scale {scale:.3g}, {terms} terms)"


def assert_same_exception(ours, theirs, context=""):
    assert ours is not None, f"SciPy raised {type(theirs).__name__}: {theirs}; cconv returned {context}"
    assert type(ours) is type(theirs) or isinstance(ours, type(theirs)), (
        f"cconv raised {type(ours).__name__}: {ours}; SciPy {type(theirs).__name__}: {theirs}")


# --------------------------------------------------------------------------
# scipy.signal.correlate2d / convolve2d

FILLVALUES = (0, 3, -2.5, 1e30, 300, -1, 2 + 0j, 1j, np.nan, np.inf, -np.inf, np.float32(1.5), np.int8(-7),
              np.array([7]), np.array(5, dtype=np.int64), np.array(2.5), np.array([], float), [1, 2], True,
              np.array([1.5 + 0.5j]), np.uint64(2**64 - 1))
MODES = ("full", "same", "valid")
BOUNDARIES = ("fill", "pad", "wrap", "circular", "symm", "symmetric")


@st.composite
def signal_cases(draw):
    small = st.integers(0, 8)
    shape1 = (draw(small), draw(small))
    shape2 = (draw(st.integers(0, 10)), draw(st.integers(0, 10)))
    if draw(st.booleans()):  # mostly non-empty
        shape1 = tuple(max(1, n) for n in shape1)
        shape2 = tuple(max(1, n) for n in shape2)
    common = draw(st.sampled_from(("d", "f", "i", "D", "B", "q", "F", "?")))
    dt1 = draw(st.sampled_from(ALL_DTYPES + "O") | st.just(common))
    dt2 = draw(st.sampled_from(ALL_DTYPES + "O") | st.just(dt1))
    in1 = draw(arrays(shape1, dt1))
    in2 = draw(arrays(shape2, dt2))
    mode = draw(_mostly(st.sampled_from(MODES), st.sampled_from(("bogus", "VALID"))))
    boundary = draw(_mostly(st.sampled_from(BOUNDARIES), st.sampled_from(("reflect", "bogus"))))
    fillvalue = draw(st.sampled_from(FILLVALUES))
    method = draw(st.sampled_from(METHODS))
    return in1, in2, mode, boundary, fillvalue, method


def _scipy_dies(in1, mode, boundary) -> bool:
    """SciPy 1.17.1 dies with SIGFPE: 'full' with 'wrap'/'symm' and an empty axis in in1."""
    return mode == "full" and boundary in ("wrap", "circular", "symm", "symmetric") and 0 in in1.shape


def _abs_sum_scale(in1, in2, mode, boundary, fillvalue, method) -> float:
    """The largest absolute sum of terms of any output (finite parts), for the tolerance; where the
    FFTs may sum (``method`` 'fft' or 'auto'), at least max|in1| * sum|in2| (see :func:`_filter_scale`)."""
    try:
        fill = abs(complex(np.asarray(fillvalue).reshape(-1)[0]))
    except Exception:  # noqa: BLE001
        fill = 0.0
    a = np.abs(_finite(np.asarray(in1, dtype=np.result_type(in1, np.float64)))).astype(np.float64)
    k = np.abs(_finite(np.asarray(in2, dtype=np.result_type(in2, np.float64)))).astype(np.float64)
    if not np.isfinite(fill):
        fill = 0.0
    out = ref.correlate2d(a, k, mode, boundary, fill, dtype=np.float64)
    scale = float(np.max(out)) if out.size else 0.0
    if method != "direct":
        scale = max(scale, max(float(np.max(a, initial=0.0)), fill) * float(k.sum()))
    return scale


@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
@FUZZ
@given(case=signal_cases())
def test_signal_against_scipy(name, case):
    in1, in2, mode, boundary, fillvalue, method = case
    note(f"in1 {in1.dtype}{in1.shape}, in2 {in2.dtype}{in2.shape}, {mode!r}, {boundary!r}, "
         f"fillvalue={fillvalue!r}, method={method!r}")
    snaps = _snapshot(in1, in2, fillvalue)
    ours, our_exc, our_warn = _call(getattr(cconv.signal, name), in1, in2, mode, boundary, fillvalue,
                                    method=method)
    _unchanged(snaps)
    if mode in MODES and boundary in BOUNDARIES and _scipy_dies(in1, mode, boundary):
        # SciPy divides by zero once it has an output to compute and an index
        # of in2 to wrap along the empty axis (rows first); cconv refuses exactly
        # there and otherwise returns SciPy's zeros or its shape error.
        (h, w), (kh, kw) = in1.shape, in2.shape
        oh, ow = h + kh - 1, w + kw - 1
        # What SciPy says of these dtypes and fill value on 1x1 inputs (where it lives)
        _, probe_exc, _ = _call(getattr(scipy.signal, name), np.ones((1, 1), in1.dtype), np.ones((1, 1), in2.dtype),
                                mode, boundary, fillvalue)
        if probe_exc is not None:
            assert_same_exception(our_exc, probe_exc, context=repr(ours))
        elif oh < 0 or ow < 0 or (oh * ow > 0 and kh > 0 and (h == 0 or kw > 0)):
            assert isinstance(our_exc, ValueError), f"SciPy dies or refuses here; cconv returned {ours!r}"
        else:
            assert our_exc is None and ours.shape == (oh, ow) and not ours.any()
        return
    theirs, their_exc, their_warn = _call(getattr(scipy.signal, name), in1, in2, mode, boundary, fillvalue)
    event(f"SciPy raised {type(their_exc).__name__}" if their_exc is not None else "compared with SciPy")
    if their_exc is not None:
        assert_same_exception(our_exc, their_exc, context=repr(ours))
        return
    assert our_exc is None, f"cconv raised {type(our_exc).__name__}: {our_exc}; SciPy returned a result"
    assert type(ours) is np.ndarray
    assert our_warn == their_warn, (our_warn, their_warn)
    scale = _abs_sum_scale(in1, in2, mode, boundary, fillvalue, method) if theirs.dtype.kind in "fc" else 0
    assert_same_values(ours, theirs, scale, in2.size if mode != "valid" else min(in1.size, in2.size))


# --------------------------------------------------------------------------
# scipy.ndimage.correlate / convolve

ND_MODES = ("reflect", "grid-mirror", "mirror", "nearest", "wrap", "grid-wrap", "constant", "grid-constant")
ND_TYPES = "?bBhHiIlLqQfd"  # what SciPy's filters take; complex through real parts


@st.composite
def ndimage_cases(draw):
    batch = draw(st.sampled_from([(), (), (), (2,), (1, 3)]))
    h, w = draw(st.integers(0, 7)), draw(st.integers(0, 7))
    if draw(st.booleans()):
        h, w = max(h, 1), max(w, 1)
    kh, kw = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    in_dt = draw(_mostly(st.sampled_from(ND_TYPES + "FD"), st.sampled_from("eg")))
    w_dt = draw(st.sampled_from("?ibdfFD") | st.just(in_dt))
    shape = (*batch, h, w)
    axes = None
    if batch:
        axes = tuple(draw(st.permutations(range(len(shape))))[:2])
        # the filtered axes get (h, w), in the order given
        full = list(batch)
        for ax, n in sorted(zip(axes, (h, w))):
            full.insert(ax, n)
        shape = tuple(full)
        if draw(st.booleans()):
            axes = tuple(a - len(shape) for a in axes)
    x = draw(arrays(shape, in_dt))
    weights = draw(arrays((kh, kw), w_dt, kinds=("small", "normal", "small")))
    mode = draw(_mostly(st.sampled_from(ND_MODES), st.just("bogus")))
    cval = draw(st.sampled_from((0.0, 1.5, -3, np.nan, np.inf, 2, np.float32(0.25))))
    # origins mostly in range: -(k // 2) <= origin <= (k - 1) // 2
    valid = [st.integers(-(n // 2), (n - 1) // 2) for n in (kh, kw)]
    origin = draw(_mostly(st.tuples(*valid) | valid[0] if kh == kw else st.tuples(*valid),
                          st.integers(-5, 5) | st.tuples(st.integers(-5, 5), st.integers(-5, 5))))
    out_kind = draw(st.sampled_from(("none", "none", "dtype", "array", "array", "input", "str")))
    out_dt = draw(st.just(in_dt) | st.sampled_from(ND_TYPES + "FD"))
    method = draw(st.sampled_from(METHODS))
    return x, weights, mode, cval, origin, axes, out_kind, out_dt, method


def _reach_before_start(weights_shape, origins, convolve):
    """Samples before the start of each axis that the first output reads."""
    out = []
    for n, o in zip(weights_shape, origins):
        if convolve:
            o = -o - (0 if n % 2 else 1)
        out.append(n // 2 + o)
    return out


def _output(kind, dt, x):
    if kind == "none":
        return None, None
    if kind == "dtype":
        return np.dtype(dt), np.dtype(dt)
    if kind == "str":
        return np.dtype(dt).name, np.dtype(dt).name
    if kind == "input":
        a, b = np.array(x), np.array(x)
        return a, b  # the input itself, for both calls
    return np.zeros(x.shape, dt), np.zeros(x.shape, dt)


@pytest.mark.parametrize("name", ["correlate", "convolve"])
@FUZZ
@given(case=ndimage_cases())
def test_ndimage_against_scipy(name, case):
    x, weights, mode, cval, origin, axes, out_kind, out_dt, method = case
    convolve = name == "convolve"
    note(f"input {x.dtype}{x.shape} axes={axes}, weights {weights.dtype}{weights.shape}, mode={mode!r}, "
         f"cval={cval!r}, origin={origin!r}, output={out_kind} {np.dtype(out_dt)}, method={method!r}")
    kwargs = dict(mode=mode, cval=cval, origin=origin)
    if axes is not None:
        kwargs["axes"] = axes
    ours_out, theirs_out = _output(out_kind, out_dt, x)
    x_ours = ours_out if out_kind == "input" else x
    x_theirs = theirs_out if out_kind == "input" else np.array(x)
    if out_kind == "input" and x.dtype.kind == "c":
        # SciPy 1.17.1 filters a complex input's imaginary part from its real
        # part's result when output is input (a SciPy bug cconv does not copy):
        # the reference is SciPy's result into a separate array.
        x_theirs, theirs_out = np.array(x), np.zeros_like(x)
    snaps = _snapshot(weights) + ([] if out_kind == "input" else _snapshot(x))
    ours, our_exc, our_warn = _call(getattr(cconv.ndimage, name), x_ours, weights, ours_out, method=method,
                                    **kwargs)
    _unchanged(snaps)
    # Where SciPy's 'reflect' is wrong, the plain-NumPy reference instead.
    origins = [origin] * 2 if np.ndim(origin) == 0 else list(origin)
    sorted_axes = None
    if axes is not None:
        order = np.argsort([a % x.ndim for a in axes])
        sorted_axes = sorted(a % x.ndim for a in axes)
        origins = [origins[i] for i in order]
    lengths = [x.shape[a] for a in (sorted_axes or (0, 1))] if x.ndim >= 2 else []
    reach = _reach_before_start(weights.shape, origins, convolve)
    scipy_wrong = (mode in ("reflect", "grid-mirror") and lengths and our_exc is None and x.size > 0
                   and any(r >= 4 * n > 0 for r, n in zip(reach, lengths)))
    if scipy_wrong:
        event("compared with plain NumPy (SciPy's reflect is wrong here)")
        _check_against_numpy(ours, x, weights, kwargs, convolve, axes, out_kind, out_dt, method)
        return
    theirs, their_exc, their_warn = _call(getattr(scipy.ndimage, name), x_theirs, weights, theirs_out, **kwargs)
    event(f"SciPy raised {type(their_exc).__name__}" if their_exc is not None else "compared with SciPy")
    if their_exc is not None:
        if isinstance(our_exc, NotImplementedError):
            pytest.fail(f"NotImplementedError where SciPy raises {their_exc!r}")
        assert_same_exception(our_exc, their_exc, context=repr(ours))
        return
    assert our_exc is None, f"cconv raised {type(our_exc).__name__}: {our_exc}; SciPy returned a result"
    assert our_warn == their_warn, (our_warn, their_warn)
    if out_kind in ("array", "input"):
        assert ours is ours_out
    assert type(ours) is np.ndarray
    sums = None
    if ours.dtype.kind in "iu" and ours.size and (ours != theirs).any():
        # SciPy's double sums, before its C cast into the integer output
        sums = getattr(scipy.ndimage, name)(np.array(x), weights, np.float64, **kwargs)
    _assert_ndimage_values(ours, theirs, x, weights, mode, cval, origins, sorted_axes, convolve, sums, method)


def _sum_scale(x, weights, mode, cval, origins, axes, convolve, method):
    """The largest absolute sum of terms of any output, for the tolerance; where the FFTs may sum
    (``method`` 'fft' or 'auto'), at least max|x| * sum|weights| (see :func:`_filter_scale`)."""
    xs = np.asarray(x)
    if xs.dtype.kind == "c":
        xs = _abs_parts(xs)
    w = np.asarray(weights)
    w = np.abs(w).astype(np.float64)
    xs = np.moveaxis(xs, axes or (0, 1), (-2, -1)) if xs.ndim > 2 else xs
    planes = xs.reshape(-1, *xs.shape[-2:]) if xs.size else xs.reshape(0, *xs.shape[-2:])
    c = abs(complex(cval))
    c = c if np.isfinite(c) else 0.0
    scale = 0.0
    for p in planes:
        p = np.abs(_finite(p.astype(np.float64)))
        s = ref.ndimage_sum(p, w, mode if mode in ref.NDIMAGE_PAD else "constant", c, origins, convolve,
                            dtype=np.float64)
        scale = max(scale, float(np.max(s)) if s.size else 0.0)
    if method != "direct":
        scale = max(scale, max(float(np.max(_abs_parts(x), initial=0.0)), c) * float(w.sum()))
    return scale


def _assert_ndimage_values(ours, theirs, x, weights, mode, cval, origins, axes, convolve, sums, method):
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape, (ours.dtype, ours.shape, theirs.dtype,
                                                                     theirs.shape)
    if ours.size == 0:
        return
    scale = _sum_scale(x, weights, mode, cval, origins, axes, convolve, method)
    if ours.dtype.kind in "fc":
        # SciPy sums in double; float32 in and out is summed in float32 by cconv,
        # and complex64 input goes through float32 parts in both.
        eps_dt = (np.float32 if np.dtype(x.dtype).char in "fF" and (ours.dtype.char in "fF" or x.dtype.kind == "c")
                  else ours.dtype)
        tol_scale = scale * float(np.finfo(eps_dt).eps) / float(np.finfo(ours.dtype).eps)
        assert_same_values(ours, theirs, max(tol_scale, scale), weights.size)
        return
    # Integer and bool outputs: C's truncation of SciPy's very doubles, summed
    # in its order, so equal everywhere.  Not compared where the sum is NaN,
    # infinite or beyond the output's range: C leaves that conversion
    # undefined (cconv matches SciPy there but for uint64 below -2**63).
    diff = ours != theirs
    if not diff.any():
        return
    if ours.dtype.kind == "b":
        raise AssertionError(f"bool output differs at {np.argwhere(diff)[:5].tolist()}")
    info = np.iinfo(ours.dtype)
    with np.errstate(invalid="ignore"):
        out_of_range = ~np.isfinite(sums) | (sums <= float(info.min) - 1) | (sums >= float(info.max) + 1)
    bad = diff & ~out_of_range
    assert not bad.any(), f"integer output differs at {np.argwhere(bad)[:5].tolist()}: " \
                          f"{ours[bad][:5]} vs SciPy {theirs[bad][:5]}"


def _check_against_numpy(ours, x, weights, kwargs, convolve, axes, out_kind, out_dt, method):
    """cconv against the plain-NumPy reference (2-D real float input only; else just shape/dtype)."""
    assert type(ours) is np.ndarray and ours.shape == x.shape
    if x.ndim != 2 or x.dtype.kind not in "f" or weights.dtype.kind == "c" or ours.dtype.kind != "f":
        return
    expected = ref.ndimage_sum(x, weights, kwargs["mode"], kwargs["cval"], kwargs["origin"], convolve)
    scale = _sum_scale(x, weights, kwargs["mode"], kwargs["cval"],
                       [kwargs["origin"]] * 2 if np.ndim(kwargs["origin"]) == 0 else kwargs["origin"],
                       None, convolve, method)
    eps_dt = np.float32 if x.dtype == np.float32 or ours.dtype == np.float32 else np.float64
    with np.errstate(all="ignore"):
        assert_same_values(ours, expected.astype(ours.dtype),
                           scale * float(np.finfo(eps_dt).eps) / float(np.finfo(ours.dtype).eps), weights.size)


# --------------------------------------------------------------------------
# cval and fillvalue of every kind (issue 21): SciPy takes cval as C takes a
# double (anything with __float__ or __index__: NumPy scalars, 0-d arrays),
# and fillvalue as NumPy converts an object to an array of the output dtype.

SCALAR_TYPES = "?bBhHiIlLqQefdgFD"


@st.composite
def scalar_values(draw):
    """A value as a user may pass cval or fillvalue: a Python number, a NumPy
    scalar of any dtype, a 0-d array, an array of one, two or no elements,
    or something that is no number at all."""
    base = draw(st.sampled_from([0, 1, -2, 2.5, -0.5, 300, 1e30, np.nan, np.inf]))
    kind = draw(st.sampled_from(("python", "numpy", "numpy", "0-d", "0-d", "1-element", "2-element", "empty",
                                 "other")))
    if kind == "python":
        return draw(st.sampled_from([float(base), int(base) if np.isfinite(base) else 0, bool(base),
                                     complex(base, 1)]))
    if kind == "other":
        return draw(st.sampled_from(["1.5", None, b"2", [1.5], (2,), object()]))
    dtype = np.dtype(draw(st.sampled_from(SCALAR_TYPES)))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        value = np.array(base).astype(dtype)
    if kind == "numpy":
        return value[()]
    if kind == "0-d":
        return value
    if kind == "1-element":
        return value.reshape(1)
    if kind == "2-element":
        return np.stack([value, value])
    return value.reshape(1)[:0]


@pytest.mark.parametrize("name", ["correlate", "convolve"])
@FUZZ
@given(cval=scalar_values(), in_dt=st.sampled_from(ND_TYPES + "eFD"), out_dt=st.sampled_from((None,) + tuple(ND_TYPES)),
       out_kind=st.sampled_from(("dtype", "dtype", "array", "read-only", "wrong shape")),
       mode=st.sampled_from(ND_MODES + ("bogus",)), origin=st.sampled_from((0, 0, (0, 1), -1, 5, True, 1.0)),
       method=st.sampled_from(METHODS), empty=st.booleans())
def test_ndimage_cval_of_every_kind(name, cval, in_dt, out_dt, out_kind, mode, origin, method, empty):
    # Several arguments may be wrong at once: SciPy's first failing check
    # names the error, and cconv's must raise the same class.
    x = np.arange(0 if empty else 12, dtype=np.float64).reshape(-1, 4 if not empty else 3)
    x = x.astype(in_dt) if np.dtype(in_dt).kind != "c" else (x + 1j).astype(in_dt)
    weights = np.array([[1 / 3, 0.5], [-2 / 7, 1.0]])
    note(f"cval={cval!r} ({type(cval).__name__}), input {x.dtype}{x.shape}, output {out_kind} {out_dt}, "
         f"mode={mode!r}, origin={origin!r}")

    def output():
        if out_kind == "dtype" or out_dt is None:
            return out_dt
        a = np.zeros(x.shape if out_kind != "wrong shape" else (x.shape[0] + 1, x.shape[1]), out_dt)
        a.flags.writeable = out_kind != "read-only"
        return a

    ours, our_exc, our_warn = _call(getattr(cconv.ndimage, name), x, weights, output(), mode, cval, origin,
                                    method=method)
    theirs, their_exc, their_warn = _call(getattr(scipy.ndimage, name), x, weights, output(), mode, cval, origin)
    event(f"SciPy raised {type(their_exc).__name__}" if their_exc is not None else "compared with SciPy")
    if their_exc is not None:
        assert_same_exception(our_exc, their_exc, context=repr(ours))
        return
    assert our_exc is None, f"cconv raised {type(our_exc).__name__}: {our_exc}; SciPy returned a result"
    assert our_warn == their_warn, (our_warn, their_warn)
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    if theirs.dtype.kind in "biu":  # SciPy's doubles, truncated: the same integers
        sums, _, _ = _call(getattr(scipy.ndimage, name), x, weights, np.float64, mode, cval, origin)
        info = np.iinfo(theirs.dtype) if theirs.dtype.kind != "b" else np.iinfo(np.uint8)
        with np.errstate(invalid="ignore"):  # where C's conversion is defined
            defined = np.isfinite(sums) & (sums > float(info.min) - 1) & (sums < float(info.max) + 1)
        np.testing.assert_array_equal(ours[defined], theirs[defined])
    else:
        cv = complex(np.asarray(cval).reshape(-1)[0])
        scale = _sum_scale(x, weights, mode, cv, [0, 0], None, name == "convolve", method)
        eps_dt = np.float32 if np.dtype(in_dt).char in "fF" else np.float64
        assert_same_values(ours, theirs, scale * float(np.finfo(eps_dt).eps) / float(np.finfo(theirs.dtype).eps),
                           weights.size)


@pytest.mark.parametrize("name", ["correlate2d", "convolve2d"])
@FUZZ
@given(fillvalue=scalar_values(), dt1=st.sampled_from("?bBhiIqQfdgFD"), dt2=st.sampled_from("?bBiqfdFD"),
       boundary=st.sampled_from(("fill", "wrap", "symm")), method=st.sampled_from(METHODS))
def test_signal_fillvalue_of_every_kind(name, fillvalue, dt1, dt2, boundary, method):
    in1 = (np.arange(12).reshape(3, 4) % 5).astype(dt1)
    in2 = np.array([[1, 2], [0, 1]]).astype(dt2)
    note(f"fillvalue={fillvalue!r} ({type(fillvalue).__name__}), in1 {in1.dtype}, in2 {in2.dtype}, {boundary!r}")
    ours, our_exc, our_warn = _call(getattr(cconv.signal, name), in1, in2, "same", boundary, fillvalue,
                                    method=method)
    theirs, their_exc, their_warn = _call(getattr(scipy.signal, name), in1, in2, "same", boundary, fillvalue)
    event(f"SciPy raised {type(their_exc).__name__}" if their_exc is not None else "compared with SciPy")
    if their_exc is not None:
        assert_same_exception(our_exc, their_exc, context=repr(ours))
        return
    assert our_exc is None, f"cconv raised {type(our_exc).__name__}: {our_exc}; SciPy returned a result"
    assert our_warn == their_warn, (our_warn, their_warn)
    scale = _abs_sum_scale(in1, in2, "same", boundary, fillvalue, method) if theirs.dtype.kind in "fc" else 0
    assert_same_values(ours, theirs, scale, in2.size)


# --------------------------------------------------------------------------
# scipy.signal.convolve / correlate (issue 25): ranks 1 to 3 on cconv's
# engine, the rest (rank 4, empty, bool, float16, object) handed to SciPy.

ND_SIGNAL_DTYPES = "?bBhiIqQefdgFDO"


def _both(ours_call, theirs_call, snaps):
    """cconv's call, then SciPy's; where SciPy raises, cconv must raise the
    same class (None is returned), else (ours, our warnings, theirs, their
    warnings).  The inputs ``snaps`` recorded must be unchanged by cconv."""
    ours, our_exc, our_warn = _call(ours_call)
    _unchanged(snaps)
    theirs, their_exc, their_warn = _call(theirs_call)
    event(f"SciPy raised {type(their_exc).__name__}" if their_exc is not None else "compared with SciPy")
    if their_exc is not None:
        assert_same_exception(our_exc, their_exc, context=repr(ours))
        return None
    assert our_exc is None, f"cconv raised {type(our_exc).__name__}: {our_exc}; SciPy returned a result"
    return ours, our_warn, theirs, their_warn


def _signal_both(name, in1, in2, mode, **kwargs):
    """:func:`_both` of cconv.signal's ``name`` and SciPy's, called alike (the case noted first)."""
    note(f"in1 {in1.dtype}{in1.shape}, in2 {in2.dtype}{in2.shape}, {mode!r}, {kwargs}")
    return _both(lambda: getattr(cconv.signal, name)(in1, in2, mode, **kwargs),
                 lambda: getattr(scipy.signal, name)(in1, in2, mode, **kwargs), _snapshot(in1, in2))


def _nd_shapes(draw, rank, small=6):
    """Two shapes of ``rank`` axes (0 to ``small`` samples), sometimes with
    axes where both have size 1, or one containing the other."""
    s1 = [draw(st.integers(0, small)) for _ in range(rank)]
    s2 = [draw(st.integers(0, small)) for _ in range(rank)]
    if draw(st.booleans()):
        s1, s2 = [max(1, n) for n in s1], [max(1, n) for n in s2]
    if rank > 1 and draw(st.booleans()):
        ax = draw(st.integers(0, rank - 1))
        s1[ax] = s2[ax] = 1
    return tuple(s1), tuple(s2)


@st.composite
def nd_signal_cases(draw):
    rank = draw(_mostly(st.integers(1, 3), st.just(4)))
    s1, s2 = _nd_shapes(draw, rank)
    common = draw(st.sampled_from("dfiDBqF?g"))
    dt1 = draw(st.sampled_from(ND_SIGNAL_DTYPES) | st.just(common))
    dt2 = draw(st.sampled_from(ND_SIGNAL_DTYPES) | st.just(dt1))
    in1 = draw(arrays(s1, dt1))
    in2 = draw(arrays(s2, dt2))
    mode = draw(_mostly(st.sampled_from(MODES), st.sampled_from(("bogus", "VALID"))))
    method = draw(_mostly(st.sampled_from(METHODS), st.just("bacon"), 95))
    return in1, in2, mode, method


def _nd_scale(name, in1, in2, mode):
    """The largest absolute sum of terms of any output (finite parts, float64), for the tolerance."""
    a = np.abs(_finite(np.asarray(in1, dtype=np.result_type(in1, np.float64)))).astype(np.float64)
    b = np.abs(_finite(np.asarray(in2, dtype=np.result_type(in2, np.float64)))).astype(np.float64)
    out = getattr(scipy.signal, name)(a, b, mode, method="direct")
    return float(np.max(out)) if out.size else 0.0


def _cconv_warnings(caught):
    return [w for w in caught if w != "SciPyFallbackWarning"]


@pytest.mark.parametrize("name", ["convolve", "correlate"])
@FUZZ
@given(case=nd_signal_cases())
def test_nd_signal_against_scipy(name, case):
    # cconv's result on every method is SciPy's direct one: integers exact,
    # NaN and Inf where SciPy's direct sums put them (SciPy's FFT spreads
    # them); errors as SciPy raises them for the method given.
    in1, in2, mode, method = case
    both = _signal_both(name, in1, in2, mode, method=method)
    if both is None:
        return
    ours, our_warn, theirs, _ = both
    handled = np.asarray(in1).ndim > 0 and cconv._convolve._scipys(np.asarray(in1), np.asarray(in2)) is None
    if not handled:  # SciPy's own result
        assert np.asarray(ours).dtype == np.asarray(theirs).dtype and np.shape(ours) == np.shape(theirs)
        if np.asarray(theirs).dtype.kind == "O":  # NaN in objects: equal only to themselves
            assert all(p == q or (p != p and q != q) for p, q in zip(np.ravel(ours), np.ravel(theirs)))
        else:
            np.testing.assert_array_equal(ours, theirs)
        return
    assert "RuntimeWarning" not in our_warn, our_warn  # no spread NaN to warn about
    # SciPy's direct sums of the same values (in native byte order: NumPy's
    # 1-D convolve multiplies byte-swapped complex infinities differently)
    direct, _, _ = _call(getattr(scipy.signal, name), *(a.astype(a.dtype.newbyteorder("=")) for a in (in1, in2)),
                         mode, method="direct")
    assert type(ours) is np.ndarray
    scale = _nd_scale(name, in1, in2, "full") if direct.dtype.kind in "fc" else 0
    if direct.dtype.kind == "c" and in1.ndim == 1 and not (np.isfinite(in1).all() and np.isfinite(in2).all()):
        # SciPy's 1-D direct route is NumPy's dot, whose complex infinities
        # depend on the BLAS; cconv sums the parts' products (as SciPy's N-D
        # route does): compared where both are finite.
        event("complex infinities on NumPy's 1-D route")
        both = np.isfinite(ours) & np.isfinite(direct)
        ours, direct = ours[both], direct[both]
    assert_same_values(ours, direct, scale, min(in1.size, in2.size) + 16)


# --------------------------------------------------------------------------
# scipy.signal.fftconvolve / oaconvolve: axes, broadcast, NaN and Inf kept
# local (the one deliberate difference: compared with a plain-NumPy direct
# sum of the overlapping products where SciPy's FFT spreads them)


@st.composite
def fft_cases(draw):
    rank = draw(_mostly(st.integers(1, 4), st.just(5)))
    s1 = [draw(st.integers(1, 6)) for _ in range(rank)]
    s2 = [draw(st.sampled_from([n, 1, draw(st.integers(1, 6))])) for n in s1]
    axes = draw(st.none() | st.lists(st.integers(-rank, rank - 1), min_size=1, max_size=rank, unique=True)
                | st.integers(-rank, rank - 1))
    if axes is not None and not isinstance(axes, int):
        # other axes: equal sizes, or 1
        for ax in range(rank):
            if ax not in [a % rank for a in axes] and s1[ax] != s2[ax]:
                s2[ax] = draw(st.sampled_from([1, s1[ax]]))
    if draw(_mostly(st.just(False), st.just(True))):
        s2[0] = 0  # empty
    dt1 = draw(st.sampled_from("dfiDF?eg") | st.just("d"))
    dt2 = draw(st.sampled_from("dfiDF?eg") | st.just(dt1))
    in1 = draw(arrays(tuple(s1), dt1))
    in2 = draw(arrays(tuple(s2), dt2))
    mode = draw(_mostly(st.sampled_from(MODES), st.just("bogus")))
    bad_axes = draw(_mostly(st.none(), st.sampled_from([[], [0, 0], [rank], [1.5]]), 95))
    return in1, in2, mode, bad_axes if bad_axes is not None else axes


def _overlap_reference(in1, in2, mode, axes):
    """SciPy's fftconvolve as the specification defines it, by plain direct
    sums of the products of overlapping samples (float64 or complex128)."""
    a, b = np.asarray(in1), np.asarray(in2)
    nd = a.ndim
    axes = list(range(nd)) if axes is None else [ax % nd for ax in np.atleast_1d(axes)]
    axes = [ax for ax in axes if a.shape[ax] != 1 and b.shape[ax] != 1]
    if mode == "valid" and not all(a.shape[ax] >= b.shape[ax] for ax in axes):
        a, b = b, a
    dt = np.complex128 if np.result_type(a, b).kind == "c" else np.float64
    a, b = a.astype(dt), b.astype(dt)
    full = [a.shape[ax] + b.shape[ax] - 1 if ax in axes else max(a.shape[ax], b.shape[ax]) for ax in range(nd)]
    out = np.zeros(full, dt)
    with np.errstate(all="ignore"):
        for j in np.ndindex(*[b.shape[ax] for ax in axes]):
            where = [slice(None)] * nd
            bj = [slice(None)] * nd
            for ax, jj in zip(axes, j):
                where[ax] = slice(jj, jj + a.shape[ax])
                bj[ax] = slice(jj, jj + 1)
            out[tuple(where)] = out[tuple(where)] + a * b[tuple(bj)]
    s1 = np.asarray(in1).shape if mode == "same" else a.shape
    if mode == "same":
        keep = s1
    elif mode == "valid":
        keep = [s1[ax] - b.shape[ax] + 1 if ax in axes else full[ax] for ax in range(nd)]
    else:
        keep = full
    return out[tuple(slice((f - k) // 2, (f - k) // 2 + k) for f, k in zip(full, keep))]


@pytest.mark.parametrize("name", ["fftconvolve", "oaconvolve"])
@FUZZ
@given(case=fft_cases())
def test_fft_functions_against_scipy(name, case):
    in1, in2, mode, axes = case
    both = _signal_both(name, in1, in2, mode, axes=axes)
    if both is None:
        return
    ours, _, theirs, _ = both
    assert np.asarray(ours).dtype == np.asarray(theirs).dtype and np.shape(ours) == np.shape(theirs)
    conv_axes = [ax % in1.ndim for ax in (range(in1.ndim) if axes is None else np.atleast_1d(axes))]
    if np.size(theirs) == 0 or np.float16 in (in1.dtype.type, in2.dtype.type) or theirs.dtype.kind not in "fc" or \
            sum(1 for ax in conv_axes if in1.shape[ax] != 1 and in2.shape[ax] != 1) > 3:
        # SciPy's own: empty, float16 data, 4 axes; no axis to convolve: a product in the inputs' type
        np.testing.assert_array_equal(ours, theirs)
        return
    expected = _overlap_reference(in1, in2, mode, axes).astype(np.asarray(theirs).dtype)
    a = np.abs(_finite(np.asarray(in1, dtype=np.result_type(in1, np.float64))))
    b = np.abs(_finite(np.asarray(in2, dtype=np.result_type(in2, np.float64))))
    # an FFT's error is relative to the whole output's magnitude, not the region's
    scale_ref = _overlap_reference(a.astype(np.float64), b.astype(np.float64), "full", axes)
    scale = float(np.max(scale_ref)) if scale_ref.size else 0.0
    event("non-finite input" if not (np.isfinite(a).all() and np.isfinite(b).all()) else "finite input")
    if ours.dtype in (np.longdouble, np.clongdouble):  # FFTs in long double are as exact as in double
        ours, expected = (z.astype(np.complex128 if z.dtype.kind == "c" else np.float64) for z in (ours, expected))
    assert_same_values(ours, expected, scale, int(np.log2(max(in1.size, in2.size, 2))) + 16)


# --------------------------------------------------------------------------
# scipy.ndimage.correlate / convolve with 1-D and 3-D weights


@st.composite
def ndimage_nd_cases(draw):
    rank = draw(st.sampled_from([1, 3, 3, 1, 4]))  # filtered axes (4: SciPy's)
    batch = draw(st.sampled_from([(), (), (2,)]))
    sizes = [draw(st.integers(0, 6)) for _ in range(rank)]
    if draw(st.booleans()):
        sizes = [max(1, n) for n in sizes]
    wshape = tuple(draw(st.integers(1, 5)) for _ in range(rank))
    shape = (*batch, *sizes)
    axes = None
    if batch:
        axes = tuple(draw(st.permutations(range(len(shape))))[:rank])
        full = list(batch)
        for ax, n in sorted(zip(axes, sizes)):
            full.insert(ax, n)
        shape = tuple(full)
    in_dt = draw(_mostly(st.sampled_from(ND_TYPES + "FD"), st.sampled_from("eg")))
    w_dt = draw(st.sampled_from("?ibdfFD") | st.just("d"))
    x = draw(arrays(shape, in_dt))
    weights = draw(arrays(wshape, w_dt, kinds=("small", "normal", "small")))
    mode = draw(_mostly(st.sampled_from(ND_MODES), st.just("bogus")))
    cval = draw(st.sampled_from((0.0, 1.5, -3, np.nan, np.inf, np.float32(0.25))))
    valid = [st.integers(-(n // 2), (n - 1) // 2) for n in wshape]
    origin = draw(_mostly(st.tuples(*valid), st.integers(-4, 4)))
    out_kind = draw(st.sampled_from(("none", "none", "dtype", "array", "input")))
    out_dt = draw(st.just(in_dt) | st.sampled_from(ND_TYPES + "FD"))
    method = draw(st.sampled_from(METHODS))
    return x, weights, mode, cval, origin, axes, out_kind, out_dt, method


def _abs_parts(x):
    """|re| + |im| of the finite parts of ``x``, float64: the terms' magnitudes for the tolerance."""
    x = np.asarray(x)
    parts = (x.real, x.imag) if x.dtype.kind == "c" else (x,)
    return sum(np.abs(_finite(np.asarray(p, dtype=np.result_type(p, np.float64)))).astype(np.float64) for p in parts)


def _filter_scale(ours, x, weights, cval, method, correlate_magnitudes) -> float:
    """The ``scale`` of :func:`assert_same_values` for an ndimage filter's float result ``ours``.

    The largest absolute sum of terms of any output: ``correlate_magnitudes(|x|, |weights|, |cval|)``
    makes them as the call sums.  Where the FFTs may sum ('fft', 'auto') at least max|x| * sum|weights|:
    their rounding follows the whole data, so an output whose terms are all 0 (3 and -3 weights over
    a zero border, the 0 weight over the data) is 0 only to that rounding.  In units of the eps of the
    dtype the sums ran in (float32 for float32 or complex64 data).
    """
    xs, ws = _abs_parts(x), np.abs(np.asarray(weights)).astype(np.float64)
    c = abs(complex(np.asarray(cval).reshape(-1)[0]))
    c = c if np.isfinite(c) else 0.0
    scale = float(np.max(correlate_magnitudes(xs, ws, c)))
    if method != "direct":
        scale = max(scale, max(float(np.max(xs, initial=0.0)), c) * float(ws.sum()))
    eps_dt = np.float32 if np.dtype(x.dtype).char in "fF" and (ours.dtype.char in "fF" or x.dtype.kind == "c") \
        else ours.dtype
    return max(scale, scale * float(np.finfo(eps_dt).eps) / float(np.finfo(ours.dtype).eps))


def _nd_reach_before_start(weights_shape, origins, convolve):
    return _reach_before_start(weights_shape, origins, convolve)


@pytest.mark.parametrize("name", ["correlate", "convolve"])
@FUZZ
@given(case=ndimage_nd_cases())
def test_ndimage_nd_against_scipy(name, case):
    x, weights, mode, cval, origin, axes, out_kind, out_dt, method = case
    note(f"input {x.dtype}{x.shape} axes={axes}, weights {weights.dtype}{weights.shape}, mode={mode!r}, "
         f"cval={cval!r}, origin={origin!r}, output={out_kind} {np.dtype(out_dt)}, method={method!r}")
    kwargs = dict(mode=mode, cval=cval, origin=origin, axes=axes)
    ours_out, theirs_out = _output(out_kind, out_dt, x)
    x_ours = ours_out if out_kind == "input" else x
    x_theirs = theirs_out if out_kind == "input" else np.array(x)
    if out_kind == "input" and x.dtype.kind == "c":
        x_theirs, theirs_out = np.array(x), np.zeros_like(x)  # SciPy's complex output=input bug (above)
    snaps = _snapshot(weights) + ([] if out_kind == "input" else _snapshot(x))
    both = _both(lambda: getattr(cconv.ndimage, name)(x_ours, weights, ours_out, method=method, **kwargs),
                 lambda: getattr(scipy.ndimage, name)(x_theirs, weights, theirs_out, **kwargs), snaps)
    if both is None:
        return
    ours, our_warn, theirs, their_warn = both
    assert _cconv_warnings(our_warn) == their_warn, (our_warn, their_warn)
    # SciPy's N-D 'reflect' is wrong where the weights reach 4n samples
    # before an axis of length n: there only the shape and dtype are checked.
    origins = [origin] * weights.ndim if np.ndim(origin) == 0 else list(origin)
    lengths = [x.shape[a] for a in (sorted(a % x.ndim for a in axes) if axes else range(x.ndim))]
    reach = _nd_reach_before_start(weights.shape, origins if axes is None else
                                   [origins[i] for i in np.argsort([a % x.ndim for a in axes])], name == "convolve")
    assert type(ours) is np.ndarray and ours.dtype == theirs.dtype and ours.shape == theirs.shape
    if out_kind in ("array", "input"):
        assert ours is ours_out
    if mode in ("reflect", "grid-mirror") and any(r >= 4 * n > 0 for r, n in zip(reach, lengths)):
        event("SciPy's reflect is wrong here: shape and dtype only")
        return
    if ours.size == 0:
        return
    if ours.dtype.kind in "biu":
        sums = getattr(scipy.ndimage, name)(np.array(x), weights, np.float64, **kwargs)
        info = np.iinfo(ours.dtype) if ours.dtype.kind != "b" else np.iinfo(np.uint8)
        with np.errstate(invalid="ignore"):
            defined = np.isfinite(sums) & (sums > float(info.min) - 1) & (sums < float(info.max) + 1)
        np.testing.assert_array_equal(ours[defined], theirs[defined])
        return
    scale = _filter_scale(ours, x, weights, cval, method,
                          lambda xs, ws, c: scipy.ndimage.correlate(xs, ws, mode=mode, cval=c, axes=axes))
    assert_same_values(ours, theirs, scale, weights.size)


# --------------------------------------------------------------------------
# scipy.ndimage.correlate1d / convolve1d


@st.composite
def line_cases(draw):
    rank = draw(st.integers(1, 3))
    shape = tuple(draw(st.integers(0, 7)) for _ in range(rank))
    if draw(st.booleans()):
        shape = tuple(max(1, n) for n in shape)
    size = draw(st.integers(1, 9))
    in_dt = draw(_mostly(st.sampled_from(ND_TYPES + "FD"), st.sampled_from("egO")))
    w_dt = draw(st.sampled_from("?ibdfFD") | st.just("d"))
    x = draw(arrays(shape, in_dt))
    weights = draw(arrays((size,), w_dt, kinds=("small", "normal", "small")))
    symmetry = draw(st.sampled_from(["", "", "symmetric", "antisymmetric"]))
    if symmetry and weights.dtype.kind not in "b":
        with np.errstate(all="ignore"):
            weights = np.array(weights + weights[::-1] if symmetry == "symmetric" else weights - weights[::-1])
    if draw(_mostly(st.just(False), st.just(True))):
        weights = draw(st.sampled_from([np.zeros(0), np.ones((2, 2)), np.array(1.0)]))
    # (a float axis: SciPy 1.17.1 may die of it, SystemError with a pending TypeError; unit-tested)
    axis = draw(_mostly(st.integers(-rank, rank - 1), st.sampled_from([rank, -rank - 1])))
    mode = draw(_mostly(st.sampled_from(ND_MODES), st.sampled_from(["bogus", ("wrap",)])))
    cval = draw(st.sampled_from((0.0, 1.5, -3, np.nan, np.inf, np.float32(0.25), np.array(2.0))))
    n = max(size, 1)
    origin = draw(_mostly(st.integers(-(n // 2), (n - 1) // 2), st.sampled_from([-5, 5, True, np.int8(0)])))
    out_kind = draw(st.sampled_from(("none", "none", "dtype", "array", "input", "str")))
    out_dt = draw(st.just(in_dt) | st.sampled_from(ND_TYPES + "FD"))
    method = draw(st.sampled_from(METHODS))
    return x, weights, axis, mode, cval, origin, out_kind, out_dt, method


@pytest.mark.parametrize("name", ["correlate1d", "convolve1d"])
@FUZZ
@given(case=line_cases())
def test_1d_filters_against_scipy(name, case):
    x, weights, axis, mode, cval, origin, out_kind, out_dt, method = case
    note(f"input {x.dtype}{x.shape}, weights {weights.dtype}{weights.shape} {weights!r}, axis={axis!r}, "
         f"mode={mode!r}, cval={cval!r}, origin={origin!r}, output={out_kind} {np.dtype(out_dt)}, method={method!r}")
    ours_out, theirs_out = _output(out_kind, out_dt, x)
    x_ours = ours_out if out_kind == "input" else x
    x_theirs = theirs_out if out_kind == "input" else np.array(x)
    if out_kind == "input" and x.dtype.kind == "c":
        x_theirs, theirs_out = np.array(x), np.zeros_like(x)
    snaps = _snapshot(weights) + ([] if out_kind == "input" else _snapshot(x))
    args = (weights, axis, None, mode, cval, origin)
    both = _both(lambda: getattr(cconv.ndimage, name)(x_ours, *args[:2], ours_out, *args[3:], method=method),
                 lambda: getattr(scipy.ndimage, name)(x_theirs, *args[:2], theirs_out, *args[3:]), snaps)
    if both is None:
        return
    ours, our_warn, theirs, their_warn = both
    assert our_warn == their_warn, (our_warn, their_warn)
    assert type(ours) is np.ndarray and ours.dtype == theirs.dtype and ours.shape == theirs.shape
    if out_kind in ("array", "input"):
        assert ours is ours_out
    if ours.size == 0:
        return
    if ours.dtype.kind in "biu":  # SciPy's doubles, truncated: exactly, where C's cast is defined
        sums = getattr(scipy.ndimage, name)(np.array(x), *args[:2], np.float64, *args[3:])
        info = np.iinfo(ours.dtype) if ours.dtype.kind != "b" else np.iinfo(np.uint8)
        with np.errstate(invalid="ignore"):
            defined = np.isfinite(sums) & (sums > float(info.min) - 1) & (sums < float(info.max) + 1)
        np.testing.assert_array_equal(ours[defined], theirs[defined])
        return
    scale = _filter_scale(ours, x, weights, cval, method,
                          lambda xs, ws, c: scipy.ndimage.correlate1d(xs, ws, axis, mode=mode, cval=c))
    assert_same_values(ours, theirs, scale, weights.size)
