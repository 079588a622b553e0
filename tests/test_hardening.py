"""Hardening: concurrency, leaks, and float32 precision on a large dynamic range.

* Eight Python threads call conv_forward / conv_backward at the same time
  (released together by a barrier) on shared and private inputs, both
  methods, both dtypes: every result is bit-identical to the serial one.
* Thousands of forward + backward calls (``CCONV_LEAK_CALLS``, default 2000)
  leave Python's traced memory (tracemalloc) and the resident set
  (/proc/self/statm) where they were.
* float32 on a 256x256 image with a 60x60 filter, inputs of a large dynamic
  range (1e6 * randn + randn) or of mixed magnitudes (1e-3 .. 1e3): forward,
  dx and dw within 1e-5 normwise of float64 on the same float32 inputs.

The references are SciPy's (``ref`` fixture, tests/reference.py): the serial
results the threads must reproduce bit for bit are themselves checked
against them.  Nothing here asserts a time; the timings are printed (``-s``).

Environment
-----------
``CCONV_LEAK_CALLS``
    Rounds (forward + backward + two refused calls) of each leak test,
    after 200 warm-up rounds; default 2000 (about 2 s in all).  A long run
    is e.g. ``CCONV_LEAK_CALLS=10000``.
"""

from __future__ import annotations

import gc
import os
import threading
import time
import tracemalloc

import numpy as np
import pytest

import cconv

# --------------------------------------------------------------------------
# threads
# --------------------------------------------------------------------------

N_THREADS = 8
CALLS_PER_THREAD = 20


def _inputs(rng, xshape, wshape, dtype):
    x = rng.standard_normal(xshape).astype(dtype)
    w = rng.standard_normal(wshape).astype(dtype)
    n = wshape[0] if len(wshape) == 3 and xshape[0] == 1 else xshape[0]
    dout = rng.standard_normal((n, xshape[1] - wshape[-2] + 1, xshape[2] - wshape[-1] + 1))
    return x, w, dout.astype(dtype)


def _thread_jobs(rng):
    """(inputs, method) per thread: threads 0-3 share two input sets, 4-7 have their own.

    The shapes cover both loop orders of the direct path (strips of columns
    and long dot products) and the reductions of a broadcast operand's
    gradient (K filters against one image, one filter for N images).
    """
    shared64 = _inputs(rng, (6, 128, 128), (6, 9, 9), np.float64)
    shared32 = _inputs(rng, (1, 160, 150), (4, 11, 11), np.float32)
    return [
        (shared64, "direct"),
        (shared32, "direct"),
        (shared64, "fft"),
        (shared32, "fft"),
        (_inputs(rng, (4, 128, 120), (8, 8), np.float64), "direct"),
        (_inputs(rng, (3, 150, 160), (1, 15, 7), np.float32), "fft"),
        (_inputs(rng, (3, 64, 64), (3, 56, 56), np.float64), "direct"),  # long dot products
        (_inputs(rng, (4, 64, 60), (52, 50), np.float32), "direct"),  # ... with a dw reduction
    ]


def _once(inputs, method, shared_cache):
    x, w, dout = inputs
    out, cache = cconv.conv_forward(x, w, method=method)
    dx, dw = cconv.conv_backward(dout, cache, method=method)
    # Several threads also run backward passes from one cache object at once.
    sdx, sdw = cconv.conv_backward(dout, shared_cache, method=method)
    return out, dx, dw, sdx, sdw


