"""The 4-D layer's direct kernels (method='direct'), each one forced.

Every kernel of ``cconv._conv2d_direct`` is run in every build this CPU can
run (baseline, x86-64-v3, x86-64-v4), not only the one ``cconv._dispatch``
picks, and on every path of the direct passes, not only the one
``cconv._layer4d_plan`` would choose, so that no build or path hides behind
another (``FORCE_KERNEL`` and ``FORCE_PACK`` force them; a forced path that
does not exist is an error, never a fallback):

- the pixel kernel's tiles of 8, 4, 2 and 1 filter rows (``rf``), with
  padded blocks;
- the channel kernel's tiles of one and two vectors of filters, over the
  flattened rows and within each output row, with padded blocks (channel
  and filter counts that are not multiples of a vector);
- the input's planes packed in one pass, or by each work item for itself;
- dx by stride phase (strides above the filter, phases without taps);
- dw over blocks of (channel, tap) rows and filter vectors, and the
  depthwise dw (one channel and one filter per group);

against ``reference.layer_forward`` / ``layer_backward`` (window + einsum in
float64), finite differences, and PyTorch's float64 layer for NaN and Inf.
Also: bit-identical results over thread counts and runs, every thread busy
for a single image, the memory peak, and no BLAS or process-wide setting
touched.
"""

from __future__ import annotations

import importlib
import itertools
import sys
import tracemalloc
import warnings

import numpy as np
import pytest
from cases import max_rel_err, tol
from reference import layer_backward, layer_forward

import cconv
from cconv import _dispatch, _layer4d_plan, _runtime
from cconv.testing import numerical_gradient


def _builds():
    found = []
    for suffix, level in (("", 0), ("_v3", 3), ("_v4", 4)):
        if level > _runtime.cpu_level():
            continue
        try:
            found.append(pytest.param(importlib.import_module(f"cconv._conv2d_direct{suffix}"),
                                      id=suffix.strip("_") or "baseline"))
        except ImportError:
            continue
    return found


@pytest.fixture(params=_builds())
def build(request, monkeypatch):
    """Force one build of the kernels for the test."""
    monkeypatch.setitem(_dispatch.LOADED, "_conv2d_direct", request.param)
    return request.param


# The direct passes' kernels (cconv._layer4d_plan.FORCE_KERNEL): the pixel
# kernel; the row kernel (the pixel kernel's rows written in place; dx with
# a column stride keeps the pixel kernel); the channel kernel with 1 or 2
# vectors of filters, its tiles over the flattened rows or within each
# output row.
KERNELS = {
    "pixel": ("pixel", 0, False),
    "row": ("row", 0, True),
    "channel1": ("channel", 1, False),
    "channel2": ("channel", 2, False),
    "channel1-rows": ("channel", 1, True),
    "channel2-rows": ("channel", 2, True),
}


@pytest.fixture(params=[(k, pack) for k in KERNELS for pack in (False, True)],
                ids=lambda p: f"{p[0]}-{'packed' if p[1] else 'planes'}")
def path(request, monkeypatch):
    """Force one path of every direct pass: a kernel, and planes packed in a pass of
    their own or by each work item (FORCE_PACK; the depthwise dw's too)."""
    name, pack = request.param
    monkeypatch.setattr(_layer4d_plan, "FORCE_KERNEL", KERNELS[name])
    monkeypatch.setattr(_layer4d_plan, "FORCE_PACK", pack)
    return request.param


