"""Thousands of calls leave memory where it was (marked ``slow``).

Rounds of forward + backward calls of both layers, every method and route,
inputs that need converting, and refused calls (error paths must not leak
either), after warm-up rounds: Python's traced memory (tracemalloc) and the
resident set (/proc/self/statm) do not grow.  ``pytest -m "not slow"``
leaves them out.

Environment
-----------
``CCONV_LEAK_CALLS``
    Rounds (forward + backward + two refused calls, of each layer) of each
    leak test, after 200 warm-up rounds; default 2000 (about a minute in
    all).  A long run is e.g. ``CCONV_LEAK_CALLS=10000``.
"""

from __future__ import annotations

import gc
import os
import time
import tracemalloc

import numpy as np
import pytest
from cases import GROUPED, layer2d_inputs, layer_inputs

import cconv

pytestmark = pytest.mark.slow


LEAK_CALLS = int(os.environ.get("CCONV_LEAK_CALLS", "2000"))
WARMUP_CALLS = 200
TRACED_BOUND = 1 * 2**20  # bytes
RSS_BOUND = 20 * 2**20  # bytes


@pytest.fixture(scope="module")
def leak_inputs():
    rng = np.random.default_rng(12345)
    sets = [
        layer_inputs(rng, (2, 16, 16), (3, 3), np.float64),
        layer_inputs(rng, (1, 12, 14), (2, 4, 4), np.float32),
        layer_inputs(rng, (3, 10, 10), (3, 9, 9), np.float64),  # long dot products
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
        (layer2d_inputs(rng, (2, 4, 12, 11), (6, 2, 3, 3), np.float64, **GROUPED), "gemm"),
        (layer2d_inputs(rng, (1, 3, 10, 10), (2, 3, 2, 2), np.float32, bias=False, padding="same"),
         "auto"),
        (layer2d_inputs(rng, (1, 1, 14, 13), (3, 1, 4, 4), np.float64, padding=1), "direct"),
        (layer2d_inputs(rng, (3, 1, 12, 12), (1, 1, 5, 5), np.float32), "fft"),
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
