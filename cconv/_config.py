"""``cconv.show_config()``: what this installation of cconv is and will do."""

from __future__ import annotations

import os
import platform
import sys

import numpy as np
import scipy

from . import _dispatch, _runtime, _validation
from ._threads import get_num_threads
from ._version import __version__


def _cpu_level() -> str:
    level, query = _runtime.cpu_level(), _runtime.cpu_query()
    return f"{level} ({query})" if query.startswith("none") else f"{level} (by {query})"


def config() -> dict[str, object]:
    """The facts :func:`show_config` prints, as a dict."""
    kernels = _dispatch.correlate_module
    compiler, flags = kernels.build_info()
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "kernels": f"{_dispatch.name} ({kernels.__name__})",
        "cpu_level": _cpu_level(),
        "compiler": compiler,
        "flags": flags,
        "openmp": _runtime.openmp_note() + ("" if _runtime.openmp_enabled() else " (the loops run on one thread)"),
        "threads": get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "CCONV_KERNELS": os.environ.get("CCONV_KERNELS", "(unset)"),
        "conv2d_kernels": _dispatch.conv2d_module().__name__,
        "memory_check": _validation.memory_check(),
    }


def show_config() -> None:
    """Print cconv's version, build and run-time configuration.

    The compiled build in use (baseline, x86-64-v3 or x86-64-v4), how the
    CPU was asked, and the compiler and flags it was built with, whether
    OpenMP is on (or why not) and how many threads cconv will use, the
    versions of Python, NumPy and SciPy, the module of the 4-D layer's
    kernels (the same build), and whether large calls are checked against
    the memory available (and how it is asked).
    """
    facts = config()
    width = max(map(len, facts))
    for key, value in facts.items():
        print(f"{key:<{width}} : {value}")
