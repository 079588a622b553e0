"""Drop-ins for ``scipy.signal.correlate2d`` and ``scipy.signal.convolve2d``.

Replace ``from scipy.signal import correlate2d`` with
``from cconv.signal import correlate2d``: same signature, same results,
output dtype and errors, computed by cconv's engine (compiled direct loops
without the GIL, or FFTs, on up to :func:`cconv.get_num_threads` threads).

The sums are done as SciPy does them, in the output dtype
``np.result_type(in1, in2)``:

- float32 and float64 on the engine's direct loops or FFTs (``method``);
- integers exactly, wrapping modulo 2**bits (uint8 200 * 2 is 144), on
  compiled integer loops; long double in long double;
- complex as real correlations of the real and imaginary parts.
"""

from ._signal import convolve2d, correlate2d

__all__ = ["correlate2d", "convolve2d"]
