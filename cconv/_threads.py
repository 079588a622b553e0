"""The one thread count of cconv: its compiled loops (OpenMP) and its FFTs.

OpenMP keeps the count per calling thread, so do :func:`set_num_threads`
and :func:`threads`; ``threadpoolctl`` sees and changes the same setting,
and ``OMP_NUM_THREADS`` sets its default.  That count is a ceiling: each
call decides once (:func:`for_work`) how many threads its loops and FFTs
run on, and passes that number to every one of them.

Small work runs on one thread.  Waking a second OpenMP thread (asleep:
``OMP_WAIT_POLICY=PASSIVE``, see ``cconv/__init__.py``) costs tens of
microseconds, more than a call of a few microseconds of work gains.

Busy machines.  A team of OpenMP threads waits at every barrier for its
slowest member: a thread that has to queue for a core behind another
process holds the whole call for a scheduler time slice, which turned a
1 ms call into 20.  So a call runs on no more threads than there are cores
that other processes leave free, at least one.  Other processes' threads,
not this process's: its own (PyTorch's and BLAS's pools spinning after
their calls among them) are no competition to avoid.  The count is the
machine's runnable threads (``/proc/loadavg``) less this process's own
(``/proc/self/task``), scaled to the share of the machine's CPUs this
process may run on; it stands for :data:`TTL` seconds, so the policy costs
a clock read per call and reads files at most once in that time.  (A count
of CPU time over a window of a tenth of a second, the other design tried,
kept a machine's past load for that long: after a busy process ended, the
next calls ran on one core for up to two windows.)  Where the system says
none of this (not Linux), the count is the ceiling.  The loops' results do
not depend on their thread count, so neither do cconv's.
``CCONV_ADAPTIVE_THREADS=0`` turns this off.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from . import _runtime

__all__ = ["MAX_THREADS", "SERIAL_WORK", "Job", "get_num_threads", "set_num_threads", "threads", "for_work",
           "free_cores", "run_jobs"]

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


def _affinity() -> frozenset[int]:
    """The CPUs this process may run on (empty where the system does not say)."""
    try:
        return frozenset(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return frozenset()


_AFFINITY = _affinity()
_CORES = len(_AFFINITY) if _AFFINITY else (os.cpu_count() or 1)
# The share of the machine's CPUs this process may run on: the runnable
# threads the system counts are spread over all of them.
_SHARE = _CORES / max(_CORES, os.cpu_count() or 1)
ADAPTIVE = os.environ.get("CCONV_ADAPTIVE_THREADS", "1") != "0"

# Work (multiply-adds, or values moved or transformed) below which a call
# runs on one thread: about 20 microseconds of one core's work, what waking
# a sleeping thread costs on an idle virtual machine.
SERIAL_WORK = 2**19
# How long a count of the load stands (s): calls inside it reuse it.
TTL = 0.02


def _runnable_elsewhere() -> int | None:
    """Threads of other processes runnable at this instant (None where unknown).

    The machine's runnable count (``/proc/loadavg``) less this process's own
    runnable threads (``/proc/self/task/*/stat``, state R, read only when the
    machine count says there may be others): its BLAS or PyTorch pool
    spinning after a call is no other process's work.
    """
    try:
        with open("/proc/loadavg", "rb") as f:
            running = int(f.read().split()[3].split(b"/")[0])
        if running <= 1:  # the caller alone
            return 0
        own = 0
        for task in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{task}/stat", "rb") as f:
                    stat = f.read()
            except OSError:  # the thread has just ended
                continue
            own += stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"R"
    except (OSError, ValueError, IndexError):
        return None
    return max(0, running - own)


class _Load:
    """The cores other processes leave free, counted at most every :data:`TTL` seconds.

    Shared by every Python thread: a racing reader sees an old count or a
    new one, either of them right a moment ago.
    """

    def __init__(self) -> None:
        self.known = True  # False once the system has said it cannot tell
        self.time = -float("inf")
        self.free: int | None = None

    def free_cores(self) -> int | None:
        """Cores other processes leave free, at least one (None where unknown)."""
        now = time.monotonic()
        if now - self.time < TTL or not self.known:
            return self.free
        others = _runnable_elsewhere()
        if others is None:
            self.known = False
            self.free = None
        else:
            # Round half up: a core more than half wanted by others is taken.
            self.free = max(1, min(_CORES, int(_CORES - others * _SHARE + 0.5)))
        self.time = now
        return self.free


_load = _Load()


def free_cores() -> int | None:
    """Cores other processes leave free, at least one (None where unknown)."""
    return _load.free_cores()


def for_work(work: float) -> int:
    """The thread count for a call of ``work`` multiply-adds (or elements moved).

    One below :data:`SERIAL_WORK`; else the ceiling (:func:`get_num_threads`),
    or fewer: the cores other processes leave free, when the adaptive
    policy is on and the system says.
    """
    ceiling = get_num_threads()
    if ceiling == 1 or work < SERIAL_WORK:
        return 1
    if not ADAPTIVE:
        return ceiling
    free = _load.free_cores()
    return ceiling if free is None else min(ceiling, free)


# ---------------------------------------------------------------------------
# A pool of Python threads for jobs that release the GIL

#: One job of :func:`run_jobs`.
Job = Callable[[], None]

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _executor(workers: int) -> ThreadPoolExecutor:
    """The pool, with at least ``workers`` threads."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < workers:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(workers, thread_name_prefix="cconv-jobs"), workers
        return _pool


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist there."""
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def run_jobs(jobs: list[Job], threads: int) -> None:
    """Run ``jobs`` on ``threads`` threads (the caller's among them), each
    thread taking the next job when done with one.

    The helpers are Python threads of a small pool made on first use (the
    FFT route's passes, the 3-D planes of the N-D route): each job releases
    the GIL in the compiled code or ``scipy.fft`` it calls.
    """
    helpers = min(threads, len(jobs)) - 1
    if helpers <= 0:
        for job in jobs:
            job()
        return
    todo: queue.SimpleQueue[Job] = queue.SimpleQueue()
    for job in jobs:
        todo.put(job)

    def drain() -> None:
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            job()

    pool = _executor(helpers)
    futures = [pool.submit(drain) for _ in range(helpers)]
    try:
        drain()
    finally:
        for f in futures:
            f.result()
