"""Input checking and dtype policy shared by every public entry point.

The compiled kernels trust their arguments completely; this module is where
that trust is earned.  Each check raises with a message that names the
argument, says what was received and what was expected.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = [
    "as_real_array",
    "compute_dtype",
    "compute_dtype_of",
    "as_kernel_array",
    "check_ndim",
    "copy_bytes",
    "check_memory",
]


def as_real_array(value, name: str) -> np.ndarray:
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


def compute_dtype(*arrays_and_names) -> np.dtype:
    """The dtype a computation over several ``(array, name)`` pairs runs in.

    float32 only when every operand computes in float32; float64 otherwise.
    """
    dtypes = [compute_dtype_of(arr, name) for arr, name in arrays_and_names]
    return np.result_type(*dtypes)


def check_ndim(arr: np.ndarray, name: str, allowed: tuple[int, ...], layout: str) -> None:
    """Raise ``ValueError`` unless ``arr.ndim`` is one of ``allowed``."""
    if arr.ndim not in allowed:
        dims = " or ".join(f"{d}-D" for d in allowed)
        raise ValueError(
            f"{name} must be a {dims} array {layout}; got a {arr.ndim}-D array of shape {arr.shape}"
        )


def as_kernel_array(arr: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``arr`` as an aligned, C-contiguous, native-endian array of ``dtype``.

    Copies only when ``arr`` is not already so; never writes to ``arr``.
    """
    return np.require(arr, dtype=dtype, requirements=("C", "A"))


def copy_bytes(arr: np.ndarray, dtype: np.dtype) -> int:
    """Bytes :func:`as_kernel_array` will allocate for ``arr``: 0 if none."""
    ready = arr.dtype == dtype and arr.flags.c_contiguous and arr.flags.aligned
    return 0 if ready else arr.size * dtype.itemsize


# Below this, a call is not worth the look at /proc/meminfo.
_CHECK_ABOVE = 256 * 2**20


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(nbytes: int, what: str) -> None:
    """Refuse, before allocating anything, a call that needs more memory than is free.

    Parameters
    ----------
    nbytes : int
        Upper estimate of the bytes the call will allocate.
    what : str
        The call and its shapes, for the message.

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
            f"{what} would allocate about {nbytes / 2**30:.1f} GiB, more than the "
            f"{available / 2**30:.1f} GiB of memory available; use smaller batches"
        )
