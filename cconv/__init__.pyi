"""Type stubs of cconv's public API."""

from typing import Literal

import numpy as np
import numpy.typing as npt

from . import testing as testing

__version__: str

_Method = Literal["auto", "direct", "fft"]

class ConvCache:
    @property
    def x(self) -> npt.NDArray[np.floating]: ...
    @property
    def w(self) -> npt.NDArray[np.floating]: ...
    @property
    def out_shape(self) -> tuple[int, int, int]: ...

def conv_forward(
    x: npt.ArrayLike, w: npt.ArrayLike, *, method: _Method = "auto"
) -> tuple[npt.NDArray[np.floating], ConvCache]: ...
def conv_backward(
    dout: npt.ArrayLike, cache: ConvCache, *, method: _Method = "auto"
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.floating]]: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def show_config() -> None: ...
