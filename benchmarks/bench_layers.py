"""The 4-D layer on real networks' layers: cconv against PyTorch's CPU convolution.

    python benchmarks/bench_layers.py [--quick] [--threads 2] [--repeats 15]

For each layer of the table (ResNet-18 and MobileNet shapes), both dtypes,
forward and forward+backward: the median time of cconv and of
``torch.nn.functional.conv2d`` (oneDNN), taken interleaved (cconv, torch,
cconv, ...) so that a busy machine slows both alike, their ratio (cconv /
torch), cconv's GFLOP/s and its share of the matrix-product ceiling measured
in the same run (the best of NumPy's and torch's matmul, same dtype and
threads), the goal, and whether it is met.  Every result is first checked
against torch (forward output and the three gradients).

Goals (issue #16): float32 at most 1.0x torch's time; float64 at most 0.5x
torch's time, and at least 70% of the float64 matmul ceiling on the
compute-bound layers (conv1, layer1-3).

``layers_table(...)`` returns the rows, for ``bench.py --only layers``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import cconv

# name, x shape, w shape, options, compute-bound (the ceiling goal applies)
LAYERS = [
    ("ResNet-18 conv1, 7x7 s2, C3->64, 224^2 (N4)", (4, 3, 224, 224), (64, 3, 7, 7),
     dict(stride=2, padding=3), True),
    ("ResNet-18 layer1, 3x3, C64->64, 56^2 (N8)", (8, 64, 56, 56), (64, 64, 3, 3), dict(padding=1), True),
    ("ResNet-18 layer2, 3x3, C128->128, 28^2 (N8)", (8, 128, 28, 28), (128, 128, 3, 3), dict(padding=1), True),
    ("ResNet-18 layer3, 3x3, C256->256, 14^2 (N8)", (8, 256, 14, 14), (256, 256, 3, 3), dict(padding=1), True),
    ("ResNet-18 downsample, 1x1 s2, C64->128, 56^2 (N8)", (8, 64, 56, 56), (128, 64, 1, 1), dict(stride=2), False),
    ("MobileNet depthwise, 3x3, C64, groups 64, 56^2 (N8)", (8, 64, 56, 56), (64, 1, 3, 3),
     dict(padding=1, groups=64), False),
    ("MobileNet pointwise, 1x1, C64->128, 56^2 (N8)", (8, 64, 56, 56), (128, 64, 1, 1), {}, False),
]


def _flops(x_shape, w_shape, out_shape) -> float:
    """Multiply-adds x 2 of the forward pass (dx and dw take as many each)."""
    return 2.0 * out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3] * w_shape[1] * w_shape[2] * w_shape[3]


def _median_pair(fa, fb, repeats):
    """Medians of fa() and fb() timed alternately, after one warm-up call of each."""
    fa()
    fb()
    ta, tb = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fa()
        ta.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        fb()
        tb.append(time.perf_counter() - t0)
    return statistics.median(ta), statistics.median(tb)


_CEILING_CHILD = """
import sys, time, numpy as np
n, dtype, threads, repeats = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
try:
    from threadpoolctl import threadpool_info, threadpool_limits
    threadpool_limits(threads, user_api="blas")
    arch = ",".join(str(lib.get("architecture")) for lib in threadpool_info() if lib["user_api"] == "blas")
except ImportError:
    arch = "?"
rng = np.random.default_rng(0)
a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
a @ b
ts = []
for _ in range(repeats):
    t = time.perf_counter(); a @ b; ts.append(time.perf_counter() - t)
