"""What the benchmark scripts share: timing, result checks, tables, the machine.

``bench.py`` and ``bench_dask.py`` import this module (it sits beside them,
so it is found when either script runs, from any folder).  The conventions
it fixes hold in every table they print:

- a time is the median of ``repeats`` timed calls after one warm-up call
  (:func:`timeit`);
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
    """What this machine can do at best, measured with NumPy at the start of a run."""

    ceiling: dict[str, float]  # matmul GFLOP/s, by dtype name
    bandwidth: float  # copy GB/s (bytes read plus bytes written)

    def __str__(self) -> str:
        return (f"matmul ceiling: {self.ceiling['float64']:.0f} GFLOP/s float64, "
                f"{self.ceiling['float32']:.0f} GFLOP/s float32; copy bandwidth {self.bandwidth:.1f} GB/s")


def measure_machine(quick: bool) -> Machine:
    """Time square matmuls (float64, float32) and a 256 MiB copy."""
    n = 1024 if quick else 2048
    repeats = 3 if quick else 5
    ceiling = {}
    for dt in (np.float64, np.float32):
        a = np.random.default_rng(0).standard_normal((n, n)).astype(dt)
        t = timeit(lambda: a @ a, repeats)
        ceiling[np.dtype(dt).name] = 2 * n**3 / t / 1e9
    src = np.ones(2**25, dtype=np.float64)  # 256 MiB
    dst = np.empty_like(src)
    t = timeit(lambda: np.copyto(dst, src), repeats)
    return Machine(ceiling, 2 * src.nbytes / t / 1e9)


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
