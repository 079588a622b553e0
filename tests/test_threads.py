"""The thread-count knob (get_num_threads, set_num_threads), the compiled
builds, and the package's version.

Calls from several Python threads at once are in ``test_concurrency.py``; the
knob's fuzz is in ``fuzz/test_threads.py``.
"""

from __future__ import annotations

import importlib
import re

import numpy as np
import pytest
from cases import MAX_THREADS, max_rel_err, random_array, run_child, tol
from reference import scipy_backward, scipy_forward

import cconv

# --------------------------------------------------------------------------
# get_num_threads / set_num_threads
# --------------------------------------------------------------------------


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    "x_shape, w_shape",
    [
        ((1, 600, 517), (40, 33)),  # one image: its rows and columns split between the threads
        ((8, 250, 230), (25, 17)),  # a filter broadcast over the images (dw summed over the pairs)
        ((1, 300, 340), (3, 21, 9)),  # an image broadcast over the filters (dx summed)
    ],
)
def test_fft_route_bit_identical_across_thread_counts(monkeypatch, rng, dtype, x_shape, w_shape):
    # The threaded transforms split their lines by the thread count; the
    # bits must not follow.  Adaptive counts off: each count is the one run.
    monkeypatch.setattr(cconv._threads, "ADAPTIVE", False)
    x = random_array(rng, x_shape, dtype)
    w = random_array(rng, w_shape, dtype)
    # Large enough that the forward transforms do split between threads.
    transforms = x_shape[0] + (w_shape[0] if len(w_shape) == 3 else 1)
    assert cconv._fft._team(2, transforms, cconv._fft.fft_shape(*x_shape[1:])) == 2
    results = []
    for n in (1, 2, 3, 4):
        with cconv.threads(n):
            out, cache = cconv.conv_forward(x, w, method="fft")
            dout = results[0][0] if results else random_array(rng, out.shape, dtype)
            results.append((dout, out, *cconv.conv_backward(dout, cache, method="fft")))
    exp_dx, exp_dw = scipy_backward(x, w, results[0][0])
    assert max_rel_err(results[0][1], scipy_forward(x, w)) <= tol(dtype)
    assert max_rel_err(results[0][2], exp_dx) <= tol(dtype)
    assert max_rel_err(results[0][3], exp_dw) <= tol(dtype)
    for r in results[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(r[1:], results[0][1:]))


@pytest.mark.parametrize("bad", [0, -1, 4097, 2**31, 2**63, 100_000, np.int64(-2), np.int64(2**40)])
def test_set_num_threads_rejects_bad_values(bad):
    # A ValueError naming n and showing the value (no OverflowError from
    # the C shim for 2**31 and beyond); the setting is unchanged.
    before = cconv.get_num_threads()
    try:
        with pytest.raises(ValueError, match=r"^n\b.*" + re.escape(repr(bad))):
            cconv.set_num_threads(bad)
        assert cconv.get_num_threads() == before
    finally:
        cconv.set_num_threads(before)


@pytest.mark.parametrize("bad", [1.5, 2.0, "2", None, True, np.bool_(True)])
def test_set_num_threads_rejects_non_integers(bad):
    with pytest.raises(TypeError, match=r"\bn\b"):
        cconv.set_num_threads(bad)


def test_set_num_threads_accepts_the_documented_range():
    before = cconv.get_num_threads()
    try:
        for n in (1, np.int32(2), np.uint8(3), MAX_THREADS):
            cconv.set_num_threads(n)  # (no parallel loop started: 4096 threads)
            if cconv._runtime.openmp_enabled():
                assert cconv.get_num_threads() == n
    finally:
        cconv.set_num_threads(before)


def test_set_num_threads_huge_count_refused_not_crashing(tmp_path):
    # Refused; a later parallel call still runs (libgomp cannot start 100000
    # threads).  In a child process, so a crash fails only this test.
    code = (
        "import re, numpy as np, cconv\n"
        "try:\n"
        "    cconv.set_num_threads(100_000)\n"
        "except ValueError as e:\n"
        "    assert re.match(r'n\\b.*100000', str(e)), str(e)\n"
        "    cconv.conv_forward(np.ones((4, 64, 64)), np.ones((3, 3)), method='direct')\n"
        "    raise SystemExit(0)\n"
        "cconv.conv_forward(np.ones((4, 64, 64)), np.ones((3, 3)), method='direct')\n"
        "raise SystemExit(3)\n"
    )
    run_child(code, tmp_path)


