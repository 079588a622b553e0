"""Which compiled build of the direct loops this process runs.

``cconv._correlate`` runs on any CPU; on x86-64 its twins ``_correlate_v3``
(AVX2, FMA) and ``_correlate_v4`` (AVX-512) are the same loops compiled for
newer instruction sets.  The best one the running CPU supports is imported
once, here.  ``CCONV_KERNELS=baseline`` (or ``v3``) caps the choice, to
compare builds or to rule one out when hunting a bug.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from . import _runtime

__all__ = ["LEVELS", "correlate_module", "name"]

LEVELS = {"baseline": 0, "v3": 3, "v4": 4}


def _load() -> tuple[str, ModuleType]:
    cap = os.environ.get("CCONV_KERNELS", "v4").strip().lower()
    if cap not in LEVELS:
        raise ImportError(f"CCONV_KERNELS must be one of {sorted(LEVELS)}; got {cap!r}")
    usable = min(LEVELS[cap], _runtime.cpu_level())
    for build, level in (("v4", 4), ("v3", 3)):
        if level <= usable:
            try:
                return build, importlib.import_module(f"cconv._correlate_{build}")
            except ImportError:  # a build without that twin (not x86-64, or switched off)
                continue
    return "baseline", importlib.import_module("cconv._correlate")


#: The build in use ('baseline', 'v3' or 'v4') and its module.
name, correlate_module = _load()
