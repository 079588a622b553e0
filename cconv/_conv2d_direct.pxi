# The 4-D layer's direct convolution loops.  Included by _conv2d_direct.pyx
# and its per-ISA twins (_conv2d_direct_v3.pyx, _conv2d_direct_v4.pyx); see
# _conv2d_direct.pyx for what they compute and cconv._layer4d_plan for the
# layouts, offsets and blocking they are given.

from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

from cconv._fused cimport real

include "_build_info.pxi"


cdef extern from "conv2d_kernels.h" nogil:
    int CC_RF_MAX, CC_RC, CC_NV, CC_NT, CC_VBYTES, CC_CV_ACC, CC_CV_NV
    Py_ssize_t cc_tile(int rf, int itemsize)
    void cc_cv_f32(int nv, int npx, const float* w, const float* src, const Py_ssize_t* koff,
                   Py_ssize_t K, float* tmp)
    void cc_cv_f64(int nv, int npx, const double* w, const double* src, const Py_ssize_t* koff,
                   Py_ssize_t K, double* tmp)
    void cc_filters_last_f32(const float* d, Py_ssize_t P, Py_ssize_t nl, Py_ssize_t fl, float* o)
    void cc_filters_last_f64(const double* d, Py_ssize_t P, Py_ssize_t nl, Py_ssize_t fl, double* o)
    void cc_prefetch_rows(const char* p, Py_ssize_t stride_bytes, Py_ssize_t rows, Py_ssize_t span)
    void cc_rowk_f32(Py_ssize_t rows, Py_ssize_t rf, const float* w, const float* src, const Py_ssize_t* koff,
                     Py_ssize_t K, Py_ssize_t n, float* out, Py_ssize_t ostride, const float* b)
    void cc_rowk_f64(Py_ssize_t rows, Py_ssize_t rf, const double* w, const double* src, const Py_ssize_t* koff,
                     Py_ssize_t K, Py_ssize_t n, double* out, Py_ssize_t ostride, const double* b)
    void cc_rows_f32(float* d, Py_ssize_t dstride, const float* s, Py_ssize_t sstride, Py_ssize_t rows,
                     Py_ssize_t n, const float* b)
    void cc_rows_f64(double* d, Py_ssize_t dstride, const double* s, Py_ssize_t sstride, Py_ssize_t rows,
                     Py_ssize_t n, const double* b)
    void cc_fwd_f32(int rf, int np, const float* w, const float* src, const Py_ssize_t* koff,
                    Py_ssize_t K, float* tmp)
    void cc_fwd_f64(int rf, int np, const double* w, const double* src, const Py_ssize_t* koff,
                    Py_ssize_t K, double* tmp)
    void cc_dwf_f32(const float* x, const Py_ssize_t* roff, Py_ssize_t xrs, const float* d,
                    Py_ssize_t rows, Py_ssize_t ow, float* acc)
    void cc_dwf_f64(const double* x, const Py_ssize_t* roff, Py_ssize_t xrs, const double* d,
                    Py_ssize_t rows, Py_ssize_t ow, double* acc)
    void cc_dwdot_f32(const float* x, const Py_ssize_t* toff, Py_ssize_t xrs, const float* d,
                      Py_ssize_t drs, Py_ssize_t rows, Py_ssize_t ow, float* acc)
    void cc_dwdot_f64(const double* x, const Py_ssize_t* toff, Py_ssize_t xrs, const double* d,
                      Py_ssize_t drs, Py_ssize_t rows, Py_ssize_t ow, double* acc)


# The plans of the passes, filled from cconv._layer4d_plan's dicts of the same
# names (Cython converts a dict with these keys; a missing key is an error).
ctypedef struct PackPlan:
    Py_ssize_t in_channels, in_rows, in_cols  # the source: (N, in_channels, in_rows, in_cols)
    Py_ssize_t channels  # channels per group (packed together by a work item)
    Py_ssize_t stride_h, stride_w, top, left, rows, cols  # the planes' geometry
    Py_ssize_t slack  # zeros after a work item's planes
    int threads

