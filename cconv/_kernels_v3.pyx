# cython: language_level=3, boundscheck=False, wraparound=False
# cython: cdivision=True, initializedcheck=False, nonecheck=False
"""The loops of ``cconv._kernels``, compiled with -march=x86-64-v3 (AVX2, FMA).

cconv imports this module instead of the baseline when the CPU supports it
(see ``cconv._engine``).
"""

include "_kernels.pxi"
