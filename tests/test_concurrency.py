"""Calls from several Python threads at once give exactly the serial results.

The compiled loops release the GIL, so calls really do overlap; any shared
mutable state in the implementation would show up as differing results.
Threads are released together by a barrier (``hammer``), on shared and
private inputs and caches, both methods, both dtypes, both layers; every
result is bit-identical to the serial one, and the serial results are
checked against the references, so "identical to serial" means something.
For the 4-D layer, SciPy's BLAS runs on as many threads afterwards as
before (conv2d holds it at one during each call).  Nothing here asserts a
time; the timings are printed (``-s``).
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from cases import GROUPED, assert_unchanged, layer2d_inputs, layer_inputs, max_rel_err, snapshot, tol
from reference import layer_backward, layer_forward, scipy_backward, scipy_forward

import cconv


def hammer(work, jobs, calls, threads_each=None):
    """One thread per job, released together, each calling ``work(*job)``
    ``calls`` times; returns every thread's list of results and the seconds.

    ``threads_each``: the OpenMP thread count each thread sets first (OpenMP
    keeps it per calling thread); None leaves the default.
    """
    barrier = threading.Barrier(len(jobs))
    results: list = [None] * len(jobs)
    errors: list = []

    def worker(i):
        try:
            if threads_each is not None:
                cconv.set_num_threads(threads_each)
            barrier.wait(timeout=30)
            results[i] = [work(*jobs[i]) for _ in range(calls)]
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append((i, exc))
            barrier.abort()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    elapsed = time.perf_counter() - start
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
    return results, elapsed


# --------------------------------------------------------------------------
# N_THREADS threads, ROUNDS calls each
# --------------------------------------------------------------------------


N_THREADS = 4
ROUNDS = 3


def _job_inputs(rng, i):
    # Different shapes, broadcasting and dtypes per job.
    variants = [
        ((4, 96, 96), (4, 7, 7), np.float64),
        ((1, 96, 80), (5, 9, 5), np.float32),
        ((6, 64, 64), (3, 3), np.float64),
        ((3, 80, 70), (1, 11, 11), np.float32),
    ]
    return layer_inputs(rng, *variants[i % len(variants)])


def _work(x, w, dout):
    out, cache = cconv.conv_forward(x, w)
    dx, dw = cconv.conv_backward(dout, cache)
    return out, dx, dw


def test_concurrent_calls_equal_serial(rng):
    jobs = [_job_inputs(rng, i) for i in range(N_THREADS)]
    serial = [_work(*job) for job in jobs]
    # Sanity: the serial results are right (so "equal to serial" means something).
    for (x, w, dout), (out, dx, dw) in zip(jobs, serial):
        limit = tol(out.dtype)
        edx, edw = scipy_backward(x, w, dout)
        assert max_rel_err(out, scipy_forward(x, w)) <= limit
        assert max_rel_err(dx, edx) <= limit
        assert max_rel_err(dw, edw) <= limit

    results, _ = hammer(_work, jobs, ROUNDS)
    for expected, rounds in zip(serial, results):
        for got in rounds:
            for g, e in zip(got, expected):
                np.testing.assert_array_equal(g, e, strict=True)


def test_threads_sharing_inputs_and_cache(rng):
    # Every thread reads the same x, w, dout and the same cache.
    x, w, dout = layer_inputs(rng, (3, 90, 90), (3, 8, 8), np.float64)
    out_s, cache = cconv.conv_forward(x, w)
    dx_s, dw_s = cconv.conv_backward(dout, cache)
    x_before, w_before, d_before = snapshot(x, w, dout)

    def both():
        out, _ = cconv.conv_forward(x, w)
        dx, dw = cconv.conv_backward(dout, cache)
        return out, dx, dw

    results, _ = hammer(both, [()] * N_THREADS, ROUNDS)
    for rounds in results:
        for out, dx, dw in rounds:
            np.testing.assert_array_equal(out, out_s, strict=True)
            np.testing.assert_array_equal(dx, dx_s, strict=True)
            np.testing.assert_array_equal(dw, dw_s, strict=True)
    assert_unchanged((x_before, w_before, d_before), (x, w, dout))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_many_small_concurrent_calls(dtype, rng):
    # Lots of tiny calls: stresses any per-call setup that is not thread-safe.
    jobs = []
    for _ in range(32):
        h, wd = rng.integers(1, 10, size=2)
        hh, ww = rng.integers(1, h + 1), rng.integers(1, wd + 1)
        jobs.append(layer_inputs(rng, (2, h, wd), (hh, ww), dtype))
    serial = [_work(*job) for job in jobs]

    def chunk(start):
        return [_work(*jobs[j]) for j in range(start, len(jobs), N_THREADS)]

    results, _ = hammer(chunk, [(start,) for start in range(N_THREADS)], 1)
    for start, (got_list,) in enumerate(results):
        for j, got in zip(range(start, len(jobs), N_THREADS), got_list):
            for g, e in zip(got, serial[j]):
                np.testing.assert_array_equal(g, e, strict=True)


# --------------------------------------------------------------------------
# Eight threads, CALLS_PER_THREAD calls each: the 3-D layer
# --------------------------------------------------------------------------


CALLS_PER_THREAD = 20


def _thread_jobs(rng):
    """(inputs, method) per thread: threads 0-3 share two input sets, 4-7 have their own.

    The shapes cover both loop orders of the direct path (strips of columns
    and long dot products) and the reductions of a broadcast operand's
    gradient (K filters against one image, one filter for N images).
    """
    shared64 = layer_inputs(rng, (6, 128, 128), (6, 9, 9), np.float64)
    shared32 = layer_inputs(rng, (1, 160, 150), (4, 11, 11), np.float32)
    return [
        (shared64, "direct"),
        (shared32, "direct"),
        (shared64, "fft"),
        (shared32, "fft"),
        (layer_inputs(rng, (4, 128, 120), (8, 8), np.float64), "direct"),
        (layer_inputs(rng, (3, 150, 160), (1, 15, 7), np.float32), "fft"),
        (layer_inputs(rng, (3, 64, 64), (3, 56, 56), np.float64), "direct"),  # long dot products
        (layer_inputs(rng, (4, 64, 60), (52, 50), np.float32), "direct"),  # ... with a dw reduction
    ]


def _once(inputs, method, shared_cache):
    x, w, dout = inputs
    out, cache = cconv.conv_forward(x, w, method=method)
    dx, dw = cconv.conv_backward(dout, cache, method=method)
    # Several threads also run backward passes from one cache object at once.
    sdx, sdw = cconv.conv_backward(dout, shared_cache, method=method)
    return out, dx, dw, sdx, sdw


def test_concurrent_threads_bit_identical_to_serial(rng):
    threads_each = cconv.get_num_threads()
    jobs = _thread_jobs(rng)
    caches = {}
    for inputs, _ in jobs:  # one cache per input set, from an FFT pass (it holds spectra)
        caches.setdefault(id(inputs), cconv.conv_forward(inputs[0], inputs[1], method="fft")[1])
    serial = [_once(inputs, m, caches[id(inputs)]) for inputs, m in jobs]

    results, elapsed = hammer(_once, [(inputs, m, caches[id(inputs)]) for inputs, m in jobs],
                              CALLS_PER_THREAD, threads_each)

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
    print(f"\n{len(jobs)} threads x {CALLS_PER_THREAD} calls: {elapsed:.2f} s")


# --------------------------------------------------------------------------
# Eight threads, CALLS_PER_THREAD calls each: the 4-D layer
# --------------------------------------------------------------------------


def _thread_jobs_2d(rng):
    """(inputs, method) per thread: threads 0-3 share three input sets, 4-7 have their own."""
    shared64 = layer2d_inputs(rng, (4, 8, 64, 60), (8, 4, 3, 3), np.float64, **GROUPED)
    shared32 = layer2d_inputs(rng, (4, 8, 64, 60), (8, 4, 3, 3), np.float32, **GROUPED)
    single32 = layer2d_inputs(rng, (1, 1, 96, 90), (4, 1, 9, 7), np.float32, padding="same")
    return [
        (shared64, "gemm"),
        (shared32, "auto"),  # (gemm)
        (single32, "fft"),
        (single32, "direct"),
        (layer2d_inputs(rng, (2, 4, 33, 31), (4, 1, 3, 3), np.float64, groups=4, padding="same"),
         "gemm"),  # depthwise
        (layer2d_inputs(rng, (3, 1, 80, 70), (1, 1, 11, 9), np.float64, bias=False, padding=2),
         "fft"),  # one filter, three images
        (layer2d_inputs(rng, (2, 5, 24, 24), (6, 5, 1, 1), np.float32, stride=2), "gemm"),  # 1x1
        (layer2d_inputs(rng, (1, 1, 64, 64), (3, 1, 5, 5), np.float64), "direct"),
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

    results, elapsed = hammer(_once_2d, [(inputs, m, caches[id(inputs)]) for inputs, m in jobs],
                              CALLS_PER_THREAD, threads_each)
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
    print(f"\n{len(jobs)} threads x {CALLS_PER_THREAD} conv2d calls "
          f"({threads_each} OpenMP each): {elapsed:.2f} s")
