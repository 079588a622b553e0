# The 4-D layer's direct convolution loops.  Included by _conv2d_direct.pyx
# and its per-ISA twins (_conv2d_direct_v3.pyx, _conv2d_direct_v4.pyx); see
# _conv2d_direct.pyx for what they compute and cconv._layer_plan for the
# layouts, offsets and blocking they are given.

from cython.parallel cimport prange, threadid
from libc.string cimport memcpy

from cconv._fused cimport real

include "_build_info.pxi"


cdef extern from "_conv2d_kernels.h" nogil:
    int CC_RF_MAX, CC_RC, CC_NV, CC_NT, CC_VBYTES
    Py_ssize_t cc_tile(int rf, int itemsize)
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


# The plans of the passes, filled from cconv._layer_plan's dicts of the same
# names (Cython converts a dict with these keys; a missing key is an error).
ctypedef struct DirectPlan:
    Py_ssize_t images, groups, block, fblocks, filters
    Py_ssize_t src_image, src_group, src_row
    Py_ssize_t out_image, out_filter, out_row, out_col
    Py_ssize_t fchunk, band
    int threads

ctypedef struct DwPlan:
    Py_ssize_t images, groups, kblocks, fblocks
    Py_ssize_t src_image, src_group, src_row
    Py_ssize_t out_rows, out_cols, band, sums, parts
    int threads

ctypedef struct DotPlan:
    Py_ssize_t groups, filters, channels, tblocks
    Py_ssize_t src_image, src_channel, src_row
    int threads


def blocking():
    """This build's register blocking: (vector bytes, max forward rows, dw rows, dw filter vectors, depthwise taps)."""
    return (CC_VBYTES, CC_RF_MAX, CC_RC, CC_NV, CC_NT)


def tile(int rf, int itemsize):
    """Output pixels of one forward tile of ``rf`` rows."""
    return cc_tile(rf, itemsize)


