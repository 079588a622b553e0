"""Buffers kept between calls, so that large arrays are not made fresh each time.

A fresh array of many megabytes costs a page fault per 4 KiB page when it is
first written (on some virtual machines as much as the work done in it).
Two kinds of buffer are therefore kept:

- scratch space (:func:`scratch`, :func:`scratch_array`), one set per
  Python thread, for arrays that live only inside one call (a padded copy
  of an image, the products of an FFT): valid until the same thread asks
  for the same name again; up to :data:`KEEP_BYTES` per name;
- kept buffers (:func:`kept_array`), for arrays that outlive the call but
  that cconv alone reads (the spectra a ``ConvCache`` holds): a buffer is
  reused once the last array made over it is gone; up to
  :data:`KEPT_BYTES` in all.

Larger requests get fresh arrays.  Nothing returned to a caller lives in
either kind of buffer.
"""

from __future__ import annotations

import math
import threading
import weakref

import numpy as np
import numpy.typing as npt

__all__ = ["KEEP_BYTES", "KEPT_BYTES", "scratch", "scratch_array", "kept_array"]

# The largest scratch buffer kept between calls, per name and thread.
KEEP_BYTES = 2**26
# The most bytes of kept buffers.
KEPT_BYTES = 2**25

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
    dtype = dtype if isinstance(dtype, np.dtype) else np.dtype(dtype)
    if dtype.hasobject:  # references cannot live in raw bytes
        return np.empty(shape, dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    buf: np.ndarray | None = getattr(_local, name, None)
    if buf is None or buf.nbytes < nbytes or nbytes > KEEP_BYTES:
        buf = scratch(name, nbytes)
    return buf[:nbytes].view(dtype).reshape(shape)


# Kept buffers, each with a reference to the array last made over it: free
# once that array is dead (cconv makes no other lasting view of it).
_KEPT: list[tuple[np.ndarray, weakref.ref[np.ndarray]]] = []
_kept_lock = threading.Lock()


def kept_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A new array of ``shape`` and ``dtype`` over a free kept buffer of its size, or
    over a new buffer (kept if the kept ones leave room)."""
    nbytes = math.prod(shape) * dtype.itemsize
    with _kept_lock:
        free = [i for i, (_, ref) in enumerate(_KEPT) if ref() is None]
        fit = [i for i in free if _KEPT[i][0].nbytes == nbytes]
        if fit:
            buf = _KEPT[fit[0]][0]
        else:
            # Free buffers of other sizes make room: the shapes have changed.
            _KEPT[:] = [kept for kept in _KEPT if kept[1]() is not None]
            buf = np.empty(nbytes, np.uint8)
        array = buf.view(dtype).reshape(shape)
        if fit:
            _KEPT[fit[0]] = (buf, weakref.ref(array))
        elif sum(b.nbytes for b, _ in _KEPT) + nbytes <= KEPT_BYTES:
            _KEPT.append((buf, weakref.ref(array)))
        return array
