"""Calls the drop-ins hand to SciPy's own function, unchanged.

``cconv.signal`` and ``cconv.ndimage`` compute 1-D, 2-D and 3-D data on
cconv's engine; a call of higher rank goes to the SciPy function it
replaces, with the same arguments, and says so with a
:class:`SciPyFallbackWarning` once per process and function.  Calls that
SciPy itself would compute trivially or refuse (empty or 0-d inputs, dtypes
cconv's loops do not take) go there silently.
"""

from __future__ import annotations

import importlib
import threading
import warnings
from collections.abc import Callable
from typing import Any

__all__ = ["SciPyFallbackWarning", "scipy_function", "warn_once"]


class SciPyFallbackWarning(UserWarning):
    """A call of a cconv drop-in was computed by SciPy's function."""


_warned: set[str] = set()
_lock = threading.Lock()


# Where SciPy defines the functions cconv replaces: code that swaps cconv's
# in for SciPy's (``scipy.signal.convolve = cconv.signal.convolve``) must
# not send cconv's fallback back to cconv.
_DEFINED_IN = {"signal": "scipy.signal._signaltools", "ndimage": "scipy.ndimage._filters"}


def scipy_function(module: str, name: str) -> Callable[..., Any]:
    """SciPy's own ``module.name`` (``module`` is 'signal' or 'ndimage')."""
    return getattr(importlib.import_module(_DEFINED_IN[module]), name)


def warn_once(module: str, name: str, why: str, stacklevel: int = 4) -> None:
    """Warn, the first time in this process for ``module.name``, that SciPy computed it."""
    key = f"{module}.{name}"
    with _lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(f"cconv.{key}: {why}; computed by scipy.{key} (this warning is shown once)",
                  SciPyFallbackWarning, stacklevel=stacklevel)
