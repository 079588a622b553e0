"""cconv: compiled 2-D convolution layers (cross-correlation) for NumPy arrays.

The forward and backward passes of a convolution layer over a batch of
images, computed by typed Cython loops that release the GIL, and exact
against :func:`scipy.signal.correlate2d`.

Public API
----------
conv2d_forward
    The full layer: (N, C, H, W) input, (F, C // groups, KH, KW) filters,
    bias, stride, padding, dilation and groups, as ``torch.nn.functional.conv2d``.
conv2d_backward
    Its gradients with respect to the input, the filters and the bias.
Conv2dCache
    The cache type that links those two passes.
conv_forward
    Valid cross-correlation of (N, H, W) images with (KH, KW) or (K, KH, KW)
    filters; returns the output and a cache.
conv_backward
    Gradients with respect to the images and the filters.
ConvCache
    The cache type that links the two passes.
match_template
    Template matching with OpenCV's six scores (normalised cross-correlation
    by default), one or many templates against one or many images.
find_matches, Match
    The best matches in score maps, with non-maximum suppression.
get_num_threads, set_num_threads, threads
    The one thread-count knob, for the compiled loops and the FFTs
    (``threads(n)`` for the duration of a ``with`` block).
show_config
    Version, compiled build, compiler flags, OpenMP and thread count.
SciPyFallbackWarning
    Warned (once per function) when a ``cconv.signal`` / ``cconv.ndimage``
    call of a rank cconv does not compute is handed to SciPy's function.
testing
    ``rel_error`` and ``numerical_gradient``, to check a layer's gradients.
"""

import os as _os

# Idle OpenMP threads sleep at once rather than spin (libgomp's default is
# about a millisecond of spinning): a spinning thread holds a core another
# process (or cconv's own partner thread) is waiting for, and counts as busy
# in the load cconv reads to size each call's team (cconv._threads).  Read
# once by the OpenMP runtime when the first compiled module loads it; set
# only for that import, and only where the user set nothing.
_WAIT = {"OMP_WAIT_POLICY": "PASSIVE"}
_untouched = not any(k in _os.environ for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"))
if _untouched:
    _os.environ.update(_WAIT)
try:
    from . import _runtime  # noqa: F401  (the first compiled module)
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "cconv's compiled extensions (cconv._runtime, ...) are missing from "
        f"{_os.path.dirname(__file__)}. If that is a source checkout, Python "
        "found it before the installed package: run from another directory "
        "after 'pip install .'."
    ) from exc
finally:
    if _untouched:
        for _key in _WAIT:
            del _os.environ[_key]

from . import testing
from ._config import show_config
from ._fallback import SciPyFallbackWarning
from ._layer3d import ConvCache, conv_backward, conv_forward
from ._layer4d import Conv2dCache, conv2d_backward, conv2d_forward
from ._match import Match, find_matches, match_template
from ._threads import get_num_threads, set_num_threads, threads
from ._version import __version__

__all__ = [
    "Conv2dCache",
    "ConvCache",
    "conv2d_backward",
    "conv2d_forward",
    "conv_backward",
    "conv_forward",
    "find_matches",
    "get_num_threads",
    "Match",
    "match_template",
    "SciPyFallbackWarning",
    "set_num_threads",
    "show_config",
    "testing",
    "threads",
    "__version__",
]
