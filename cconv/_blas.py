"""Keeping SciPy's BLAS on one thread while cconv's own threads call it.

The lowered 4-D layer runs its work items on OpenMP threads, and each item
calls ``sgemm``/``dgemm`` from ``scipy.linalg.cython_blas``.  A BLAS that
starts threads of its own inside those calls (OpenBLAS built with pthreads,
as in SciPy's wheels) oversubscribes the cores, prints "Detect OpenMP Loop
and this application may hang" and runs several times slower.  So for the
duration of a call cconv sets the BLAS to one thread, through the BLAS
library's own API, and restores the setting afterwards.

The BLAS is found among the shared libraries loaded in the process
(``/proc/self/maps``), preferring those installed with SciPy.  Where none
with a known thread API is found (another platform, an unknown BLAS),
:func:`blas_threads_pinned` reports it and the caller runs its work items on
one OpenMP thread, leaving the threads to the BLAS.

Nesting and concurrent calls from several Python threads are counted: the
first caller in saves and lowers the setting, the last one out restores it.
While a call runs, other users of the same BLAS library in the process run
single-threaded too.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["blas_library", "single_threaded_blas"]

# (get, set) function names of BLAS libraries' thread settings.
_APIS = (
    ("scipy_openblas_get_num_threads", "scipy_openblas_set_num_threads"),
    ("scipy_openblas_get_num_threads64_", "scipy_openblas_set_num_threads64_"),
    ("openblas_get_num_threads", "openblas_set_num_threads"),
    ("openblas_get_num_threads64_", "openblas_set_num_threads64_"),
    ("MKL_Get_Max_Threads", "MKL_Set_Num_Threads"),
    ("bli_thread_get_num_threads", "bli_thread_set_num_threads"),
)

# (path, get, set) of one BLAS library's thread setting.
_Control = tuple[str, Callable[[], int], Callable[[int], None]]

_lock = threading.Lock()
_depth = 0
_saved: list[tuple[Callable[[int], None], int]] = []
_controls: list[_Control] | None = None


def _loaded_libraries() -> list[str]:
    """Paths of the shared libraries mapped into this process (Linux)."""
    paths = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                fields = line.split(None, 5)
                if len(fields) == 6 and fields[5].startswith("/"):
                    paths.add(fields[5].strip())
    except OSError:
        return []
    return sorted(p for p in paths if ".so" in os.path.basename(p) and os.path.isfile(p))


def _find_controls() -> list[_Control]:
    """``(path, get, set)`` for the BLAS libraries SciPy's BLAS may be."""
    import scipy.linalg.cython_blas  # noqa: F401  (make sure SciPy's BLAS is loaded)

    candidates = [p for p in _loaded_libraries()
                  if any(s in os.path.basename(p).lower() for s in ("blas", "mkl", "blis"))]
    scipy_root = os.path.dirname(os.path.dirname(scipy.__file__))
    own = [p for p in candidates if os.path.basename(os.path.dirname(p)).startswith("scipy")
           and p.startswith(scipy_root)]
    found: list[_Control] = []
    for path in own or candidates:
        try:
            lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | ctypes.RTLD_LOCAL)
        except OSError:
            continue
        for get_name, set_name in _APIS:
            get, set_ = getattr(lib, get_name, None), getattr(lib, set_name, None)
            if get is not None and set_ is not None:
                get.restype, get.argtypes = ctypes.c_int, []
                set_.restype, set_.argtypes = None, [ctypes.c_int]
                found.append((path, get, set_))
                break
    return found


def _get_controls() -> list[_Control]:
    global _controls
    if _controls is None:
        _controls = _find_controls()
    return _controls


def blas_library() -> str | None:
    """Path of the BLAS whose threads cconv pins during a call, or None if none is known."""
    controls = _get_controls()
    return controls[0][0] if controls else None


@contextmanager
def single_threaded_blas() -> Iterator[bool]:
    """Hold the BLAS at one thread; yields whether that was possible.

    When it yields False, the BLAS may start threads of its own, and the
    caller must not call it from several threads at once.
    """
    global _depth
    controls = _get_controls()
    if not controls:
        yield False
        return
    with _lock:
        if _depth == 0:
            _saved[:] = [(set_, get()) for _, get, set_ in controls]
            for _, _, set_ in controls:
                set_(1)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                for set_, n in _saved:
                    set_(n)