print(2.0 * n**3 / min(ts) / 1e9, arch)
"""


def _numpy_ceiling(dtype, threads: int, repeats: int) -> tuple[float, str]:
    """NumPy's matmul in a child process with its OpenBLAS free to pick its own kernels.

    This workplace may set OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE (for old
    OpenBLAS builds), which hold a current one on slower kernels: the child
    runs without both, so the ceiling is what the machine can do.
    """
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = str(threads)
    try:
        out = subprocess.run([sys.executable, "-c", _CEILING_CHILD, "2048", np.dtype(dtype).name, str(threads),
                              str(repeats)], env=env, capture_output=True, text=True, timeout=300, check=True)
        gflops, arch = out.stdout.split()
        return float(gflops), arch
    except (subprocess.SubprocessError, ValueError, OSError):
        return 0.0, "failed"


def matmul_ceiling(torch, dtype, threads: int, repeats: int) -> tuple[float, str]:
    """GFLOP/s of the best square matrix product (NumPy's OpenBLAS or torch's) on these threads."""
    n = 2048
    rng = np.random.default_rng(0)
    ta = torch.from_numpy(rng.standard_normal((n, n)).astype(dtype))
    tb = torch.from_numpy(rng.standard_normal((n, n)).astype(dtype))
    torch.matmul(ta, tb)
    ts = []
    for _ in range(max(3, repeats // 2)):
        t0 = time.perf_counter()
        torch.matmul(ta, tb)
        ts.append(time.perf_counter() - t0)
    t_torch = 2.0 * n**3 / min(ts) / 1e9
    t_numpy, arch = _numpy_ceiling(dtype, threads, max(3, repeats // 2))
    if t_numpy >= t_torch:
        return t_numpy, f"NumPy's OpenBLAS ({arch})"
    return t_torch, "torch"


def _check(torch, x, w, b, opts, dtype):
    out, cache = cconv.conv2d_forward(x, w, b, **opts)
    dout = np.random.default_rng(1).standard_normal(out.shape).astype(dtype)
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    ot = torch.nn.functional.conv2d(xt, wt, bt, **opts)
    grads = torch.autograd.grad(ot, (xt, wt, bt), torch.from_numpy(dout))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for name, got, want in zip(("out", "dx", "dw", "db"), (out, *cconv.conv2d_backward(dout, cache)),
                               (ot.detach().numpy(), *(g.numpy() for g in grads))):
        err = np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-30)
        if not err <= tol:
            raise AssertionError(f"{name} differs from torch: relative error {err:.2e}")
    return dout


def layers_table(quick: bool = False, threads: int = 2, repeats: int = 15, out=sys.stdout):
    import torch

    torch.set_num_threads(threads)
    cconv.set_num_threads(threads)
    repeats = 3 if quick else repeats
    if quick:
        print("--quick: one image per layer (N=1), 3 repeats: a smoke run, not the issue's table", file=out)
    rows = []
    found = {dt: matmul_ceiling(torch, dt, threads, repeats) for dt in (np.float32, np.float64)}
    ceilings = {dt: g for dt, (g, _) in found.items()}
    print(f"matmul ceiling ({threads} threads, best of 2048^3 products): "
          f"float32 {ceilings[np.float32]:.0f} GFLOP/s ({found[np.float32][1]}), "
          f"float64 {ceilings[np.float64]:.0f} GFLOP/s ({found[np.float64][1]})", file=out)
    header = (f"{'layer':52s} {'dtype':7s} {'pass':7s} {'cconv ms':>9s} {'torch ms':>9s} {'ratio':>6s} "
              f"{'GFLOP/s':>8s} {'ceil%':>6s}  goal                met")
    print(header, file=out)
    print("-" * len(header), file=out)
    rng = np.random.default_rng(0)
    for name, xs, ws, opts, bound in LAYERS:
        if quick:
            xs = (1,) + xs[1:]
        for dtype in (np.float32, np.float64):
            x = rng.standard_normal(xs).astype(dtype)
            w = (rng.standard_normal(ws) / np.sqrt(np.prod(ws[1:]))).astype(dtype)
            b = rng.standard_normal(ws[0]).astype(dtype)
            dout = _check(torch, x, w, b, opts, dtype)
            xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))
            xg, wg, bg = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
            dt = torch.from_numpy(dout)

            def c_fwd():
                cconv.conv2d_forward(x, w, b, **opts)

            def t_fwd():
                with torch.no_grad():
                    torch.nn.functional.conv2d(xt, wt, bt, **opts)

            def c_both():
                _, cache = cconv.conv2d_forward(x, w, b, **opts)
                cconv.conv2d_backward(dout, cache)

            def t_both():
                o = torch.nn.functional.conv2d(xg, wg, bg, **opts)
                torch.autograd.grad(o, (xg, wg, bg), dt)

            flops = _flops(xs, ws, dout.shape)
            for label, fc, ft, mult in (("fwd", c_fwd, t_fwd, 1), ("fwd+bwd", c_both, t_both, 3)):
                tc, tt = _median_pair(fc, ft, repeats)
                ratio = tc / tt
                gflops = mult * flops / tc / 1e9
                share = gflops / ceilings[dtype]
                if dtype == np.float32:
                    goal, met = "<= 1.0x torch", ratio <= 1.0
                elif bound:
                    goal, met = "<= 0.5x, >= 70% ceil", ratio <= 0.5 and share >= 0.7
                else:
                    goal, met = "<= 0.5x torch", ratio <= 0.5
                row = dict(layer=name, dtype=np.dtype(dtype).name, pass_=label, cconv_ms=tc * 1e3,
                           torch_ms=tt * 1e3, ratio=ratio, gflops=gflops, share=share, goal=goal, met=met)
                rows.append(row)
                print(f"{name:52s} {row['dtype']:7s} {label:7s} {tc * 1e3:9.2f} {tt * 1e3:9.2f} "
                      f"{ratio:6.2f} {gflops:8.1f} {share * 100:5.0f}%  {goal:19s} "
                      f"{'yes' if met else 'NO'}", file=out, flush=True)
    met = sum(r["met"] for r in rows)
    print(f"{met} of {len(rows)} cells meet the goal", file=out)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one image per layer, 3 repeats (a smoke run)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=15)
    args = p.parse_args(argv)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("bench_layers needs PyTorch (pip install torch==2.13.0)", file=sys.stderr)
        return 1
    print(f"cconv {cconv.__version__}, kernels: {cconv._build.name}")
    layers_table(args.quick, args.threads, args.repeats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