# (N, C, H, W, F, KH, KW, options), chosen to reach each kernel and block shape.
CASES = [
    (2, 3, 9, 11, 8, 3, 3, {"padding": 1}),  # rf 8 (v4) / 4: full blocks
    (1, 5, 10, 13, 5, 3, 2, {}),  # rf 4 + a padded block
    (2, 4, 8, 9, 3, 2, 3, {"padding": (1, 2)}),  # rf 2, one padded row
    (1, 2, 7, 7, 1, 3, 3, {"padding": 1}),  # rf 1
    (2, 6, 12, 12, 6, 3, 3, {"groups": 6, "padding": 1}),  # depthwise (its own dw)
    (1, 4, 11, 9, 8, 3, 3, {"groups": 4, "stride": 2, "padding": 1}),  # depthwise x2 filters
    (2, 3, 23, 21, 17, 7, 7, {"stride": 2, "padding": 3}),  # the first layer: C=3, 7x7 stride 2
    (2, 9, 10, 10, 70, 1, 1, {}),  # 1x1: one tap; 70 filters: two dw filter blocks
    (2, 8, 11, 13, 12, 1, 1, {"stride": 2}),  # 1x1 stride 2: one phase of four
    (1, 4, 9, 10, 4, 1, 1, {"stride": 3, "padding": 2}),  # dx phases with no tap
    (1, 3, 10, 11, 5, 2, 2, {"stride": 4}),  # stride above the filter: uncovered pixels
    (2, 4, 13, 12, 6, 3, 3, {"dilation": (2, 3), "padding": (2, 1), "stride": (1, 2)}),
    (1, 2, 5, 5, 3, 3, 3, {"padding": 4}),  # padding beyond the filter
    (1, 7, 6, 30, 9, 3, 5, {"stride": (2, 3), "groups": 1, "padding": "valid"}),
    (2, 4, 7, 8, 6, 3, 3, {"groups": 2, "padding": "same", "dilation": 2}),
    (1, 16, 9, 9, 24, 3, 3, {"groups": 4, "padding": 1}),  # K = 36 rows: blocks of 6 rows
    (3, 1, 12, 11, 2, 4, 3, {"padding": "same"}),  # one channel, several images and filters
    (2, 17, 9, 10, 19, 3, 3, {"padding": 1}),  # odd counts: a part-filled vector of filters
    (1, 6, 8, 9, 33, 3, 3, {"groups": 3, "stride": 2}),  # 11 filters a group, 2 channels
    (1, 3, 30, 61, 37, 3, 3, {"dilation": 2, "padding": 2}),  # rows of several tiles, the last moved back
    (1, 8, 13, 40, 16, 5, 5, {"groups": 8, "padding": 2}),  # depthwise, 2 filters a channel, wide rows
    (2, 5, 7, 31, 35, 1, 1, {"stride": (1, 2)}),  # 1x1, 35 filters, stride along the rows only
]


def _ids(case):
    n, c, h, w, f, kh, kw, opts = case
    extra = ",".join(f"{k}={v}" for k, v in opts.items())
    return f"x{n}x{c}x{h}x{w}-w{f}x{kh}x{kw}" + (f"-{extra}" if extra else "")


def _make(rng, case, dtype):
    n, c, h, w, f, kh, kw, opts = case
    g = opts.get("groups", 1)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c // g, kh, kw)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    return x, wt, b, opts


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_each_build_and_path_against_reference(rng, build, path, case, dtype):
    x, w, b, opts = _make(rng, case, dtype)
    out, cache = cconv.conv2d_forward(x, w, b, **opts, method="direct")
    assert cache.method == "direct"
    assert out.dtype == dtype and out.flags.c_contiguous
    assert max_rel_err(out, layer_forward(x, w, b, **opts)) <= tol(dtype)
    dout = rng.standard_normal(out.shape).astype(dtype)
    got = cconv.conv2d_backward(dout, cache, method="direct")
    for name, g, want in zip(("dx", "dw", "db"), got, layer_backward(x, w, dout, **opts)):
        assert g.shape == want.shape and g.dtype == dtype, name
        assert max_rel_err(g, want) <= tol(dtype), name


@pytest.mark.parametrize(
    "case",
    [(1, 3, 6, 7, 4, 3, 3, {"stride": 2, "padding": 1}),
     (2, 4, 6, 6, 4, 3, 3, {"groups": 4, "dilation": 2, "padding": "same"}),
     (1, 3, 9, 9, 5, 7, 7, {"stride": 2, "padding": 3})],
    ids=_ids,
)
def test_gradients_by_finite_differences(rng, path, case):
    x, w, b, opts = _make(rng, case, np.float64)
    out, cache = cconv.conv2d_forward(x, w, b, **opts, method="direct")
    dout = rng.standard_normal(out.shape)
    dx, dw, db = cconv.conv2d_backward(dout, cache, method="direct")

    def fwd(xx, ww, bb):
        return cconv.conv2d_forward(xx, ww, bb, **opts, method="direct")[0]

    num = (numerical_gradient(lambda v: fwd(v, w, b), x, dout),
           numerical_gradient(lambda v: fwd(x, v, b), w, dout),
           numerical_gradient(lambda v: fwd(x, w, v), b, dout))
    for got, want in zip((dx, dw, db), num):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-8)


