"""Helpers and case tables the test modules share, by import.

``pythonpath = ["tests"]`` in ``pyproject.toml`` puts this folder on
``sys.path`` (the suite runs under ``--import-mode=importlib``), so a test
module says ``from cases import max_rel_err, with_layout`` and
``from reference import scipy_forward``.  What only one module uses stays in
that module.  Nothing here imports cconv at module level.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import warnings
from unittest import mock

import numpy as np

# The methods of each family of public functions.
METHODS = ("auto", "direct", "fft")
METHODS_2D = ("auto", "gemm", "direct", "fft")
MATCH_METHODS = ("sqdiff", "sqdiff_normed", "ccorr", "ccorr_normed", "ccoeff", "ccoeff_normed")

MAX_THREADS = 4096  # the documented largest thread count


# --------------------------------------------------------------------------
# Errors and tolerances
# --------------------------------------------------------------------------


# Normwise, not elementwise, relative error.  A valid correlation sums
# products of both signs, so some outputs (and gradient entries) land near
# zero through cancellation; there the rounding error of the sum is of the
# size of the *terms*, not of the tiny result, and an elementwise relative
# error (|a - e| / |e|) blows up for a perfectly good implementation.
# Dividing the largest absolute error by the largest reference magnitude
# measures the error on the scale of the result as a whole, which is what a
# floating-point summation can actually guarantee.
def max_rel_err(actual, expected, floor: float = 0.0) -> float:
    """max|actual - expected| / max(max|expected|, floor), in float64.

    Shapes must match exactly.  Empty arrays give 0.  When the scale is zero
    (``expected`` all zero, no ``floor``) the guard falls back to the
    absolute error max|actual| (so an exact zero result is required).  NaN
    anywhere gives NaN, which fails any ``<= tol`` comparison.  ``floor``,
    for results that may cancel to (near) zero: the size of the terms of
    their sums (e.g. max|a| * max|b| of the two operands).
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"shape mismatch: got {a.shape}, expected {e.shape}"
    if e.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(e))), floor)
    err = float(np.max(np.abs(a - e)))
    if scale == 0.0:
        return err
    return err / scale


# float64 results must agree with the float64 reference to near machine
# precision; float32 results (computed natively in float32) are compared with
# a float64 reference computed on the same float32-rounded inputs.
_TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}


def tol(dtype) -> float:
    """Normwise tolerance for a result of ``dtype`` (float32 or float64)."""
    return _TOL[np.dtype(dtype)]


def expected_dtype(*dtypes) -> np.dtype:
    """The dtype cconv should compute in for operands of ``dtypes``.

    bool/int -> float64, float16/float32 -> float32, float64 -> float64;
    several operands: float32 only if every one computes in float32.
    This is the specification written out independently, not cconv's code.
    """
    result = np.dtype(np.float32)
    for dt in dtypes:
        dt = np.dtype(dt)
        if dt.kind == "f" and dt.itemsize <= 4:
            continue
        result = np.dtype(np.float64)
    return result


def names(message: str, name: str) -> bool:
    """Whether ``message`` names the argument ``name`` (as a word, not an attribute)."""
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message) is not None


# --------------------------------------------------------------------------
# Data and memory layouts
# --------------------------------------------------------------------------


