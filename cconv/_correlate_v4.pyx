"""The loops of ``cconv._correlate``, compiled with -march=x86-64-v4 (AVX-512).

``cconv._dispatch`` imports this module instead of the baseline when the CPU
supports it.
"""

include "_correlate.pxi"
