"""The 4-D layer's direct route: layouts, offsets, kernels and blocking for the passes.

The kernels of ``cconv._conv2d_direct`` (one build per ISA, chosen by
``cconv._dispatch``) take every pass as small matrix products whose operands
are read in place through tables of offsets; this module lays the operands
out, builds the tables and chooses kernel and blocking.  It plans each
pass once per layer, dtype and thread count (the plans are kept), and
passes the kernels named plans (``DirectPlan``, ``DwPlan``, ``DotPlan``,
``PackPlan``) with their thread counts:

- Input: zero-padded, split by stride phase: plane ``(py, px)`` of
  channel c holds ``xpad[c, r*sh + py, q*sw + px]``, so a tap ``(a, b)``
  of any stride and dilation reads a contiguous run of pixels at offset
  ``koff`` in one plane.  Only the phases some tap uses are made.  Rows are
  ``ws = ow + (largest tap column offset)`` long, so an output row and its
  windows are one flattened run.  The planes are made by one pass over
  memory (``pack_planes``), or by each work item for the rows its tiles
  read, in cache (small groups such as depthwise channels, and bands of
  rows where the group's filters fit the cache budget); at stride 1
  without padding a 1x1 layer reads x in place.  No im2col.
- Forward: one of three kernels, chosen per pass from an estimate of their
  tile shapes' issue cost, the pass over memory their packing needs and
  their write-out: the channel kernel (a vector or two of filters x up to
  28 positions, the input broadcast: dense layers), the pixel kernel (up
  to 8 filters x vectors of positions, the filters broadcast: few filters
  per group), the row kernel (the pixel kernel's sums a row at a time,
  written in place: depthwise).  Tiles run over the flattened rows (the
  ``ws - ow`` columns past ``ow`` computed and dropped) or within each
  output row.
- dx: a direct convolution of the zero-padded output gradient with the
  flipped, transposed filters, one stride phase of dx at a time (the taps
  that reach that phase): the same kernels, no col2im, no atomics.
- dw: rows (channel, tap) of dw^T against vectors of filters, summed over
  pixels, with the output gradient laid out filters last.  Chunks of output
  rows form a fixed number of groups (set by the shape, not the threads),
  each summing its chunks in order into its own partial dw; the partials
  are added in order (``dw_finish``).  One parallel loop over (group, part
  of the blocks), no barrier per chunk, and dw has the same bits on every
  run and thread count.  Depthwise layers and others with few filters per
  group: lanes of pixels per tap, one (filter, channel) pair per item,
  summed over images in order.

NaN and Inf: the forward pass and dw sum exactly PyTorch's terms (padding
zeros included, dropped columns and padded filter rows never reach the
result).  dx reads zeros around the output gradient that are no terms of
PyTorch's dx: with a filter holding NaN or Inf it is computed from finite
parts and the non-finite pattern counted by the same kernel on class masks.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple, TypedDict

import numpy as np

from . import _dispatch
from ._nonfinite import classes, finite_part, term_flags, write_flags
from ._threads import get_num_threads

__all__ = ["Layer", "LayerShape", "backward", "forward", "workspace_bytes"]


class LayerShape(NamedTuple):
    """The sizes of one layer: x is (n, c, ih, iw), w is (f, cg, kh, kw)."""

    n: int
    c: int
    ih: int
    iw: int
    f: int
    cg: int
    kh: int
    kw: int


class Layer(NamedTuple):
    """One layer's options, checked (by ``cconv._layer4d``), and the output size they imply.

    ``pad`` is ((top, bottom), (left, right)); a stride beyond the padded
    size is clamped to it, and the dilation of a one-tap axis is 1.
    """

    shape: LayerShape
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[tuple[int, int], tuple[int, int]]
    groups: int
    out_size: tuple[int, int]

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return (self.shape.n, self.shape.f, *self.out_size)


# The plans the kernels take (``cconv._conv2d_direct``'s structs of the same
# names and fields): what each pass computes, how it is blocked, on how many
# threads.  Sizes and strides are in elements.


class PackPlan(TypedDict):
    """Zero-padded phase planes of an input (``pack_planes``, or each work item its own)."""

    in_channels: int  # the input, (N, in_channels, in_rows, in_cols)
    in_rows: int
    in_cols: int
    channels: int  # channels per group: the planes a work item packs
    stride_h: int
    stride_w: int
    top: int  # padding before the first row and column
    left: int
    rows: int  # the planes' rows (hs) and columns (ws)
    cols: int
    slack: int  # zeros after a work item's planes
    threads: int


class DirectPlan(TypedDict):
    """One ``direct_pass``: blocks of filters x tiles of output positions, per image and group."""

    images: int  # N
    groups: int  # G
    block: int  # filters per block (rf): the packed filters' last axis
    fblocks: int  # blocks per group
    filters: int  # filters per group (the last block is padded with zero filters)
    src_image: int  # source elements between images
    src_group: int  # ... between groups
    src_row: int  # ... between rows of a plane (ws)
    out_image: int  # output elements between images
    out_filter: int  # ... between filters
    out_row: int  # ... between output rows
    out_col: int  # ... between output columns
    fchunk: int  # filter blocks per work item
    band: int  # tiles per work item
    tile: int  # output positions per tile
    row_tiles: int  # tiles along each output row; 0: tiles over the flattened rows
    kernel: int  # 0: the pixel kernel, 1: the channel kernel (filters in the vector), 2: the row kernel
    threads: int
    packed: int  # 1: the source is the unpadded input; each work item packs its group's planes (pack)
    pack: PackPlan


class DwPlan(TypedDict):
    """One ``dw_pass``: rows (channel, tap) of dw^T against vectors of filters, summed over pixels."""

    images: int
    groups: int
    kblocks: int  # blocks of CC_RC rows (channel, tap) per group
    fblocks: int  # blocks of filters per group, CC_NV vectors each
    src_image: int
    src_group: int
    src_row: int
    out_rows: int  # oh
    out_cols: int  # ow
    band: int  # output rows per chunk
    sums: int  # chunk groups, each its own partial sum
    parts: int  # work items per chunk group
    threads: int


class DotPlan(TypedDict):
    """One ``dw_dot``: lanes of pixel sums per tap, one (filter, channel) pair per work item."""

    groups: int
    filters: int  # filters per group
    channels: int  # channels per group
    tblocks: int  # blocks of CC_NT taps
    src_image: int
    src_channel: int
    src_row: int
    threads: int
    packed: int  # 1: the source is the unpadded input, packed plane by plane (pack)
    pack: PackPlan

# Cache budgets of one work item (bytes): the packed filters it reuses over a
# band of tiles, and the band of input planes it reuses over filter blocks.
# Together well inside a 1 MiB L2; smaller L2s still hold the filters.
W_BUDGET = 192 * 2**10
X_BUDGET = 320 * 2**10
# dw: input rows and output-gradient rows of one chunk.
DW_BUDGET = 512 * 2**10
# dw: at most this many chunk groups (partial sums), of at most this many bytes in all;
# the work items the sums' count is chosen for (a shape's own number, not the threads').
DW_GROUPS = 8
DW_PARTIALS_BYTES = 32 * 2**20
DW_ITEMS = 8
# dw by lanes of pixels (one filter at a time) when a group's filters fill at
# most 1/DOT_FILTERS of the filter lanes of the blocked dw kernel.
DOT_FILTERS = 4
# A work item packs its own group's planes (no pass over memory for them)
# when they take at most this many bytes, and there are enough items (whole
# images and groups) for the threads: depthwise layers, small images.
PACK_ITEM_BYTES = 192 * 2**10
# At least this many work items per thread, for balance.
ITEMS_PER_THREAD = 4
# Below these, a pass runs on one thread: waking the others (a few
# microseconds on an idle machine, a scheduler slice on a busy one) costs
# more than they save.
SERIAL_FLOPS = 4_000_000
SERIAL_BYTES = 512 * 2**10


def _threads_for(threads: int, flops: float = 0, nbytes: float = 0) -> int:
    return 1 if flops < SERIAL_FLOPS and nbytes < SERIAL_BYTES else threads


def _kernels() -> Any:
    return _dispatch.conv2d_module()


def _rf(count: int, rf_max: int) -> int:
    """Rows of a pixel tile for ``count`` filters per group: the power of two
    up to rf_max that covers them (3 filters: one block of 4, padded, not two of 2)."""
    rf = 1
    while rf < min(count, rf_max):
        rf *= 2
    return rf


# The kernel choice: cycles estimated from the tile's shape, per reduction
# step (k), on a core that issues FMA_PER_CYCLE vector FMAs and
# LOADS_PER_CYCLE loads a cycle, an FMA's result ready FMA_LATENCY cycles
# later (a step takes at least that: each accumulator waits for its last).
# LOADS_PER_CYCLE is below the two load ports of current x86 cores: fitted
# to the channel kernel's 28 x 1 tile, which is load-bound at 80% of the FMA
# peak where 14 x 2 reaches 98% (a single-core run of the kernels alone).
FMA_PER_CYCLE = 2.0
FMA_LATENCY = 4.0
LOADS_PER_CYCLE = 1.6
# Cycles per output element to write a tile out: memcpy rows (the pixel
# kernel) or a transposing copy (the channel kernel); and per kernel call.
WRITE_PIXELS = 0.25
WRITE_CHANNELS = 0.25
CALL_CYCLES = 30.0
# A pass over memory that makes the planes: bytes a cycle (one core), and
# bytes moved per byte of planes (the input read, the planes written, then
# read again by the kernel from memory rather than from cache).
BYTES_PER_CYCLE = 8.0
PACK_TRAFFIC = 3.0

#: Tests set this to force the kernel of every direct pass: ("pixel", 0, False),
#: ("channel", vectors, rows) (1 or 2 vectors of filters; tiles within rows or over them),
#: or ("row", 0, True) (where the output's columns are contiguous, else the pixel kernel).
FORCE_KERNEL: tuple[str, int, bool] | None = None
KINDS = {"pixel": 0, "channel": 1, "row": 2}
#: Tests set this to force every pass that can to pack its planes per work item (True), or never (False).
FORCE_PACK: bool | None = None


class Kernel(NamedTuple):
    """How a direct pass runs: the kernel and its tiles (see ``direct_pass``)."""

    kind: str  # "pixel", "channel" (filters in the vector) or "row" (the pixel kernel's rows in place)
    block: int  # filters per block
    tile: int  # output positions per tile
    row_tiles: int  # tiles along each output row; 0: tiles over the flattened rows
    cycles: float  # the estimate it was chosen by


def _choose_kernel(count: int, outputs: list[tuple[int, int, int]], ws: int, itemsize: int,
                   flat_only: bool, contiguous: bool = True,
                   pack_cycles: Callable[[Kernel], float] | None = None) -> Kernel:
    """The fastest kernel by estimate for ``count`` filters per group and outputs
    (steps k per output, oh, ow) read from rows ``ws`` long.

    ``flat_only``: no tiles within rows (so that the source can be read in
    place); ``contiguous``: the output's columns are contiguous (the row
    kernel writes them in place).  Both apply unless forced (FORCE_KERNEL).
    ``pack_cycles``: what making the planes costs with a kernel's tiles (a
    pass over memory, or none where work items pack their own).
    """
    blk = _kernels().blocking()
    lanes = blk["vector_bytes"] // itemsize
    candidates = []
    # The pixel kernel: rf filters (broadcast) x np vectors of positions (loaded, unaligned).
    rf = _rf(count, blk["rf_max"])
    npv = _kernels().tile(rf, itemsize) // lanes
    tile = npv * lanes
    step = max(rf * npv / FMA_PER_CYCLE, FMA_LATENCY, (2 * npv + rf) / LOADS_PER_CYCLE)
    cycles = sum(-(-(oh * ws) // tile) * (k * step + CALL_CYCLES + WRITE_PIXELS * rf * tile) for k, oh, _ in outputs)
    candidates.append(Kernel("pixel", rf, tile, 0, -(-count // rf) * cycles))
    # The row kernel: the pixel kernel's sums, one filter at a time, rows in place.
    row_vectors = max(-(-ow // lanes) for _, _, ow in outputs)
    step = sum(max(v / FMA_PER_CYCLE, FMA_LATENCY, (2 * v + 1) / LOADS_PER_CYCLE)
               for v in [4] * (row_vectors // 4) + [row_vectors % 4] if v)
    cycles = sum(oh * (k * step + CALL_CYCLES) for k, oh, _ in outputs)
    candidates.append(Kernel("row", rf, max(ow for _, _, ow in outputs), 1, count * cycles))
    # The channel kernel: nv vectors of filters (loaded) x npx positions (broadcast).
    for nv in range(1, blk["cv_vectors"] + 1):
        block = nv * lanes
        widest = blk["cv_acc"] // nv
        ow_max = max(ow for _, _, ow in outputs)
        per_row = -(-ow_max // widest)
        for npx, rows in [(widest, 0), (-(-ow_max // per_row), per_row)]:
            step = max(npx * nv / FMA_PER_CYCLE, FMA_LATENCY, (npx + nv) / LOADS_PER_CYCLE)
            cycles = sum((oh * rows if rows else -(-(oh * ws) // npx)) * (k * step + CALL_CYCLES + WRITE_CHANNELS
                                                                          * block * npx) for k, oh, _ in outputs)
            candidates.append(Kernel("channel", block, npx, rows, -(-count // block) * cycles))
    if FORCE_KERNEL is not None:
        kind, vectors, rows_ = FORCE_KERNEL
        if kind == "row" and not contiguous:
            kind = "pixel"  # the row kernel writes contiguous columns only
        forced = [c for c in candidates if c.kind == kind
                  and (kind != "channel" or (c.block == vectors * lanes and (c.row_tiles > 0) == rows_))]
        if not forced:
            raise ValueError(f"FORCE_KERNEL={FORCE_KERNEL!r} names no kernel of this build")
        return forced[0]
    usable = [c for c in candidates if not (flat_only and c.row_tiles) and (contiguous or c.kind != "row")]
    return min(usable, key=lambda c: c.cycles + (pack_cycles(c) if pack_cycles else 0.0))


class _Planes:
    """The phase planes of an input, for the taps of a layer."""

    def __init__(self, layer: Layer):
        s = layer.shape
        (sh, sw), (dh, dw) = layer.stride, layer.dilation
        oh, ow = layer.out_size
        ty = [((a * dh) % sh, (a * dh) // sh) for a in range(s.kh)]
        tx = [((b * dw) % sw, (b * dw) // sw) for b in range(s.kw)]
        self.phases = sorted({(py, px) for py, _ in ty for px, _ in tx})
        index = {p: i for i, p in enumerate(self.phases)}
        self.hs = oh + max(r for _, r in ty)
        self.ws = ow + max(r for _, r in tx)
        self.plane = self.hs * self.ws
        self.chan = len(self.phases) * self.plane
        # Tap (a, b), t = a*kw + b: its plane and its row and column offsets in it.
        self.taps = [(index[(py, px)], ry, rx) for py, ry in ty for px, rx in tx]
        self.tapoff = self.tap_offsets(self.hs)
        self.maxrow = self.hs - oh
        self.layer = layer
        # Stride 1, no padding, one filter column (1x1 above all): the planes
        # are x itself, read in place.
        self.in_place = (self.phases == [(0, 0)] and layer.pad == ((0, 0), (0, 0)) and s.kw == 1
                         and (self.hs, self.ws) == (s.ih, s.iw))

    def size(self, images: int, channels: int) -> int:
        return images * channels * self.chan

    def tap_offsets(self, rows: int) -> np.ndarray:
        """Each tap's offset in a channel's planes, the planes ``rows`` high (``hs``, or a band's)."""
        return np.array([p * rows * self.ws + ry * self.ws + rx for p, ry, rx in self.taps], dtype=np.intp)

    def phase_table(self) -> np.ndarray:
        return np.array(self.phases, dtype=np.intp).reshape(-1, 2)

    def pack_plan(self, channels: int, slack: int, threads: int, rows: int = 0) -> PackPlan:
        """Packing ``rows`` rows of each plane (default all) of ``channels`` channels at a time."""
        s = self.layer.shape
        return PackPlan(in_channels=s.c, in_rows=s.ih, in_cols=s.iw, channels=channels,
                        stride_h=self.layer.stride[0], stride_w=self.layer.stride[1], top=self.layer.pad[0][0],
                        left=self.layer.pad[1][0], rows=rows or self.hs, cols=self.ws, slack=slack, threads=threads)

    def pack(self, x: np.ndarray, threads: int, slack: int = 0, in_place: bool = False) -> np.ndarray:
        """The planes of ``x``, and ``slack`` zeros; x itself, flattened, where it is
        its own planes and ``in_place`` allows that (no reads past them)."""
        if in_place and self.in_place:
            return x.reshape(-1)
        n, c = x.shape[:2]
        out = np.empty(self.size(n, c) + max(slack, 0), x.dtype)
        plan = self.pack_plan(c, 0, _threads_for(threads, nbytes=out.nbytes))
        _kernels().pack_planes(x.reshape(-1), out, self.phase_table(), plan)
        return out


@functools.lru_cache(maxsize=64)
def _planes(layer: Layer) -> _Planes:
    """The phase planes of ``layer``'s input (kept: a layer is planned once)."""
    planes = _Planes(layer)
    planes.tapoff.flags.writeable = False
    return planes


def _band_rows(items: int, channels: int, phases: int, ws: int, oh: int, maxrow: int, row_tiles: int,
               itemsize: int, threads: int) -> int | None:
    """Output rows per work item when each item packs the planes its tiles read, or None.

    ``items``: images x groups; a group's planes have ``channels`` x
    ``phases`` planes of rows ``ws`` long, of which ``maxrow`` more than the
    ``oh`` output rows (the taps' reach).  Tiles over the flattened rows: all
    rows, where a group's planes are small (a depthwise layer, a small
    image) and there are items enough.  Tiles within rows: bands of rows
    whose planes fit X_BUDGET, with items enough for the threads, unless the
    bands would be so thin that their shared rows double the packing.  (An
    item packs its band once and runs all the group's filters on it: on
    layer2 and layer3, whose filters do not fit W_BUDGET, 4-7% faster on two
    threads than a pass over memory that packs them all.)
    """
    if FORCE_PACK is False:
        return None
    whole = channels * phases * (oh + maxrow) * ws * itemsize <= PACK_ITEM_BYTES
    enough = threads == 1 or items >= ITEMS_PER_THREAD * threads
    if not row_tiles:
        return oh if FORCE_PACK or (whole and enough) else None
    rows = max(1, min(oh, X_BUDGET // max(1, channels * phases * ws * itemsize) - maxrow))
    while items * -(-oh // rows) < ITEMS_PER_THREAD * threads and rows > 1:
        rows = -(-rows // 2)
    return rows if FORCE_PACK or rows >= min(oh, 2 * maxrow) else None


def _no_pack(threads: int) -> PackPlan:
    return PackPlan(in_channels=0, in_rows=0, in_cols=0, channels=0, stride_h=1, stride_w=1, top=0, left=0,
                    rows=0, cols=0, slack=0, threads=threads)


def _blocks(items_base: int, nfb: int, ntiles: int, w_block: int, x_tile: int, threads: int) -> tuple[int, int]:
    """(filter blocks per item, tiles per item) within the cache budgets, enough items for the threads."""
    fchunk = max(1, min(nfb, W_BUDGET // max(1, w_block)))
    band = max(1, min(ntiles, X_BUDGET // max(1, x_tile)))

    def items(fc: int, bd: int) -> int:
        return items_base * -(-nfb // fc) * -(-ntiles // bd)

    while items(fchunk, band) < ITEMS_PER_THREAD * threads and band > 1:
        band = -(-band // 2)
    while items(fchunk, band) < ITEMS_PER_THREAD * threads and fchunk > 1:
        fchunk = -(-fchunk // 2)
    return fchunk, band


class DirectPass(NamedTuple):
    """A direct pass, planned: all but the data (cached by layer, dtype and threads)."""

    kernel: Kernel
    plan: DirectPlan  # what direct_pass takes (read only: shared by the calls of a plan)
    parts: np.ndarray  # direct_pass's table of outputs sharing the source
    koff: np.ndarray  # every part's offsets
    phases: np.ndarray  # the phases of the planes a work item packs
    tmp_row: int  # elements of each thread's scratch row


def _direct_pass(parts: list[tuple[np.ndarray, int, int, int, int]], sizes: dict[str, int], kernel: Kernel, ws: int,
                 threads: int, itemsize: int, x_tile_bytes: int,
                 pack: tuple[PackPlan, np.ndarray, int, int] | None) -> DirectPass:
    """The plan of one direct_pass call, blocked.

    ``parts`` lists the outputs sharing the source: (koff, elements of
    packed filters, base, oh, ow) each; ``sizes`` has the plan's images,
    groups, fblocks, filters, src_image, src_group, out_image, out_filter,
    out_row and out_col.  ``pack``: (plan, phases, elements of an item's
    planes and slack, output rows per item) when each work item packs its
    own planes from the unpadded input.
    """
    n, g, nfb = sizes["images"], sizes["groups"], sizes["fblocks"]
    tp, per_row = kernel.tile, kernel.row_tiles
    ntiles = max(oh * per_row if per_row else -(-(oh * ws) // tp) for _, _, _, oh, _ in parts)
    k_all = sum(koff.size for koff, *_ in parts)
    w_block = kernel.block * k_all * itemsize
    if pack is None:
        fchunk, band = _blocks(n * g, nfb, ntiles, w_block, x_tile_bytes * tp, threads)
    else:  # an item packs its band once and runs every filter block on it (split only for the threads)
        band = pack[3] * per_row if per_row else ntiles
        fchunk = nfb
        while n * g * -(-ntiles // band) * -(-nfb // fchunk) < ITEMS_PER_THREAD * threads and fchunk > 1:
            fchunk = -(-fchunk // 2)
    table = np.zeros((len(parts), 6), dtype=np.intp)
    k0 = w0 = 0
    for q, (koff, wsize, base, oh, ow) in enumerate(parts):
        table[q] = (koff.size, k0, w0, base, oh, ow)
        k0 += koff.size
        w0 += wsize
    koff_all = np.concatenate([koff for koff, *_ in parts])
    flops = 2 * n * g * nfb * kernel.block * k_all * ntiles * tp
    threads = _threads_for(threads, flops)
    lanes = _kernels().blocking()["vector_bytes"] // itemsize
    # Each thread's tile (as direct_pass lays it out; the row kernel has none), then its planes.
    row = {"pixel": kernel.block * tp, "channel": kernel.block * -(-tp // lanes) * lanes, "row": 0}[kernel.kind]
    pack_plan, phases, group_len, _ = pack if pack is not None else (_no_pack(threads), np.zeros((0, 2), np.intp), 0, 0)
    plan = DirectPlan(images=n, groups=g, block=kernel.block, fblocks=nfb, filters=sizes["filters"],
                      src_image=sizes["src_image"], src_group=sizes["src_group"], src_row=ws,
                      out_image=sizes["out_image"], out_filter=sizes["out_filter"], out_row=sizes["out_row"],
                      out_col=sizes["out_col"], fchunk=fchunk, band=band, tile=tp, row_tiles=per_row,
                      kernel=KINDS[kernel.kind], threads=threads, packed=int(pack is not None), pack=pack_plan)
    for array in (table, koff_all, phases):
        array.flags.writeable = False
    # Each thread's row on a cache-line boundary.
    return DirectPass(kernel, plan, table, koff_all, phases, -(-(row + group_len) // 16) * 16)


def _run(dp: DirectPass, src: np.ndarray, wp: np.ndarray, out: np.ndarray, bias: np.ndarray) -> None:
    """direct_pass as planned, on these arrays."""
    tmp = _aligned(dp.plan["threads"] * dp.tmp_row, src.dtype).reshape(dp.plan["threads"], dp.tmp_row)
    _kernels().direct_pass(src, wp, dp.koff, dp.parts, out, bias, tmp, dp.plan, dp.phases)


def _slack(chan: int, oh: int, ws: int, tile: int, maxoff: int) -> int:
    """Elements past the last channel's planes (``chan`` long) that the last tiles may
    read (see ``direct_pass``; the row kernel's a vector of 64 bytes more), the tap
    offsets within a channel's planes up to ``maxoff``."""
    return max(0, oh * ws + tile + 64 + maxoff - chan)


def _aligned(size: int, dtype: np.dtype) -> np.ndarray:
    """An uninitialised 1-D array whose first element is on a 64-byte boundary (a cache line).

    NumPy aligns large arrays to 16 bytes only: a vector load of 64 bytes
    would then cross a cache line every time.
    """
    raw = np.empty(size * dtype.itemsize + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + size * dtype.itemsize].view(dtype)


_NO_TAPS = np.zeros(0, np.intp)


def _pack_filters(w: np.ndarray, groups: int, block: int, threads: int, taps: np.ndarray | None = None,
                  out: np.ndarray | None = None) -> np.ndarray:
    """``w`` (F, C/G, KH, KW) packed for direct_pass, (G, blocks, K, block) into ``out``
    (64-byte aligned, made when None): zero filters pad the last block.

    ``taps`` None: the forward pass's filters, K = C/G * KH * KW.  Else dx's:
    the transposed filters of these taps (a * KW + b), K = F/G * len(taps),
    blocks of channels.
    """
    f, cg, kh, kw = w.shape
    count, k = (cg, f // groups * taps.size) if taps is not None else (f // groups, cg * kh * kw)
    size = groups * -(-count // block) * k * block
    if out is None:
        out = _aligned(size, w.dtype)
    _kernels().pack_filters(w.reshape(f, -1), out, _NO_TAPS if taps is None else taps, groups, kh * kw, block,
                            taps is not None, _threads_for(threads, nbytes=size * w.dtype.itemsize))
    return out


class ForwardPlan(NamedTuple):
    """The forward pass of a layer, planned (see ``_forward_plan``)."""

    direct: DirectPass
    planes: _Planes
    source: str  # "x": read in place; "items": work items pack their planes; "planes": one pass packs them
    slack: int  # zeros after the planes of the pass


@functools.lru_cache(maxsize=64)
def _forward_plan(layer: Layer, itemsize: int, threads: int, key: tuple[Any, ...]) -> ForwardPlan:
    """Kernel, tiles, packing and offsets of a forward pass: the same for every call
    of a layer, dtype, thread count and ``_key()``."""
    s = layer.shape
    g = layer.groups
    fg = s.f // g
    oh, ow = layer.out_size
    planes = _planes(layer)
    k = s.cg * s.kh * s.kw
    phases = len(planes.phases)

    def packing(kernel: Kernel) -> tuple[bool, int | None]:
        """(x read in place, output rows per work item that packs its own planes, or None)."""
        # In place: tiles over x's flattened rows, each inside one plane.
        in_place = planes.in_place and kernel.row_tiles == 0 and planes.plane >= kernel.tile
        return in_place, None if in_place else _band_rows(s.n * g, s.cg, phases, planes.ws, oh, planes.maxrow,
                                                          kernel.row_tiles, itemsize, threads)

    def pack_cycles(kernel: Kernel) -> float:
        in_place, rows = packing(kernel)
        passes = not in_place and rows is None
        return passes * PACK_TRAFFIC * planes.size(s.n, s.c) * itemsize / BYTES_PER_CYCLE

    kernel = _choose_kernel(fg, [(k, oh, ow)], planes.ws, itemsize, planes.in_place, True, pack_cycles)
    in_place, rows = packing(kernel)
    # The planes' rows (all, or an item's band), and the taps' offsets in them.
    height = planes.hs if rows is None or rows >= oh else rows + planes.maxrow
    tapoff = planes.tap_offsets(height)
    chan = phases * height * planes.ws
    koff = (np.arange(s.cg, dtype=np.intp)[:, None] * chan + tapoff[None, :]).ravel()
    slack = _slack(chan, rows or oh, planes.ws, kernel.tile, int(tapoff.max()))
    nfb = -(-fg // kernel.block)
    sizes = dict(images=s.n, groups=g, fblocks=nfb, filters=fg, src_image=s.c * chan, src_group=s.cg * chan,
                 out_image=s.f * oh * ow, out_filter=oh * ow, out_row=ow, out_col=1)
    pack = None
    if rows is not None:  # each work item packs its own band of planes
        pack = (planes.pack_plan(s.cg, slack, threads, height), planes.phase_table(), s.cg * chan + slack, rows)
    source = "x" if in_place else "items" if pack is not None else "planes"
    direct = _direct_pass([(koff, g * nfb * kernel.block * k, 0, oh, ow)], sizes, kernel, planes.ws, threads,
                          itemsize, s.cg * phases * itemsize, pack)
    return ForwardPlan(direct, planes, source, 0 if in_place else slack)


def _key() -> tuple[Any, ...]:
    """What a plan depends on besides the layer, dtype and threads: the build's
    register blocking, and the paths tests force (FORCE_KERNEL, FORCE_PACK)."""
    return (*_kernels().blocking().values(), FORCE_KERNEL, FORCE_PACK)


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, layer: Layer, threads: int) -> np.ndarray:
    """The forward output (N, F, oh, ow) of C-contiguous ``x`` and ``w`` of one dtype."""
    fp = _forward_plan(layer, x.dtype.itemsize, threads, _key())
    wp = _pack_filters(w, layer.groups, fp.direct.kernel.block, threads)
    src = fp.planes.pack(x, threads, fp.slack) if fp.source == "planes" else x.reshape(-1)
    out = np.empty(math.prod(layer.out_shape), x.dtype)
    bias = np.zeros(0, x.dtype) if b is None else np.ascontiguousarray(b, x.dtype)
    _run(fp.direct, src, wp, out, bias)
    return out.reshape(layer.out_shape)


def _axis_phases(size: int, out: int, stride: int, pad: int, dil: int,
                 k: int) -> list[tuple[int, int, list[tuple[int, int]]]]:
    """Per phase q of dx along one axis: (q, positions, [(tap, offset into dout)])."""
    result = []
    for q in range(min(stride, size)):
        # Taps from the last: offsets into dout ascend, as the forward pass's do.
        taps = [(a, (q + pad - a * dil) // stride) for a in reversed(range(k)) if (q + pad - a * dil) % stride == 0]
        result.append((q, -(-(size - q) // stride), taps))
    return result


class DxPlan(NamedTuple):
    """The dx pass of a layer, planned (see ``_dx_plan``)."""

    direct: DirectPass | None  # None: no tap reaches any input pixel
    covered: bool  # every element of dx is written (no zeros to fill first)
    taps: list[np.ndarray]  # each part's filter taps (a * KW + b), in the order of its offsets
    source: str  # "dout": read in place; "items": work items pack their planes; "planes": one pass packs them
    dout_planes: PackPlan | None  # the pass's packing of dout
    planes_size: int  # elements of that pass's planes and slack


@functools.lru_cache(maxsize=64)
def _dx_plan(layer: Layer, itemsize: int, threads: int, key: tuple[Any, ...]) -> DxPlan:
    """The dx pass, planned: a direct convolution of the zero-padded dout with the
    flipped, transposed filters, one part per stride phase of dx."""
    s = layer.shape
    g = layer.groups
    fg = s.f // g
    oh, ow = layer.out_size
    (sh, sw), (dh, dw), ((pt, _), (pl, _)) = layer.stride, layer.dilation, layer.pad
    rows = _axis_phases(s.ih, oh, sh, pt, dh, s.kh)
    cols = _axis_phases(s.iw, ow, sw, pl, dw, s.kw)
    offs_y = [o for _, _, taps in rows for _, o in taps]
    offs_x = [o for _, _, taps in cols for _, o in taps]
    # Where every phase has taps, the kernel writes every element of dx.
    covered = all(taps for _, _, taps in rows) and all(taps for _, _, taps in cols)
    if not offs_y or not offs_x:
        return DxPlan(None, covered, [], "dout", None, 0)  # no tap reaches any input pixel
    top, left = max(0, -min(offs_y)), max(0, -min(offs_x))
    hd = max(n - 1 + max(o for _, o in taps) for _, n, taps in rows if taps) + top + 1
    wd = max(n - 1 + max(o for _, o in taps) for _, n, taps in cols if taps) + left + 1
    phases = [(qy, qx, ny, nx, ty, tx) for qy, ny, ty in rows for qx, nx, tx in cols
              if ty and tx and ny and nx]
    readable = (top, left, hd, wd, s.kw) == (0, 0, oh, ow, 1)  # dout as its own zero-padded planes
    # Each item may pack the rows of dout its tiles read (rows i .. i + maxrow for output row i).
    ny_max = max(ny for _, _, ny, _, _, _ in phases)
    maxrow = max(oy + top for _, _, _, _, ty, _ in phases for _, oy in ty)

    def packing(kernel: Kernel) -> tuple[bool, int | None]:
        """(dout read in place, output rows per work item that packs its own planes, or None)."""
        in_place = readable and kernel.row_tiles == 0 and oh * ow >= kernel.tile
        return in_place, None if in_place else _band_rows(s.n * g, fg, 1, wd, ny_max, maxrow, kernel.row_tiles,
                                                          itemsize, threads)

    def pack_cycles(kernel: Kernel) -> float:
        in_place, band = packing(kernel)
        return (not in_place and band is None) * PACK_TRAFFIC * s.n * s.f * hd * wd * itemsize / BYTES_PER_CYCLE

    kernel = _choose_kernel(s.cg, [(fg * len(ty) * len(tx), ny, nx) for _, _, ny, nx, ty, tx in phases], wd,
                            itemsize, readable, sw == 1, pack_cycles)
    in_place, band = packing(kernel)
    height = hd if band is None or band >= ny_max else band + maxrow
    ncb = -(-s.cg // kernel.block)
    parts = []
    taps = []
    slack = 0
    for qy, qx, ny, nx, ty, tx in phases:
        toff = np.array([(oy + top) * wd + ox + left for _, oy in ty for _, ox in tx], dtype=np.intp)
        koff = (np.arange(fg, dtype=np.intp)[:, None] * (height * wd) + toff[None, :]).ravel()
        slack = max(slack, _slack(height * wd, band or ny, wd, kernel.tile, int(toff.max())))
        part_taps = np.array([a * s.kw + b for a, _ in ty for b, _ in tx], dtype=np.intp)
        part_taps.flags.writeable = False
        taps.append(part_taps)
        parts.append((koff, g * ncb * kernel.block * koff.size, qy * s.iw + qx, ny, nx))

    def dout_planes(slack: int, threads_: int) -> PackPlan:  # dout, zero-padded: one plane per filter
        return PackPlan(in_channels=s.f, in_rows=oh, in_cols=ow, channels=fg, stride_h=1, stride_w=1, top=top,
                        left=left, rows=height, cols=wd, slack=slack, threads=threads_)

    pack = None
    if band is not None:
        pack = (dout_planes(slack, threads), np.zeros((1, 2), np.intp), fg * height * wd + slack, band)
    source = "dout" if in_place else "items" if pack is not None else "planes"
    size = s.n * s.f * hd * wd + slack
    # src_image and src_group: of the planes packed in one pass (height = hd).
    sizes = dict(images=s.n, groups=g, fblocks=ncb, filters=s.cg, src_image=s.f * hd * wd, src_group=fg * hd * wd,
                 out_image=s.c * s.ih * s.iw, out_filter=s.ih * s.iw, out_row=sh * s.iw, out_col=sw)
    direct = _direct_pass(parts, sizes, kernel, wd, threads, itemsize, fg * itemsize, pack)
    return DxPlan(direct, covered, taps, source, dout_planes(0, _threads_for(threads, nbytes=size * itemsize)), size)


def _dx(dout: np.ndarray, w: np.ndarray, layer: Layer, threads: int) -> np.ndarray:
    """dx of C-contiguous ``dout`` and ``w`` of one dtype: every term of dout, and zeros around it."""
    dtype = dout.dtype
    xp = _dx_plan(layer, dtype.itemsize, threads, _key())
    s = layer.shape
    g = layer.groups
    fg = s.f // g
    dx = (np.empty if xp.covered else np.zeros)((s.n, s.c, s.ih, s.iw), dtype)
    if xp.direct is None:
        return dx
    # Every part's transposed filters, each on a cache-line boundary (their blocks are whole lines).
    wp = _aligned(int(xp.direct.parts[-1, 2]) + g * -(-s.cg // xp.direct.kernel.block) * xp.direct.kernel.block
                  * fg * xp.taps[-1].size, dtype)
    for q, part_taps in enumerate(xp.taps):
        start = int(xp.direct.parts[q, 2])
        _pack_filters(w, g, xp.direct.kernel.block, threads, part_taps, wp[start:])
    if xp.source == "planes":
        src = np.empty(xp.planes_size, dtype)
        _kernels().pack_planes(dout.reshape(-1), src, np.zeros((1, 2), dtype=np.intp), xp.dout_planes)
    else:  # dout itself, read in place or packed by the work items
        src = dout.reshape(-1)
    # Every phase at once: a band of dout is read from memory once for all of them.
    _run(xp.direct, src, wp, dx.reshape(-1), np.zeros(0, dtype))
    return dx


class DwPlanned(NamedTuple):
    """The dw pass of a layer, planned (see ``_dw_plan``)."""

    planes: _Planes
    dot: DotPlan | None  # depthwise: lanes of pixels per tap (dw_dot)
    blocked: DwPlan | None  # else: rows of dw^T against vectors of filters (dw_pass)
    offsets: np.ndarray  # toff (dw_dot) or roff (dw_pass)
    filter_lanes: int  # dw_pass: filters per block
    work: int  # dw_dot, planes packed by work items: elements of each thread's planes
    acc_size: int  # elements of the partial sums
    finish_threads: int


@functools.lru_cache(maxsize=64)
def _dw_plan(layer: Layer, itemsize: int, threads: int, key: tuple[Any, ...]) -> DwPlanned:
    """The dw pass, planned (``key``: ``_key()``)."""
    blk = _kernels().blocking()
    s = layer.shape
    g = layer.groups
    fg = s.f // g
    oh, ow = layer.out_size
    planes = _planes(layer)
    taps = s.kh * s.kw
    vbytes, rc, nv, nt = blk["vector_bytes"], blk["dw_rows"], blk["dw_vectors"], blk["dot_taps"]
    flops = 2.0 * s.n * s.f * oh * ow * s.cg * taps
    fb = nv * vbytes // itemsize
    threads = _threads_for(threads, flops)
    if fg * DOT_FILTERS <= fb:  # depthwise, few filters: lanes of pixels, per tap
        ntb = -(-taps // nt)
        toff = np.concatenate([planes.tapoff, np.repeat(planes.tapoff[-1:], ntb * nt - taps)])
        # Each item may pack one channel's planes of each image, no pass over memory for them, where
        # no other item packs them too (one filter a channel and one block of taps: depthwise).
        packed = not planes.in_place and _band_rows(s.f * s.cg * ntb, 1, len(planes.phases), planes.ws, oh,
                                                    planes.maxrow, 0, itemsize, threads) is not None
        packed = packed and (fg * ntb == 1 or FORCE_PACK is True)
        dot = DotPlan(groups=g, filters=fg, channels=s.cg, tblocks=ntb, src_image=s.c * planes.chan,
                      src_channel=planes.chan, src_row=planes.ws, threads=threads, packed=int(packed),
                      pack=planes.pack_plan(1, 0, threads))
        toff.flags.writeable = False
        return DwPlanned(planes, dot, None, toff, 0, planes.chan if packed else 0,
                         s.f * s.cg * ntb * nt * (vbytes // itemsize), 1)
    nfb = -(-fg // fb)
    k = s.cg * taps
    nkb = -(-k // rc)
    roff = (np.arange(s.cg, dtype=np.intp)[:, None] * planes.chan + planes.tapoff[None, :]).ravel()
    roff = np.concatenate([roff, np.repeat(roff[-1:], nkb * rc - k)])
    row_bytes = (s.c * len(planes.phases) * planes.ws + g * nfb * fb * ow) * itemsize
    band = max(1, min(oh, DW_BUDGET // max(1, row_bytes)))
    nchunks = s.n * -(-oh // band)
    blocks = g * nkb * nfb
    data = planes.size(s.n, s.c) + s.n * g * nfb * oh * ow * fb
    sums = _dw_sums(nchunks, blocks * rc * fb * itemsize, data * itemsize)
    parts = max(1, min(blocks, -(-ITEMS_PER_THREAD * threads // sums)))
    plan = DwPlan(images=s.n, groups=g, kblocks=nkb, fblocks=nfb, src_image=s.c * planes.chan,
                  src_group=s.cg * planes.chan, src_row=planes.ws, out_rows=oh, out_cols=ow, band=band,
                  sums=sums, parts=parts, threads=threads)
    roff.flags.writeable = False
    acc_size = sums * blocks * rc * fb
    return DwPlanned(planes, None, plan, roff, fb, 0, acc_size, _threads_for(threads, nbytes=acc_size * itemsize))


def _dw(x: np.ndarray, dout: np.ndarray, layer: Layer, threads: int) -> np.ndarray:
    """dw of C-contiguous ``x`` and ``dout`` of one dtype."""
    mod = _kernels()
    dtype = x.dtype
    dp = _dw_plan(layer, dtype.itemsize, threads, _key())
    s = layer.shape
    g = layer.groups
    fg = s.f // g
    taps = s.kh * s.kw
    if dp.dot is not None:
        threads = dp.dot["threads"]
        acc = np.zeros(dp.acc_size, dtype)
        src = x.reshape(-1) if dp.dot["packed"] else dp.planes.pack(x, threads, in_place=True)
        mod.dw_dot(src, dout, dp.offsets, acc, dp.dot, dp.planes.phase_table(), np.empty((threads, dp.work), dtype))
        with np.errstate(invalid="ignore", over="ignore"):
            dw = acc.reshape(s.f, s.cg, -1, mod.blocking()["vector_bytes"] // dtype.itemsize)[:, :, :taps].sum(axis=-1)
        return dw.reshape(s.f, s.cg, s.kh, s.kw)
    assert dp.blocked is not None
    src = dp.planes.pack(x, threads, in_place=True)
    fb = dp.filter_lanes
    d_t = np.empty(s.n * g * dp.blocked["fblocks"] * math.prod(layer.out_size) * fb, dtype)
    mod.filters_last(dout, d_t, g, fb, _threads_for(threads, nbytes=d_t.nbytes))
    acc = _aligned(dp.acc_size, dtype)
    mod.dw_pass(src, d_t, dp.offsets, acc, dp.blocked)
    dw = np.empty((s.f, s.cg, s.kh, s.kw), dtype)
    finish = dp.blocked.copy()
    finish["threads"] = dp.finish_threads
    mod.dw_finish(acc, dw.reshape(-1), finish, s.cg * taps, fg)
    return dw


def _dw_sums(chunks: int, dw_bytes: int, data_bytes: int) -> int:
    """How many partial sums of dw the chunks of the pixels are split into (see ``dw_pass``).

    Fixed by the shape alone, so that dw has the same bits on any thread
    count.  Each partial costs a dw to write and add up (about three passes
    over ``dw_bytes``); each of the work items that split the blocks of dw
    among themselves reads all the ``data_bytes`` of its chunks.  The
    estimate takes DW_ITEMS items, split between the two.
    """
    def cost(sums: int) -> float:
        return 3.0 * sums * dw_bytes * (sums > 1) + data_bytes * -(-DW_ITEMS // sums)

    candidates = [s for s in (1, 2, 4, 8) if s <= min(chunks, DW_GROUPS) and s * dw_bytes <= DW_PARTIALS_BYTES]
    return min(candidates or [1], key=cost)


def backward(x: np.ndarray, w: np.ndarray, dout: np.ndarray, layer: Layer,
             threads: int) -> tuple[np.ndarray, np.ndarray]:
    """(dx, dw) of C-contiguous ``x``, ``w`` and ``dout`` of one dtype."""
    dw = _dw(x, dout, layer, threads)
    if np.isfinite(w).all():
        return _dx(dout, w, layer, threads), dw
    return _dx_nonfinite_filter(dout, w, layer, threads), dw


def _dx_nonfinite_filter(dout: np.ndarray, w: np.ndarray, layer: Layer, threads: int) -> np.ndarray:
    """dx for a filter holding NaN or Inf: the zeros around dout are no terms.

    The finite parts give every input its finite sum; each kind of
    non-finite term (as ``cconv._nonfinite`` lists them) is then counted
    over PyTorch's terms only, by the same kernel on float64 class masks.
    """
    dx = _dx(finite_part(dout), finite_part(w), layer, threads)

    def count(terms: list[tuple[np.ndarray, np.ndarray, str, str]]) -> np.ndarray:
        return sum((_dx(md.astype(np.float64), mw.astype(np.float64), layer, threads) for md, mw, _, _ in terms),
                   np.zeros(dx.shape))

    write_flags(dx, term_flags(classes(dout), classes(w), count, dx.shape))
    return dx


def workspace_bytes(layer: Layer, itemsize: int, backward_pass: bool) -> int:
    """Bytes the direct route allocates besides its results (an upper bound)."""
    s = layer.shape
    planes = _planes(layer)
    oh, ow = layer.out_size
    # The planes, in one pass (no more than one work item per thread packs its own).
    total = planes.size(s.n, s.c) + 64 * planes.ws + 4096
    total += (s.f + 64) * (s.cg + 64) * s.kh * s.kw  # packed filters
    total += get_num_threads() * (64 * 32 + 2 * 64 * planes.ws)  # each thread's tile and slack
    if backward_pass:
        (sh, sw), (dh, dw) = layer.stride, layer.dilation
        hd = oh + (s.kh - 1) * dh // sh + s.ih // sh + 2
        wd = ow + (s.kw - 1) * dw // sw + s.iw // sw + 2
        total += s.n * s.f * min(hd * wd, (oh + s.kh * dh) * (ow + s.kw * dw)) + 64 * wd  # padded dout
        total += s.n * (s.f + 64 * layer.groups) * oh * ow  # dout, filters last
        total += min(DW_GROUPS * (s.f + 64) * (s.cg * s.kh * s.kw + 8),  # dw partials
                     DW_PARTIALS_BYTES // itemsize + (s.f + 64) * (s.cg * s.kh * s.kw + 8))
    return total * itemsize
