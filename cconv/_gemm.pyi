"""Type stubs of cconv._gemm."""

import numpy as np
import numpy.typing as npt

_Real = np.float32 | np.float64

def conv2d_gemm_forward(
    x: npt.NDArray[_Real],
    w: npt.NDArray[_Real],
    bias: npt.NDArray[_Real],
    out: npt.NDArray[_Real],
    work: npt.NDArray[_Real],
    shape: tuple[int, int, int, int, int, int, int],
    geom: tuple[int, int, int, int, int, int],
    rows: int,
    cols: int,
    pointwise: bool,
) -> None: ...
def conv2d_gemm_backward(
    x: npt.NDArray[_Real],
    w: npt.NDArray[_Real],
    dout: npt.NDArray[_Real],
    dx: npt.NDArray[_Real],
    dw: npt.NDArray[_Real],
    work: npt.NDArray[_Real],
    shape: tuple[int, int, int, int, int, int, int],
    geom: tuple[int, int, int, int, int, int],
    rows: int,
    cols: int,
    pointwise: bool,
) -> None: ...
