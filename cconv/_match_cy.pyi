"""Type stubs of cconv._match_cy."""

import enum

import numpy as np
import numpy.typing as npt

_Real = np.float32 | np.float64

class Score(enum.IntEnum):
    PLAIN = 0
    NORMED = 1
    SQDIFF = 2
    SQDIFF_NORMED = 3

def window_sums(
    x: npt.NDArray[np.float64],
    kh: int,
    kw: int,
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
    threads: int,
) -> None: ...
