"""Every way cconv can compute a pass gives SciPy's answer.

``method='direct'`` and ``method='fft'`` are forced on forward and backward
for every broadcasting case, both dtypes, and shapes that exercise each loop
order of the direct kernels (wide strips with and without ragged ends, narrow
dot products with and without the four-output blocks).  Every compiled build
of the kernels this CPU can run (baseline, x86-64-v3, x86-64-v4) is checked
directly, since a user's machine may pick any of them.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import cconv

from cases import max_rel_err, random_array, tol
from reference import scipy_backward, scipy_forward

SHAPES = [
    # (nx, nw, H, W, HH, WW)
    (1, 1, 40, 70, 3, 3),  # wide rows: full strips plus an overlapping last one
    (3, 3, 13, 17, 4, 5),  # rows narrower than one strip
    (1, 4, 20, 9, 20, 1),  # filter as tall as the image
    (4, 1, 8, 8, 1, 1),  # 1x1 filter
    (1, 1, 30, 30, 29, 30),  # filter almost the image: narrow dot products
    (5, 1, 40, 40, 3, 3),  # broadcast filter: dw summed over pairs in tasks
    (1, 6, 40, 33, 5, 7),  # broadcast image: dx summed over pairs in tasks
    (2, 2, 9, 130, 2, 67),  # narrow outputs in blocks of four plus a tail
]


@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_method_matches_scipy(method, dtype, shape, rng):
    nx, nw, h, w, hh, ww = shape
    x = random_array(rng, (nx, h, w), dtype)
    k = random_array(rng, (nw, hh, ww), dtype)
    out, cache = cconv.conv_forward(x, k, method=method)
    dout = random_array(rng, out.shape, dtype)
    dx, dw = cconv.conv_backward(dout, cache, method=method)
    exp_out = scipy_forward(x, k)
    exp_dx, exp_dw = scipy_backward(x, k, dout)
    for got, exp in ((out, exp_out), (dx, exp_dx), (dw, exp_dw)):
        assert got.dtype == dtype and got.shape == exp.shape
        assert got.flags["C_CONTIGUOUS"]
        assert max_rel_err(got, exp) <= tol(dtype)


@pytest.mark.parametrize("forward", ["direct", "fft"])
@pytest.mark.parametrize("backward", ["direct", "fft"])
def test_backward_method_independent_of_forward(forward, backward, rng):
    """An FFT backward after a direct forward (no spectra cached) and vice versa."""
    x = random_array(rng, (2, 31, 29), np.float64)
    k = random_array(rng, (7, 6), np.float64)
    out, cache = cconv.conv_forward(x, k, method=forward)
    dout = random_array(rng, out.shape, np.float64)
    dx, dw = cconv.conv_backward(dout, cache, method=backward)
    exp_dx, exp_dw = scipy_backward(x, k, dout)
    assert max_rel_err(dx, exp_dx) <= 1e-12
    assert max_rel_err(dw, exp_dw) <= 1e-12


def test_fft_backward_promotes_with_dout(rng):
    """float32 spectra in the cache are not reused for a float64 dout."""
    x = random_array(rng, (1, 24, 24), np.float32)
    k = random_array(rng, (5, 5), np.float32)
    out, cache = cconv.conv_forward(x, k, method="fft")
    dout = random_array(rng, out.shape, np.float64)
    dx, dw = cconv.conv_backward(dout, cache, method="fft")
    assert dx.dtype == dw.dtype == np.float64
    exp_dx, exp_dw = scipy_backward(x, k, dout)
    assert max_rel_err(dx, exp_dx) <= 1e-12
    assert max_rel_err(dw, exp_dw) <= 1e-12


@pytest.mark.parametrize("bad", ["FFT", "spectral", None, 1])
def test_unknown_method_is_a_value_error(bad):
    with pytest.raises(ValueError, match=r"method must be one of"):
        cconv.conv_forward(np.ones((1, 4, 4)), np.ones((2, 2)), method=bad)
    _, cache = cconv.conv_forward(np.ones((1, 4, 4)), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"method must be one of"):
        cconv.conv_backward(np.ones((1, 3, 3)), cache, method=bad)


def _builds():
    """(name, module) for every kernel build this CPU can run."""
    base = importlib.import_module("cconv._correlate")
    runtime = importlib.import_module("cconv._runtime")
    found = [("baseline", base)]
    for name, level in (("v3", 3), ("v4", 4)):
        try:
            module = importlib.import_module(f"cconv._correlate_{name}")
        except ImportError:
            continue
        if runtime.cpu_level() >= level:
            found.append((name, module))
    return found


def call(kernels, loop, x, k, out, npairs):
    if loop == "correlate_narrow":  # in blocks of two rows: block edges and ragged last block
        kernels.correlate_narrow(x, k, out, npairs, 2)
    else:
        kernels.correlate_wide(x, k, out, npairs)


@pytest.mark.parametrize("build", _builds(), ids=lambda b: b[0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("loop", ["correlate_wide", "correlate_narrow"])
def test_every_compiled_build(build, dtype, loop, rng):
    """Both loop orders of each build, on pairs, broadcast operands and partial sums."""
    _, kernels = build
    for nx, nk, h, w, hk, wk in [(3, 3, 37, 75, 5, 3), (1, 4, 20, 19, 7, 11), (4, 1, 16, 70, 16, 66)]:
        x = random_array(rng, (nx, h, w), dtype)
        k = random_array(rng, (nk, hk, wk), dtype)
        npairs = max(nx, nk)
        expected = scipy_forward(x, k)
        out = np.full((npairs, h - hk + 1, w - wk + 1), np.nan, dtype=dtype)
        call(kernels, loop, x, k, out, npairs)
        assert max_rel_err(out, expected) <= tol(dtype)
        # Two tasks: each output is a partial sum over half of the pairs.
        partial = np.full((2,) + out.shape[1:], np.nan, dtype=dtype)
        call(kernels, loop, x, k, partial, npairs)
        assert max_rel_err(partial.sum(axis=0), expected.sum(axis=0)) <= tol(dtype)


def test_thread_count_knob_and_results_independent_of_it(rng):
    before = cconv.get_num_threads()
    assert before >= 1
    x = random_array(rng, (6, 50, 60), np.float64)
    k = random_array(rng, (4, 4), np.float64)
    try:
        results = []
        for n in (1, 2, 3):
            cconv.set_num_threads(n)
            assert cconv.get_num_threads() == (n if cconv._runtime.openmp_enabled() else 1)
            out, cache = cconv.conv_forward(x, k, method="direct")
            dx, dw = cconv.conv_backward(np.ones_like(out), cache, method="direct")
            results.append((out, dx, dw))
    finally:
        cconv.set_num_threads(before)
    exp_dx, exp_dw = scipy_backward(x, k, np.ones_like(results[0][0]))
    for out, dx, dw in results:
        assert max_rel_err(out, scipy_forward(x, k)) <= 1e-12
        assert max_rel_err(dx, exp_dx) <= 1e-12
        assert max_rel_err(dw, exp_dw) <= 1e-12
    # The forward pass and dx split work by output row only: bit-identical.
    assert all(np.array_equal(r[0], results[0][0]) for r in results)
    assert all(np.array_equal(r[1], results[0][1]) for r in results)


@pytest.mark.parametrize("bad", [0, -1, 4097, 2**31, np.int64(-2)])
def test_set_num_threads_rejects_bad_values(bad):
    with pytest.raises(ValueError, match=r"\bn\b"):
        cconv.set_num_threads(bad)


@pytest.mark.parametrize("bad", [1.5, 2.0, "2", None, True, np.bool_(True)])
def test_set_num_threads_rejects_non_integers(bad):
    with pytest.raises(TypeError, match=r"\bn\b"):
        cconv.set_num_threads(bad)


def test_threadpoolctl_sees_and_limits_the_same_setting():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not cconv._runtime.openmp_enabled():
        pytest.skip("this build of cconv has no OpenMP")
    apis = {info["user_api"] for info in threadpoolctl.threadpool_info()}
    assert "openmp" in apis
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert cconv.get_num_threads() == 1
    assert cconv.get_num_threads() >= 1
