"""What a layer's forward pass keeps for its backward pass: the common part.

:class:`cconv.ConvCache` (the 3-D layer) and :class:`cconv.Conv2dCache`
(the 4-D layer) hold the operands as the kernels saw them and the method
the forward pass ran; each adds what its layer's backward pass needs.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import numpy.typing as npt

from ._validation import as_real_array

__all__ = ["LayerCache", "checked_dout"]


class LayerCache:
    """The operands of a forward pass, as the kernels saw them, and its method.

    Treat it as opaque.  The arrays are held by reference when no conversion
    was needed: changing them in place between the forward and the backward
    call changes the gradients.
    """

    __slots__ = ("_x", "_w", "_method")

    def __init__(self, x: np.ndarray, w: np.ndarray, method: str) -> None:
        self._x = x
        self._w = w
        self._method = method

    @property
    def x(self) -> np.ndarray:
        """The input, as the kernels saw it."""
        return self._x

    @property
    def w(self) -> np.ndarray:
        """The filters, as the kernels saw them."""
        return self._w

    @property
    def method(self) -> str:
        """How the forward pass was computed: 'direct' or 'fft'."""
        return self._method

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of the forward output, and so of the ``dout`` backward takes."""
        raise NotImplementedError


_Cache = TypeVar("_Cache", bound=LayerCache)


def checked_dout(cache: object, kind: type[_Cache], forward: str, dout: npt.ArrayLike) -> np.ndarray:
    """``dout`` as an array, after the checks that it and ``cache`` (of ``kind``, from
    ``cconv.<forward>``) belong together."""
    if not isinstance(cache, kind):
        raise ValueError(
            f"cache must be the {kind.__name__} returned by cconv.{forward}; got {type(cache).__name__}"
        )
    dout = as_real_array(dout, "dout")
    if dout.shape != cache.out_shape:
        raise ValueError(f"dout has shape {dout.shape}, but the forward output had shape {cache.out_shape}")
    return dout
