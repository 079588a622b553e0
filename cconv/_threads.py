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
that other processes leave free, at least one.  Other processes' work, not
this process's: its own threads (PyTorch's and BLAS's pools spinning after
their calls among them) are no competition to avoid.  It is measured over
the last window of cconv's calls, between :data:`WINDOW` and :data:`STALE`
seconds long: the CPU time the cores this process may run on spent busy
(``/proc/stat``) less this process's own CPU time, divided by the window's
length.  A call inside the window reuses the last decision, so the policy
costs a clock read per call and reads files at most once a window.  The
first call, and the first after a pause longer than :data:`STALE`, count
the load at that instant instead: the machine's runnable threads
(``/proc/loadavg``) less this process's own (``/proc/self/task``).  Where
the system says none of this (not Linux), the count is the ceiling.  The
loops' results do not depend on their thread count, so neither do cconv's.
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
ADAPTIVE = os.environ.get("CCONV_ADAPTIVE_THREADS", "1") != "0"

# Work (multiply-adds, or values moved or transformed) below which a call
# runs on one thread: about 20 microseconds of one core's work, what waking
# a sleeping thread costs on an idle virtual machine.
SERIAL_WORK = 2**19
# Other processes' CPU time is measured over a window of at least WINDOW
# seconds (/proc/stat counts in clock ticks of 10 ms: shorter windows are
# noise), and of at most STALE seconds: after a longer pause in cconv's
# calls, the average would hide a process that started a moment ago, and
# the load is counted as it is at this instant instead.
WINDOW = 0.1
STALE = 1.0
_TICK = 1.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


def _machine_busy() -> float | None:
    """CPU seconds the cores this process may run on have spent busy since boot (None where unknown).

    The ``cpuN`` lines of ``/proc/stat``: user, nice, system, irq, softirq
    and steal time (a hypervisor running another machine on our core); idle
    and iowait are not busy.
    """
    try:
        with open("/proc/stat", "rb") as f:
            lines = f.read().split(b"\n")
        busy = 0
        for line in lines[1:]:
            if not line.startswith(b"cpu"):
                break
            t = line.split()
            if _AFFINITY and int(t[0][3:]) not in _AFFINITY:
                continue
            user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in t[1:9])
            busy += user + nice + system + irq + softirq + steal
    except (OSError, ValueError, IndexError):
        return None
    return busy * _TICK


def _runnable_elsewhere() -> int | None:
    """Threads of other processes runnable at this instant (None where unknown).

    The machine's runnable count (``/proc/loadavg``) less this process's own
    runnable threads (``/proc/self/task/*/stat``, state R): its BLAS or
    PyTorch pool spinning after a call is no other process's work.
    """
    try:
        with open("/proc/loadavg", "rb") as f:
            running = int(f.read().split()[3].split(b"/")[0])
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
    """Cores kept busy by other processes: over the last window, or at this instant.

    Shared by every Python thread: each sample is one tuple, replaced whole,
    so a racing reader sees an old sample or a new one, never a mix.
    """

    def __init__(self) -> None:
        self.known = True  # False once the system has said it cannot tell
        self.sample = self.take()  # (wall, cores' busy, own CPU) seconds
        self.free: int | None = None  # the decision over the last window

    def take(self) -> tuple[float, float, float] | None:
        busy = _machine_busy() if self.known else None
        if busy is None:
            self.known = False
            return None
        return time.monotonic(), busy, time.process_time()

    def free_cores(self) -> int | None:
        """Cores other processes leave free, at least one (None where unknown)."""
        last = self.sample
        now = time.monotonic()
        if last is not None and now - last[0] < WINDOW and self.free is not None:
            return self.free
        if not self.known:
            return None
        new = self.take()
        if new is None:
            return None
        self.sample = new
        if last is None or new[0] - last[0] < WINDOW or new[0] - last[0] > STALE:
            # No window to average over: the load at this instant.
            others: float | None = _runnable_elsewhere()
            if others is None:
                return None
        else:
            others = ((new[1] - last[1]) - (new[2] - last[2])) / (new[0] - last[0])
        # Round half up: a core busy more than half the window is taken.
        self.free = max(1, min(_CORES, int(_CORES - others + 0.5)))
        return self.free


_load = _Load()


def _forget_load() -> None:
    """In a forked child: its CPU time starts again, the parent's sample is no base."""
    global _load
    _load = _Load()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_load)


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