ctypedef struct DirectPlan:
    Py_ssize_t images, groups, block, fblocks, filters
    Py_ssize_t src_image, src_group, src_row
    Py_ssize_t out_image, out_filter, out_row, out_col
    Py_ssize_t fchunk, band, tile, row_tiles
    int kernel, threads  # kernel: 0 pixel, 1 channel, 2 row
    int packed  # 1: src is the unpadded input, each work item packs its planes itself (pack)
    PackPlan pack

ctypedef struct DwPlan:
    Py_ssize_t images, groups, kblocks, fblocks
    Py_ssize_t src_image, src_group, src_row
    Py_ssize_t out_rows, out_cols, band, sums, parts
    int threads

ctypedef struct DotPlan:
    Py_ssize_t groups, filters, channels, tblocks
    Py_ssize_t src_image, src_channel, src_row
    int threads
    int packed  # 1: src is the unpadded input, packed plane by plane into work (pack)
    PackPlan pack


def blocking():
    """This build's register blocking, by name (``cconv._layer4d_plan`` reads it).

    ``vector_bytes``; the pixel kernel's most filter rows ``rf_max``; the
    channel kernel's accumulators ``cv_acc`` and most filter vectors
    ``cv_vectors``; dw's rows ``dw_rows`` and filter vectors ``dw_vectors``;
    the depthwise dw's taps per call ``dot_taps``.
    """
    return {"vector_bytes": CC_VBYTES, "rf_max": CC_RF_MAX, "cv_acc": CC_CV_ACC, "cv_vectors": CC_CV_NV,
            "dw_rows": CC_RC, "dw_vectors": CC_NV, "dot_taps": CC_NT}


def tile(int rf, int itemsize):
    """Output pixels of one forward tile of ``rf`` rows."""
    return cc_tile(rf, itemsize)


cdef void _pack_plane(const real* x, real* o, Py_ssize_t py, Py_ssize_t px, Py_ssize_t r0,
                      const PackPlan* pk) noexcept nogil:
    """Rows ``r0`` on of phase plane ``(py, px)`` of one channel ``x`` (in_rows x in_cols), into ``o``.

    ``o[r, q]`` (rows x cols) is ``x[(r0 + r)*stride_h + py - top, q*stride_w + px - left]``,
    or zero outside ``x``.
    """
    cdef Py_ssize_t ih = pk.in_rows, iw = pk.in_cols, hs = pk.rows, ws = pk.cols
    cdef Py_ssize_t sh = pk.stride_h, sw = pk.stride_w, top = pk.top, left = pk.left
    cdef Py_ssize_t r, q, y, q0, q1
    cdef const real* row
    # Columns q whose source column q*sw + px - left is inside x: [q0, q1).
    q0 = 0
    if left - px > 0:
        q0 = (left - px + sw - 1) // sw
    q1 = 0
    if iw - 1 + left - px >= 0:
        q1 = (iw - 1 + left - px) // sw + 1
    if q1 > ws:
        q1 = ws
    if q0 > q1:
        q0 = q1
    for r in range(hs):
        y = (r0 + r) * sh + py - top
        if y < 0 or y >= ih:
            memset(o + r * ws, 0, ws * sizeof(real))
            continue
        row = x + y * iw + px - left
        for q in range(q0):
            o[r * ws + q] = 0
        if sw == 1:  # by whole vectors (a short row is no call to memcpy)
            if real is float:
                cc_rows_f32(o + r * ws + q0, 0, row + q0, 0, 1, q1 - q0, NULL)
            else:
                cc_rows_f64(o + r * ws + q0, 0, row + q0, 0, 1, q1 - q0, NULL)
        else:
            for q in range(q0, q1):
                o[r * ws + q] = row[q * sw]
        for q in range(q1, ws):
            o[r * ws + q] = 0


