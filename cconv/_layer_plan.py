"""The 4-D layer's direct route: layouts, offsets and blocking for the kernels.

The kernels of ``cconv._conv2d_direct`` (one build per ISA, chosen by
``cconv._build``) take every pass as small matrix products whose operands
are read in place through tables of offsets; this module lays the operands
out, builds the tables and chooses the blocking, once per call:

- Input: zero-padded, split by stride phase (``pack_planes``): plane
  ``(py, px)`` of channel c holds ``xpad[c, r*sh + py, q*sw + px]``, so a
  tap ``(a, b)`` of any stride and dilation reads a contiguous run of
  pixels at offset ``koff`` in one plane.  Only the phases some tap uses are
  made (a 1x1 filter at stride 2 copies a quarter of x; at stride 1
  without padding x is read in place, with no copy).  Rows are
  ``ws = ow + (largest tap column offset)`` long, so an output row and its
  windows are one flattened run: a tile of the kernel spans rows, and the
  few columns past ``ow`` are computed and dropped.  One copy of x (plus its
  padding): no im2col.
- Forward: tiles of ``rf`` filters x ``tile(rf)`` pixels (8 x 48 float32 in
  the AVX-512 build), filters packed (G, nfb, K, rf), K = channels x taps.
- dx: a direct convolution of the zero-padded output gradient with the
  flipped, transposed filters, one stride phase of dx at a time (the taps
  that reach that phase): the same kernel, no col2im, no atomics.
- dw: rows (channel, tap) of dw^T against vectors of filters, summed over
  pixels, with the output gradient laid out filters last.  Chunks of output
  rows form a fixed number of groups (set by the shape, not the threads),
  each summing its chunks in order into its own partial dw; the partials
  are added in order.  One parallel loop over (group, part of the blocks),
  no barrier per chunk, and dw has the same bits on every run and thread
  count.
  Depthwise layers and others with few filters per group: lanes of pixels
  per tap, one (filter, channel) pair per item, summed over images in order.

NaN and Inf: the forward pass and dw sum exactly PyTorch's terms (padding
zeros included, dropped columns and padded filter rows never reach the
result).  dx reads zeros around the output gradient that are no terms of
PyTorch's dx: with a filter holding NaN or Inf it is computed from finite
parts and the non-finite pattern counted by the same kernel on class masks.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypedDict

import numpy as np

from . import _build
from ._nonfinite import classes, finite_part, term_flags, write_flags

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
    """One layer's options, checked (by ``cconv._conv2d``), and the output size they imply.

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
    threads: int


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

# Cache budgets of one work item (bytes): the packed filters it reuses over a
# band of tiles, and the band of input planes it reuses over filter blocks.
# Together well inside a 1 MiB L2; smaller L2s still hold the filters.
W_BUDGET = 192 * 2**10
X_BUDGET = 320 * 2**10
# dw: input rows and output-gradient rows of one chunk.
DW_BUDGET = 512 * 2**10
# dw: at most this many chunk groups (partial sums), of at most this many bytes in all.
DW_GROUPS = 8
DW_PARTIALS_BYTES = 32 * 2**20
# dw by lanes of pixels (one filter at a time) when a group's filters fill at
# most 1/DOT_FILTERS of the filter lanes of the blocked dw kernel.
DOT_FILTERS = 4
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
    return _build.conv2d_module()


def _rf(count: int, rf_max: int) -> int:
    """Rows of a forward tile for ``count`` filters per group: the power of two
    up to rf_max that covers them (3 filters: one block of 4, padded, not two of 2)."""
    rf = 1
    while rf < min(count, rf_max):
        rf *= 2
    return rf


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
        # Offset of tap (a, b), t = a*kw + b, in a channel's planes.
        self.tapoff = np.array(
            [index[(py, px)] * self.plane + ry * self.ws + rx for py, ry in ty for px, rx in tx], dtype=np.intp
        )
        self.stride, self.pad = (sh, sw), (layer.pad[0][0], layer.pad[1][0])

        s_ = layer.shape
        # Stride 1, no padding, one filter column (1x1 above all): the planes
        # are x itself, read in place.
        self.in_place = (self.phases == [(0, 0)] and layer.pad == ((0, 0), (0, 0)) and s_.kw == 1
                         and (self.hs, self.ws) == (s_.ih, s_.iw))

    def size(self, images: int, channels: int) -> int:
        return images * channels * self.chan

    def pack(self, x: np.ndarray, threads: int, slack: int = 0, tile: int = 0) -> np.ndarray:
        """The planes of ``x`` (x itself, flattened, where that needs no slack)."""
        if self.in_place and (slack <= 0 or self.hs * self.ws >= tile):
            return x.reshape(-1)
        n, c = x.shape[:2]
        out = np.empty(self.size(n, c) + max(slack, 0), x.dtype)
        (sh, sw), (top, left) = self.stride, self.pad
        _kernels().pack_planes(x, out, np.array(self.phases, dtype=np.intp).reshape(-1, 2),
                               sh, sw, top, left, self.hs, self.ws, _threads_for(threads, nbytes=out.nbytes))
        return out


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


