"""Hardening: concurrency, leaks, and float32 precision on a large dynamic range.

* Eight Python threads call conv_forward / conv_backward at the same time
  (released together by a barrier) on shared and private inputs, both
  methods, both dtypes: every result is bit-identical to the serial one.
  The same for the 4-D layer, conv2d_forward / conv2d_backward (grouped,
  strided, padded, dilated layers by 'gemm'; single-channel layers by
  'direct' and 'fft'), with one OpenMP thread per call and with the default
  count; afterwards SciPy's BLAS runs on as many threads as before (conv2d
  holds it at one during each call).  The 'gemm' path's dw, a sum of
  per-thread partial sums, is the same bits on every call too.
* Thousands of forward + backward calls (``CCONV_LEAK_CALLS``, default 2000),
  of both layers, leave Python's traced memory (tracemalloc) and the
  resident set (/proc/self/statm) where they were.
* float32 on a 256x256 image with a 60x60 filter, inputs of a large dynamic
  range (1e6 * randn + randn) or of mixed magnitudes (1e-3 .. 1e3): forward,
  dx and dw within 1e-5 normwise of float64 on the same float32 inputs.

The references are SciPy's (tests/reference.py): the serial
results the threads must reproduce bit for bit are themselves checked
against them.  Nothing here asserts a time; the timings are printed (``-s``).

Environment
-----------
``CCONV_LEAK_CALLS``
    Rounds (forward + backward + two refused calls, of each layer) of each
    leak test, after 200 warm-up rounds; default 2000 (a few seconds in
    all).  A long run is e.g. ``CCONV_LEAK_CALLS=10000``.
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

from cases import max_rel_err, tol
from reference import layer_backward, layer_forward, scipy_backward, scipy_forward

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

def _hammer(jobs, caches, once, threads_each):
    """N_THREADS threads, released together, each calling ``once`` on its job
    CALLS_PER_THREAD times; returns every thread's results and the seconds."""
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
            results[i] = [once(inputs, method, caches[id(inputs)]) for _ in range(CALLS_PER_THREAD)]
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
    return results, elapsed


def test_concurrent_threads_bit_identical_to_serial(rng):
    threads_each = cconv.get_num_threads()
    jobs = _thread_jobs(rng)
    caches = {}
    for inputs, _ in jobs:  # one cache per input set, from an FFT pass (it holds spectra)
        caches.setdefault(id(inputs), cconv.conv_forward(inputs[0], inputs[1], method="fft")[1])
    serial = [_once(inputs, m, caches[id(inputs)]) for inputs, m in jobs]

    results, elapsed = _hammer(jobs, caches, _once, threads_each)

    names = ("out", "dx", "dw", "dx(shared cache)", "dw(shared cache)")
    for i, (expected, got) in enumerate(zip(serial, results)):
        assert len(got) == CALLS_PER_THREAD
        for call, arrays in enumerate(got):
            for name, e, a in zip(names, expected, arrays):
                assert a.dtype == e.dtype and a.shape == e.shape
                assert np.array_equal(a, e), f"thread {i} call {call}: {name} differs from serial"
    # The serial results are right, so "identical to serial" means something.
    for (inputs, _), (out, dx, dw, _, _) in zip(jobs, serial):
        limit = tol(out.dtype)
        expected = (scipy_forward(*inputs[:2]),) + scipy_backward(*inputs)
        for name, got, e in zip(("out", "dx", "dw"), (out, dx, dw), expected):
            assert max_rel_err(got, e) <= limit, f"serial {name} is wrong"
    print(f"\n{N_THREADS} threads x {CALLS_PER_THREAD} calls: {elapsed:.2f} s")


# The 4-D layer: (x, w, b, dout, options) per input set.

def _inputs_2d(rng, xshape, wshape, dtype, bias=True, **opts):
    from_ = rng.standard_normal
    x = from_(xshape).astype(dtype)
    w = from_(wshape).astype(dtype)
    b = from_(wshape[0]).astype(dtype) if bias else None
    out, _ = cconv.conv2d_forward(x, w, b, **opts)  # only for its shape
    return x, w, b, from_(out.shape).astype(dtype), opts


GROUPED = {"stride": (2, 1), "padding": (1, 2), "dilation": (1, 2), "groups": 2}


