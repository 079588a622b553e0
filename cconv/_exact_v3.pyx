"""The sums of ``cconv._exact``, compiled with -march=x86-64-v3 and contraction off.

``cconv._dispatch`` imports this module instead of the baseline when the CPU
supports it.
"""

include "_exact.pxi"
