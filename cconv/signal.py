"""Drop-ins for ``scipy.signal``'s convolutions and correlations.

Replace ``from scipy import signal`` with ``from cconv import signal`` (or
import the names): same signatures, results, output dtypes and errors as
SciPy, computed by cconv's engine (compiled direct loops without the GIL,
or FFTs, on up to :func:`cconv.get_num_threads` threads).

- :func:`correlate2d`, :func:`convolve2d`: 2-D, with boundary rules;
- :func:`convolve`, :func:`correlate`: 1-D, 2-D and 3-D data, ``method``
  'auto', 'direct' or 'fft', and :func:`choose_conv_method`;
- :func:`fftconvolve`, :func:`oaconvolve`: along 1 to 3 ``axes``, the
  others broadcast.

The sums are done as SciPy does them, in the output dtype
``np.result_type(in1, in2)``: integers exactly, wrapping modulo 2**bits
(uint8 200 * 2 is 144); float32 and float64 within the rounding of another
summation order or of an FFT; long double; complex through real parts.
NaN and Inf stay where a direct sum puts them on every route; for
``fftconvolve`` and ``oaconvolve`` that is the one deliberate difference
from SciPy, whose FFTs spread them over the whole output.  Calls of higher
rank are handed to SciPy's function, with a warning once per process.
"""

from ._convolve import choose_conv_method, convolve, correlate, fftconvolve, oaconvolve
from ._signal import convolve2d, correlate2d

__all__ = ["correlate2d", "convolve2d", "correlate", "convolve", "fftconvolve", "oaconvolve", "choose_conv_method"]
