"""The 4-D layer's direct convolutions: blocked kernels, no im2col.

Every pass of :func:`cconv.conv2d_forward` / :func:`cconv.conv2d_backward`
is a small matrix product per tile whose operands are read in place through
tables of offsets (``cconv._layer4d_plan`` builds them):

- forward and dx (``direct_pass``): a tile of output pixels of a block of
  filters, ``out[f, p] = sum_k w[f, k] * src[p + koff[k]]``, over a
  zero-padded copy of the input split by stride phase (``pack_planes``, or
  packed by each work item), so every stride reads contiguous pixels; the
  filters in the vector (channel kernel) or the pixels (pixel and row
  kernels);
- dw (``dw_pass``, then ``dw_finish``): rows (channel, tap) of dw^T against
  blocks of filters, summed over pixels, with the output gradient laid out
  filters last (``filters_last``); ``dw_dot`` for few filters per group.

The micro-kernels (``conv2d_kernels.h``) hold their accumulators in
vector registers; this baseline build runs on any CPU, and
``_conv2d_direct_v3`` / ``_conv2d_direct_v4`` are the same source compiled
for AVX2 and AVX-512 with wider register blocking.  Every function trusts
its caller: nothing is validated or allocated here.
"""

include "_conv2d_direct.pxi"