def pack_planes(const real[::1] x, real[::1] out, const Py_ssize_t[:, ::1] phases, PackPlan pack):
    """Zero-padded phase planes of every image and channel, flattened into ``out``.

    ``x`` is (N, in_channels, in_rows, in_cols), flattened.  Plane ``(n, c,
    p)`` with phase ``phases[p] = (py, px)`` holds, at row ``r < rows`` and
    column ``q < cols``, ``x[n, c, r*stride_h + py - top, q*stride_w + px -
    left]``, or zero outside ``x``.  Planes follow one another from
    ``out[0]``; the rest of ``out`` (slack read by the last tiles) is zeroed.
    The loop runs on ``pack.threads`` threads (1 for small work: waking
    threads costs more than it saves there).
    """
    cdef Py_ssize_t C = pack.in_channels, xplane = pack.in_rows * pack.in_cols
    cdef Py_ssize_t N = x.shape[0] // (C * xplane) if C * xplane else 0
    cdef Py_ssize_t P = phases.shape[0], plane = pack.rows * pack.cols
    cdef Py_ssize_t item, p
    if N * C * P:
        for item in prange(N * C * P, nogil=True, schedule="dynamic", num_threads=pack.threads):
            p = item % P
            _pack_plane(&x[0] + (item // P) * xplane, &out[0] + item * plane, phases[p, 0], phases[p, 1], 0, &pack)
    if out.shape[0] > N * C * P * plane:
        memset(&out[0] + N * C * P * plane, 0, (out.shape[0] - N * C * P * plane) * sizeof(real))


cdef inline Py_ssize_t _tile_start(Py_ssize_t t, Py_ssize_t tile, Py_ssize_t per_row, Py_ssize_t ws,
                                   Py_ssize_t oh, Py_ssize_t ow, Py_ssize_t* width) noexcept nogil:
    """Flattened position of tile ``t``'s first output (-1: no tile ``t``), its width into ``width``.

    ``per_row`` 0: tiles of ``tile`` positions over the flattened rows (the
    ``ws - ow`` columns past ``ow`` computed and dropped), the last moved back
    to end at the last position.  ``per_row`` > 0: that many tiles along each
    output row, the last moved back to end at the row's end, so no dropped
    column is computed (unless the row is shorter than a tile).
    """
    cdef Py_ssize_t total, p0, i, col
    width[0] = tile
    if per_row == 0:
        total = oh * ws
        p0 = t * tile
        if p0 >= total:
            return -1
        if p0 + tile > total:
            if total >= tile:
                p0 = total - tile
            else:
                width[0] = total
        return p0
    i = t // per_row
    col = (t % per_row) * tile
    if i >= oh or (col > 0 and col >= ow):
        return -1
    if col + tile > ow:
        col = ow - tile if ow > tile else 0
    return i * ws + col


def direct_pass(const real[::1] src, const real[::1] wp, const Py_ssize_t[::1] koff,
                const Py_ssize_t[:, ::1] parts, real[::1] out, const real[::1] bias,
                real[:, ::1] tmp, DirectPlan plan, const Py_ssize_t[:, ::1] planes):
    """``out[n, g*fg + f, i, j] = sum_k wp[g, f, k] * src[n*src_n + g*src_g + i*ws + j + koff[k]]``.

    The direct convolution of the forward pass and of dx, on a flattened
    source whose rows are ``ws`` long: output pixel ``(i, j)`` is flattened
    position ``i*ws + j``, computed in tiles of ``plan.tile`` positions (see
    ``_tile_start``), by one of three kernels (``plan.kernel``):

    - 0, the pixel kernel (``cc_fwd``): blocks of ``block`` filters (a
      power of two up to ``CC_RF_MAX``) x tiles of pixel vectors, the
      filters broadcast;
    - 1, the channel kernel (``cc_cv``): blocks of one or two vectors of
      filters x tiles of up to ``CC_CV_ACC // vectors`` positions, the input
      broadcast;
    - 2, the row kernel (``cc_rowk``): the pixel kernel's sums for a block
      of filters, a whole output row at a time (one tile per row), written
      straight into ``out`` (``out_col`` 1 only).

    ``wp`` is packed (G, nfb, K, block): blocks of filters, the last padded
    with zero filters that are dropped.  Pixel ``(i, j)`` of filter ``f`` of
    image ``n`` lands at ``out[n*out_n + (g*fg + f)*out_f + base + i*ors +
    j*ocs]`` (+ ``bias[g*fg + f]`` when ``bias`` is not empty).  The sizes and
    strides are ``plan``'s (``cconv._layer4d_plan.DirectPlan``).  A tile may
    read up to ``tile + max(koff)`` positions past its first, past the last
    row too: the caller leaves that slack after the source.

    Several outputs may share one source: each row of ``parts`` is one,
    ``(K, start in koff, start in wp, base, oh, ow)`` (dx: one per stride
    phase).  They are computed tile by tile together, so the source a tile
    reads is read once from memory for all of them.

    ``plan.packed``: ``src`` is the unpadded input (``plan.pack``'s shape),
    and each work item first packs the rows its tiles read of its group's
    phase planes (``planes``, as ``pack_planes`` does) into its thread's
    ``tmp`` row, after the tile: ``plan.pack.rows`` rows of each plane from
    the item's first output row on (with tiles within rows; all of them
    with tiles over the flattened rows, whose items then take all tiles).
    The planes are read from cache, with no pass over memory of their own;
    ``koff`` then has offsets into that layout.

    Work items are (image, group, block of ``fchunk`` filter blocks, band of
    ``band`` tiles); each output is written by one item (or by two, with the
    same bits, where tiles overlap), summed in the order of ``koff``, so the
    result does not depend on the thread count.  ``tmp`` has a row for each
    of ``plan.threads`` threads, ``block * tile`` long (the channel kernel's
    tile rounded up to whole vectors), plus the planes of one group when
    ``plan.packed``.
    """
    cdef Py_ssize_t N = plan.images, G = plan.groups, rf = plan.block, nfb = plan.fblocks, fg = plan.filters
    cdef Py_ssize_t src_n = plan.src_image, src_g = plan.src_group, ws = plan.src_row
    cdef Py_ssize_t out_n = plan.out_image, out_f = plan.out_filter, ors = plan.out_row, ocs = plan.out_col
    cdef Py_ssize_t fchunk = plan.fchunk, band = plan.band, TP = plan.tile, per_row = plan.row_tiles
    cdef bint channels = plan.kernel == 1, rowk = plan.kernel == 2, packed = plan.packed
    cdef Py_ssize_t L = CC_VBYTES // sizeof(real)
    cdef Py_ssize_t nq = parts.shape[0]
    cdef Py_ssize_t ntiles = 0, q
    for q in range(nq):
        if per_row:
            ntiles = max(ntiles, parts[q, 4] * per_row)
        else:
            ntiles = max(ntiles, (parts[q, 4] * ws + TP - 1) // TP)
    cdef Py_ssize_t tile_len = 0 if rowk else rf * ((TP + L - 1) // L * L if channels else TP)
    cdef Py_ssize_t P = planes.shape[0], plane = plan.pack.rows * plan.pack.cols
    cdef Py_ssize_t xplane = plan.pack.in_rows * plan.pack.in_cols, cp = plan.pack.channels
    cdef Py_ssize_t c, pp, i0, soff
    cdef Py_ssize_t nfc = (nfb + fchunk - 1) // fchunk
    cdef Py_ssize_t nbands = (ntiles + band - 1) // band
    cdef Py_ssize_t items = N * G * nfc * nbands
    cdef bint has_bias = bias.shape[0] != 0
    cdef Py_ssize_t item, n, g, fc, bd, fb, fb1, t, t1, p0, i, jlo, jhi, j, r, f, rows, tw
    cdef Py_ssize_t K, oh, ow, base, rs
    cdef real* tp
    cdef real* o
    cdef const real* tr
    cdef const real* w0
    cdef const real* s0
    cdef const real* sb
    cdef real* pk
    cdef real bv
    if items == 0:
        return
    for item in prange(items, nogil=True, schedule="dynamic", num_threads=plan.threads):
        n = item // (G * nfc * nbands)
        g = (item // (nfc * nbands)) % G
        fc = (item // nbands) % nfc
        bd = item % nbands
        tp = &tmp[threadid(), 0]
        if packed:
            # The item's first output row: its planes' rows start there.
            i0 = (bd * band) // per_row if per_row else 0
            pk = tp + tile_len
            for c in range(cp):
                for pp in range(P):
                    _pack_plane(&src[0] + (n * plan.pack.in_channels + g * cp + c) * xplane,
                                pk + (c * P + pp) * plane, planes[pp, 0], planes[pp, 1], i0, &plan.pack)
            memset(pk + cp * P * plane, 0, plan.pack.slack * sizeof(real))
            sb = pk
            soff = i0 * ws
        else:
            sb = &src[0] + n * src_n + g * src_g
            soff = 0
        fb1 = (fc + 1) * fchunk
        if fb1 > nfb:
            fb1 = nfb
        t1 = (bd + 1) * band
        if t1 > ntiles:
            t1 = ntiles
        for fb in range(fc * fchunk, fb1):
            rows = fg - fb * rf
            if rows > rf:
                rows = rf
            for t in range(bd * band, t1):
                for q in range(nq):
                    K = parts[q, 0]
                    oh = parts[q, 4]
                    ow = parts[q, 5]
                    base = parts[q, 3]
                    p0 = _tile_start(t, TP, per_row, ws, oh, ow, &tw)
                    if K == 0 or p0 < 0:
                        continue
                    w0 = &wp[0] + parts[q, 2] + (g * nfb + fb) * K * rf
                    s0 = sb + (p0 - soff)
                    # The output lines the tile writes, fetched while it computes.
                    i = p0 // ws
                    j = p0 - i * ws
                    if i < oh and j < ow and ocs == 1 and not rowk:
                        cc_prefetch_rows(<char*>(&out[0] + n * out_n + (g * fg + fb * rf) * out_f + base + i * ors + j),
                                         out_f * sizeof(real), rows, (min(tw, ow - j) - 1) * sizeof(real))
                    if rowk:  # a whole row (tw = ow), straight into the output
                        f = g * fg + fb * rf
                        o = &out[0] + n * out_n + f * out_f + base + (p0 // ws) * ors
                        if real is float:
                            cc_rowk_f32(rows, rf, w0, s0, &koff[0] + parts[q, 1], K, ow, o, out_f,
                                        &bias[f] if has_bias else NULL)
                        else:
                            cc_rowk_f64(rows, rf, w0, s0, &koff[0] + parts[q, 1], K, ow, o, out_f,
                                        &bias[f] if has_bias else NULL)
                        continue
                    # Element (filter r, position p0 + p) of the tile is at tp[r*rs + p].
                    if channels:
                        if real is float:
                            cc_cv_f32(<int>(rf // L), <int>tw, w0, s0, &koff[0] + parts[q, 1], K, tp)
                        else:
                            cc_cv_f64(<int>(rf // L), <int>tw, w0, s0, &koff[0] + parts[q, 1], K, tp)
                        rs = (tw + L - 1) // L * L
                        ps = 1
                    else:
                        tw = (tw + L - 1) // L * L
                        if real is float:
                            cc_fwd_f32(<int>rf, <int>(tw // L), w0, s0, &koff[0] + parts[q, 1], K, tp)
                        else:
                            cc_fwd_f64(<int>rf, <int>(tw // L), w0, s0, &koff[0] + parts[q, 1], K, tp)
                        rs = tw
                    # The tile's positions, row by row of the output.
                    i = p0 // ws
                    while i < oh and i * ws < p0 + tw:
                        jlo = p0 - i * ws
                        if jlo < 0:
                            jlo = 0
                        jhi = p0 + tw - i * ws
                        if jhi > ow:
                            jhi = ow
                        if jhi <= jlo:  # the tile starts among the dropped columns
                            i = i + 1
                            continue
                        f = g * fg + fb * rf
                        o = &out[0] + n * out_n + f * out_f + base + i * ors
                        tr = tp + i * ws - p0
                        if ocs == 1:
                            if real is float:
                                cc_rows_f32(o + jlo, out_f, tr + jlo, rs, rows, jhi - jlo,
                                            &bias[f] if has_bias else NULL)
                            else:
                                cc_rows_f64(o + jlo, out_f, tr + jlo, rs, rows, jhi - jlo,
                                            &bias[f] if has_bias else NULL)
                        elif has_bias:
                            for r in range(rows):
                                bv = bias[f + r]
                                for j in range(jlo, jhi):
                                    o[r * out_f + j * ocs] = tr[r * rs + j] + bv
                        else:
                            for r in range(rows):
                                for j in range(jlo, jhi):
                                    o[r * out_f + j * ocs] = tr[r * rs + j]
                        i = i + 1


def pack_filters(const real[:, ::1] w, real[::1] out, const Py_ssize_t[::1] taps, Py_ssize_t G, Py_ssize_t T,
                 Py_ssize_t block, bint transposed, int threads):
    """Filters ``w`` (F, C/G * T), T taps a channel, packed for ``direct_pass`` as (G, nb, K, block).

    Forward (``transposed`` false, ``taps`` unused): ``out[g, b, k, lane] =
    w[g*fg + b*block + lane, k]``, K = C/G * T.  dx (``transposed``): the
    transposed filters' taps ``taps``, ``out[g, b, f*nt + i, lane] = w[g*fg
    + f, (b*block + lane)*T + taps[i]]``, K = fg * nt.  Lanes past a group's
    filters (channels) are zeros.  A forward block of whole vectors goes
    through registers, as ``filters_last`` does.
    """
    cdef Py_ssize_t F = w.shape[0], fg = F // G, cg = w.shape[1] // T, nt = taps.shape[0]
    cdef Py_ssize_t count = cg if transposed else fg
    cdef Py_ssize_t K = fg * nt if transposed else w.shape[1]
    cdef Py_ssize_t nb = (count + block - 1) // block
    cdef Py_ssize_t L = CC_VBYTES // sizeof(real)
    cdef Py_ssize_t item, g, b, nl, k, lane, f, i
    cdef real* o
    cdef const real* src
    if F == 0 or K == 0 or nb == 0:
        return
    for item in prange(G * nb, nogil=True, schedule="static", num_threads=threads):
        g = item // nb
        b = item % nb
        o = &out[0] + item * K * block
        nl = count - b * block
        if nl > block:
            nl = block
        if not transposed and block % L == 0:
            if real is float:
                cc_filters_last_f32(&w[g * fg + b * block, 0], K, nl, block, o)
            else:
                cc_filters_last_f64(&w[g * fg + b * block, 0], K, nl, block, o)
        elif not transposed:
            for k in range(K):
                for lane in range(nl):
                    o[k * block + lane] = w[g * fg + b * block + lane, k]
                for lane in range(nl, block):
                    o[k * block + lane] = 0
        else:
            for f in range(fg):
                for lane in range(nl):
                    src = &w[g * fg + f, 0] + (b * block + lane) * T
                    for i in range(nt):
                        o[(f * nt + i) * block + lane] = src[taps[i]]
                for lane in range(nl, block):
                    for i in range(nt):
                        o[(f * nt + i) * block + lane] = 0


def filters_last(const real[:, :, :, ::1] d, real[::1] out, Py_ssize_t G, Py_ssize_t fb_lanes,
                 int threads):
    """``d`` (N, F, oh, ow) as (N, G, nfb, oh*ow, fb_lanes): each group's filters
    in blocks of ``fb_lanes`` (whole vectors), filters last, the last block
    padded with zeros.  A transpose, by blocks of a vector of filters x a
    vector of pixels transposed in registers."""
    cdef Py_ssize_t N = d.shape[0], F = d.shape[1], P = d.shape[2] * d.shape[3]
    cdef Py_ssize_t fg = F // G
    cdef Py_ssize_t nfb = (fg + fb_lanes - 1) // fb_lanes
    cdef Py_ssize_t item, n, g, b, nl
    if N == 0 or F == 0 or P == 0:
        return
    for item in prange(N * G * nfb, nogil=True, schedule="dynamic", num_threads=threads):
        n = item // (G * nfb)
        g = (item // nfb) % G
        b = item % nfb
        nl = fg - b * fb_lanes
        if nl > fb_lanes:
            nl = fb_lanes
        if real is float:
            cc_filters_last_f32(&d[n, g * fg + b * fb_lanes, 0, 0], P, nl, fb_lanes, &out[0] + item * P * fb_lanes)
        else:
            cc_filters_last_f64(&d[n, g * fg + b * fb_lanes, 0, 0], P, nl, fb_lanes, &out[0] + item * P * fb_lanes)


def dw_pass(const real[::1] src, const real[::1] dT, const Py_ssize_t[::1] roff,
            real[::1] acc, DwPlan plan):
    """dw^T, summed over images and output pixels, into ``acc`` (any values first).

    ``acc`` is (S, G, nkb, nfb, RC, NV*lanes): block ``kb`` of RC rows of
    dw^T (rows ``(c, t)``, at offsets ``roff[kb*RC:(kb+1)*RC]`` of the
    flattened source, rows ``ws`` long) against block ``fb`` of the group's
    filters in ``dT`` (from :func:`filters_last`), for each of ``S`` groups
    of chunks; the caller adds the S partial sums up, in order.  A chunk is
    ``band`` output rows of one image; chunk group ``s`` holds chunks
    ``[s*nchunks//S, (s+1)*nchunks//S)``.

    Work items are (chunk group, part of the (group, row block, filter
    block) blocks), in one parallel loop: an item runs its chunks in order,
    each against all its blocks while the chunk is in cache.  Every element
    of dw is so summed in an order fixed by S alone, whatever the thread
    count and whichever thread runs an item.  An item zeroes its blocks
    first; :func:`dw_finish` then adds the partial sums up.
    """
    cdef Py_ssize_t N = plan.images, G = plan.groups, nkb = plan.kblocks, nfb = plan.fblocks
    cdef Py_ssize_t src_n = plan.src_image, src_g = plan.src_group, ws = plan.src_row
    cdef Py_ssize_t oh = plan.out_rows, ow = plan.out_cols, band = plan.band, S = plan.sums, P = plan.parts
    cdef Py_ssize_t FB = CC_NV * CC_VBYTES // sizeof(real)
    cdef Py_ssize_t blk = CC_RC * FB
    cdef Py_ssize_t npix = oh * ow
    cdef Py_ssize_t blocks = G * nkb * nfb
    cdef Py_ssize_t bands = (oh + band - 1) // band
    cdef Py_ssize_t nchunks = N * bands
    cdef Py_ssize_t item, grp, part, ch, n, i0, rows, b, g, kb, fb, lb
    if blocks == 0 or npix == 0 or nchunks == 0:
        return
    for item in prange(S * P, nogil=True, schedule="dynamic", num_threads=plan.threads):
        grp = item // P
        part = item % P
        for b in range(part * blocks // P, (part + 1) * blocks // P):
            lb = ((b // (nkb * nfb)) * nkb + b % nkb) * nfb + (b // nkb) % nfb
            memset(&acc[0] + (grp * blocks + lb) * blk, 0, blk * sizeof(real))
        for ch in range(grp * nchunks // S, (grp + 1) * nchunks // S):
            n = ch // bands
            i0 = (ch % bands) * band
            rows = oh - i0
            if rows > band:
                rows = band
            # Blocks of rows fastest: the chunk's output gradient for one
            # vector block of filters stays in L1 across them.
            for b in range(part * blocks // P, (part + 1) * blocks // P):
                g = b // (nkb * nfb)
                fb = (b // nkb) % nfb
                kb = b % nkb
                lb = (g * nkb + kb) * nfb + fb
                if real is float:
                    cc_dwf_f32(&src[0] + n * src_n + g * src_g + i0 * ws, &roff[0] + kb * CC_RC, ws,
                               &dT[0] + ((n * G + g) * nfb + fb) * npix * FB + i0 * ow * FB,
                               rows, ow, &acc[0] + (grp * blocks + lb) * blk)
                else:
                    cc_dwf_f64(&src[0] + n * src_n + g * src_g + i0 * ws, &roff[0] + kb * CC_RC, ws,
                               &dT[0] + ((n * G + g) * nfb + fb) * npix * FB + i0 * ow * FB,
                               rows, ow, &acc[0] + (grp * blocks + lb) * blk)


def dw_finish(const real[::1] acc, real[::1] dw, DwPlan plan, Py_ssize_t rows, Py_ssize_t filters):
    """dw (G*filters, rows) from :func:`dw_pass`'s ``acc``: its S partial sums added in order.

    ``dw[g*filters + f, kr] = acc[0, g, kb, fb, r, lane] + acc[1, ...] + ...``
    (left to right) for row ``kr = kb*RC + r < rows`` (a channel and tap)
    and filter ``f = fb*NV*lanes + lane < filters``.  Runs on ``plan.threads``.
    """
    cdef Py_ssize_t G = plan.groups, nkb = plan.kblocks, nfb = plan.fblocks, S = plan.sums
    cdef Py_ssize_t FB = CC_NV * CC_VBYTES // sizeof(real)
    cdef Py_ssize_t blk = CC_RC * FB
    cdef Py_ssize_t part_len = G * nkb * nfb * blk
    cdef Py_ssize_t item, g, kb, f, r, kr, s, i
    cdef real v
    if G * filters * rows == 0:
        return
    # By blocks of RC rows (a block of acc's rows): their RC lines of each
    # vector of filters stay in cache while every filter is written.
    for item in prange(G * nkb, nogil=True, schedule="static", num_threads=plan.threads):
        g = item // nkb
        kb = item % nkb
        for f in range(filters):
            for r in range(CC_RC):
                kr = kb * CC_RC + r
                if kr >= rows:
                    break
                i = (item * nfb + f // FB) * blk + r * FB + f % FB
                v = acc[i]
                for s in range(1, S):
                    v = v + acc[s * part_len + i]
                dw[(g * filters + f) * rows + kr] = v


def dw_dot(const real[::1] src, const real[:, :, :, ::1] d, const Py_ssize_t[::1] toff,
           real[::1] acc, DotPlan plan, const Py_ssize_t[:, ::1] planes, real[:, ::1] work):
    """dw of layers with few filters per group (depthwise ones), into ``acc`` (zeros first).

    ``acc`` is (G, fg, cg, ntb, NT, lanes): lanes of the sums of block ``tb``
    of NT taps (offsets ``toff[tb*NT:(tb+1)*NT]`` of the flattened planes,
    rows ``ws`` long) of channel ``c`` against filter ``f`` of each group,
    over every image, in image order; the caller adds the lanes up.

    ``plan.packed``: ``src`` is the unpadded input, and a work item packs
    each image's planes of its channel (``planes``, as ``pack_planes``
    does) into its thread's row of ``work`` before summing over them.
    """
    cdef Py_ssize_t G = plan.groups, fg = plan.filters, cg = plan.channels, ntb = plan.tblocks
    cdef Py_ssize_t src_n = plan.src_image, src_c = plan.src_channel, ws = plan.src_row
    cdef Py_ssize_t N = d.shape[0], oh = d.shape[2], ow = d.shape[3]
    cdef Py_ssize_t L = CC_VBYTES // sizeof(real)
    cdef Py_ssize_t P = planes.shape[0], plane = plan.pack.rows * plan.pack.cols
    cdef Py_ssize_t xplane = plan.pack.in_rows * plan.pack.in_cols
    cdef bint packed = plan.packed
    cdef Py_ssize_t item, g, fl, c, tb, n, pp
    cdef const real* x
    cdef real* pk
    if N == 0 or oh == 0 or ow == 0:
        return
    for item in prange(G * fg * cg * ntb, nogil=True, schedule="dynamic", num_threads=plan.threads):
        g = item // (fg * cg * ntb)
        fl = (item // (cg * ntb)) % fg
        c = (item // ntb) % cg
        tb = item % ntb
        for n in range(N):
            if packed:
                pk = &work[threadid(), 0]
                for pp in range(P):
                    _pack_plane(&src[0] + (n * plan.pack.in_channels + g * cg + c) * xplane, pk + pp * plane,
                                planes[pp, 0], planes[pp, 1], 0, &plan.pack)
                memset(pk + P * plane, 0, plan.pack.slack * sizeof(real))
                x = pk
            else:
                x = &src[0] + n * src_n + (g * cg + c) * src_c
            if real is float:
                cc_dwdot_f32(x, &toff[0] + tb * CC_NT, ws, &d[n, g * fg + fl, 0, 0], ow, oh, ow,
                             &acc[0] + item * CC_NT * L)
            else:
                cc_dwdot_f64(x, &toff[0] + tb * CC_NT, ws, &d[n, g * fg + fl, 0, 0], ow, oh, ow,
                             &acc[0] + item * CC_NT * L)
