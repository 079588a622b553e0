"""What the benchmark scripts share: timing, result checks, tables, the machine.

``bench.py`` and ``bench_dask.py`` import this module (it sits beside them,
so it is found when either script runs, from any folder).  The conventions
it fixes hold in every table they print:

- a time is the median of ``repeats`` timed calls after one warm-up call
  (:func:`timeit`), or of calls alternating with a peer's, so that a busy
  machine slows both alike (:func:`timeit_pair`);
- every timed result is first checked against a reference (SciPy, a NumPy
  formula, a peer or the in-memory call), and a wrong one aborts the run
  (:func:`check`);
- a ratio is a speed-up, the other time over cconv's time (:data:`SPEEDUP`,
  :func:`speedup`): above 1, cconv is faster.

Only cconv's public API is used.
"""

from __future__ import annotations

import functools
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType

import numpy as np

import cconv

SPEEDUP = "speed-up = other time / cconv time (above 1: cconv faster)"


@dataclass
class _Collect:
    """The contended run's first pass: tables record cconv's calls, time nothing, print nothing."""

    on: bool = False
    calls: list[tuple[str, Callable[[], object]]] = field(default_factory=list)


COLLECT = _Collect()


def timeit(fn: Callable[[], object], repeats: int) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls, after a warm-up."""
    if COLLECT.on:
        return float("nan")
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def timeit_pair(fa: Callable[[], object], fb: Callable[[], object], repeats_a: int, repeats_b: int | None = None,
                warm_up: bool = True) -> tuple[float, float]:
    """Median wall-clock seconds of ``fa()`` and of ``fb()``, timed in alternation.

    ``repeats_a`` calls of ``fa`` and ``repeats_b`` (default: as many) of
    ``fb``, the fewer spread evenly among the more (a slow peer can be
    called less often), after one warm-up call of each unless ``warm_up``
    is false (the caller has just called both, to check their results).
    """
    if COLLECT.on:
        return float("nan"), float("nan")
    repeats_b = repeats_a if repeats_b is None else repeats_b
    if warm_up:
        fa()
        fb()
    n = max(repeats_a, repeats_b)
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(n):
        for fn, repeats, into in ((fa, repeats_a, times[0]), (fb, repeats_b, times[1])):
            if (i + 1) * repeats // n > i * repeats // n:  # this call's share of the run is due
                start = time.perf_counter()
                fn()
                into.append(time.perf_counter() - start)
    return float(np.median(times[0])), float(np.median(times[1]))


def check(actual, expected, what: str, tol: float | None = None, scale: float | None = None) -> None:
    """Abort the run unless ``actual`` matches ``expected``.

    The error is normwise: the largest absolute difference over ``scale``
    (default: the largest ``|expected|``).  ``tol`` defaults to 1e-4 when
    either side is float32, else 1e-10.
    """
    actual, expected = np.asarray(actual), np.asarray(expected)
    if tol is None:
        tol = 1e-4 if np.float32 in (actual.dtype, expected.dtype) else 1e-10
    actual, expected = actual.astype(np.float64), expected.astype(np.float64)
    if actual.shape != expected.shape:
        sys.exit(f"benchmark: WRONG RESULT for {what}: shape {actual.shape}, expected {expected.shape}")
    if scale is None:
        scale = max(float(np.max(np.abs(expected))), 1e-300)
    err = float(np.max(np.abs(actual - expected))) / scale
    if not err <= tol:
        sys.exit(f"benchmark: WRONG RESULT for {what}: normwise error {err:.2e} > {tol:.0e}")


def ms(seconds: float) -> str:
    """Milliseconds, with three decimals below 10 ms and one above."""
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


def speedup(other: float, mine: float) -> str:
    """The speed-up of cconv (time ``mine``) over another call (time ``other``)."""
    if COLLECT.on:
        return ""
    ratio = other / mine
    return f"{ratio:.0f}x" if ratio >= 100 else f"{ratio:.1f}x" if ratio >= 10 else f"{ratio:.2f}x"


def table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """Print a markdown table under a ``###`` title."""
    if COLLECT.on:
        return
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(row) + " |")


