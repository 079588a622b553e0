"""Scratch arrays kept between calls, one set per Python thread.

A fresh array of many megabytes costs a page fault per 4 KiB page when it is
first written (on some virtual machines as much as the work done in it).
Arrays that live only inside one call (a padded copy of an image, the
products of an FFT) are therefore taken from a per-thread buffer that stays
allocated between calls, up to :data:`KEEP_BYTES` per name; larger ones are
made fresh each time.  Nothing returned to a caller lives in a scratch
buffer.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import numpy.typing as npt

__all__ = ["KEEP_BYTES", "scratch", "scratch_array"]

# The largest buffer kept between calls, per name and thread.
KEEP_BYTES = 2**26

_local = threading.local()


def scratch(name: str, nbytes: int) -> np.ndarray:
    """``nbytes`` bytes (uint8) of the calling thread's scratch space ``name``.

    Valid until the same thread asks for ``name`` again.
    """
    if nbytes > KEEP_BYTES:
        return np.empty(nbytes, np.uint8)
    buf: np.ndarray | None = getattr(_local, name, None)
    if buf is None or buf.nbytes < nbytes:
        buf = np.empty(nbytes, np.uint8)
        setattr(_local, name, buf)
    return buf[:nbytes]


def scratch_array(name: str, shape: tuple[int, ...], dtype: npt.DTypeLike) -> np.ndarray:
    """A C-contiguous array of ``shape`` and ``dtype`` over :func:`scratch` space ``name``."""
    dtype = np.dtype(dtype)
    if dtype.hasobject:  # references cannot live in raw bytes
        return np.empty(shape, dtype)
    return scratch(name, math.prod(shape) * dtype.itemsize).view(dtype).reshape(shape)
