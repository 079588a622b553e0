"""``cconv.show_config()``: what this installation of cconv is and will do."""

from __future__ import annotations

import os
import platform
import sys

import numpy as np
import scipy

from . import _build, _runtime
from ._threads import get_num_threads
from ._version import __version__


def config() -> dict[str, object]:
    """The facts :func:`show_config` prints, as a dict."""
    kernels = _build.correlate_module
    compiler, flags = kernels.build_info()
    return {
        "version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "kernels": f"{_build.name} ({kernels.__name__})",
        "cpu_level": _runtime.cpu_level(),
        "compiler": compiler,
        "flags": flags,
        "openmp": _runtime.openmp_enabled(),
        "threads": get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "CCONV_KERNELS": os.environ.get("CCONV_KERNELS", "(unset)"),
        "conv2d_kernels": _build.conv2d_module().__name__,
    }


def show_config() -> None:
    """Print cconv's version, build and run-time configuration.

    The compiled build in use (baseline, x86-64-v3 or x86-64-v4) and the
    compiler and flags it was built with, whether OpenMP is on and how many
    threads cconv will use, the versions of Python, NumPy and SciPy, and the
    module of the 4-D layer's kernels (the same build).
    """
    facts = config()
    width = max(map(len, facts))
    for key, value in facts.items():
        print(f"{key:<{width}} : {value}")
