"""Input checking and dtype policy shared by every public entry point.

The compiled kernels trust their arguments completely; this module is where
that trust is earned.  Each check raises with a message that names the
argument, says what was received and what was expected.
"""

from __future__ import annotations

import numbers
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar, cast

import numpy as np

__all__ = [
    "as_real_array",
    "compute_dtype",
    "compute_dtype_of",
    "as_kernel_array",
    "as_batch",
    "check_ndim",
    "check_batch_pair",
    "check_int",
    "check_bool",
    "check_choice",
    "int_pair",
    "copy_bytes",
    "check_memory",
]


class Shaped(Protocol):
    """What the shape checks read: a NumPy array, or a Dask array (whose
    unknown sizes would be NaN, hence float)."""

    @property
    def ndim(self) -> int: ...

    @property
    def shape(self) -> tuple[float, ...]: ...


class _Reshapable(Shaped, Protocol):
    def reshape(self, shape: Any, /) -> Any: ...


_Batch = TypeVar("_Batch", bound=_Reshapable)


def as_real_array(value: object, name: str) -> np.ndarray:
    """Return ``value`` as an ndarray of a real kind, without copying if possible.

    Raises
    ------
    TypeError
        If ``value`` is a masked array, or its dtype is not bool, integer or a
        float of at most 64 bits (complex, object, string, datetime,
        structured, long double).
    ValueError
        If ``value`` cannot be turned into a rectangular array.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a masked array; cconv ignores no masks silently: "
            f"pass {name}.filled(fill_value) or {name}.data instead"
        )
    try:
        arr = np.asarray(value)  # no copy for an ndarray; drops subclasses
    except (ValueError, TypeError) as exc:
        raise ValueError(
            f"{name} could not be converted to an array ({type(value).__name__}): {exc}"
        ) from None
    compute_dtype_of(arr, name)  # raises on a dtype cconv cannot compute in
    return arr


def compute_dtype_of(arr: np.ndarray, name: str) -> np.dtype:
    """The floating dtype ``arr`` is computed in on its own.

    bool and integers compute in float64, float16 in float32, float32 and
    float64 as themselves.  Anything else is a ``TypeError``.
    """
    dt = arr.dtype
    if dt.kind in "biu":
        return np.dtype(np.float64)
    if dt.kind == "f" and dt.itemsize <= 8:
        return np.dtype(np.float32) if dt.itemsize <= 4 else np.dtype(np.float64)
    if dt.kind == "f":
        reason = "long double would be silently rounded to float64; cast it explicitly"
    elif dt.kind == "c":
        reason = "complex input is not supported; correlate the real and imaginary parts separately"
    else:
        reason = "expected a real numeric array (bool, integer, float16, float32 or float64)"
    raise TypeError(f"{name} has unsupported dtype {dt}: {reason}")


def compute_dtype(*arrays_and_names: tuple[np.ndarray, str]) -> np.dtype:
    """The dtype a computation over several ``(array, name)`` pairs runs in.

    float32 only when every operand computes in float32; float64 otherwise.
    """
    dtypes = [compute_dtype_of(arr, name) for arr, name in arrays_and_names]
    return np.result_type(*dtypes)


def check_ndim(arr: Shaped, name: str, allowed: tuple[int, ...], layout: str) -> None:
    """Raise ``ValueError`` unless ``arr.ndim`` is one of ``allowed``."""
    if arr.ndim not in allowed:
        dims = " or ".join(f"{d}-D" for d in allowed)
        raise ValueError(
            f"{name} must be a {dims} array {layout}; got a {arr.ndim}-D array of shape {arr.shape}"
        )


def as_batch(arr: _Batch) -> _Batch:
    """A 2-D (H, W) array as a batch of one, (1, H, W); a 3-D one as it is (a view)."""
    return cast(_Batch, arr.reshape((1,) * (3 - arr.ndim) + arr.shape))


def check_batch_pair(images: Shaped, filters: Shaped, names: tuple[str, str],
                     images_ndim: tuple[int, ...] = (3,)) -> None:
    """The shape rules between a batch of images and a batch of filters.

    ``images`` is (N, H, W) (or (H, W) where ``images_ndim`` allows 2),
    ``filters`` (KH, KW) or (K, KH, KW): the images and filters must not be
    empty, a filter must fit in an image (a valid correlation), and the
    leading sizes must broadcast (equal, or 1 on either side).  ``names``
    are the arguments' names, for the messages.
    """
    a, b = names
    layout = " or ".join(("(H, W)", "(N, H, W)")[d - 2] for d in images_ndim)
    check_ndim(images, a, images_ndim, f"of shape {layout}")
    check_ndim(filters, b, (2, 3), "of shape (KH, KW) or (K, KH, KW)")
    ih, iw = images.shape[-2:]
    kh, kw = filters.shape[-2:]
    for arr, name, (rows, cols) in ((images, a, (ih, iw)), (filters, b, (kh, kw))):
        if rows == 0 or cols == 0:
            raise ValueError(
                f"{name} is empty: shape {arr.shape}; its height and width must be at least 1"
            )
    if kh > ih or kw > iw:
        raise ValueError(
            f"{b} ({kh}, {kw}) is larger than {a} ({ih}, {iw}) in height or width: shapes "
            f"{b}{filters.shape}, {a}{images.shape}; a valid correlation needs KH <= H and KW <= W"
        )
    if images.ndim == 3 and filters.ndim == 3:
        n, k = images.shape[0], filters.shape[0]
        if n != k and 1 not in (n, k):
            raise ValueError(
                f"{a} and {b} have leading sizes that do not broadcast: {a}{images.shape}, "
                f"{b}{filters.shape}; expected equal sizes (pair n with n), or 1 on either side"
            )


def check_int(value: object, name: str, minimum: int | None = None) -> int:
    """``value`` as a Python int (a NumPy integer too, never a bool), at least ``minimum``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {value!r} of type {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be at least {minimum}; got {value!r}")
    return int(value)


def check_bool(value: object, name: str) -> bool:
    """``value`` as a bool: True, False or a NumPy bool, nothing else."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}")
    return bool(value)


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """``value`` if it is one of the strings ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}; got {value!r}")
    return value


