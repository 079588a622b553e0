"""Keeping the BLAS on one thread while cconv's own threads call it.

The lowered 4-D layer runs its work items on OpenMP threads, and each item
calls ``sgemm``/``dgemm`` from ``scipy.linalg.cython_blas``.  A BLAS that
starts threads of its own inside those calls (OpenBLAS built with pthreads,
as in SciPy's wheels) oversubscribes the cores and runs several times slower.
So for the duration of a call cconv holds the BLAS libraries of the process
at one thread, through threadpoolctl, and restores their settings afterwards.

Where threadpoolctl knows no BLAS in the process (one it does not support),
:func:`single_threaded_blas` yields False and the caller runs its work items
on one OpenMP thread, leaving the threads to the BLAS.

Nesting and concurrent calls from several Python threads are counted: the
first caller in lowers the setting, the last one out restores it.  While a
call runs, other users of the same BLAS in the process run single-threaded
too.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

__all__ = ["blas_library", "single_threaded_blas"]

_lock = threading.Lock()
_depth = 0
_limiter = None  # threadpoolctl's limiter while a call runs
_controller = None  # made once, after SciPy's BLAS is loaded


def _blas_controller():
    """threadpoolctl's controller of the BLAS libraries loaded (None if there are none)."""
    global _controller
    with _lock:
        if _controller is None:
            import scipy.linalg.cython_blas  # noqa: F401  (SciPy's BLAS loaded first)
            from threadpoolctl import ThreadpoolController

            _controller = ThreadpoolController().select(user_api="blas")
        return _controller if _controller.lib_controllers else None


def blas_library() -> str | None:
    """The BLAS libraries cconv holds at one thread, or None if none is known."""
    controller = _blas_controller()
    if controller is None:
        return None
    return "; ".join(f"{lib.internal_api} {lib.version or ''} ({lib.filepath})".replace("  ", " ")
                     for lib in controller.lib_controllers)


@contextmanager
def single_threaded_blas():
    """Hold the BLAS at one thread; yields whether that was possible.

    When it yields False, the BLAS may start threads of its own, and the
    caller must not call it from several threads at once.
    """
    global _depth, _limiter
    controller = _blas_controller()
    if controller is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            _limiter = controller.limit(limits=1, user_api="blas")
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _limiter.restore_original_limits()
                _limiter = None
