"""Type stubs of cconv._correlate (and of its per-ISA twins)."""

import numpy as np
import numpy.typing as npt

_Real = np.float32 | np.float64

def build_info() -> tuple[str, str]: ...
def correlate_wide(
    x: npt.NDArray[_Real], k: npt.NDArray[_Real], out: npt.NDArray[_Real], npairs: int, rows: int, threads: int
) -> None: ...
def correlate_narrow(
    x: npt.NDArray[_Real], k: npt.NDArray[_Real], out: npt.NDArray[_Real], npairs: int, rows: int, threads: int
) -> None: ...
def backward_fused(
    x: npt.NDArray[_Real],
    wflip: npt.NDArray[_Real],
    dout: npt.NDArray[_Real],
    dx: npt.NDArray[_Real],
    dw: npt.NDArray[np.float64],
    scratch: npt.NDArray[_Real],
    rows: int,
) -> None: ...
def filter_rows(
    x: npt.NDArray[_Real],
    k: npt.NDArray[_Real],
    out: npt.NDArray[_Real],
    rows: npt.NDArray[np.intp],
    cols: npt.NDArray[np.intp],
    fill: float,
    ia: int,
    ib: int,
    ja: int,
    jb: int,
    scratch: npt.NDArray[_Real],
    block: int,
    threads: int,
) -> None: ...