def random_array(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    """Random data of ``dtype``: N(0, 1) for floats, small signed ints, coin flips for bool."""
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.standard_normal(shape).astype(dt)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if dt.kind == "u":
        return rng.integers(0, 8, size=shape).astype(dt)
    if dt.kind == "i":
        return rng.integers(-8, 8, size=shape).astype(dt)
    raise ValueError(f"no random data for {dt}")


LAYOUTS = (
    "C",
    "F",
    "transposed",
    "sliced",
    "negative",
    "readonly",
    "unaligned",
    "byteswapped",
    "readonly_sliced_negative",
)
# with_layout also makes "zero_stride" (a broadcast view repeating some of the
# values) and "unaligned_readonly" (an unaligned view of a bytes object).


def dropin_data(rng: np.random.Generator, shape, dtype, integral: bool = True, high: int = 50) -> np.ndarray:
    """Test data for the drop-ins: bools, integers in ``[-high, high)`` (``[0, high)`` unsigned), or
    floats (complex: both parts) that are small integers (``integral``) or normal samples."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        return rng.integers(0 if dt.kind == "u" else -high, high, size=shape).astype(dt)

    def part():
        return rng.integers(-8, 9, size=shape).astype(np.float64) if integral else rng.standard_normal(shape)

    return (part() + 1j * part()).astype(dt) if dt.kind == "c" else part().astype(dt)


def integer_mismatches(ours, theirs, pairs, out, modes, methods) -> tuple[int, int]:
    """How many integers of ``ours`` differ from ``theirs`` (an ndimage filter, into ``out``), and
    how many were compared: over the ``(x, w)`` pairs, every mode and method, ``cval`` the image's
    largest value.  Each result must also have SciPy's dtype."""
    differ = total = 0
    for x, w in pairs:
        for mode in modes:
            for method in methods:
                expected = theirs(x, w, output=out, mode=mode, cval=float(x.max()))
                got = ours(x, w, output=out, mode=mode, cval=float(x.max()), method=method)
                assert got.dtype == expected.dtype
                differ += int(np.count_nonzero(got != expected))
                total += expected.size
    return differ, total


def _sentinel(dt: np.dtype):
    """A value planted in the gaps of strided views: reading it would show."""
    if dt.kind in "fc":
        return np.nan
    if dt.kind == "b":
        return True
    if dt.kind in "iu":
        return 99
    return None


def with_layout(a, layout: str) -> np.ndarray:
    """An array equal to ``a`` (same dtype, shape and values) in another memory layout.

    The returned array never shares memory with ``a``.  ``zero_stride`` is
    the exception to "same values": one row of its longest axis, repeated.
    Any ndim (0-D too) and any dtype; where a layout cannot be made (an
    unaligned object array, an empty one) the nearest that can is returned.
    """
    a = np.asarray(a)
    nd = a.ndim
    flip = (slice(None, None, -1),) * nd + (Ellipsis,)  # Ellipsis: 0-D stays an array
    if layout == "C":
        return np.array(a, order="C", copy=True)
    if layout == "F":
        return np.array(a, order="F", copy=True)
    if layout == "transposed":
        # A C-ordered buffer of the reversed shape, viewed through .T.
        return np.array(a.T, order="C", copy=True).T
    if layout == "sliced":
        steps = (2, 3, 2, 3, 2)[:nd]
        big = np.empty(tuple(s * k for s, k in zip(a.shape, steps)), dtype=a.dtype)
        fill = _sentinel(a.dtype)
        if fill is not None:
            big[...] = fill
        view = big[tuple(slice(None, None, k) for k in steps) + (Ellipsis,)]
        view[...] = a
        return view
    if layout == "negative":
        return np.array(a[flip], order="C", copy=True)[flip]
    if layout == "zero_stride":
        if a.size == 0 or nd == 0:
            return np.broadcast_to(np.array(a, copy=True), a.shape)
        axes = [i for i in range(nd) if a.shape[i] > 1] or [0]
        index = [slice(None)] * nd
        index[axes[0]] = slice(0, 1)
        return np.broadcast_to(np.array(a[tuple(index)], copy=True), a.shape)
    if layout == "readonly":
        b = np.array(a, copy=True)
        b.flags.writeable = False
        return b
    if layout in ("unaligned", "unaligned_readonly"):
        if a.dtype.hasobject or a.size == 0:
            return with_layout(a, "C" if layout == "unaligned" else "readonly")
        if layout == "unaligned_readonly":  # a bytes object: read-only
            raw = b"\0" + np.ascontiguousarray(a).tobytes()
            return np.frombuffer(raw, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
        buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
        b = buf[1:].view(a.dtype).reshape(a.shape)
        b[...] = a
        return b
    if layout == "byteswapped":
        return np.array(a, dtype=a.dtype.newbyteorder(), copy=True)
    if layout == "readonly_sliced_negative":
        b = with_layout(a[flip], "sliced")[flip]
        b.flags.writeable = False
        return b
    raise ValueError(layout)


def snapshot(*arrays):
    """Independent copies of ``arrays``, to check later they were not modified."""
    return [np.array(a, copy=True) for a in arrays]


def assert_unchanged(before, after):
    for b, a in zip(before, after):
        np.testing.assert_array_equal(np.asarray(a), b, strict=True)


def assert_fresh_output(result, *inputs):
    """A new, C-contiguous, writeable ndarray sharing no memory with any input."""
    assert type(result) is np.ndarray
    assert result.flags["C_CONTIGUOUS"]
    for inp in inputs:
        if isinstance(inp, np.ndarray):
            assert not np.shares_memory(result, inp)


# --------------------------------------------------------------------------
# Inputs of whole layer calls (the concurrency and leak tests)
# --------------------------------------------------------------------------


def layer_inputs(rng, xshape, wshape, dtype):
    """x, w and a dout of the output's shape for the 3-D layer, N(0, 1) in ``dtype``."""
    x = rng.standard_normal(xshape).astype(dtype)
    w = rng.standard_normal(wshape).astype(dtype)
    n = wshape[0] if len(wshape) == 3 and xshape[0] == 1 else xshape[0]
    dout = rng.standard_normal((n, xshape[1] - wshape[-2] + 1, xshape[2] - wshape[-1] + 1))
    return x, w, dout.astype(dtype)


def layer2d_inputs(rng, xshape, wshape, dtype, bias=True, **opts):
    """(x, w, b, dout, opts) for the 4-D layer, N(0, 1) in ``dtype``."""
    from reference import layer_output_shape

    x = rng.standard_normal(xshape).astype(dtype)
    w = rng.standard_normal(wshape).astype(dtype)
    b = rng.standard_normal(wshape[0]).astype(dtype) if bias else None
    shape = layer_output_shape(xshape, wshape, opts.get("stride", 1), opts.get("padding", 0),
                               opts.get("dilation", 1))
    return x, w, b, rng.standard_normal(shape).astype(dtype), opts


# A layer with every option of the 4-D layer set.
GROUPED = {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": 2}


# --------------------------------------------------------------------------
# NaN and Inf
# --------------------------------------------------------------------------

_SPECIALS_TOL = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 2e-5}


def specials_tol(dtype) -> float:
    """Normwise tolerance on the finite outputs of a call with NaN or Inf inputs."""
    return _SPECIALS_TOL[np.dtype(dtype)]


def quiet(fn, *args, **kwargs):
    """A reference computed without NumPy's warnings about inf - inf."""
    with np.errstate(invalid="ignore", over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def assert_same_specials(actual, expected, tol: float, what="", operands=()):
    """Same NaN / +Inf / -Inf pattern; finite outputs within the normwise ``tol``.

    The norm is the largest finite expected value, or, if larger, the
    product of the largest finite magnitudes of ``operands`` (the two arrays
    correlated): an FFT's rounding follows the size of its inputs, so where
    every finite output is near zero (the rest NaN), its error is measured
    against the data, not against that zero.
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, what
    for name, test in (("NaN", np.isnan), ("+Inf", np.isposinf), ("-Inf", np.isneginf)):
        mismatch = test(a) != test(e)
        assert not mismatch.any(), f"{what}: {name} differs at {np.argwhere(mismatch)[:5].tolist()}"
    finite = np.isfinite(e)
    if finite.any():
        data = [np.abs(op[np.isfinite(op)]) for op in map(np.asarray, operands)]
        scale = max(float(np.max(np.abs(e[finite]))), float(np.prod([d.max(initial=0.0) for d in data])), 1e-300)
        err = float(np.max(np.abs(a[finite] - e[finite]))) / scale
        assert err <= tol, f"{what}: normwise error {err:.2e}"


@contextlib.contextmanager
def restoring_by(strategy):
    """Force the FFT route's way of finding non-finite outputs (or leave the choice)."""
    from cconv import _nonfinite

    limit = {"scatter": 10**9, "fft": -1, "either": _nonfinite._SCATTER_CELLS}[strategy]
    with mock.patch.object(_nonfinite, "_SCATTER_CELLS", limit), \
            mock.patch.object(_nonfinite, "_SCATTER_PER_OUTPUT", 10**9 if strategy == "scatter" else 4):
        yield


# --------------------------------------------------------------------------
# Child processes
# --------------------------------------------------------------------------


def run_child(code: str, tmp_path, env: dict[str, str] | None = None) -> None:
    """Run ``code`` in a fresh interpreter (a crash fails only the test), outside
    the checkout (so the installed package is imported), with no core file;
    ``env`` adds to (or replaces in) this process's environment."""

    def no_core_dump():
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120,
                          cwd=tmp_path, preexec_fn=no_core_dump, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, f"exit status {proc.returncode}: {proc.stderr[-300:]!r}"
