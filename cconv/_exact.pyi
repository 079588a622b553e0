"""Type stubs of cconv._exact (and of its per-ISA twins)."""

import numpy as np
import numpy.typing as npt

_Exact = np.uint8 | np.uint16 | np.uint32 | np.uint64 | np.longdouble
_Doubles = npt.NDArray[np.float64]
_Offsets = npt.NDArray[np.intp]

def build_info() -> tuple[str, str]: ...
def correlate_exact(
    x: npt.NDArray[_Exact], k: npt.NDArray[_Exact], out: npt.NDArray[_Exact], threads: int
) -> None: ...
def correlate_ordered(
    x: _Doubles, starts: _Offsets, toff: _Offsets, tw: _Doubles, out: _Doubles, threads: int
) -> None: ...
def correlate_paired(
    x: _Doubles, starts: _Offsets, center: int, wc: float, dist: _Offsets, tw: _Doubles, sign: float,
    out: _Doubles, threads: int,
) -> None: ...