def _thread_jobs_2d(rng):
    """(inputs, method) per thread: threads 0-3 share three input sets, 4-7 have their own."""
    shared64 = _inputs_2d(rng, (4, 8, 64, 60), (8, 4, 3, 3), np.float64, **GROUPED)
    shared32 = _inputs_2d(rng, (4, 8, 64, 60), (8, 4, 3, 3), np.float32, **GROUPED)
    single32 = _inputs_2d(rng, (1, 1, 96, 90), (4, 1, 9, 7), np.float32, padding="same")
    return [
        (shared64, "gemm"),
        (shared32, "auto"),  # (gemm)
        (single32, "fft"),
        (single32, "direct"),
        (_inputs_2d(rng, (2, 4, 33, 31), (4, 1, 3, 3), np.float64, groups=4, padding="same"),
         "gemm"),  # depthwise
        (_inputs_2d(rng, (3, 1, 80, 70), (1, 1, 11, 9), np.float64, bias=False, padding=2),
         "fft"),  # one filter, three images
        (_inputs_2d(rng, (2, 5, 24, 24), (6, 5, 1, 1), np.float32, stride=2), "gemm"),  # 1x1
        (_inputs_2d(rng, (1, 1, 64, 64), (3, 1, 5, 5), np.float64), "direct"),
    ]


def _once_2d(inputs, method, shared_cache):
    x, w, b, dout, opts = inputs
    out, cache = cconv.conv2d_forward(x, w, b, **opts, method=method)
    dx, dw, db = cconv.conv2d_backward(dout, cache)
    # Several threads also run backward passes from one cache object at once.
    sdx, sdw, sdb = cconv.conv2d_backward(dout, shared_cache)
    return out, dx, dw, db, sdx, sdw, sdb, cache.method


def _blas_threads():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    return [(lib["filepath"], lib["num_threads"]) for lib in threadpoolctl.threadpool_info()]


@pytest.mark.parametrize("omp_threads", [1, "default"])
def test_conv2d_concurrent_threads_bit_identical_to_serial(rng, omp_threads):
    blas_before = _blas_threads()
    saved = cconv.get_num_threads()
    threads_each = 1 if omp_threads == 1 else saved
    jobs = _thread_jobs_2d(rng)
    try:
        cconv.set_num_threads(threads_each)
        caches = {}
        for inputs, method in jobs:  # one cache per input set, shared by its threads
            x, w, b, _, opts = inputs
            caches.setdefault(id(inputs), cconv.conv2d_forward(x, w, b, **opts, method=method)[1])
        serial = [_once_2d(inputs, m, caches[id(inputs)]) for inputs, m in jobs]
    finally:
        cconv.set_num_threads(saved)
    assert _blas_threads() == blas_before

    results, elapsed = _hammer(jobs, caches, _once_2d, threads_each)
    # Each call saves and restores the BLAS setting (counted, under a lock):
    # after eight threads' overlapping calls it is what it was.
    assert _blas_threads() == blas_before, "conv2d left SciPy's BLAS on another thread count"

    names = ("out", "dx", "dw", "db", "dx(shared cache)", "dw(shared cache)", "db(shared cache)")
    for i, (expected, got) in enumerate(zip(serial, results)):
        assert len(got) == CALLS_PER_THREAD
        method = expected[-1]
        x, w, _, dout, _ = jobs[i][0]
        for call, arrays in enumerate(got):
            assert arrays[-1] == method
            for name, e, a in zip(names, expected, arrays):
                if e is None:
                    assert a is None, f"thread {i}: {name} for a layer without bias"
                    continue
                assert a.dtype == e.dtype and a.shape == e.shape
                assert np.array_equal(a, e), f"thread {i} call {call}: {name} differs from serial"
    # The serial results are right, so "identical to serial" means something.
    for (inputs, _), (out, dx, dw, db, *_) in zip(jobs, serial):
        x, w, b, dout, opts = inputs
        expected = (layer_forward(x, w, b, **opts),) + layer_backward(x, w, dout, **opts)
        for name, got, e in zip(("out", "dx", "dw", "db"), (out, dx, dw, db), expected):
            if got is None:
                assert b is None and name == "db"
                continue
            assert max_rel_err(got, e) <= tol(got.dtype), f"serial {name} is wrong"
    print(f"\n{N_THREADS} threads x {CALLS_PER_THREAD} conv2d calls "
          f"({threads_each} OpenMP each): {elapsed:.2f} s")


