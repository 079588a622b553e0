"""cconv's direct loops: valid cross-correlation, in two loop orders.

Every pass of the layer is one valid cross-correlation of an "image" with a
"kernel", over a batch of pairs:

- forward:  out  = correlate(x, w)
- dx:       dx   = correlate(dout padded by the filter size - 1, w flipped)
- dw:       dw   = correlate(x, dout)

``correlate_wide`` suits wide outputs and small kernels (forward, dx): each
iteration owns a strip of output columns held in registers while every kernel
tap is added to it.  ``correlate_narrow`` suits small outputs and large
kernels (dw): each output is a long dot product, accumulated in vector lanes.

Pairs and tasks.  The batch has ``npairs`` (image, kernel) pairs; an operand
with leading size 1 is broadcast to every pair.  The output has a leading size
``T`` (tasks); task ``t`` sums the pairs ``[t*npairs//T, (t+1)*npairs//T)``.
With ``T == npairs`` each output is one pair's correlation; with fewer tasks
each output is a partial sum over pairs, which the caller adds up.  That is
how a broadcast operand's gradient is reduced without two threads ever
writing to the same memory.

Every function here trusts its caller (``cconv._engine``): the arrays are
C-contiguous, of one floating dtype, with shapes that agree.  Nothing is
validated or allocated here, and the loops run without the GIL, in parallel
over output rows when cconv is built with OpenMP.

This baseline build runs on any CPU; ``_correlate_v3`` and ``_correlate_v4``
are the same source compiled for newer x86-64 instruction sets, and
``cconv._dispatch`` imports the best one the CPU supports.
"""

include "_correlate.pxi"
