"""Sums whose every rounding is SciPy's, for the SciPy drop-ins.

Three kinds, each matching one of SciPy's own loops bit for bit:

- ``correlate_exact``: a valid correlation summed in the data's own type,
  as ``scipy.signal.correlate2d`` sums it: integers modulo 2**bits (uint8
  200 * 2 is 144) and long double.  Integer sums are exact in that
  arithmetic, whatever their order.
- ``correlate_ordered``: double sums in SciPy's order, as
  ``scipy.ndimage.correlate`` makes them: from 0.0, one tap after the
  other in the weights' C order, every product and addition rounded.  An
  integer or bool output truncates that double, so a sum rounded another
  way (another order, or a fused multiply-add) would turn one ulp into an
  off-by-one: 1.0 against 0.9999999999999999 is 1 against 0.
- ``correlate_paired``: the double sums ``scipy.ndimage.correlate1d`` makes
  of symmetric and antisymmetric weights, where the two samples of a
  weight are added (or subtracted) before the one multiplication.

So this family is compiled with floating-point contraction off (setup.py):
no multiply and add are fused into an FMA on any build.  The float loops
of ``cconv._correlate`` keep their FMAs; their results are within the
documented tolerance of SciPy's, not equal to it.

Every function trusts its caller (``cconv._engine``): arrays C-contiguous,
shapes that agree, every read inside its array.  This baseline build runs on
any CPU; ``_exact_v3`` and ``_exact_v4`` are the same source compiled for
newer x86-64 instruction sets (``cconv._dispatch`` imports the best one).
"""

include "_exact.pxi"