def test_conv2d_backward_dw_bit_reproducible(rng):
    # Was: per-thread partial sums of dw over (image, group) items handed out
    # by a dynamic schedule, so that its rounding changed from call to call.
    if not cconv._runtime.openmp_enabled():
        pytest.skip("built without OpenMP: one thread")
    x = rng.standard_normal((8, 2, 16, 16))
    w = rng.standard_normal((4, 2, 3, 3))
    saved = cconv.get_num_threads()
    try:
        cconv.set_num_threads(2)
        out, cache = cconv.conv2d_forward(x, w)
        dout = rng.standard_normal(out.shape)
        first = cconv.conv2d_backward(dout, cache)[1]
        for call in range(200):
            again = cconv.conv2d_backward(dout, cache)[1]
            assert np.array_equal(again, first), (
                f"call {call + 2}: dw differs by {np.abs(again - first).max():.3g}")
    finally:
        cconv.set_num_threads(saved)


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
    # The 4-D layer: (inputs, method), every route; one set needs converting.
    sets2d = [
        (_inputs_2d(rng, (2, 4, 12, 11), (6, 2, 3, 3), np.float64, **GROUPED), "gemm"),
        (_inputs_2d(rng, (1, 3, 10, 10), (2, 3, 2, 2), np.float32, bias=False, padding="same"),
         "auto"),
        (_inputs_2d(rng, (1, 1, 14, 13), (3, 1, 4, 4), np.float64, padding=1), "direct"),
        (_inputs_2d(rng, (3, 1, 12, 12), (1, 1, 5, 5), np.float32), "fft"),
    ]
    x, w, b, dout, opts = sets2d[0][0]
    sets2d.append(((np.asfortranarray(x), (w * 4).astype(np.int16), b.astype(np.float16),
                    dout[:, :, ::-1], opts), "auto"))
    # Changes to the first set's call, each refused (ValueError or TypeError).
    bad2d = [
        {"groups": 3},  # does not divide C = 4
        {"stride": 1.5},
        {"method": "fft"},  # not a single-channel layer
        {"b": np.ones(5)},  # F = 6
    ]
    return sets, bad, sets2d, bad2d


def _leak_round(i, sets, bad, sets2d, bad2d):
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
    (x, w, b, dout2, opts), method2 = sets2d[i % len(sets2d)]
    out2, cache2 = cconv.conv2d_forward(x, w, b, **opts, method=method2)
    dx2, dw2, _ = cconv.conv2d_backward(dout2, cache2)
    args = {"x": sets2d[0][0][0], "w": sets2d[0][0][1], "b": None, **sets2d[0][0][4],
            **bad2d[i % len(bad2d)]}
    try:
        cconv.conv2d_forward(args.pop("x"), args.pop("w"), args.pop("b"), **args)
    except (TypeError, ValueError):
        pass
    try:
        cconv.conv2d_backward(dout2, cache)  # the 3-D layer's cache: ValueError
    except ValueError:
        pass
    return out.shape, dx.shape, dw.shape, out2.shape, dx2.shape, dw2.shape


def _resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_no_leak_traced_memory(leak_inputs):
    inputs = leak_inputs
    for i in range(WARMUP_CALLS):  # FFT plan caches, lazy imports, interned strings
        _leak_round(i, *inputs)
    gc.collect()
    tracemalloc.start()
    try:
        for i in range(WARMUP_CALLS):
            _leak_round(i, *inputs)
        gc.collect()
        before = tracemalloc.take_snapshot()
        base = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        for i in range(LEAK_CALLS):
            _leak_round(i, *inputs)
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
    inputs = leak_inputs
    for i in range(WARMUP_CALLS):
        _leak_round(i, *inputs)
    gc.collect()
    before = _resident_bytes()
    start = time.perf_counter()
    for i in range(LEAK_CALLS):
        _leak_round(i, *inputs)
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
def precision_cases():
    """Inputs (float32) and their float64 references, computed once per kind."""
    cases = {}
    for seed, (kind, make) in enumerate((("dynamic", _dynamic), ("mixed", _mixed))):
        rng = np.random.default_rng(9000 + seed)
        x = make(rng, (1, H, W))
        w = make(rng, (HH, WW))
        dout = make(rng, (1, H - HH + 1, W - WW + 1))
        # The reference sees exactly the float32-rounded values, in float64.
        out64 = scipy_forward(x, w)
        dx64, dw64 = scipy_backward(x, w, dout)
        cases[kind] = (x, w, dout, out64, dx64, dw64)
    return cases


@pytest.mark.parametrize("method", ["direct", "fft"])
@pytest.mark.parametrize("kind", ["dynamic", "mixed"])
def test_float32_precision_large_dynamic_range(precision_cases, kind, method):
    x, w, dout, out64, dx64, dw64 = precision_cases[kind]
    out, cache = cconv.conv_forward(x, w, method=method)
    dx, dw = cconv.conv_backward(dout, cache, method=method)
    errors = {}
    for name, got, expected in (("out", out, out64), ("dx", dx, dx64), ("dw", dw, dw64)):
        assert got.dtype == np.float32, f"{name} computed in {got.dtype}"
        errors[name] = max_rel_err(got, expected)
    print(f"\n{kind}/{method}: " + ", ".join(f"{k} {v:.2e}" for k, v in errors.items()))
    bad = {k: v for k, v in errors.items() if not v <= F32_TOL}
    assert not bad, f"float32 {kind} inputs, method={method}: normwise errors {bad} > {F32_TOL}"
