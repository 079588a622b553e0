"""Type stubs of cconv._conv2d_direct (and of its per-ISA twins)."""

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

_Real = np.float32 | np.float64
_Index = npt.NDArray[np.intp]
# A plan of cconv._layer_plan (DirectPlan, DwPlan, DotPlan): a dict of ints.
_Plan = Mapping[str, object]

def build_info() -> tuple[str, str]: ...
def blocking() -> dict[str, int]: ...
def tile(rf: int, itemsize: int) -> int: ...
def pack_planes(
    x: npt.NDArray[_Real], out: npt.NDArray[_Real], phases: _Index,
    sh: int, sw: int, top: int, left: int, hs: int, ws: int, threads: int,
) -> None: ...
def direct_pass(
    src: npt.NDArray[_Real], wp: npt.NDArray[_Real], koff: _Index, phases: _Index,
    out: npt.NDArray[_Real], bias: npt.NDArray[_Real], tmp: npt.NDArray[_Real], plan: _Plan,
) -> None: ...
def filters_last(d: npt.NDArray[_Real], out: npt.NDArray[_Real], G: int, fb_lanes: int, threads: int) -> None: ...
def dw_pass(
    src: npt.NDArray[_Real], dT: npt.NDArray[_Real], roff: _Index, acc: npt.NDArray[_Real], plan: _Plan,
) -> None: ...
def dw_dot(
    src: npt.NDArray[_Real], d: npt.NDArray[_Real], toff: _Index, acc: npt.NDArray[_Real], plan: _Plan,
) -> None: ...
