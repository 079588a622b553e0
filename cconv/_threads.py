"""The one thread count of cconv: its compiled loops (OpenMP) and its FFTs.

OpenMP keeps the count per calling thread, so do :func:`set_num_threads`
and :func:`threads`; ``threadpoolctl`` sees and changes the same setting,
and ``OMP_NUM_THREADS`` sets its default.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from . import _runtime

__all__ = ["MAX_THREADS", "get_num_threads", "set_num_threads", "threads"]

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
        ``workers`` of the ``scipy.fft`` transforms of the FFT path.  More
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
