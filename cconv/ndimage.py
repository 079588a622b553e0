"""Drop-ins for ``scipy.ndimage.correlate`` and ``scipy.ndimage.convolve`` in 2-D.

Replace ``from scipy.ndimage import correlate`` with
``from cconv.ndimage import correlate`` for 2-D filtering: a 2-D ``input``
with 2-D ``weights``, or an N-D ``input`` with 2-D ``weights`` and two
``axes`` (the other axes are a batch, filtered in one call).  Same
signature, results, output dtype and errors as SciPy, computed by cconv's
engine (compiled direct loops without the GIL, or FFTs).

As in SciPy, the sum is done in double with the weights as float64, and
stored with a C cast: truncation toward zero into an integer output.  An
integer or bool output gets SciPy's very integers: its doubles are summed
as SciPy sums them (from 0.0, tap by tap in the weights' order, no fused
multiply-add), whatever ``method`` says.  A float output may be summed in
another order, within the documented tolerance of SciPy's; for speed,
float32 input into a float32 output is summed in float32.  Weights of
magnitude at most ``DBL_EPSILON`` are skipped, as SciPy skips them, so that
``0 * Inf`` is not NaN there.
"""

from ._ndimage import convolve, correlate

__all__ = ["correlate", "convolve"]
