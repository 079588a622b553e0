"""Which compiled build of the loops this process runs, for each family of them.

``cconv._correlate`` (the 3-D engine's loops), ``cconv._conv2d_direct``
(the 4-D layer's kernels) and ``cconv._exact`` (the sums rounded as
SciPy's) run on any CPU; on x86-64 their twins ``*_v3`` (AVX2, FMA) and
``*_v4`` (AVX-512) are the same loops compiled for newer instruction sets.
The best build the running CPU supports is imported once, here, the same
for every family.  ``CCONV_KERNELS=baseline`` (or ``v3``) caps the choice, to
compare builds or to rule one out when hunting a bug.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from . import _runtime

__all__ = ["LEVELS", "LOADED", "conv2d_module", "correlate_module", "exact_module", "load", "module", "name"]

LEVELS = {"baseline": 0, "v3": 3, "v4": 4}


def load(family: str) -> tuple[str, ModuleType]:
    """The best build of ``cconv.<family>`` this CPU runs: ``(build name, module)``.

    A family with per-ISA twins (setup.py's ``ISA_TWINS``) has modules
    ``cconv.<family>_v4`` and ``_v3`` where they were built; one without
    twins, or a build without them (not x86-64, or switched off), gives its
    baseline module.
    """
    cap = os.environ.get("CCONV_KERNELS", "v4").strip().lower()
    if cap not in LEVELS:
        raise ImportError(f"CCONV_KERNELS must be one of {sorted(LEVELS)}; got {cap!r}")
    usable = min(LEVELS[cap], _runtime.cpu_level())
    for build, level in (("v4", 4), ("v3", 3)):
        if level <= usable:
            try:
                return build, importlib.import_module(f"cconv.{family}_{build}")
            except ImportError:  # a build without that twin (not x86-64, or switched off)
                continue
    return "baseline", importlib.import_module(f"cconv.{family}")


#: The build of the direct loops in use ('baseline', 'v3' or 'v4') and its module.
name, correlate_module = load("_correlate")

#: The other families' modules of the best build, imported when first asked for
#: (tests put another build here, to run every build).
LOADED: dict[str, ModuleType] = {}


def module(family: str) -> ModuleType:
    """``cconv.<family>`` of the best build (imported the first time it is asked for)."""
    found = LOADED.get(family)
    if found is None:
        found = LOADED[family] = load(family)[1]
    return found


def conv2d_module() -> ModuleType:
    """The 4-D layer's kernels (``cconv._conv2d_direct``) of the best build."""
    return module("_conv2d_direct")


def exact_module() -> ModuleType:
    """The exact sums (``cconv._exact``) of the best build."""
    return module("_exact")
