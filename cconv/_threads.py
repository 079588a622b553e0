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
that other processes leave free, at least one.  Other processes' work is
measured, not guessed from an instant: the CPU time the whole machine spent
over the last window (``/proc/stat``) less the CPU time of this process
over the same window (its own threads, PyTorch's and BLAS's pools spinning
after their calls among them, are no competition to avoid), divided by the
window's length.  The window is at least :data:`WINDOW` seconds long; a
call inside it reuses the last decision, so the policy costs a clock read
per call, and a file read at most every :data:`WINDOW` seconds.  The loops'
results do not depend on their thread count, so neither do cconv's.
``CCONV_ADAPTIVE_THREADS=0`` turns this off.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from . import _runtime

__all__ = ["MAX_THREADS", "SERIAL_WORK", "get_num_threads", "set_num_threads", "threads", "for_work", "free_cores"]

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

# Work (multiply-adds, or elements moved) below which a call runs on one
# thread: about 20 microseconds of one core's work, what waking a sleeping
# thread costs on an idle virtual machine.
SERIAL_WORK = 2**19
# The shortest window over which other processes' CPU time is measured (s):
# /proc/stat counts in clock ticks (10 ms), so shorter windows are noise.
WINDOW = 0.05
_TICK = 1.0 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)


def _machine_busy() -> float | None:
    """CPU seconds all cores of the machine have spent busy since boot (None where unknown).

    The first line of ``/proc/stat``: user, nice, system, irq, softirq and
    steal time (a hypervisor running another machine on our core); idle and
    iowait are not busy.
    """
    try:
        with open("/proc/stat", "rb") as f:
            t = f.readline().split()
        user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in t[1:9])
    except (OSError, ValueError, IndexError):
        return None
    return (user + nice + system + irq + softirq + steal) * _TICK


class _Load:
    """Cores kept busy by other processes, measured over windows of at least :data:`WINDOW` s.

    Shared by every Python thread: each sample is one tuple, replaced whole,
    so a racing reader sees an old sample or a new one, never a mix.
    """

    def __init__(self) -> None:
        self.sample: tuple[float, float, float] | None = None  # (wall, machine busy, own CPU) seconds
        self.free: int | None = None  # the decision over the last window
        self.take()

    def take(self) -> tuple[float, float, float] | None:
        busy = _machine_busy()
        if busy is None:
            return None
        return time.monotonic(), busy, time.process_time()

    def free_cores(self) -> int | None:
        """Cores other processes left free over the last window, at least one (None where unknown)."""
        last = self.sample
        now = time.monotonic()
        if last is not None and now - last[0] < WINDOW:
            return self.free
        new = self.take()
        if new is None:
            return None
        self.sample = new
        if last is None:
            return self.free
        wall = new[0] - last[0]
        others = ((new[1] - last[1]) - (new[2] - last[2])) / wall
        # Round half up: a core busy more than half the window is taken.
        self.free = max(1, min(_CORES, int(_CORES - others + 0.5)))
        return self.free


_load = _Load()


def free_cores() -> int | None:
    """Cores no other process kept busy over the last window (None where unknown)."""
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
