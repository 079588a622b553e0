"""How the 4-D layer's lowered path splits its work: tiles and workspace.

The 'gemm' path of :func:`cconv.conv2d_forward` computes each tile of
output positions as one matrix product, ``w[group] @ windows``, copying the
tile's windows (im2col) into a per-thread workspace first.  This module
sizes the tiles; ``cconv._gemm`` runs them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ._conv2d import Layer

__all__ = ["TARGET_MACS", "MIN_POSITIONS", "TILE_BYTES", "MIN_TILE", "pointwise", "tiles", "workspace_shape"]

# How many output positions one tile (one matrix product) covers.  A product
# of m*n*k up to about 2**20 multiply-adds runs fastest (OpenBLAS multiplies
# such small matrices without packing them, 1.5-2x faster per flop than the
# packed path, measured on the benchmark's layers), but never fewer than
# MIN_POSITIONS, below which each call's fixed cost dominates.
TARGET_MACS = 2**20
MIN_POSITIONS = 128
# Upper bound on one thread's im2col workspace (bytes), whatever the above
# asks for: it stays in the core's L2 cache while the product reads it...
TILE_BYTES = 512 * 2**10
# ...unless a single output position's window is larger: then a tile has
# MIN_TILE positions (or the whole output, if smaller).
MIN_TILE = 16


def pointwise(layer: Layer) -> bool:
    """A 1x1 filter at stride 1 without padding: the image is the matrix, no im2col."""
    return (layer.shape.kh, layer.shape.kw, layer.stride, layer.pad) == (1, 1, (1, 1), ((0, 0), (0, 0)))


def tiles(layer: Layer, itemsize: int) -> tuple[int, int]:
    """Output rows and columns per tile: whole rows when a row fits."""
    s = layer.shape
    oh, ow = layer.out_size
    window = s.cg * s.kh * s.kw  # workspace elements per output position
    if pointwise(layer) or window * ow == 0:
        return max(oh, 1), max(ow, 1)  # no workspace: the image is the matrix, or empty
    positions = max(MIN_POSITIONS, TARGET_MACS // max(1, window * s.f // layer.groups))
    positions = max(MIN_TILE, min(positions, TILE_BYTES // (window * itemsize)))
    if positions >= ow:
        return min(positions // ow, oh), ow
    return 1, positions


def workspace_shape(layer: Layer, itemsize: int, threads: int) -> tuple[int, int]:
    """Shape of the im2col workspace: one row per thread."""
    s = layer.shape
    rows, cols = tiles(layer, itemsize)
    return threads, 1 if pointwise(layer) else s.cg * s.kh * s.kw * rows * cols
