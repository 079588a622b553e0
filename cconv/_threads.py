"""The one thread count of cconv: its compiled loops (OpenMP) and its FFTs.

OpenMP keeps the count per calling thread, so do :func:`set_num_threads`
and :func:`threads`; ``threadpoolctl`` sees and changes the same setting,
and ``OMP_NUM_THREADS`` sets its default.

Busy machines.  The count is a ceiling.  Each public call first looks at how
many cores other work keeps busy (Linux: the runnable count of
``/proc/loadavg``, a few microseconds) and runs on no more threads than
there are free cores, at least one (:func:`for_call`).  A team of OpenMP
threads waits at every barrier for its slowest member: a thread that has to
queue for a core behind another process holds the whole call for a
scheduler time slice, which turned a 1 ms call into 20.  The loops' results
do not depend on their thread count, so neither do cconv's.
``CCONV_ADAPTIVE_THREADS=0`` turns this off.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import ParamSpec, TypeVar

import numpy as np

from . import _runtime

__all__ = ["MAX_THREADS", "get_num_threads", "set_num_threads", "threads", "for_call", "adaptive"]

# The largest count set_num_threads accepts.  OpenMP (libgomp) stores the
# count in an int and starts that many threads at the next parallel loop,
# keeping per-thread start data on the calling thread's stack: counts far
# beyond any machine's cores crash the process (100000 did) or make libgomp
# abort it when the system refuses a thread.  4096 is more than the hardware
# threads of any current machine and starts fine here.
MAX_THREADS = 4096


def get_num_threads() -> int:
    """Number of threads cconv's loops and FFTs use in the calling thread.

    Returns
    -------
    int
        OpenMP's thread count: the machine's cores by default, or
        ``OMP_NUM_THREADS``, or what :func:`set_num_threads` (or
        ``threadpoolctl``) set last.  1 in a build without OpenMP.
    """
    return max(1, int(_runtime.get_max_threads()))


def check_thread_count(n: object, name: str = "n") -> int:
    """``n`` as a thread count from 1 to :data:`MAX_THREADS`, or the error naming ``name``."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(
            f"{name} must be an integer number of threads (1 to {MAX_THREADS}); "
            f"got {n!r} of type {type(n).__name__}"
        )
    if not 1 <= n <= MAX_THREADS:
        raise ValueError(f"{name} must be a number of threads from 1 to {MAX_THREADS}; got {n!r}")
    return int(n)


def set_num_threads(n: int) -> None:
    """Set the number of threads cconv uses (in the calling thread).

    Parameters
    ----------
    n : int
        ``1 <= n <= 4096``.  A Python ``int`` or a NumPy integer; ``bool``
        is refused.  Applies to the compiled loops (OpenMP, so
        ``threadpoolctl`` sees and can change the same setting) and to the
        transforms of the FFT path (``scipy.fft`` calls on a pool of Python
        threads, made when first needed).  More
        threads than the machine has cores is allowed, but only slows the
        calls down.

    Raises
    ------
    TypeError
        If ``n`` is not an integer (a float, a string, ``None``, a bool).
    ValueError
        If ``n`` is below 1 or above 4096.  The setting is unchanged after
        either error.

    See Also
    --------
    threads : the same for the duration of a ``with`` block.
    """
    _runtime.set_num_threads(check_thread_count(n))


@contextmanager
def threads(n: int) -> Iterator[None]:
    """Run cconv on ``n`` threads inside a ``with`` block, then restore the count.

    Parameters
    ----------
    n : int
        As for :func:`set_num_threads`.

    Raises
    ------
    TypeError, ValueError
        As :func:`set_num_threads`, on entering the block.

    Notes
    -----
    Like :func:`set_num_threads`, it applies to the calling thread only, as
    ``scipy.fft.set_workers`` does; blocks nest.

    Examples
    --------
    >>> import cconv
    >>> with cconv.threads(1):
    ...     cconv.get_num_threads()
    1
    """
    count = check_thread_count(n)
    saved = get_num_threads()
    _runtime.set_num_threads(count)
    try:
        yield
    finally:
        _runtime.set_num_threads(saved)


def _cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


_CORES = _cores()
ADAPTIVE = os.environ.get("CCONV_ADAPTIVE_THREADS", "1") != "0"


def _busy_elsewhere() -> int | None:
    """Threads of other work now runnable (the caller's own excluded), or None where unknown."""
    try:
        with open("/proc/loadavg", "rb") as f:
            running = int(f.read().split()[3].split(b"/")[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - 1)


def free_cores() -> int | None:
    """Cores no other runnable thread wants right now (None where unknown)."""
    busy = _busy_elsewhere()
    return None if busy is None else max(1, _CORES - busy)


@contextmanager
def for_call() -> Iterator[int]:
    """The thread count for one call: the ceiling, or the free cores if fewer.

    Yields the count, which is set for the block (and restored after).
    """
    ceiling = get_num_threads()
    if ceiling == 1 or not ADAPTIVE:
        yield ceiling
        return
    free = free_cores()
    if free is None or free >= ceiling:
        yield ceiling
        return
    _runtime.set_num_threads(free)
    try:
        yield free
    finally:
        _runtime.set_num_threads(ceiling)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def adaptive(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """``fn`` (a public entry point) run on :func:`for_call`'s thread count."""

    @wraps(fn)
    def call(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with for_call():
            return fn(*args, **kwargs)

    return call