def int_pair(value: object, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each at least ``minimum``, as a pair."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints; got {value!r}")
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an int or a pair of ints; got {value!r}")
        if v < minimum:
            raise ValueError(f"{name} must be at least {minimum}; got {value!r}")
    return int(items[0]), int(items[1])


def as_kernel_array(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``arr`` as an aligned, C-contiguous, native-endian array of ``dtype``.

    Copies only when ``arr`` is not already so; never writes to ``arr``.
    """
    return np.require(arr, dtype=dtype, requirements=("C", "A"))


def copy_bytes(arr: np.ndarray, dtype: np.dtype) -> int:
    """Bytes :func:`as_kernel_array` will allocate for ``arr``: 0 if none."""
    ready = arr.dtype == dtype and arr.flags.c_contiguous and arr.flags.aligned
    return 0 if ready else arr.size * dtype.itemsize


# Below this, a call is not worth asking the system for its free memory.
_CHECK_ABOVE = 256 * 2**20


def _meminfo() -> int | None:
    """Linux's own estimate of the memory a new allocation can get, without swapping."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _windows_available() -> int | None:
    """Windows' available physical memory (GlobalMemoryStatusEx)."""
    import ctypes

    class MemoryStatusEx(ctypes.Structure):
        _fields_ = [("dwLength", ctypes.c_uint32), ("dwMemoryLoad", ctypes.c_uint32)]
        _fields_ += [(name, ctypes.c_uint64) for name in (
            "ullTotalPhys", "ullAvailPhys", "ullTotalPageFile", "ullAvailPageFile",
            "ullTotalVirtual", "ullAvailVirtual", "ullAvailExtendedVirtual")]

    status = MemoryStatusEx()
    status.dwLength = ctypes.sizeof(status)
    if not ctypes.windll.kernel32.GlobalMemoryStatusEx(ctypes.byref(status)):  # type: ignore[attr-defined,unused-ignore]
        return None
    return int(status.ullAvailPhys)


def _sysconf_available() -> int | None:
    """Free physical pages (POSIX systems that report them): an underestimate on Linux."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _memory_source() -> tuple[str, Callable[[], int | None]] | None:
    """``(name, function)`` of the first way of asking this system that answers."""
    candidates = [("/proc/meminfo", _meminfo)]
    if sys.platform == "win32":
        candidates.append(("GlobalMemoryStatusEx", _windows_available))
    elif sys.platform != "darwin":  # macOS counts its file cache as used: far too low
        candidates.append(("sysconf(SC_AVPHYS_PAGES)", _sysconf_available))
    for name, ask in candidates:
        try:
            if ask() is not None:
                return name, ask
        except Exception:  # noqa: BLE001  (ctypes on an odd system: no answer)
            continue
    return None


def _available_bytes() -> int | None:
    """Memory available to a new allocation, or None where the system does not say."""
    source = _memory_source()
    return None if source is None else source[1]()


def memory_check() -> str:
    """Whether :func:`check_memory` is on here and how it asks, for show_config."""
    source = _memory_source()
    available = None if source is None else source[1]()
    if source is None or available is None:
        return "off (this system reports no available memory: large calls are not checked)"
    return f"on ({source[0]}: {available / 2**30:.1f} GiB available now)"


def check_memory(nbytes: int, what: Callable[[], str]) -> None:
    """Refuse, before allocating anything, a call that needs more memory than is free.

    Parameters
    ----------
    nbytes : int
        Upper estimate of the bytes the call will allocate.
    what : callable
        Returns the call and its shapes, for the message (made only if
        there is one to make: formatting shapes costs more than the check).

    Raises
    ------
    MemoryError
        If ``nbytes`` exceeds the memory the system reports as available,
        rather than letting the machine start swapping (or the kernel kill
        the process) halfway through.
    """
    if nbytes < _CHECK_ABOVE:
        return
    available = _available_bytes()
    if available is not None and nbytes > available:
        raise MemoryError(
            f"{what()} would allocate about {nbytes / 2**30:.1f} GiB, more than the "
            f"{available / 2**30:.1f} GiB of memory available; use smaller batches"
        )
