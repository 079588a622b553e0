"""The FFT route of the engine: valid correlations and their gradients by
real 2-D FFTs, NaN and Inf kept local, the 1-D transforms shared out over
threads.

The route: the operands' spectra (of their finite parts, see
``cconv._nonfinite``), their products, the inverse transforms cropped to
the valid region; :func:`correlate` for a forward pass, :func:`backward`
for dx and dw from one transform of the output gradient and the spectra a
forward pass kept.

The transforms.
A real 2-D transform is two passes of independent 1-D transforms: real FFTs
of the rows, then complex FFTs of the columns (the inverse: columns, then
rows).  ``scipy.fft`` threads a batch of 2-D transforms over its images but
gains nothing on one large image, so each pass is cut here into blocks of
lines, and the blocks of every transform at hand (the spectra of x and w
together, the dx and dw inverses together) are dealt to cconv's threads:
the caller and the workers of a small pool made on first use.  Each block is
one ``scipy.fft`` call, which runs without the GIL.

One thread makes one call per pass; n threads split each pass into 2n
blocks, so that one thread finishing early (or held up by another process)
is made up for by the others.  A line gives the same bits whatever block
it is in, so the results do not depend on the thread count.

Work no output needs is skipped: zero-padding rows (a 60-row filter padded
to 512) have no row pass, and an inverse transforms only the rows its crop
keeps.  The products of the inverses are formed in a per-thread workspace
kept between calls: fresh multi-megabyte arrays cost a page fault per 4 KiB,
which on some virtual machines is as slow as the transforms themselves.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Literal, NamedTuple

import numpy as np
import scipy.fft

from ._nonfinite import any_nonfinite, finite_part, restore
from ._threads import Job, run_jobs
from ._validation import check_memory
from ._workspace import kept_array, scratch

__all__ = ["Product", "fft_shape", "rfft2", "irfft2", "finite_spectra", "correlate", "backward"]

# Blocks per thread in a pass of one transform: more than one, so that a
# thread which finishes first (or another one held up by other processes)
# takes up the slack.  Blocks of lines start at multiples of ALIGN, which
# every SIMD width pocketfft groups lines by divides.
BLOCKS_PER_THREAD = 2
ALIGN = 16
# Work (transforms x P*Q*log2(P*Q)) below which a pass runs on one thread.
# The jobs are Python callables handing the GIL back and forth, which costs
# far more than waking an OpenMP team (cconv._threads.SERIAL_WORK, 2**19):
# measured on 2 cores, three 128^2 transforms (7e5) took 3.7x as long on two
# threads as on one, and two threads paid only from about 4e6 (three 384^2
# transforms into reused memory: 1.45x).
TEAM_WORK = 2**22


class Product(NamedTuple):
    """One inverse transform: of ``a * b`` (``a * conj(b)`` with ``conj``).

    ``a`` and ``b`` are batches of spectra whose leading sizes broadcast;
    ``reduce`` sums the products over the batch first; the result is cropped
    to its first ``crop`` rows and columns.
    """

    a: np.ndarray
    b: np.ndarray
    conj: bool
    crop: tuple[int, int]
    reduce: bool


Memory = Literal["new", "kept", "scratch"]


def fft_shape(ih: int, iw: int) -> tuple[int, int]:
    """Transform size for images of ih x iw: no padding beyond a fast length.

    A valid correlation never reads the circular wrap-around, and the full
    correlation of the dx pass wraps only into zeros, so the image's own size
    is enough.
    """
    return (scipy.fft.next_fast_len(ih, real=True), scipy.fft.next_fast_len(iw, real=True))


def rfft2(arrays: Sequence[np.ndarray], shape: tuple[int, int], memory: Memory = "new",
          threads: int = 1) -> list[np.ndarray]:
    """Real 2-D FFT of every (H, W) slice of each array, zero-padded to ``shape``.

    Parameters
    ----------
    arrays : sequence of ndarray
        Real, of shapes (N, H, W) with H <= ``shape[0]``.
    shape : tuple of int
        Transform size (P, Q).
    memory : {'new', 'kept', 'scratch'}
        Where the spectra are written: new arrays; buffers kept for reuse
        once no spectrum they held is alive (for spectra that cconv alone
        sees, in a ``ConvCache``); or the calling thread's scratch space,
        valid until its next call with 'scratch'.
    threads : int
        The threads the transforms are shared out over (one for small work).

    Returns
    -------
    list of ndarray
        Complex spectra of shapes (N, P, Q // 2 + 1), as
        ``scipy.fft.rfft2(a, s=shape)`` gives.
    """
    p, q = shape
    shapes = [(a.shape[0], p, q // 2 + 1) for a in arrays]
    dtypes = [np.result_type(a.dtype, np.complex64) for a in arrays]
    if memory == "scratch":
        sizes = [math.prod(s) * d.itemsize for s, d in zip(shapes, dtypes)]
        space = scratch("spectra", sum(sizes))
        starts = itertools.accumulate(sizes, initial=0)
        specs = [space[i : i + n].view(d).reshape(s) for i, n, s, d in zip(starts, sizes, shapes, dtypes)]
    else:
        specs = [kept_array(s, d) if memory == "kept" else np.empty(s, d) for s, d in zip(shapes, dtypes)]
    rows: list[Job] = []
    cols: list[Job] = []
    threads = _team(threads, sum(a.shape[0] for a in arrays), shape)
    parts = _parts(threads)
    for a, spec in zip(arrays, specs):
        rows += [_job(_rows_forward, a, spec, q, b, r) for b, r in _blocks(a.shape[0], a.shape[1], parts)]
        cols += [_job(_cols_forward, spec, a.shape[1], b, c) for b, c in _blocks(a.shape[0], q // 2 + 1, parts)]
    run_jobs(rows, threads)
    run_jobs(cols, threads)
    return specs


def irfft2(products: Sequence[Product], shape: tuple[int, int], threads: int = 1) -> list[np.ndarray]:
    """Inverse real 2-D FFT of each product of spectra, cropped.

    Parameters
    ----------
    products : sequence of Product
        The spectra, of shapes (N, P, Q // 2 + 1), to multiply and invert.
    shape : tuple of int
        Transform size (P, Q).
    threads : int
        The threads the transforms are shared out over (one for small work).

    Returns
    -------
    list of ndarray
        Real, of shapes (N or 1, crop[0], crop[1]): the crops of
        ``scipy.fft.irfft2(product, s=shape)``.
    """
    p, q = shape
    mult: list[Job] = []
    cols: list[Job] = []
    rows: list[Job] = []
    outs = []
    counts = [1 if t.reduce else max(t.a.shape[0], t.b.shape[0]) for t in products]
    dtype = np.result_type(*(s.dtype for t in products for s in (t.a, t.b)))
    work = scratch("products", sum(counts) * p * (q // 2 + 1) * dtype.itemsize).view(dtype)
    threads = _team(threads, sum(counts), shape)
    parts = _parts(threads)
    start = 0
    for t, n in zip(products, counts):
        prod = work[start : start + n * p * (q // 2 + 1)].reshape(n, p, q // 2 + 1)
        start += prod.size
        out = np.empty((n, *t.crop), np.finfo(dtype).dtype)
        outs.append(out)
        # The products by rows: contiguous blocks multiply several times
        # faster than column blocks.
        mult += [_job(_product, t, prod, b, r) for b, r in _blocks(n, p, parts)]
        cols += [_job(_in_place, scipy.fft.ifft, prod[b, :, c]) for b, c in _blocks(n, q // 2 + 1, parts)]
        rows += [_job(_rows_inverse, prod, out, q, b, r) for b, r in _blocks(n, t.crop[0], parts)]
    run_jobs(mult, threads)
    run_jobs(cols, threads)
    run_jobs(rows, threads)
    return outs


def _rows_forward(a: np.ndarray, spec: np.ndarray, q: int, b: slice, r: slice) -> None:
    spec[b, r] = scipy.fft.rfft(a[b, r], n=q, axis=-1)


def _cols_forward(spec: np.ndarray, h: int, b: slice, c: slice) -> None:
    block = spec[b, :, c]
    block[:, h:] = 0
    _in_place(scipy.fft.fft, block)


def _product(t: Product, prod: np.ndarray, b: slice, r: slice) -> None:
    block = prod[b, r]
    sa, sb = t.a[:, r], t.b[:, r]
    if t.reduce:
        # Summed in chunks of pairs: a chunk's product is a small temporary.
        block[...] = 0
        for n in range(0, max(sa.shape[0], sb.shape[0]), 8):
            part = _multiply(_batch(sa, slice(n, n + 8)), _batch(sb, slice(n, n + 8)), t.conj)
            block += part.sum(axis=0, keepdims=True)
    else:
        _multiply(_batch(sa, b), _batch(sb, b), t.conj, out=block)


def _rows_inverse(prod: np.ndarray, out: np.ndarray, q: int, b: slice, r: slice) -> None:
    out[b, r] = scipy.fft.irfft(prod[b, r], n=q, axis=-1)[..., : out.shape[2]]


def _batch(a: np.ndarray, b: slice) -> np.ndarray:
    """Slice ``b`` of a batch, or the batch itself if it is one broadcast item."""
    return a if a.shape[0] == 1 else a[b]


def _multiply(a: np.ndarray, b: np.ndarray, conj: bool, out: np.ndarray | None = None) -> np.ndarray:
    """``a * b`` or ``a * conj(b)``, into ``out`` if given, with no other temporary if it can."""
    if out is None:
        out = np.empty(np.broadcast_shapes(a.shape, b.shape), np.result_type(a, b))
    if conj and out.shape == b.shape:
        # a first, as below: SIMD complex products (with FMA) do not commute bitwise.
        np.conjugate(b, out=out)
        return np.multiply(a, out, out=out)
    return np.multiply(a, np.conjugate(b) if conj else b, out=out)


def _in_place(fft: Callable[..., np.ndarray], block: np.ndarray) -> None:
    """``fft`` of ``block`` along its columns, written over it."""
    res = fft(block, axis=-2, overwrite_x=True)
    if not np.may_share_memory(res, block):  # SciPy made a copy after all
        block[...] = res


def _job(fn: Callable[..., None], *args: object) -> Job:
    return lambda: fn(*args)


def _parts(threads: int) -> int:
    """Blocks per pass of one transform on ``threads`` threads.

    One thread transforms all lines of a pass in one call.  The results do
    not depend on the split: pocketfft runs each line through the same
    arithmetic whichever SIMD group of lines holds it (as the ``workers`` of
    ``scipy.fft``, which split the lines of a call unaligned, rely on too).
    """
    return 1 if threads == 1 else threads * BLOCKS_PER_THREAD


def _blocks(batch: int, lines: int, parts: int) -> list[tuple[slice, slice]]:
    """About ``parts`` blocks (images, lines) covering ``batch`` images of ``lines`` lines."""
    if batch >= parts:
        step = -(-batch // parts)
        return [(slice(b, min(b + step, batch)), slice(0, lines)) for b in range(0, batch, step)]
    per = -(-parts // batch)
    step = -(-lines // per // ALIGN) * ALIGN or ALIGN
    return [(slice(b, b + 1), slice(r, min(r + step, lines))) for b in range(batch) for r in range(0, lines, step)]


def _team(threads: int, transforms: int, shape: tuple[int, int]) -> int:
    """Threads for ``transforms`` transforms of ``shape``: ``threads``, or one for work
    below :data:`TEAM_WORK`, where handing jobs between threads costs more than it saves."""
    size = shape[0] * shape[1]
    return threads if transforms * size * math.log2(max(size, 2)) >= TEAM_WORK else 1


# ---------------------------------------------------------------------------
# The route


def finite_spectra(arrays: Sequence[np.ndarray], shape: tuple[int, int], memory: Memory,
                   threads: int) -> list[tuple[np.ndarray, bool]]:
    """The spectrum of each array's finite part, and whether the array held NaN or Inf.

    The arrays are transformed together (their 1-D transforms shared out
    over the threads at once), into ``memory`` (see :func:`rfft2`).  On
    finite data this is :func:`rfft2` plus a look at the DC terms;
    otherwise the transform is taken again with the non-finite values
    zeroed (see ``cconv._nonfinite``).
    """
    specs = rfft2(arrays, shape, memory, threads)
    result = []
    for a, spec in zip(arrays, specs):
        bad = any_nonfinite(spec)
        if bad:  # its finite part, and that part's spectrum: not in the plan's workspace
            check_memory(a.nbytes + 2 * spec.nbytes, functools.partial("restoring NaN and Inf of an operand {}".format,
                                                                       a.shape))
            spec = rfft2([finite_part(a)], shape, "new", threads)[0]
        result.append((spec, bad))
    return result


def correlate(x: np.ndarray, k: np.ndarray, threads: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray], bool]:
    """Valid correlation of ``x[n]`` with ``k[n]`` by FFTs, NaN and Inf kept local.

    ``x`` (Nx, IH, IW) and ``k`` (Nk, KH, KW), float32 or float64, leading
    sizes that broadcast.  Returns the result (npairs, IH - KH + 1,
    IW - KW + 1), the spectra of the operands' finite parts (for a backward
    pass to reuse) and whether either operand held NaN or Inf.
    """
    shape = fft_shape(*x.shape[1:])
    # Kept buffers: the spectra live in the ConvCache, which cconv alone reads.
    (spec_x, bad_x), (spec_k, bad_k) = finite_spectra([x, k], shape, "kept", threads)
    (ih, iw), (kh, kw) = x.shape[1:], k.shape[1:]
    (out,) = irfft2([Product(spec_x, spec_k, True, (ih - kh + 1, iw - kw + 1), False)], shape, threads)
    if bad_x or bad_k:
        restore(out, x, k, reduce=False)
    return out, (spec_x, spec_k), bad_x or bad_k


def backward(dout: np.ndarray, x: np.ndarray, w: np.ndarray, spectra: tuple[np.ndarray, np.ndarray] | None,
             nonfinite: bool, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """dx and dw of :func:`correlate` from one transform of ``dout`` and the forward pass's spectra.

    ``spectra`` are those of the finite parts of ``x`` and ``w`` (None:
    take them here); ``nonfinite``: whether ``x`` or ``w`` held NaN or Inf.
    dx is summed over the pairs where ``x`` is broadcast, dw where ``w``
    is.
    """
    (nx, ih, iw), (nw, kh, kw) = x.shape, w.shape
    npairs = dout.shape[0]
    shape = fft_shape(ih, iw)
    # The spectra taken here are needed for this call only: scratch space.
    if spectra is None:
        (spec_x, bad_x), (spec_w, bad_w), (spec_d, bad_d) = finite_spectra([x, w, dout], shape, "scratch", threads)
        nonfinite = bad_x or bad_w
    else:
        spec_x, spec_w = spectra
        ((spec_d, bad_d),) = finite_spectra([dout], shape, "scratch", threads)
    reduce_dx, reduce_dw = nx == 1 and npairs != 1, nw == 1 and npairs != 1
    # dx: circular convolution of dout with w; dw: circular correlation of x with dout.
    dx, dw = irfft2([Product(spec_d, spec_w, False, (ih, iw), reduce_dx),
                     Product(spec_x, spec_d, True, (kh, kw), reduce_dw)], shape, threads)
    dx, dw = dx.astype(dout.dtype, copy=False), dw.astype(dout.dtype, copy=False)
    if nonfinite or bad_d:
        # dx is the valid correlation of dout, padded by the filter size - 1,
        # with the flipped filter; dw that of x with dout.
        restore(dx, dout, w[:, ::-1, ::-1], reduce=reduce_dx, pad=(kh - 1, kh - 1, kw - 1, kw - 1))
        restore(dw, x, dout, reduce=reduce_dw)
    return dx, dw
