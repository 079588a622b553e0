"""cconv.dask: the 3-D layer and template matching over Dask arrays.

Reference: the in-memory cconv functions, whose own tests compare them with
SciPy and NumPy loops; here the question is whether tiling changes anything.
Runs with the synchronous and threaded schedulers, and on a real
``dask.distributed.LocalCluster`` of two worker processes on 127.0.0.1,
including one worker killed while a graph runs.  NaN and Inf stay where
SciPy puts them across chunk edges.  The fuzz is in ``fuzz/test_dask.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from cases import METHODS, assert_same_specials, quiet, specials_tol
from reference import scipy_backward, scipy_forward, window_covers

import cconv

pytestmark = pytest.mark.slow  # a LocalCluster of worker processes: not in the quick subset

da = pytest.importorskip("dask.array", reason="Dask is the optional extra cconv[dask] (in cconv[test])")
dask = pytest.importorskip("dask")
cd = pytest.importorskip("cconv.dask")

SCHEDULERS = ["sync", "threads"]


def _rel(got, want):
    scale = max(float(np.max(np.abs(want))), 1e-300) if want.size else 1.0
    return float(np.max(np.abs(got - want))) / scale if want.size else 0.0


def _random_chunks(rng, size, smallest):
    """A ragged chunking of ``size`` with every chunk at least ``smallest`` (or one chunk)."""
    if rng.random() < 0.25 or size < 2 * smallest:
        return (size,)
    chunks, left = [], size
    while left >= 2 * smallest:
        c = int(rng.integers(smallest, max(smallest + 1, left - smallest + 1)))
        chunks.append(c)
        left -= c
    chunks.append(left)
    return tuple(chunks)


def _layer_case(rng, pairwise=False):
    n, h, w = int(rng.integers(1, 5)), int(rng.integers(8, 40)), int(rng.integers(8, 40))
    hh, ww = int(rng.integers(1, 8)), int(rng.integers(1, 8))
    x = rng.standard_normal((n, h, w))
    filt = rng.standard_normal((n, hh, ww) if pairwise else (hh, ww))
    chunks = (_random_chunks(rng, n, 1), _random_chunks(rng, h, hh), _random_chunks(rng, w, ww))
    return x, filt, chunks


@pytest.mark.parametrize("scheduler", SCHEDULERS)
@pytest.mark.parametrize("seed", range(12))
def test_layer_equals_in_memory_on_random_chunkings(seed, scheduler):
    rng = np.random.default_rng(seed)
    x, w, chunks = _layer_case(rng, pairwise=seed % 3 == 0)
    out, cache = cd.conv_forward(da.from_array(x, chunks=chunks), w)
    want, want_cache = cconv.conv_forward(x, w)
    dout = rng.standard_normal(want.shape)
    dx, dw = cd.conv_backward(da.from_array(dout, chunks=5), cache)
    want_dx, want_dw = cconv.conv_backward(dout, want_cache)
    assert dx.chunks == cache.x.chunks == da.from_array(x, chunks=chunks).chunks
    with dask.config.set(scheduler=scheduler):
        got, got_dx, got_dw = dask.compute(out, dx, dw)
    assert got.shape == want.shape and got_dx.shape == x.shape and got_dw.shape == w.shape
    assert _rel(got, want) <= 1e-12
    assert _rel(got_dx, want_dx) <= 1e-12
    assert _rel(got_dw, want_dw) <= 1e-12


@pytest.mark.parametrize(
    "chunks", [(1, 40, 41), (3, -1, -1), (-1, 10, -1), (-1, -1, 9), (2, (20, 7, 13), (5, 30, 6))],
    ids=["N only", "one chunk", "H only", "W only", "ragged"],
)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_layer_named_chunkings(chunks, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 40, 41)).astype(dtype)
    w = rng.standard_normal((5, 4)).astype(dtype)
    out, cache = cd.conv_forward(da.from_array(x, chunks=chunks), w)
    want, want_cache = cconv.conv_forward(x, w)
    assert out.dtype == dtype
    dout = rng.standard_normal(want.shape).astype(dtype)
    dx, dw = cd.conv_backward(dout, cache)
    got, got_dx, got_dw = dask.compute(out, dx, dw, scheduler="threads")
    tol = 1e-12 if dtype == np.float64 else 1e-5
    for g, r in zip((got, got_dx, got_dw), (want, *cconv.conv_backward(dout, want_cache))):
        assert g.dtype == dtype and _rel(g, r) <= tol


@pytest.mark.parametrize("method", METHODS)
def test_nan_and_inf_in_the_layer_on_a_chunked_image(method):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 60, 64))
    x[0, 0, 0] = np.nan
    x[0, 31, 33] = np.inf  # beside a chunk edge
    x[1, 59, 10] = -np.inf
    w = rng.standard_normal((9, 9))
    w[4, 4] = 0.0
    xd = da.from_array(x, chunks=(1, 30, 32))
    with dask.config.set(scheduler="sync"):
        out, cache = cd.conv_forward(xd, w, method=method)
        got = out.compute()
        assert_same_specials(got, quiet(scipy_forward, x, w), specials_tol(np.float64), "out")
        dout = rng.standard_normal(got.shape)
        dout[1, 20, 20] = np.nan
        dx, dw = cd.conv_backward(da.from_array(dout, chunks=(1, 20, 25)), cache)
        edx, edw = quiet(scipy_backward, x, w, dout)
        assert_same_specials(dx.compute(), edx, specials_tol(np.float64), "dx")
        assert_same_specials(dw.compute(), edw, specials_tol(np.float64), "dw")


def test_nan_in_matching_on_a_chunked_image():
    rng = np.random.default_rng(4)
    image = rng.standard_normal((80, 90))
    image[40, 45] = np.nan
    template = rng.standard_normal((7, 6))
    with dask.config.set(scheduler="sync"):
        got = cd.match_template(da.from_array(image, chunks=(40, 45)), template).compute()
    np.testing.assert_array_equal(np.isnan(got), window_covers(~np.isfinite(image), 7, 6))


def test_small_chunks_are_merged_with_a_warning():
    x = np.random.default_rng(2).standard_normal((2, 30, 30))
    with pytest.warns(cd.ChunkWarning, match=r"axis 1 \(4, 4, 4, 4, 4, 4, 4, 2\).*filter's 6"):
        out, cache = cd.conv_forward(da.from_array(x, chunks=(1, 4, 30)), np.ones((6, 3)))
    assert min(cache.x.chunks[1]) >= 6
    np.testing.assert_allclose(out.compute(), cconv.conv_forward(x, np.ones((6, 3)))[0], rtol=1e-12)


@pytest.mark.parametrize(
    "image_shape, templates_shape, chunks, method, pad",
    [((300, 310), (16, 12), (64, 100), "ccoeff_normed", False),
     ((300, 310), (3, 16, 12), (70, 90), "sqdiff", False),
     ((3, 100, 90), (9, 9), (1, 30, 40), "ccorr_normed", True),
     ((3, 100, 90), (3, 9, 9), (2, 45, 40), "ccoeff", False),
     ((120, 130), (10, 11), (-1, 40), "sqdiff_normed", True)],
)
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_matching_equals_in_memory(image_shape, templates_shape, chunks, method, pad, scheduler):
    rng = np.random.default_rng(3)
    image = rng.uniform(0, 255, image_shape)
    templates = rng.uniform(0, 255, templates_shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cd.ChunkWarning)
        scores = cd.match_template(da.from_array(image, chunks=chunks), templates, method, pad_input=pad)
    want = cconv.match_template(image, templates, method, pad_input=pad)
    got = scores.compute(scheduler=scheduler)
    assert got.shape == want.shape
    scale = 1.0 if method.endswith("normed") else float(np.max(np.abs(want)))
    assert np.max(np.abs(got - want)) / scale <= 1e-12


def test_bad_input_is_refused_like_in_memory():
    x = da.zeros((2, 10, 10), chunks=5)
    with pytest.raises(ValueError, match=r"w \(11, 2\) is larger than x \(10, 10\)"):
        cd.conv_forward(x, np.ones((11, 2)))
    with pytest.raises(ValueError, match=r"x must be a 3-D array"):
        cd.conv_forward(da.zeros((10, 10)), np.ones((2, 2)))
    with pytest.raises(TypeError, match=r"x has unsupported dtype complex128"):
        cd.conv_forward(da.zeros((2, 10, 10), dtype=complex), np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"leading sizes that do not broadcast"):
        cd.conv_forward(x, np.ones((3, 2, 2)))
    with pytest.raises(ValueError, match=r"w has 3 filters but x has 1 images"):
        cd.conv_forward(x[:1], np.ones((3, 2, 2)))
    with pytest.raises(ValueError, match=r"threads_per_task must be a number of threads from 1 to 4096; got 0"):
        cd.conv_forward(x, np.ones((2, 2)), threads_per_task=0)
    out, cache = cd.conv_forward(x, np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"dout has shape \(2, 9, 8\), but the forward output had shape \(2, 9, 9\)"):
        cd.conv_backward(da.zeros((2, 9, 8)), cache)
    with pytest.raises(ValueError, match=r"cache must be the DaskConvCache"):
        cd.conv_backward(da.zeros((2, 9, 9)), cconv.conv_forward(np.ones((2, 10, 10)), np.ones((2, 2)))[1])
    with pytest.raises(ValueError, match=r"method must be one of"):
        cd.match_template(da.zeros((10, 10)), np.ones((2, 2)), "TM_CCOEFF")


def test_import_cconv_does_not_import_dask(tmp_path):
    code = "import sys, cconv; assert 'dask' not in sys.modules, 'dask imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, timeout=60)


def test_tasks_run_single_threaded_in_worker_threads():
    import threading

    seen = []

    def probe(block):
        seen.append((threading.current_thread() is threading.main_thread(), cconv.get_num_threads()))
        return block

    x = da.ones((8, 8), chunks=4)
    # the same rule cconv.dask applies around each of its tasks
    run = cd._with_threads(probe, None)
    x.map_blocks(run, dtype=x.dtype).compute(scheduler="threads")
    assert seen and all(n == 1 for main, n in seen if not main)
    seen.clear()
    x.map_blocks(cd._with_threads(probe, 2), dtype=x.dtype).compute(scheduler="threads")
    assert all(n == 2 for _, n in seen)


# ---------------------------------------------------------------------------
# A real cluster: two worker processes on 127.0.0.1
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed", reason="dask.distributed is in cconv[dask] and cconv[test]")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
        dashboard_address=None, silence_logs=50,
    )
    c = distributed.Client(cluster, timeout=60)
    try:
        c.wait_for_workers(2, timeout=60)
        yield c
    finally:
        c.close(timeout=30)
        cluster.close(timeout=30)


def test_distributed_layer_and_matching(client):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 64, 70))
    w = rng.standard_normal((7, 5))
    out, cache = cd.conv_forward(da.from_array(x, chunks=(2, 32, 35)), w)
    want, want_cache = cconv.conv_forward(x, w)
    dout = rng.standard_normal(want.shape)
    dx, dw = cd.conv_backward(dout, cache)
    image = rng.uniform(0, 1, (200, 210))
    scores = cd.match_template(da.from_array(image, chunks=(50, 70)), image[50:70, 60:75])
    got, got_dx, got_dw, got_scores = client.compute([out, dx, dw, scores], sync=True)
    assert _rel(got, want) <= 1e-12
    want_dx, want_dw = cconv.conv_backward(dout, want_cache)
    assert _rel(got_dx, want_dx) <= 1e-12 and _rel(got_dw, want_dw) <= 1e-12
    assert np.max(np.abs(got_scores - cconv.match_template(image, image[50:70, 60:75]))) <= 1e-12
    # the tasks ran in the worker processes, one cconv thread each
    threads = client.run(lambda: __import__("cconv").dask._task_threads(None))
    assert sorted(threads.values()) == [1, 1]


def test_distributed_worker_killed_mid_computation(client):
    import signal

    def slow(block):  # a local function: pickled by value, for the workers
        time.sleep(0.15)
        return block

    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 48, 48))
    w = rng.standard_normal((5, 5))
    lazy = da.from_array(x, chunks=(1, 24, 48)).map_blocks(slow, dtype=x.dtype)  # 32 slow tasks
    out, cache = cd.conv_forward(lazy, w)
    client.run(os.getpid)  # both workers answer
    future = client.compute(out)
    deadline = time.time() + 30
    while not any(client.processing().values()) and time.time() < deadline:
        time.sleep(0.02)
    time.sleep(0.3)  # some tasks done, some running
    os.kill(min(client.run(os.getpid).values()), signal.SIGKILL)  # its nanny starts a new one
    got = future.result(timeout=120)
    assert _rel(got, cconv.conv_forward(x, w)[0]) <= 1e-12
