"""Type stubs of cconv._exact (and of its per-ISA twins)."""

import numpy as np
import numpy.typing as npt

_Exact = np.uint8 | np.uint16 | np.uint32 | np.uint64 | np.longdouble

def build_info() -> tuple[str, str]: ...
def correlate_exact(
    x: npt.NDArray[_Exact], k: npt.NDArray[_Exact], out: npt.NDArray[_Exact], threads: int
) -> None: ...
def correlate_ordered(
    x: npt.NDArray[np.float64],
    starts: npt.NDArray[np.intp],
    toff: npt.NDArray[np.intp],
    tw: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
    threads: int,
) -> None: ...
def correlate_paired(
    x: npt.NDArray[np.float64],
    starts: npt.NDArray[np.intp],
    center: int,
    wc: float,
    dist: npt.NDArray[np.intp],
    tw: npt.NDArray[np.float64],
    sign: float,
    out: npt.NDArray[np.float64],
    threads: int,
) -> None: ...