def test_concurrent_threads_bit_identical_to_serial(rng, ref):
    threads_each = cconv.get_num_threads()
    jobs = _thread_jobs(rng)
    caches = {}
    for inputs, _ in jobs:  # one cache per input set, from an FFT pass (it holds spectra)
        caches.setdefault(id(inputs), cconv.conv_forward(inputs[0], inputs[1], method="fft")[1])
    serial = [_once(inputs, m, caches[id(inputs)]) for inputs, m in jobs]

    barrier = threading.Barrier(N_THREADS)
    results: list = [None] * N_THREADS
    errors: list = []

    def worker(i):
        try:
            # OpenMP's thread count is per calling thread: the same as the
            # serial calls had, so the work splits (and sums) identically.
            cconv.set_num_threads(threads_each)
            inputs, method = jobs[i]
            barrier.wait(timeout=30)
            results[i] = [_once(inputs, method, caches[id(inputs)]) for _ in range(CALLS_PER_THREAD)]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append((i, exc))
            barrier.abort()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(N_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    elapsed = time.perf_counter() - start
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors

    names = ("out", "dx", "dw", "dx(shared cache)", "dw(shared cache)")
    for i, (expected, got) in enumerate(zip(serial, results)):
        assert len(got) == CALLS_PER_THREAD
        for call, arrays in enumerate(got):
            for name, e, a in zip(names, expected, arrays):
                assert a.dtype == e.dtype and a.shape == e.shape
                assert np.array_equal(a, e), f"thread {i} call {call}: {name} differs from serial"
    # The serial results are right, so "identical to serial" means something.
    for (inputs, _), (out, dx, dw, _, _) in zip(jobs, serial):
        tol = ref.tol(out.dtype)
        expected = (ref.scipy_forward(*inputs[:2]),) + ref.scipy_backward(*inputs)
        for name, got, e in zip(("out", "dx", "dw"), (out, dx, dw), expected):
            assert ref.max_rel_err(got, e) <= tol, f"serial {name} is wrong"
    print(f"\n{N_THREADS} threads x {CALLS_PER_THREAD} calls: {elapsed:.2f} s")


# --------------------------------------------------------------------------
# leaks
# --------------------------------------------------------------------------

LEAK_CALLS = int(os.environ.get("CCONV_LEAK_CALLS", "2000"))
WARMUP_CALLS = 200
TRACED_BOUND = 1 * 2**20  # bytes
RSS_BOUND = 20 * 2**20  # bytes


@pytest.fixture(scope="module")
def leak_inputs():
    rng = np.random.default_rng(12345)
    sets = [
        _inputs(rng, (2, 16, 16), (3, 3), np.float64),
        _inputs(rng, (1, 12, 14), (2, 4, 4), np.float32),
        _inputs(rng, (3, 10, 10), (3, 9, 9), np.float64),  # long dot products
    ]
    # Inputs that need converting (Fortran order, int) take the copying paths.
    x, w, dout = sets[0]
    sets.append((np.asfortranarray(x), (w * 4).astype(np.int16), dout[:, ::-1]))
    bad = [
        (np.ones((1, 4, 4), complex), np.ones((2, 2))),  # TypeError
        (np.ones((1, 2, 2)), np.ones((3, 3))),  # ValueError
        ([[[1.0, 2.0], [3.0]]], np.ones((1, 1))),  # ragged: ValueError
    ]
    return sets, bad


def _leak_round(i, sets, bad):
    x, w, dout = sets[i % len(sets)]
    method = ("direct", "fft", "auto")[i % 3]
    out, cache = cconv.conv_forward(x, w, method=method)
    dx, dw = cconv.conv_backward(dout, cache, method=method)
    bx, bw = bad[i % len(bad)]
    try:  # error paths must not leak either (tracebacks, half-built caches)
        cconv.conv_forward(bx, bw)
    except (TypeError, ValueError):
        pass
    try:
        cconv.conv_backward(dout, None)
    except ValueError:
        pass
    return out.shape, dx.shape, dw.shape


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_no_leak_traced_memory(leak_inputs):
    sets, bad = leak_inputs
    for i in range(WARMUP_CALLS):  # FFT plan caches, lazy imports, interned strings
        _leak_round(i, sets, bad)
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(WARMUP_CALLS):
            _leak_round(i, sets, bad)
        gc.collect()
        before = tracemalloc.take_snapshot()
        base = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        for i in range(LEAK_CALLS):
            _leak_round(i, sets, bad)
        elapsed = time.perf_counter() - start
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - base
        if growth > TRACED_BOUND:
            top = tracemalloc.take_snapshot().compare_to(before, "lineno")[:8]
            pytest.fail(
                f"traced memory grew by {growth / 1024:.0f} KiB over {LEAK_CALLS} calls:\n"
                + "\n".join(str(s) for s in top)
            )
    finally:
        tracemalloc.stop()
    print(f"\ntracemalloc: {LEAK_CALLS} rounds in {elapsed:.2f} s, traced growth {growth} bytes")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="no /proc/self/statm on this system")
def test_no_leak_resident_memory(leak_inputs):
    sets, bad = leak_inputs
    for i in range(WARMUP_CALLS):
        _leak_round(i, sets, bad)
    gc.collect()
    before = _resident_bytes()
    start = time.perf_counter()
    for i in range(LEAK_CALLS):
        _leak_round(i, sets, bad)
    elapsed = time.perf_counter() - start
    gc.collect()
    growth = _resident_bytes() - before
    print(f"\nRSS: {LEAK_CALLS} rounds in {elapsed:.2f} s, growth {growth / 2**20:.2f} MiB")
    assert growth < RSS_BOUND, f"resident memory grew by {growth / 2**20:.1f} MiB over {LEAK_CALLS} calls"


# --------------------------------------------------------------------------
# float32 precision on a large dynamic range
# --------------------------------------------------------------------------

H = W = 256
HH = WW = 60
F32_TOL = 1e-5


def _dynamic(rng, shape):
    """Values like 1e6 * randn + randn: seven digits of float32 all in use."""
    return (1e6 * rng.standard_normal(shape) + rng.standard_normal(shape)).astype(np.float32)


def _mixed(rng, shape):
    """Random signs, magnitudes spread log-uniformly over 1e-3 .. 1e3."""
    sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return (sign * 10.0 ** rng.uniform(-3, 3, size=shape)).astype(np.float32)


@pytest.fixture(scope="module")
def precision_cases(ref):
    """Inputs (float32) and their float64 references, computed once per kind."""
    cases = {}
    for seed, (kind, make) in enumerate((("dynamic", _dynamic), ("mixed", _mixed))):
        rng = np.random.default_rng(9000 + seed)
        x = make(rng, (1, H, W))
        w = make(rng, (HH, WW))
        dout = make(rng, (1, H - HH + 1, W - WW + 1))
        # The reference sees exactly the float32-rounded values, in float64.
        out64 = ref.scipy_forward(x, w)
        dx64, dw64 = ref.scipy_backward(x, w, dout)
        cases[kind] = (x, w, dout, out64, dx64, dw64)
    return cases


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("kind", ["dynamic", "mixed"])
def test_float32_precision_large_dynamic_range(precision_cases, ref, kind, method):
    x, w, dout, out64, dx64, dw64 = precision_cases[kind]
    out, cache = cconv.conv_forward(x, w, method=method)
    dx, dw = cconv.conv_backward(dout, cache, method=method)
    errors = {}
    for name, got, expected in (("out", out, out64), ("dx", dx, dx64), ("dw", dw, dw64)):
        assert got.dtype == np.float32, f"{name} computed in {got.dtype}"
        errors[name] = ref.max_rel_err(got, expected)
    print(f"\n{kind}/{method}: " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    bad = {k: v for k, v in errors.items() if not v <= F32_TOL}
    assert not bad, f"float32 {kind} inputs, method={method}: normwise errors {bad} > {F32_TOL}"
