"""Type stubs of cconv's public API."""

from typing import Literal, NamedTuple

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
_Method2d = Literal["auto", "gemm", "direct", "fft"]
_IntPair = int | tuple[int, int]

class Conv2dCache:
    @property
    def x(self) -> npt.NDArray[np.floating]: ...
    @property
    def w(self) -> npt.NDArray[np.floating]: ...
    @property
    def out_shape(self) -> tuple[int, int, int, int]: ...
    @property
    def method(self) -> str: ...

def conv2d_forward(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    stride: _IntPair = 1,
    padding: _IntPair | Literal["valid", "same"] = 0,
    dilation: _IntPair = 1,
    groups: int = 1,
    *,
    method: _Method2d = "auto",
) -> tuple[npt.NDArray[np.floating], Conv2dCache]: ...
def conv2d_backward(
    dout: npt.ArrayLike, cache: Conv2dCache
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.floating], npt.NDArray[np.floating] | None]: ...
_MatchMethod = Literal["sqdiff", "sqdiff_normed", "ccorr", "ccorr_normed", "ccoeff", "ccoeff_normed"]

class Match(NamedTuple):
    index: int
    y: int
    x: int
    score: float

def match_template(
    image: npt.ArrayLike,
    templates: npt.ArrayLike,
    method: _MatchMethod = "ccoeff_normed",
    pad_input: bool = False,
) -> npt.NDArray[np.floating]: ...
def find_matches(
    scores: npt.ArrayLike,
    num: int = 5,
    min_distance: int = 10,
    threshold: float | None = None,
    *,
    lower_is_better: bool = False,
) -> list[Match]: ...
def get_num_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def show_config() -> None: ...