def test_threadpoolctl_sees_and_limits_the_same_setting():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not cconv._runtime.openmp_enabled():
        pytest.skip("this build of cconv has no OpenMP")
    apis = {info["user_api"] for info in threadpoolctl.threadpool_info()}
    assert "openmp" in apis
    with threadpoolctl.threadpool_limits(1, user_api="openmp"):
        assert cconv.get_num_threads() == 1
    assert cconv.get_num_threads() >= 1


# --------------------------------------------------------------------------
# Every compiled build of the kernels this CPU can run
# --------------------------------------------------------------------------


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


def _run_loop(kernels, loop, x, k, out, npairs):
    if loop == "correlate_narrow":  # in blocks of two rows: block edges and ragged last block
        kernels.correlate_narrow(x, k, out, npairs, 2, 2)
    else:  # in items of 7 rows: register blocks of every height, ragged last item
        kernels.correlate_wide(x, k, out, npairs, 7, 2)


# A user's machine may pick any of them: each is checked directly.
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
        _run_loop(kernels, loop, x, k, out, npairs)
        assert max_rel_err(out, expected) <= tol(dtype)
        # Two tasks: each output is a partial sum over half of the pairs.
        partial = np.full((2,) + out.shape[1:], np.nan, dtype=dtype)
        _run_loop(kernels, loop, x, k, partial, npairs)
        assert max_rel_err(partial.sum(axis=0), expected.sum(axis=0)) <= tol(dtype)