def pack_planes(const real[:, :, :, ::1] x, real[::1] out, const Py_ssize_t[:, ::1] phases,
                Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t top, Py_ssize_t left,
                Py_ssize_t hs, Py_ssize_t ws, int threads):
    """Zero-padded phase planes of every image and channel, flattened into ``out``.

    Plane ``(n, c, p)`` with phase ``phases[p] = (py, px)`` holds, at row
    ``r < hs`` and column ``q < ws``, ``x[n, c, r*sh + py - top, q*sw + px - left]``,
    or zero outside ``x``.  Planes follow one another from ``out[0]``; the
    rest of ``out`` (slack read by the last tiles) is zeroed.  Every loop
    here runs on ``threads`` threads (1 for small work: waking threads costs
    more than it saves there).
    """
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], ih = x.shape[2], iw = x.shape[3]
    cdef Py_ssize_t P = phases.shape[0], plane = hs * ws
    cdef Py_ssize_t item, n, c, p, r, q, y, q0, q1, py, px, i
    cdef real* o
    cdef const real* src
    for item in prange(N * C * P, nogil=True, schedule="dynamic", num_threads=threads):
        n = item // (C * P)
        c = (item // P) % C
        p = item % P
        py = phases[p, 0]
        px = phases[p, 1]
        o = &out[0] + item * plane
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
            y = r * sh + py - top
            if y < 0 or y >= ih:
                for q in range(ws):
                    o[r * ws + q] = 0
                continue
            src = &x[n, c, y, 0] + px - left
            for q in range(q0):
                o[r * ws + q] = 0
            if sw == 1:
                for q in range(q0, q1):
                    o[r * ws + q] = src[q]
            else:
                for q in range(q0, q1):
                    o[r * ws + q] = src[q * sw]
            for q in range(q1, ws):
                o[r * ws + q] = 0
    for i in range(N * C * P * plane, out.shape[0]):
        out[i] = 0


cdef inline void _fwd(int rf, int np, const real* w, const real* src, const Py_ssize_t* koff,
                      Py_ssize_t K, real* tmp) noexcept nogil:
    if real is float:
        cc_fwd_f32(rf, np, w, src, koff, K, tmp)
    else:
        cc_fwd_f64(rf, np, w, src, koff, K, tmp)


def direct_pass(const real[::1] src, const real[::1] wp, const Py_ssize_t[::1] koff,
                const Py_ssize_t[:, ::1] phases, real[::1] out, const real[::1] bias,
                real[:, ::1] tmp, DirectPlan plan):
    """``out[n, g*fg + f, i, j] = sum_k wp[g, f, k] * src[n*src_n + g*src_g + i*ws + j + koff[k]]``.

    The direct convolution of the forward pass and of dx, on a flattened
    source whose rows are ``ws`` long: output pixel ``(i, j)`` is flattened
    position ``i*ws + j``, computed in tiles of ``tile(rf)`` positions (the
    ``ws - ow`` columns of each row past ``ow`` are computed and dropped),
    the last tile only as many vectors wide as the positions left need and
    ending at the last position, so that a source of at least one tile
    needs no slack past the reads of its valid positions.
    ``wp`` is packed (G, nfb, K, rf): blocks of ``rf`` filters, the last
    padded with zero filters that are dropped.  Pixel ``(i, j)`` of filter
    ``f`` of image ``n`` lands at ``out[n*out_n + (g*fg + f)*out_f + base +
    i*ors + j*ocs]`` (+ ``bias[g*fg + f]`` when ``bias`` is not empty).
    The sizes and strides are ``plan``'s (``cconv._layer_plan.DirectPlan``).

    Several outputs may share one source: each row of ``phases`` is one,
    ``(K, start in koff, start in wp, base, oh, ow)`` (dx: one per stride
    phase).  They are computed tile by tile together, so the source a tile
    reads is read once from memory for all of them.

    Work items are (image, group, block of ``fchunk`` filter blocks, band of
    ``band`` tiles); each output is written by one item, summed in the order
    of ``koff``, so the result does not depend on the thread count.
    ``tmp`` has a row for each of ``plan.threads`` threads (``rf * tile(rf)`` long).
    """
    cdef Py_ssize_t N = plan.images, G = plan.groups, rf = plan.block, nfb = plan.fblocks, fg = plan.filters
    cdef Py_ssize_t src_n = plan.src_image, src_g = plan.src_group, ws = plan.src_row
    cdef Py_ssize_t out_n = plan.out_image, out_f = plan.out_filter, ors = plan.out_row, ocs = plan.out_col
    cdef Py_ssize_t fchunk = plan.fchunk, band = plan.band
    cdef Py_ssize_t TP = cc_tile(<int>rf, sizeof(real))
    cdef Py_ssize_t L = CC_VBYTES // sizeof(real)
    cdef Py_ssize_t nq = phases.shape[0]
    cdef Py_ssize_t ntiles = 0, q
    for q in range(nq):
        ntiles = max(ntiles, (phases[q, 4] * ws + TP - 1) // TP)
    cdef Py_ssize_t nfc = (nfb + fchunk - 1) // fchunk
    cdef Py_ssize_t nbands = (ntiles + band - 1) // band
    cdef Py_ssize_t items = N * G * nfc * nbands
    cdef bint has_bias = bias.shape[0] != 0
    cdef Py_ssize_t item, n, g, fc, bd, fb, fb1, t, t1, p0, i, jlo, jhi, j, r, f, rows, tw
    cdef Py_ssize_t K, oh, ow, base, total
    cdef int npv
    cdef real* tp
    cdef real* o
    cdef real bv
    if items == 0:
        return
    for item in prange(items, nogil=True, schedule="dynamic", num_threads=plan.threads):
        n = item // (G * nfc * nbands)
        g = (item // (nfc * nbands)) % G
        fc = (item // nbands) % nfc
        bd = item % nbands
        tp = &tmp[threadid(), 0]
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
                p0 = t * TP
                for q in range(nq):
                    p0 = t * TP
                    K = phases[q, 0]
                    oh = phases[q, 4]
                    ow = phases[q, 5]
                    base = phases[q, 3]
                    total = oh * ws
                    if K == 0 or p0 >= total:
                        continue
                    npv = <int>(TP // L)
                    if total - p0 < TP:
                        # The last tile: as few vectors as the positions left
                        # need, moved back to end at the last position (when
                        # there is room), so that it reads nothing past the
                        # source's last row.  Positions computed twice get the
                        # same sum in the same order: the same bits.
                        npv = <int>((total - p0 + L - 1) // L)
                        if total >= npv * L:
                            p0 = total - npv * L
                    tw = npv * L
                    _fwd(<int>rf, npv, &wp[0] + phases[q, 2] + (g * nfb + fb) * K * rf,
                         &src[0] + n * src_n + g * src_g + p0, &koff[0] + phases[q, 1], K, tp)
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
                        for r in range(rows):
                            f = g * fg + fb * rf + r
                            o = &out[0] + n * out_n + f * out_f + base + i * ors
                            bv = bias[f] if has_bias else 0
                            if ocs == 1 and not has_bias:
                                memcpy(o + jlo, tp + r * tw + i * ws + jlo - p0, (jhi - jlo) * sizeof(real))
                            elif ocs == 1:
                                for j in range(jlo, jhi):
                                    o[j] = tp[r * tw + i * ws + j - p0] + bv
                            elif has_bias:
                                for j in range(jlo, jhi):
                                    o[j * ocs] = tp[r * tw + i * ws + j - p0] + bv
                            else:
                                for j in range(jlo, jhi):
                                    o[j * ocs] = tp[r * tw + i * ws + j - p0]
                        i = i + 1


def filters_last(const real[:, :, :, ::1] d, real[::1] out, Py_ssize_t G, Py_ssize_t fb_lanes,
                 int threads):
    """``d`` (N, F, oh, ow) as (N, G, nfb, oh*ow, fb_lanes): each group's filters
    in blocks of ``fb_lanes``, filters last, the last block padded with zeros."""
    cdef Py_ssize_t N = d.shape[0], F = d.shape[1], P = d.shape[2] * d.shape[3]
    cdef Py_ssize_t fg = F // G
    cdef Py_ssize_t nfb = (fg + fb_lanes - 1) // fb_lanes
    cdef Py_ssize_t item, n, g, b, p, lane, f, nl
    cdef real* o
    cdef const real* s
    if N == 0 or F == 0 or P == 0:
        return
    for item in prange(N * G * nfb, nogil=True, schedule="dynamic", num_threads=threads):
        n = item // (G * nfb)
        g = (item // nfb) % G
        b = item % nfb
        o = &out[0] + item * P * fb_lanes
        nl = fg - b * fb_lanes
        if nl > fb_lanes:
            nl = fb_lanes
        s = &d[n, g * fg + b * fb_lanes, 0, 0]
        for p in range(P):
            for lane in range(nl):
                o[p * fb_lanes + lane] = s[lane * P + p]
            for lane in range(nl, fb_lanes):
                o[p * fb_lanes + lane] = 0


def dw_pass(const real[::1] src, const real[::1] dT, const Py_ssize_t[::1] roff,
            real[::1] acc, DwPlan plan):
    """dw^T, summed over images and output pixels, into ``acc`` (zeros first).

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
    count and whichever thread runs an item.
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
    cdef Py_ssize_t item, grp, part, ch, n, i0, rows, b, g, kb, fb
    if blocks == 0 or npix == 0 or nchunks == 0:
        return
    for item in prange(S * P, nogil=True, schedule="dynamic", num_threads=plan.threads):
        grp = item // P
        part = item % P
        for ch in range(grp * nchunks // S, (grp + 1) * nchunks // S):
            n = ch // bands
            i0 = (ch % bands) * band
            rows = oh - i0
            if rows > band:
                rows = band
            for b in range(part * blocks // P, (part + 1) * blocks // P):
                g = b // (nkb * nfb)
                kb = (b // nfb) % nkb
                fb = b % nfb
                if real is float:
                    cc_dwf_f32(&src[0] + n * src_n + g * src_g + i0 * ws, &roff[0] + kb * CC_RC, ws,
                               &dT[0] + ((n * G + g) * nfb + fb) * npix * FB + i0 * ow * FB,
                               rows, ow, &acc[0] + (grp * blocks + b) * blk)
                else:
                    cc_dwf_f64(&src[0] + n * src_n + g * src_g + i0 * ws, &roff[0] + kb * CC_RC, ws,
                               &dT[0] + ((n * G + g) * nfb + fb) * npix * FB + i0 * ow * FB,
                               rows, ow, &acc[0] + (grp * blocks + b) * blk)


def dw_dot(const real[::1] src, const real[:, :, :, ::1] d, const Py_ssize_t[::1] toff,
           real[::1] acc, DotPlan plan):
    """dw of layers with few filters per group (depthwise ones), into ``acc`` (zeros first).

    ``acc`` is (G, fg, cg, ntb, NT, lanes): lanes of the sums of block ``tb``
    of NT taps (offsets ``toff[tb*NT:(tb+1)*NT]`` of the flattened planes,
    rows ``ws`` long) of channel ``c`` against filter ``f`` of each group,
    over every image, in image order; the caller adds the lanes up.
    """
    cdef Py_ssize_t G = plan.groups, fg = plan.filters, cg = plan.channels, ntb = plan.tblocks
    cdef Py_ssize_t src_n = plan.src_image, src_c = plan.src_channel, ws = plan.src_row
    cdef Py_ssize_t N = d.shape[0], oh = d.shape[2], ow = d.shape[3]
    cdef Py_ssize_t L = CC_VBYTES // sizeof(real)
    cdef Py_ssize_t item, g, fl, c, tb, n
    if N == 0 or oh == 0 or ow == 0:
        return
    for item in prange(G * fg * cg * ntb, nogil=True, schedule="dynamic", num_threads=plan.threads):
        g = item // (fg * cg * ntb)
        fl = (item // (cg * ntb)) % fg
        c = (item // ntb) % cg
        tb = item % ntb
        for n in range(N):
            if real is float:
                cc_dwdot_f32(&src[0] + n * src_n + (g * cg + c) * src_c, &toff[0] + tb * CC_NT, ws,
                             &d[n, g * fg + fl, 0, 0], ow, oh, ow, &acc[0] + item * CC_NT * L)
            else:
                cc_dwdot_f64(&src[0] + n * src_n + (g * cg + c) * src_c, &toff[0] + tb * CC_NT, ws,
                             &d[n, g * fg + fl, 0, 0], ow, oh, ow, &acc[0] + item * CC_NT * L)