def _run_direct(src: np.ndarray, parts: list[tuple[np.ndarray, np.ndarray, int, int, int]], out: np.ndarray,
                bias: np.ndarray, sizes: dict[str, int], rf: int, ws: int, threads: int, dtype: np.dtype,
                x_tile_bytes: int) -> None:
    """One direct_pass call, blocked.

    ``parts`` lists the outputs sharing ``src``: (packed filters, koff, base,
    oh, ow) each; ``sizes`` has the plan's images, groups, fblocks, filters,
    src_image, src_group, out_image, out_filter, out_row and out_col.
    """
    mod = _kernels()
    n, g, nfb = sizes["images"], sizes["groups"], sizes["fblocks"]
    tp = mod.tile(rf, dtype.itemsize)
    ntiles = max(-(-(oh * ws) // tp) for _, _, _, oh, _ in parts)
    k_all = sum(koff.size for _, koff, _, _, _ in parts)
    fchunk, band = _blocks(n * g, nfb, ntiles, rf * k_all * dtype.itemsize, x_tile_bytes * tp, threads)
    phases = np.zeros((len(parts), 6), dtype=np.intp)
    k0 = w0 = 0
    for q, (wp, koff, base, oh, ow) in enumerate(parts):
        phases[q] = (koff.size, k0, w0, base, oh, ow)
        k0 += koff.size
        w0 += wp.size
    wp_all = np.concatenate([wp for wp, *_ in parts])
    koff_all = np.concatenate([koff for _, koff, *_ in parts])
    flops = 2 * n * g * nfb * rf * k_all * ntiles * tp
    threads = _threads_for(threads, flops)
    tmp = np.empty((threads, rf * tp), dtype)
    plan = DirectPlan(images=n, groups=g, block=rf, fblocks=nfb, filters=sizes["filters"],
                      src_image=sizes["src_image"], src_group=sizes["src_group"], src_row=ws,
                      out_image=sizes["out_image"], out_filter=sizes["out_filter"], out_row=sizes["out_row"],
                      out_col=sizes["out_col"], fchunk=fchunk, band=band, threads=threads)
    mod.direct_pass(src, wp_all, koff_all, phases, out, bias, tmp, plan)


def _slack(images_channels: int, chan: int, oh: int, ws: int, tp: int, maxoff: int) -> int:
    """Elements past the planes that the last tiles read."""
    ntiles = -(-(oh * ws) // tp)
    return (images_channels - 1) * chan + ntiles * tp + maxoff + 1 - images_channels * chan


def forward(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, layer: Layer, threads: int) -> np.ndarray:
    """The forward output (N, F, oh, ow) of C-contiguous ``x`` and ``w`` of one dtype."""
    mod = _kernels()
    dtype = x.dtype
    s = layer.shape
    g = layer.groups
    fg = s.f // g
    oh, ow = layer.out_size
    planes = _Planes(layer)
    taps = s.kh * s.kw
    k = s.cg * taps
    rf = _rf(fg, mod.blocking()[1])
    nfb = -(-fg // rf)
    wp = np.zeros((g, nfb * rf, k), dtype)
    wp[:, :fg] = w.reshape(g, fg, k)
    wp = np.ascontiguousarray(wp.reshape(g, nfb, rf, k).transpose(0, 1, 3, 2)).ravel()
    koff = (np.arange(s.cg, dtype=np.intp)[:, None] * planes.chan + planes.tapoff[None, :]).ravel()
    tp = mod.tile(rf, dtype.itemsize)
    src = planes.pack(x, threads, _slack(s.n * s.c, planes.chan, oh, planes.ws, tp, int(planes.tapoff.max())), tp)
    out = np.empty(s.n * s.f * oh * ow, dtype)
    bias = np.zeros(0, dtype) if b is None else np.ascontiguousarray(b, dtype)
    x_tile = s.cg * len(planes.phases) * dtype.itemsize
    sizes = dict(images=s.n, groups=g, fblocks=nfb, filters=fg, src_image=s.c * planes.chan,
                 src_group=s.cg * planes.chan, out_image=s.f * oh * ow, out_filter=oh * ow, out_row=ow, out_col=1)
    _run_direct(src, [(wp, koff, 0, oh, ow)], out, bias, sizes, rf, planes.ws, threads, dtype, x_tile)
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


def _dx(dout: np.ndarray, w: np.ndarray, layer: Layer, threads: int) -> np.ndarray:
    """dx of C-contiguous ``dout`` and ``w`` of one dtype: every term of dout, and zeros around it."""
    mod = _kernels()
    dtype = dout.dtype
    s = layer.shape
    g = layer.groups
    fg = s.f // g
    oh, ow = layer.out_size
    (sh, sw), (dh, dw), ((pt, _), (pl, _)) = layer.stride, layer.dilation, layer.pad
    rows = _axis_phases(s.ih, oh, sh, pt, dh, s.kh)
    cols = _axis_phases(s.iw, ow, sw, pl, dw, s.kw)
    dx = np.zeros((s.n, s.c, s.ih, s.iw), dtype)
    offs_y = [o for _, _, taps in rows for _, o in taps]
    offs_x = [o for _, _, taps in cols for _, o in taps]
    if not offs_y or not offs_x:
        return dx  # no tap reaches any input pixel
    top, left = max(0, -min(offs_y)), max(0, -min(offs_x))
    hd = max(n - 1 + max(o for _, o in taps) for _, n, taps in rows if taps) + top + 1
    wd = max(n - 1 + max(o for _, o in taps) for _, n, taps in cols if taps) + left + 1
    rc = _rf(s.cg, mod.blocking()[1])
    ncb = -(-s.cg // rc)
    tp = mod.tile(rc, dtype.itemsize)
    plan = []
    slack = 0
    for qy, ny, ty in rows:
        for qx, nx, tx in cols:
            if not ty or not tx or ny == 0 or nx == 0:
                continue
            toff = np.array([(oy + top) * wd + ox + left for _, oy in ty for _, ox in tx], dtype=np.intp)
            koff = (np.arange(fg, dtype=np.intp)[:, None] * (hd * wd) + toff[None, :]).ravel()
            slack = max(slack, _slack(s.n * s.f, hd * wd, ny, wd, tp, int(toff.max())))
            plan.append((qy, qx, ny, nx, [a for a, _ in ty], [b for b, _ in tx], koff))
    if (top, left, hd, wd, s.kw) == (0, 0, oh, ow, 1) and oh * ow >= tp:
        src = dout.reshape(-1)  # the zero-padded dout is dout itself: read in place
    else:
        src = np.empty(s.n * s.f * hd * wd + max(slack, 0), dtype)
        mod.pack_planes(dout, src, np.zeros((1, 2), dtype=np.intp), 1, 1, top, left, hd, wd,
                        _threads_for(threads, nbytes=src.nbytes))
    wg = w.reshape(g, fg, s.cg, s.kh, s.kw)
    parts = []
    for qy, qx, ny, nx, ay, bx, koff in plan:
        taps = len(ay) * len(bx)
        k = fg * taps
        # (G, cg, fg, taps): the phase's taps of the transposed filters.
        wq = wg[:, :, :, ay][:, :, :, :, bx].reshape(g, fg, s.cg, taps).transpose(0, 2, 1, 3).reshape(g, s.cg, k)
        wp = np.zeros((g, ncb * rc, k), dtype)
        wp[:, : s.cg] = wq
        wp = np.ascontiguousarray(wp.reshape(g, ncb, rc, k).transpose(0, 1, 3, 2)).ravel()
        parts.append((wp, koff, qy * s.iw + qx, ny, nx))
    # Every phase at once: a band of dout is read from memory once for all of them.
    sizes = dict(images=s.n, groups=g, fblocks=ncb, filters=s.cg, src_image=s.f * hd * wd, src_group=fg * hd * wd,
                 out_image=s.c * s.ih * s.iw, out_filter=s.ih * s.iw, out_row=sh * s.iw, out_col=sw)
    _run_direct(src, parts, dx.reshape(-1), np.zeros(0, dtype), sizes, rc, wd, threads, dtype, fg * dtype.itemsize)
    return dx


def _dw(x: np.ndarray, dout: np.ndarray, layer: Layer, threads: int) -> np.ndarray:
    """dw of C-contiguous ``x`` and ``dout`` of one dtype."""
    mod = _kernels()
    dtype = x.dtype
    s = layer.shape
    g = layer.groups
    fg = s.f // g
    oh, ow = layer.out_size
    planes = _Planes(layer)
    taps = s.kh * s.kw
    src = planes.pack(x, threads)
    vbytes, _, rc, nv, nt = mod.blocking()
    flops = 2.0 * s.n * s.f * oh * ow * s.cg * taps
    fb = nv * vbytes // dtype.itemsize
    if fg * DOT_FILTERS <= fb:  # depthwise, few filters: lanes of pixels, per tap
        lanes = vbytes // dtype.itemsize
        ntb = -(-taps // nt)
        toff = np.concatenate([planes.tapoff, np.repeat(planes.tapoff[-1:], ntb * nt - taps)])
        acc = np.zeros(s.f * s.cg * ntb * nt * lanes, dtype)
        mod.dw_dot(src, dout, toff, acc,
                   DotPlan(groups=g, filters=fg, channels=s.cg, tblocks=ntb, src_image=s.c * planes.chan,
                           src_channel=planes.chan, src_row=planes.ws, threads=_threads_for(threads, flops)))
        with np.errstate(invalid="ignore", over="ignore"):
            dw = acc.reshape(s.f, s.cg, ntb * nt, lanes)[:, :, :taps].sum(axis=-1)
        return dw.reshape(s.f, s.cg, s.kh, s.kw)
    nfb = -(-fg // fb)
    d_t = np.empty(s.n * g * nfb * oh * ow * fb, dtype)
    mod.filters_last(dout, d_t, g, fb, _threads_for(threads, nbytes=d_t.nbytes))
    k = s.cg * taps
    nkb = -(-k // rc)
    roff = (np.arange(s.cg, dtype=np.intp)[:, None] * planes.chan + planes.tapoff[None, :]).ravel()
    roff = np.concatenate([roff, np.repeat(roff[-1:], nkb * rc - k)])
    row_bytes = (s.c * len(planes.phases) * planes.ws + g * nfb * fb * ow) * dtype.itemsize
    band = max(1, min(oh, DW_BUDGET // max(1, row_bytes)))
    nchunks = s.n * -(-oh // band)
    blocks = g * nkb * nfb
    block_bytes = rc * fb * dtype.itemsize
    # Chunk groups, each its own partial dw: a number fixed by the shape (not
    # the threads), so dw has the same bits on any thread count.
    groups_ = max(1, min(nchunks, DW_GROUPS, DW_PARTIALS_BYTES // max(1, blocks * block_bytes)))
    threads = _threads_for(threads, flops)
    parts = max(1, min(blocks, -(-ITEMS_PER_THREAD * threads // groups_)))
    acc = np.zeros(groups_ * blocks * rc * fb, dtype)
    mod.dw_pass(src, d_t, roff, acc,
                DwPlan(images=s.n, groups=g, kblocks=nkb, fblocks=nfb, src_image=s.c * planes.chan,
                       src_group=s.cg * planes.chan, src_row=planes.ws, out_rows=oh, out_cols=ow, band=band,
                       sums=groups_, parts=parts, threads=threads))
    with np.errstate(invalid="ignore", over="ignore"):
        acc = acc.reshape(groups_, -1).sum(axis=0) if groups_ > 1 else acc
    dwt = acc.reshape(g, nkb, nfb, rc, fb).transpose(0, 1, 3, 2, 4).reshape(g, nkb * rc, nfb * fb)[:, :k, :fg]
    return np.ascontiguousarray(dwt.reshape(g, s.cg, taps, fg).transpose(0, 3, 1, 2)).reshape(s.f, s.cg, s.kh, s.kw)


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
    planes = _Planes(layer)
    oh, ow = layer.out_size
    total = planes.size(s.n, s.c) + 64 * planes.ws + 4096
    total += (s.f + 16) * (s.cg + 16) * s.kh * s.kw  # packed filters
    if backward_pass:
        (sh, sw), (dh, dw) = layer.stride, layer.dilation
        hd = oh + (s.kh - 1) * dh // sh + s.ih // sh + 2
        wd = ow + (s.kw - 1) * dw // sw + s.iw // sw + 2
        total += s.n * s.f * min(hd * wd, (oh + s.kh * dh) * (ow + s.kw * dw)) + 64 * wd  # padded dout
        total += s.n * (s.f + 64 * layer.groups) * oh * ow  # dout, filters last
        total += min(DW_GROUPS * (s.f + 64) * (s.cg * s.kh * s.kw + 8),  # dw partials
                     DW_PARTIALS_BYTES // itemsize + (s.f + 64) * (s.cg * s.kh * s.kw + 8))
    return total * itemsize