@pytest.mark.parametrize("build", _builds(), ids=lambda b: b[0])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_build_fused_backward(build, dtype, rng):
    """The one-pass backward loop of each build: blocks of rows, rows narrow and wide, filters of every width."""
    _, kernels = build
    for n, h, w, kh, kw, per_pair in [(3, 37, 75, 5, 3, False), (2, 20, 19, 7, 11, True),
                                      (1, 16, 70, 16, 17, False), (2, 9, 40, 1, 1, True),
                                      (2, 40, 100, 3, 9, False)]:
        x = random_array(rng, (n, h, w), dtype)
        k = random_array(rng, (n if per_pair else 1, kh, kw), dtype)
        dout = random_array(rng, (n, h - kh + 1, w - kw + 1), dtype)
        rows = 5
        blocks = -(-h // rows)
        dx = np.full(x.shape, np.nan, dtype)
        dw = np.zeros((n * blocks, kh, kw))
        ow = w - kw + 1
        scratch = np.empty((8, (rows + kh - 1) * (ow + 2 * (kw - 1)) + kw * ow), dtype)
        kernels.backward_fused(x, np.ascontiguousarray(k[:, ::-1, ::-1]), dout, dx, dw, scratch, rows)
        want_dx, want_dw = scipy_backward(x, k, dout)
        assert max_rel_err(dx, want_dx) <= tol(dtype)
        got_dw = dw.reshape(n, blocks, kh, kw).sum(axis=1) if per_pair else dw.sum(axis=0, keepdims=True)
        assert max_rel_err(got_dw, want_dw) <= tol(dtype)


# --------------------------------------------------------------------------
# The package
# --------------------------------------------------------------------------


def test_version_is_a_nonempty_string():
    assert isinstance(cconv.__version__, str)
    assert cconv.__version__.strip()


# --------------------------------------------------------------------------
# The thread policy (issue 22): small work on one thread, no file per call
# --------------------------------------------------------------------------

SMALL_CALLS = """
import os, numpy as np, scipy.fft, cconv, cconv.signal as cs, cconv.ndimage as cn

def threads():
    return len(os.listdir("/proc/self/task"))

rng = np.random.default_rng(0)
x, k = rng.standard_normal((4, 16, 16)), rng.standard_normal((3, 3))
# SciPy's own transforms (from 1.18) keep a thread from their first call on:
# that one is SciPy's, made before the count starts.
scipy.fft.rfft2(x[0])
before = threads()
for dtype in (np.float32, np.float64):
    xd, kd = x.astype(dtype), k.astype(dtype)
    for method in ("direct", "fft"):
        out, cache = cconv.conv_forward(xd, kd, method=method)
        cconv.conv_backward(np.ones_like(out), cache, method=method)
    out, cache = cconv.conv2d_forward(xd[:, None], np.stack([kd, kd])[:, None], padding=1)
    cconv.conv2d_backward(np.ones_like(out), cache)
    cconv.match_template(xd[0], kd)
    for method in ("direct", "fft"):
        cs.correlate2d(xd[0, :8, :8], kd, "same", method=method)
        cn.correlate(xd[0], kd, method=method)
    cn.correlate((xd[0] * 10).astype(np.int32), kd)
    cs.convolve2d(xd[0].astype(np.int16), kd.astype(np.int16))
assert threads() == before, (before, threads())
print("ok", before)
"""


@pytest.mark.skipif(not cconv._runtime.openmp_enabled(), reason="a build without OpenMP starts no team at all")
def test_small_calls_start_no_thread_team(tmp_path):
    # OpenMP starts its worker threads at the first parallel region of more
    # than one thread, and keeps them: a process whose every call was below
    # the work threshold still has none, nor an FFT pool thread.
    import pathlib

    if not pathlib.Path("/proc/self/task").is_dir():
        pytest.skip("needs Linux's /proc to count the process's threads")
    # Two threads allowed, whatever the environment of the suite says.
    run_child(SMALL_CALLS, tmp_path, env={"OMP_NUM_THREADS": "2", "CCONV_ADAPTIVE_THREADS": "0"})


@pytest.mark.skipif(not cconv._runtime.openmp_enabled(), reason="a build without OpenMP starts no team at all")
def test_large_calls_do_start_a_team(tmp_path):
    # The control of the test above: the count does see a team.
    import pathlib

    if not pathlib.Path("/proc/self/task").is_dir():
        pytest.skip("needs Linux's /proc to count the process's threads")
    code = SMALL_CALLS.replace("rng.standard_normal((4, 16, 16))", "rng.standard_normal((4, 400, 400))")
    code = code.replace("assert threads() == before", "assert threads() > before")
    run_child(code, tmp_path, env={"OMP_NUM_THREADS": "2", "CCONV_ADAPTIVE_THREADS": "0"})


def test_policy_reads_no_file_per_call(monkeypatch, rng):
    reads = []
    real = cconv._threads._runnable_elsewhere

    def counted():
        reads.append(1)
        return real()

    monkeypatch.setattr(cconv._threads, "_runnable_elsewhere", counted)
    monkeypatch.setattr(cconv._threads, "ADAPTIVE", True)
    monkeypatch.setattr(cconv._threads, "_load", cconv._threads._Load())
    x = random_array(rng, (2, 300, 300), np.float32)
    k = random_array(rng, (3, 3), np.float32)
    import time

    calls = 0
    start = time.monotonic()
    while time.monotonic() - start < cconv._threads.TTL / 2:
        cconv.conv_forward(x, k)
        calls += 1
    assert calls >= 2
    assert len(reads) <= 2, f"{len(reads)} counts of the load in {calls} calls within {cconv._threads.TTL} s"


def test_policy_counts_other_processes_not_its_own_threads(monkeypatch):
    # The count is of other processes' runnable threads (the machine's less
    # this process's own), scaled to the share of the machine's CPUs this
    # process may use, and it stands for TTL seconds.
    from cconv import _threads

    clock = {"now": 0.0}
    others = {"n": 0}
    monkeypatch.setattr(_threads, "_CORES", 2)
    monkeypatch.setattr(_threads, "_SHARE", 1.0)
    monkeypatch.setattr(_threads, "_runnable_elsewhere", lambda: others["n"])
    monkeypatch.setattr(_threads.time, "monotonic", lambda: clock["now"])
    load = _threads._Load()

    def after(seconds, n):
        clock["now"] += seconds
        others["n"] = n
        return load.free_cores()

    assert after(0.0, 0) == 2  # nobody else: both cores
    assert after(1.0, 1) == 1  # one other process
    assert after(1.0, 2) == 1  # one per core: one thread, at least
    assert after(_threads.TTL / 4, 0) == 1  # inside the TTL: the last count stands
    assert after(_threads.TTL, 0) == 2  # then the load now: no lag once others are gone
    monkeypatch.setattr(_threads, "_SHARE", 2 / 64)
    assert after(1.0, 16) == 2  # 16 runnable on a 64-CPU machine: about half a thread on our 2


def test_runnable_elsewhere_leaves_out_this_process():
    # Threads of this process spinning are not counted as other processes'.
    import pathlib
    import threading

    from cconv import _threads

    if not pathlib.Path("/proc/loadavg").exists():
        pytest.skip("needs Linux's /proc")
    stop = threading.Event()

    def spin():
        while not stop.is_set():
            pass

    spinners = [threading.Thread(target=spin) for _ in range(3)]
    for t in spinners:
        t.start()
    try:
        counts = [_threads._runnable_elsewhere() for _ in range(20)]
    finally:
        stop.set()
        for t in spinners:
            t.join()
    assert all(c is not None and c >= 0 for c in counts)
    # Four runnable threads of this process on a quiet machine count as none
    # (another process may be runnable now and then: the smallest count).
    assert min(counts) <= 1, counts