@dataclass(frozen=True)
class Machine:
    """What this machine can do at best, measured at the start of a run."""

    ceiling: dict[str, float]  # matmul GFLOP/s, by dtype name
    ceiling_source: dict[str, str]  # whose matmul reached it, by dtype name
    bandwidth: float  # copy GB/s (bytes read plus bytes written)
    threads: int  # the thread count the ceiling was measured on

    def __str__(self) -> str:
        return (f"matmul ceiling ({self.threads} threads, best {CEILING_N}^2 product): "
                f"{self.ceiling['float64']:.0f} GFLOP/s float64 ({self.ceiling_source['float64']}), "
                f"{self.ceiling['float32']:.0f} GFLOP/s float32 ({self.ceiling_source['float32']}); "
                f"copy bandwidth {self.bandwidth:.1f} GB/s")


CEILING_N = 2048  # the square matrix product the ceiling is measured on

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


def _numpy_ceiling(dtype: str, threads: int, repeats: int) -> tuple[float, str]:
    """GFLOP/s of NumPy's matmul in a child process whose OpenBLAS picks its own kernels.

    A machine may set ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` (for old
    OpenBLAS builds), which hold a current one on slower kernels (a third to
    a half slower here): the child runs without both, so the ceiling is what
    the machine can do, not what this process's NumPy does.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = str(threads)
    try:
        out = subprocess.run([sys.executable, "-c", _CEILING_CHILD, str(CEILING_N), dtype, str(threads),
                              str(repeats)], env=env, capture_output=True, text=True, timeout=300, check=True)
        gflops, arch = out.stdout.split()
        return float(gflops), f"NumPy's OpenBLAS, {arch}"
    except (subprocess.SubprocessError, ValueError, OSError):
        return 0.0, "NumPy failed"


def matmul_ceiling(dtype: str, threads: int, repeats: int) -> tuple[float, str]:
    """GFLOP/s of the best square matrix product on ``threads`` threads, and whose it was.

    The best of NumPy's (in a child process, :func:`_numpy_ceiling`) and,
    where PyTorch is installed, torch's, each the fastest of ``repeats``
    calls after a warm-up: a ceiling, not a typical time.
    """
    best = _numpy_ceiling(dtype, threads, repeats)
    torch = peer("torch")
    if torch is not None:
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            rng = np.random.default_rng(0)
            a, b = (torch.from_numpy(rng.standard_normal((CEILING_N, CEILING_N)).astype(dtype)) for _ in "ab")
            torch.matmul(a, b)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                torch.matmul(a, b)
                times.append(time.perf_counter() - start)
        finally:
            torch.set_num_threads(before)
        gflops = 2.0 * CEILING_N**3 / min(times) / 1e9
        if gflops > best[0]:
            best = (gflops, "torch")
    return best


def measure_machine(quick: bool, threads: int | None = None) -> Machine:
    """The matmul ceilings (float64, float32) on ``threads`` (cconv's count) and a 256 MiB copy."""
    threads = threads or cconv.get_num_threads()
    repeats = 3 if quick else 5
    found = {name: matmul_ceiling(name, threads, repeats) for name in ("float64", "float32")}
    src = np.ones(2**25, dtype=np.float64)  # 256 MiB
    dst = np.empty_like(src)
    t = timeit(lambda: np.copyto(dst, src), repeats)
    return Machine({k: v[0] for k, v in found.items()}, {k: v[1] for k, v in found.items()},
                   2 * src.nbytes / t / 1e9, threads)


@functools.cache
def peer(name: str) -> ModuleType | None:
    """The module ``name`` of an optional peer, or None where it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def print_header(versions: dict[str, str]) -> None:
    """What ran: cconv's own ``show_config()``, the CPUs and the other packages' versions."""
    print("```")
    cconv.show_config()
    print("```")
    others = "".join(f", {name} {version}" for name, version in versions.items())
    print(f"{os.cpu_count()} CPUs{others}.")
