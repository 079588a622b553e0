"""Concurrent calls from several Python threads give exactly the serial results.

The compiled loops release the GIL, so calls really do overlap; any shared
mutable state in the implementation would show up as differing results.
(No timing is asserted: that would be flaky on a loaded CI machine.)
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import cconv

from cases import assert_unchanged, max_rel_err, random_array, snapshot, tol
from reference import scipy_backward, scipy_forward

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
    xshape, wshape, dt = variants[i % len(variants)]
    x = random_array(rng, xshape, dt)
    w = random_array(rng, wshape, dt)
    n = max(xshape[0], wshape[0]) if len(wshape) == 3 else xshape[0]
    dout = random_array(rng, (n, xshape[1] - wshape[-2] + 1, xshape[2] - wshape[-1] + 1), dt)
    return x, w, dout


def _work(x, w, dout):
    out, cache = cconv.conv_forward(x, w)
    dx, dw = cconv.conv_backward(dout, cache)
    return out, dx, dw


def _run_concurrently(fn, args_list):
    barrier = threading.Barrier(len(args_list))

    def task(args):
        barrier.wait()  # start together, to maximise overlap
        return [fn(*args) for _ in range(ROUNDS)]

    with ThreadPoolExecutor(max_workers=len(args_list)) as pool:
        return list(pool.map(task, args_list))


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

    results = _run_concurrently(_work, jobs)
    for expected, rounds in zip(serial, results):
        for got in rounds:
            for g, e in zip(got, expected):
                np.testing.assert_array_equal(g, e, strict=True)


def test_threads_sharing_inputs_and_cache(rng):
    # Every thread reads the same x, w, dout and the same cache.
    x = random_array(rng, (3, 90, 90))
    w = random_array(rng, (3, 8, 8))
    out_s, cache = cconv.conv_forward(x, w)
    dout = random_array(rng, out_s.shape)
    dx_s, dw_s = cconv.conv_backward(dout, cache)
    x_before, w_before, d_before = snapshot(x, w, dout)

    def both():
        out, _ = cconv.conv_forward(x, w)
        dx, dw = cconv.conv_backward(dout, cache)
        return out, dx, dw

    results = _run_concurrently(both, [()] * N_THREADS)
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
        x = random_array(rng, (2, h, wd), dtype)
        w = random_array(rng, (hh, ww), dtype)
        dout = random_array(rng, (2, h - hh + 1, wd - ww + 1), dtype)
        jobs.append((x, w, dout))
    serial = [_work(*job) for job in jobs]

    def chunk(start):
        return [_work(*jobs[j]) for j in range(start, len(jobs), N_THREADS)]

    barrier = threading.Barrier(N_THREADS)

    def task(start):
        barrier.wait()
        return chunk(start)

    with ThreadPoolExecutor(max_workers=N_THREADS) as pool:
        chunks = list(pool.map(task, range(N_THREADS)))
    for start, got_list in enumerate(chunks):
        for j, got in zip(range(start, len(jobs), N_THREADS), got_list):
            for g, e in zip(got, serial[j]):
                np.testing.assert_array_equal(g, e, strict=True)
