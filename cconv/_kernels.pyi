"""Type stubs of the compiled loops (cconv._kernels and its per-ISA twins)."""

import numpy as np
import numpy.typing as npt

_Real = np.float32 | np.float64

def build_info() -> tuple[str, str]: ...
def cpu_level() -> int: ...
def openmp_enabled() -> bool: ...
def get_max_threads() -> int: ...
def set_num_threads(n: int) -> None: ...
def correlate_wide(
    x: npt.NDArray[_Real], k: npt.NDArray[_Real], out: npt.NDArray[_Real], npairs: int
) -> None: ...
def correlate_narrow(
    x: npt.NDArray[_Real], k: npt.NDArray[_Real], out: npt.NDArray[_Real], npairs: int, rows: int
) -> None: ...
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
def window_sums(
    x: npt.NDArray[np.float64],
    hh: int,
    ww: int,
    s1: npt.NDArray[np.float64],
    s2: npt.NDArray[np.float64],
    work: npt.NDArray[np.float64],
    centred: bool,
    shift: npt.NDArray[np.float64],
) -> None: ...
def finish_scores(
    corr: npt.NDArray[_Real],
    window: npt.NDArray[np.float64],
    offset: npt.NDArray[np.float64],
    templ: npt.NDArray[np.float64],
    w_floor: npt.NDArray[np.float64],
    t_floor: npt.NDArray[np.float64],
    kind: int,
    out: npt.NDArray[_Real],
) -> None: ...