REPRO = [  # each pass above the size that runs serially (SERIAL_FLOPS)
    (3, 16, 33, 31, 24, 3, 3, {"padding": 1}),
    (1, 32, 41, 40, 32, 3, 3, {"stride": 2, "padding": 1}),  # one image, one group
    (4, 64, 40, 40, 64, 3, 3, {"groups": 64, "padding": 1}),  # depthwise
    (2, 64, 40, 40, 96, 1, 1, {}),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", REPRO, ids=_ids)
def test_bit_identical_over_thread_counts_and_runs(rng, build, path, case, dtype):
    x, w, b, opts = _make(rng, case, dtype)
    results = []
    for threads in (1, 2, 3, 1, 5):
        with cconv.threads(threads):
            out, cache = cconv.conv2d_forward(x, w, b, **opts, method="direct")
            dout = np.cos(out)
            dx, dw, _ = cconv.conv2d_backward(dout, cache, method="direct")
        results.append((out, dx, dw))
    for out, dx, dw in results[1:]:
        for name, a, e in zip(("out", "dx", "dw"), (out, dx, dw), results[0]):
            assert np.array_equal(a, e), f"{name} changed with the thread count"


@pytest.mark.parametrize("threads", [2, 4])
def test_single_image_single_group_has_work_for_every_thread(monkeypatch, threads):
    """Each pass splits one image of one group into at least as many work items as threads."""
    if not _runtime.openmp_enabled():
        pytest.skip("built without OpenMP: one thread")
    real = _dispatch.conv2d_module()
    items = {}

    class Recorder:
        def __getattr__(self, name):
            return getattr(real, name)

        def direct_pass(self, src, wp, koff, parts, out, bias, tmp, plan, planes):
            tile, per_row = plan["tile"], plan["row_tiles"]
            ntiles = max(int(oh) * per_row if per_row else -(-(int(oh) * plan["src_row"]) // tile)
                         for oh in parts[:, 4])
            items.setdefault("direct_pass", []).append(
                plan["images"] * plan["groups"] * -(-plan["fblocks"] // plan["fchunk"]) * -(-ntiles // plan["band"]))
            items.setdefault("threads", []).append(plan["threads"])
            return real.direct_pass(src, wp, koff, parts, out, bias, tmp, plan, planes)

        def dw_pass(self, src, d_t, roff, acc, plan):
            items["dw_pass"] = plan["sums"] * plan["parts"]
            items["threads"].append(plan["threads"])
            return real.dw_pass(src, d_t, roff, acc, plan)

    monkeypatch.setitem(_dispatch.LOADED, "_conv2d_direct", Recorder())
    # The thread count as set, not fewer on a busy machine.
    monkeypatch.setattr(cconv._threads, "ADAPTIVE", False)
    x = np.ones((1, 64, 40, 40), np.float32)
    w = np.ones((64, 64, 3, 3), np.float32)
    with cconv.threads(threads):
        out, cache = cconv.conv2d_forward(x, w, padding=1, stride=2, method="direct")
        cconv.conv2d_backward(out, cache, method="direct")
    assert len(items["direct_pass"]) == 2  # forward, and dx (its four stride phases in one call)
    assert min(items["direct_pass"]) >= threads and items["dw_pass"] >= threads, items
    assert items["threads"] == [threads] * 3, items


@pytest.mark.parametrize("case", [CASES[0], CASES[5], CASES[17]], ids=_ids)
def test_forced_paths_reach_the_kernels(monkeypatch, build, path, case):
    """The plans every direct pass and the depthwise dw hand the kernels are the forced path's."""
    name, pack = path
    kind, vectors, rows = KERNELS[name]
    plans = []

    class Recorder:
        def __getattr__(self, attr):
            return getattr(build, attr)

        def direct_pass(self, *args):
            plans.append(("direct_pass", args[7]))
            return build.direct_pass(*args)

        def dw_dot(self, *args):
            plans.append(("dw_dot", args[4]))
            return build.dw_dot(*args)

    monkeypatch.setitem(_dispatch.LOADED, "_conv2d_direct", Recorder())
    for dtype in (np.float32, np.float64):
        x, w, b, opts = _make(np.random.default_rng(0), case, dtype)
        out, cache = cconv.conv2d_forward(x, w, b, **opts, method="direct")
        cconv.conv2d_backward(out, cache, method="direct")
        lanes = build.blocking()["vector_bytes"] // np.dtype(dtype).itemsize
        direct = [p for f, p in plans if f == "direct_pass"]
        assert len(direct) == 2, plans  # forward and dx
        stride = opts.get("stride", 1)
        for which, plan in zip(("forward", "dx"), direct):
            # dx with a column stride writes every sw-th column: the row kernel's rows are the pixel kernel's.
            strided = which == "dx" and (stride if isinstance(stride, int) else stride[1]) > 1
            assert plan["kernel"] == _layer4d_plan.KINDS["pixel" if kind == "row" and strided else kind], plan
            assert plan["packed"] == pack, plan  # every case has padding: nothing is read in place
            if kind == "channel":
                assert plan["block"] == vectors * lanes and (plan["row_tiles"] > 0) == rows, plan
        assert all(p["packed"] == pack for f, p in plans if f == "dw_dot")
        plans.clear()


def test_small_layers_run_on_one_thread(monkeypatch):
    """A tiny pass is not worth waking threads for: it runs serially."""
    real = _dispatch.conv2d_module()
    used = []

    class Recorder:
        def __getattr__(self, name):
            return getattr(real, name)

        def direct_pass(self, *args):
            used.append(args[7]["threads"])
            return real.direct_pass(*args)

    monkeypatch.setitem(_dispatch.LOADED, "_conv2d_direct", Recorder())
    with cconv.threads(2):
        out, cache = cconv.conv2d_forward(np.ones((2, 4, 12, 11)), np.ones((6, 2, 3, 3)), groups=2,
                                          method="direct")
        cconv.conv2d_backward(out, cache, method="direct")
    assert used == [1, 1]


def _torch_f64(x, w, dout, opts):
    torch = pytest.importorskip("torch", reason="PyTorch is an optional test peer")
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    out = torch.nn.functional.conv2d(xt, wt, **opts)
    dx, dw = torch.autograd.grad(out, (xt, wt), torch.from_numpy(dout))
    return out.detach().numpy(), dx.numpy(), dw.numpy()


def _same_nonfinite(a, e):
    return (np.array_equal(np.isnan(a), np.isnan(e)) and np.array_equal(a == np.inf, e == np.inf)
            and np.array_equal(a == -np.inf, e == -np.inf))


NONFINITE = [
    (1, 3, 9, 8, 4, 3, 3, {"padding": 1}),
    (2, 4, 9, 10, 4, 3, 2, {"stride": 2, "padding": (2, 1), "groups": 2}),
    (1, 4, 8, 8, 4, 3, 3, {"groups": 4, "padding": 1}),  # depthwise
    (1, 2, 10, 10, 3, 1, 1, {"stride": 3, "padding": 1}),
    (1, 3, 12, 12, 5, 5, 5, {"stride": 2, "padding": 2, "dilation": (1, 2)}),
]


@pytest.mark.parametrize("where", ["x", "w", "dout", "all"])
@pytest.mark.parametrize("case", NONFINITE, ids=_ids)
def test_nonfinite_as_torch(rng, build, path, case, where):
    x, w, _, opts = _make(rng, case, np.float64)
    out_shape = cconv.conv2d_forward(x, w, **opts, method="direct")[0].shape
    dout = rng.standard_normal(out_shape)
    w[0, 0, 0, 0] = 0.0  # a zero tap meets an infinite input: NaN
    for arr, name in ((x, "x"), (w, "w"), (dout, "dout")):
        if where in (name, "all"):
            flat = arr.reshape(-1)
            idx = rng.choice(flat.size, size=min(3, flat.size), replace=False)
            flat[idx] = [np.inf, -np.inf, np.nan][: len(idx)]
    out, cache = cconv.conv2d_forward(x, w, **opts, method="direct")
    dx, dw, _ = cconv.conv2d_backward(dout, cache, method="direct")
    want = _torch_f64(x, w, dout, opts)
    for name, got, e in zip(("out", "dx", "dw"), (out, dx, dw), want):
        assert _same_nonfinite(got, e), f"{name}: NaN/Inf not where PyTorch has them"
        fin = np.isfinite(e)
        assert np.allclose(got[fin], e[fin], rtol=1e-10, atol=1e-10), name


TORCH_OPTIONS = [
    dict(stride=s, padding=p, dilation=d, groups=g)
    for s, p, d, g in itertools.product([1, 2, (1, 3)], [0, 1, (2, 1), "same"], [1, 2], [1, 2, 4])
    if not (p == "same" and s != 1)
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("opts", TORCH_OPTIONS, ids=str)
def test_direct_against_torch_grid(rng, monkeypatch, build, kernel, opts, dtype):
    """Every option against PyTorch, on every build and kernel (packing per item on half the options)."""
    torch = pytest.importorskip("torch", reason="PyTorch is an optional test peer")
    monkeypatch.setattr(_layer4d_plan, "FORCE_KERNEL", KERNELS[kernel])
    monkeypatch.setattr(_layer4d_plan, "FORCE_PACK", TORCH_OPTIONS.index(opts) % 2 == 0)
    x = rng.standard_normal((2, 4, 11, 10)).astype(dtype)
    w = rng.standard_normal((8, 4 // opts["groups"], 3, 2)).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    out, cache = cconv.conv2d_forward(x, w, b, **opts, method="direct")
    dout = rng.standard_normal(out.shape).astype(dtype)
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    with warnings.catch_warnings():  # 'same' with an even filter: PyTorch pads a copy, and says so
        warnings.simplefilter("ignore", UserWarning)
        want = torch.nn.functional.conv2d(xt, wt, bt, **opts)
    grads = torch.autograd.grad(want, (xt, wt, bt), torch.from_numpy(dout))
    assert max_rel_err(out, want.detach().numpy()) <= tol(dtype)
    for got, e in zip(cconv.conv2d_backward(dout, cache, method="direct"), grads):
        assert max_rel_err(got, e.numpy()) <= tol(dtype)


@pytest.mark.parametrize("case", [
    (4, 64, 56, 56, 64, 3, 3, {"padding": 1}),
    (2, 3, 112, 112, 64, 7, 7, {"stride": 2, "padding": 3}),
    (4, 64, 56, 56, 64, 3, 3, {"groups": 64, "padding": 1}),
], ids=_ids)
def test_memory_peak_is_bounded(rng, case):
    """No im2col: a pass allocates its results, one padded copy of its input
    (and of dout for dx), the output gradient filters last, and small blocks."""
    x, w, b, opts = _make(rng, case, np.float32)
    out, cache = cconv.conv2d_forward(x, w, b, **opts, method="direct")  # warm up
    dout = np.ones_like(out)
    xpad = x.shape[0] * x.shape[1] * (x.shape[2] + 8) * (x.shape[3] + 8) * 4
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        cconv.conv2d_forward(x, w, b, **opts, method="direct")
        _, fwd_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        cconv.conv2d_backward(dout, cache, method="direct")
        _, bwd_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    window = w.shape[1] * w.shape[2] * w.shape[3]
    im2col = out.shape[0] * out.shape[2] * out.shape[3] * window * 4
    assert fwd_peak <= out.nbytes + 1.2 * xpad + 4 * w.nbytes + 2**20
    assert bwd_peak <= x.nbytes + w.nbytes + 1.2 * xpad + 2.5 * dout.nbytes + 1.2 * xpad + 8 * w.nbytes + 2**21
    if window >= 27:  # where an im2col matrix would be much larger than x
        assert fwd_peak < im2col and bwd_peak < im2col + x.nbytes


def test_no_blas_and_no_process_wide_setting(rng):
    """The 4-D layer neither loads a BLAS route nor changes any library's thread setting."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [(lib["filepath"], lib["num_threads"]) for lib in threadpoolctl.threadpool_info()]
    x, w, b, opts = _make(rng, CASES[0], np.float32)
    with cconv.threads(2):
        out, cache = cconv.conv2d_forward(x, w, b, **opts)
        assert cache.method == "direct"
        cconv.conv2d_backward(out, cache)
        # 'gemm' is another name of the same route.
        assert cconv.conv2d_forward(x, w, b, **opts, method="gemm")[1].method == "direct"
    assert [(lib["filepath"], lib["num_threads"]) for lib in threadpoolctl.threadpool_info()] == before
    assert not any(name in sys.modules for name in ("cconv._gemm", "cconv._blas", "cconv._tiling"))
