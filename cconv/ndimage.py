"""Drop-ins for ``scipy.ndimage``'s correlations and convolutions.

Replace ``from scipy import ndimage`` with ``from cconv import ndimage``
(or import the names): same signatures, results, output dtypes and errors
as SciPy, computed by cconv's engine (compiled direct loops without the
GIL, or FFTs, on :func:`cconv.get_num_threads` threads).

- :func:`correlate`, :func:`convolve`: weights along 1, 2 or 3 axes (a
  1-D signal, an image, a volume; the other axes of an N-D input, and
  axes where the weights have size 1, are a batch);
- :func:`correlate1d`, :func:`convolve1d`: along one axis of any input.

As in SciPy, the sum is done in double with the weights as float64, and
stored with a C cast: truncation toward zero into an integer output.  An
integer or bool output gets SciPy's very integers: its doubles are summed
as SciPy sums them (in SciPy's order, no fused multiply-add), whatever
``method`` says.  A float output may be summed in another order, within
the documented tolerance of SciPy's; for speed, float32 input into a
float32 output is summed in float32.  ``correlate`` skips weights of
magnitude at most ``DBL_EPSILON``, as SciPy skips them, so that ``0 * Inf``
is not NaN there.  Weights along more than 3 axes are handed to SciPy's
function, with a warning once per process.
"""

from ._correlate1d import convolve1d, correlate1d
from ._ndimage import convolve, correlate

__all__ = ["correlate", "convolve", "correlate1d", "convolve1d"]
