"""cconv's layers and template matching over Dask arrays.

``import cconv.dask as cd`` (needs ``pip install cconv[dask]``); ``import
cconv`` itself never imports Dask.

- :func:`conv_forward` and :func:`conv_backward`: the 3-D layer of
  :func:`cconv.conv_forward` on an (N, H, W) Dask array chunked along N, H
  and W in any way.
- :func:`match_template`: :func:`cconv.match_template` of a (possibly huge)
  Dask image, tiled.

How chunks map to tasks.  Along N a chunk of images is one task.  Along H
and W each chunk is extended by the filter's size minus one into its
neighbour below and to the right (``dask.array.overlap`` with no boundary
padding), so that a task sees every window that starts in its chunk and
returns exactly the valid outputs that start there: the results equal the
in-memory ones whatever the chunking (the sums in each output are the same
sums).  A chunk along H (W) must therefore have at least KH (KW) rows
(columns); smaller chunks are merged with their neighbours by a rechunk, with
a :class:`ChunkWarning` saying so.

The backward pass mirrors this: for each chunk of ``x``, ``dx`` reads the
slice of ``dout`` that reaches KH - 1 rows (KW - 1 columns) into the chunk
above (to the left), and comes back chunked like ``x``;
``dw`` (for one filter shared by all images) is a sum over every chunk,
reduced as a tree (``split_every``).

Threads.  Each task calls cconv's compiled loops, which release the GIL, so
the threaded scheduler runs tasks on every core.  A task runs cconv on
``threads_per_task`` threads: by default one inside a ``dask.distributed``
worker or a worker thread of the threaded scheduler (the workers already use
the cores: more would oversubscribe them), and cconv's usual count when run
in the calling thread (the synchronous scheduler).
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, cast

import numpy as np
import numpy.typing as npt

try:
    import dask
    import dask.array as da
except ImportError as exc:  # pragma: no cover - only without the extra
    raise ImportError("cconv.dask needs Dask: pip install 'cconv[dask]'") from exc

from ._engine import METHODS, Method
from ._layer3d import conv_forward as _conv_forward
from ._match import MATCH_METHODS, MatchMethod
from ._match import match_template as _match_template
from ._threads import check_thread_count, get_num_threads, threads
from ._validation import (
    as_batch,
    as_real_array,
    check_batch_pair,
    check_bool,
    check_choice,
    check_ndim,
    compute_dtype,
    compute_dtype_of,
)

__all__ = ["ChunkWarning", "DaskConvCache", "conv_forward", "conv_backward", "match_template"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class ChunkWarning(UserWarning):
    """Chunks were smaller than the filter and have been merged by a rechunk."""


def _task_threads(requested: int | None) -> int:
    """Threads cconv uses inside one task."""
    if requested is not None:
        return requested
    try:
        from distributed import get_worker

        get_worker()
        return 1  # a distributed worker: its threads (and processes) use the cores
    except (ImportError, ValueError):
        pass
    if threading.current_thread() is not threading.main_thread():
        return 1  # a worker thread of the threaded scheduler
    return get_num_threads()


def _with_threads(fn: Callable[_P, _R], threads_per_task: int | None) -> Callable[_P, _R]:
    """``fn`` run with cconv on the task's thread count, restored afterwards."""

    @functools.wraps(fn)  # keeps the signature: Dask looks for block_info in it
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with threads(_task_threads(threads_per_task)):
            return fn(*args, **kwargs)

    return run


def _quiet_sum(a: np.ndarray, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> np.ndarray:
    """``np.sum`` without a warning where +Inf and -Inf meet: NaN there is data."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.sum(a, axis=axis, keepdims=keepdims)


def _tree_sum(a: da.Array, split_every: int) -> da.Array:
    """The sum of ``a`` over its first axis, as a tree of fan-in ``split_every``."""
    return da.reduction(a, _quiet_sum, _quiet_sum, axis=0, split_every=split_every, dtype=a.dtype)


def _check_threads(threads_per_task: int | None) -> None:
    if threads_per_task is not None:
        check_thread_count(threads_per_task, "threads_per_task")


def _as_dask(x: da.Array | npt.ArrayLike, name: str, ndim: tuple[int, ...], layout: str) -> da.Array:
    """``x`` as a Dask array of a real dtype (a NumPy array becomes one chunk)."""
    if not isinstance(x, da.Array):
        x = cast(da.Array, da.from_array(as_real_array(x, name), chunks=-1))  # (Dask is not annotated)
    else:
        compute_dtype_of(np.empty(0, x.dtype), name)  # the dtype check only
    check_ndim(x, name, ndim, layout)
    return x


def _min_chunks(x: da.Array, axis: int, size: int, name: str, quiet: bool = False) -> da.Array:
    """Rechunk ``axis`` so that every chunk has at least ``size`` elements."""
    chunks = list(x.chunks[axis])
    if size <= 1 or min(chunks) >= size:
        return x
    merged, run = [], 0
    for c in chunks:
        run += c
        if run >= size:
            merged.append(run)
            run = 0
    if run:
        if merged:
            merged[-1] += run
        else:
            merged.append(run)
    if not quiet:
        warnings.warn(
        f"{name}'s chunks along axis {axis} {tuple(chunks)} include some smaller than the "
        f"filter's {size}; rechunked to {tuple(merged)}",
        ChunkWarning,
        stacklevel=3,
        )
    return x.rechunk({axis: tuple(merged)})


def _valid_chunks(chunks: tuple[int, ...], k: int) -> tuple[int, ...]:
    """Output chunks of a valid correlation: chunk [a, b) gives the starts in [a, min(b, n - k + 1))."""
    n = sum(chunks)
    out, start = [], 0
    for c in chunks:
        out.append(max(0, min(start + c, n - k + 1) - start))
        start += c
    return tuple(out)


def _extend(x: da.Array, kh: int, kw: int) -> da.Array:
    """Each chunk extended by KH - 1 rows and KW - 1 columns into its
    neighbours below and to the right (no boundary padding)."""
    if kh == 1 and kw == 1:
        return x
    return da.overlap.overlap(x, depth={0: 0, 1: (0, kh - 1), 2: (0, kw - 1)}, boundary="none")


class DaskConvCache:
    """What :func:`conv_backward` needs from :func:`conv_forward`: the lazy
    ``x``, the filters (a NumPy array), the forward method and threads."""

    __slots__ = ("x", "w", "w_ndim", "method", "threads_per_task", "dtype")

    def __init__(self, x: da.Array, w: np.ndarray, w_ndim: int, method: Method, threads_per_task: int | None,
                 dtype: np.dtype) -> None:
        self.x, self.w, self.w_ndim = x, w, w_ndim
        self.method, self.threads_per_task, self.dtype = method, threads_per_task, dtype

    @property
    def out_shape(self) -> tuple[int, int, int]:
        n, h, wd = self.x.shape
        return (n, h - self.w.shape[1] + 1, wd - self.w.shape[2] + 1)

    def __repr__(self) -> str:
        return f"<cconv.dask.DaskConvCache x{self.x.shape} chunks {self.x.chunks} w{self.w.shape}>"


def conv_forward(
    x: da.Array | npt.ArrayLike, w: npt.ArrayLike, *, method: Method = "auto", threads_per_task: int | None = None
) -> tuple[da.Array, DaskConvCache]:
    """:func:`cconv.conv_forward` of a Dask array, lazily.

    Parameters
    ----------
    x : dask.array.Array or array_like, shape (N, H, W)
        The images, chunked in any way along N, H and W.
    w : array_like, shape (KH, KW) or (K, KH, KW)
        The filters, in memory: one for every image (2-D, or K = 1), or
        image n with filter n (K = N).
    method : {'auto', 'direct', 'fft'}, optional
        As for :func:`cconv.conv_forward`, chosen per task.
    threads_per_task : int, optional
        cconv's threads inside a task (see the module notes for the default).

    Returns
    -------
    out : dask.array.Array, shape (N, H - KH + 1, W - KW + 1)
        Lazy; chunked like ``x`` along N, and along H and W by the valid
        outputs that start in each chunk of ``x``.
    cache : DaskConvCache
        For :func:`conv_backward`.

    Raises
    ------
    TypeError, ValueError
        As :func:`cconv.conv_forward` for bad shapes and dtypes; also for a
        ``w`` of K filters with K not 1 or N (one image against K filters
        is :func:`cconv.match_template`'s job, or stack the image K times).

    Warns
    -----
    ChunkWarning
        When chunks along H or W smaller than the filter are merged.
    """
    x = _as_dask(x, "x", (3,), "of shape (N, H, W)")
    w = as_real_array(w, "w")
    _check_threads(threads_per_task)
    check_choice(method, "method", METHODS)
    n = x.shape[0]
    kh, kw = w.shape[-2:]
    check_batch_pair(x, w, ("x", "w"))  # the in-memory layer's rules and messages
    if w.ndim == 3 and w.shape[0] not in (1, n):
        raise ValueError(
            f"w has {w.shape[0]} filters but x has {n} images (x{x.shape}, w{w.shape}); cconv.dask "
            "takes one filter for every image or one per image"
        )
    dtype = compute_dtype((np.empty(0, x.dtype), "x"), (w, "w"))
    w3 = np.ascontiguousarray(as_batch(w), dtype=dtype)
    x = _min_chunks(_min_chunks(x, 1, kh, "x"), 2, kw, "x")
    xe = _extend(x, kh, kw)
    out_chunks = (x.chunks[0], _valid_chunks(x.chunks[1], kh), _valid_chunks(x.chunks[2], kw))
    pairwise = w3.shape[0] > 1

    def block(xb: np.ndarray, block_info: Any = None) -> np.ndarray:
        ws = w3
        if pairwise:
            lo, hi = block_info[0]["array-location"][0]
            ws = w3[lo:hi]
        return _conv_forward(xb, ws, method=method)[0].astype(dtype, copy=False)

    out = da.map_blocks(_with_threads(block, threads_per_task), xe, chunks=out_chunks, dtype=dtype,
                        name="cconv-conv-forward")
    return out, DaskConvCache(x, w3, w.ndim, method, threads_per_task, dtype)


def conv_backward(
    dout: da.Array | npt.ArrayLike, cache: DaskConvCache, *, split_every: int = 8
) -> tuple[da.Array, da.Array]:
    """:func:`cconv.conv_backward` of a Dask array, lazily.

    Parameters
    ----------
    dout : dask.array.Array or array_like, shape (N, H - KH + 1, W - KW + 1)
        Upstream derivative; rechunked to the forward output's chunks if
        its own differ.
    cache : DaskConvCache
        From :func:`conv_forward`.
    split_every : int, optional
        Fan-in of the tree that sums ``dw`` over the chunks.

    Returns
    -------
    dx : dask.array.Array, shape and chunks of ``x``
    dw : dask.array.Array, shape of ``w``
        For one shared filter, the sum over all images and chunks.
    """
    if not isinstance(cache, DaskConvCache):
        raise ValueError(
            f"cache must be the DaskConvCache returned by cconv.dask.conv_forward; got {type(cache).__name__}"
        )
    dout = _as_dask(dout, "dout", (3,), "of shape (N, H', W')")
    if dout.shape != cache.out_shape:
        raise ValueError(f"dout has shape {dout.shape}, but the forward output had shape {cache.out_shape}")
    x, w3, method, threads = cache.x, cache.w, cache.method, cache.threads_per_task
    dtype = compute_dtype((np.empty(0, dout.dtype), "dout"), (np.empty(0, cache.dtype), "x"))
    kh, kw = w3.shape[1:]
    out_chunks = (x.chunks[0], _valid_chunks(x.chunks[1], kh), _valid_chunks(x.chunks[2], kw))
    dout = cast(da.Array, dout.rechunk(out_chunks))  # (Dask is not annotated)
    w_flip = np.ascontiguousarray(w3[:, ::-1, ::-1], dtype=dtype)
    pairwise = w3.shape[0] > 1
    h, wd = x.shape[1:]

    # dx: rows [a, b) of x read dout rows [a - KH + 1, b) (columns alike):
    # each chunk of x gets that slice of dout, which reaches KH - 1 rows into
    # the chunk of dout above; the rows outside dout are zeros.
    ho, wo = cache.out_shape[1:]

    def dx_block(db: np.ndarray, a: int, b: int, c: int, d: int, n0: int, n1: int) -> np.ndarray:
        full = np.zeros((db.shape[0], b - a + kh - 1, d - c + kw - 1), dtype=dtype)
        r0, c0 = max(kh - 1 - a, 0), max(kw - 1 - c, 0)
        full[:, r0:r0 + db.shape[1], c0:c0 + db.shape[2]] = db
        ws = w_flip[n0:n1] if pairwise else w_flip
        return _conv_forward(full, ws, method=method)[0].astype(dtype, copy=False)

    run_dx = dask.delayed(_with_threads(dx_block, threads), pure=True)
    bounds = [np.cumsum((0,) + c) for c in x.chunks]
    rows = []
    for i in range(len(x.chunks[0])):
        n0, n1 = int(bounds[0][i]), int(bounds[0][i + 1])
        row = []
        for j in range(len(x.chunks[1])):
            a, b = int(bounds[1][j]), int(bounds[1][j + 1])
            col = []
            for k in range(len(x.chunks[2])):
                c, d = int(bounds[2][k]), int(bounds[2][k + 1])
                piece = dout[n0:n1, max(a - kh + 1, 0):min(b, ho), max(c - kw + 1, 0):min(d, wo)]
                col.append(da.from_delayed(run_dx(piece, a, b, c, d, n0, n1),
                                           shape=(n1 - n0, b - a, d - c), dtype=dtype))
            row.append(col)
        rows.append(row)
    dx = da.block(rows)

    # dw: each chunk of x, extended as in the forward pass, correlated with
    # its chunk of dout; summed over chunks (and images, for a shared filter).
    xe = _extend(x, kh, kw)

    def dw_block(xb: np.ndarray, db: np.ndarray) -> np.ndarray:
        if db.size == 0:
            return np.zeros((db.shape[0] if pairwise else 1, kh, kw), dtype)
        full = _conv_forward(xb.astype(dtype, copy=False), db.astype(dtype, copy=False), method=method)[0]
        part = full if pairwise else _quiet_sum(full, axis=0, keepdims=True)
        return part.astype(dtype, copy=False)

    run = dask.delayed(_with_threads(dw_block, threads), pure=True)
    xs, ds = xe.to_delayed(), dout.to_delayed()
    per_image_block = []
    for i, ni in enumerate(x.chunks[0]):
        shape = (ni if pairwise else 1, kh, kw)
        parts = [da.from_delayed(run(xs[i, j, k], ds[i, j, k]), shape=shape, dtype=dtype)
                 for j in range(xs.shape[1]) for k in range(xs.shape[2])]
        per_image_block.append(_tree_sum(da.stack(parts), split_every))
    if pairwise:
        dw = da.concatenate(per_image_block, axis=0)
    else:
        dw = _tree_sum(da.stack(per_image_block), split_every)
    if cache.w_ndim == 2:
        dw = dw[0]
    return dx, dw


def match_template(
    image: da.Array | npt.ArrayLike,
    templates: npt.ArrayLike,
    method: MatchMethod = "ccoeff_normed",
    pad_input: bool = False,
    *,
    threads_per_task: int | None = None,
) -> da.Array:
    """:func:`cconv.match_template` of a Dask image, tiled, lazily.

    Parameters
    ----------
    image : dask.array.Array or array_like, shape (H, W) or (N, H, W)
        Chunked in any way; each chunk, extended by the template's size
        minus one into its neighbours below and to the right, is one task.
    templates : array_like, shape (KH, KW) or (K, KH, KW)
        In memory.  Leading axes broadcast as in :func:`cconv.match_template`.
    method, pad_input
        As for :func:`cconv.match_template`.
    threads_per_task : int, optional
        cconv's threads inside a task (see the module notes).

    Returns
    -------
    scores : dask.array.Array
        The shape :func:`cconv.match_template` returns, chunked like the
        image (by the valid placements that start in each chunk); a bank of
        K templates against one image is one chunk along K.

    Notes
    -----
    Each tile computes its window statistics on its own, so the rule that
    makes a near-flat window score 0 uses the tile's largest magnitude
    rather than the whole image's: only windows within rounding of flat can
    score differently from the in-memory call.  Memory per task is a few
    times the tile (with its halo) and its scores.
    """
    image = _as_dask(image, "image", (2, 3), "of shape (H, W) or (N, H, W)")
    templates = as_real_array(templates, "templates")
    _check_threads(threads_per_task)
    check_choice(method, "method", MATCH_METHODS)
    check_bool(pad_input, "pad_input")
    check_batch_pair(image, templates, ("image", "templates"), images_ndim=(2, 3))  # the in-memory rules
    x = as_batch(image)
    t = as_batch(templates)
    kh, kw = t.shape[1:]
    n, k = x.shape[0], t.shape[0]
    dtype = compute_dtype((np.empty(0, image.dtype), "image"), (templates, "templates"))
    t = np.ascontiguousarray(t, dtype=dtype)
    x = _min_chunks(_min_chunks(x, 1, kh, "image"), 2, kw, "image")
    if pad_input:  # the padding's own edge chunks, merged without a warning
        x = da.pad(x, ((0, 0), (kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2)))
        x = _min_chunks(_min_chunks(x, 1, kh, "image", quiet=True), 2, kw, "image", quiet=True)
    if n == 1 and k > 1:
        lead = (k,)
    else:
        lead = x.chunks[0]
    out_chunks = (lead, _valid_chunks(x.chunks[1], kh), _valid_chunks(x.chunks[2], kw))
    xe = _extend(x, kh, kw)
    pairwise = k > 1 and n > 1

    def block(xb: np.ndarray, block_info: Any = None) -> np.ndarray:
        ts = t
        if pairwise:
            lo, hi = block_info[0]["array-location"][0]
            ts = t[lo:hi]
        return _match_template(xb, ts, method).astype(dtype, copy=False)

    scores = da.map_blocks(_with_threads(block, threads_per_task), xe, chunks=out_chunks, dtype=dtype,
                           name="cconv-match-template")
    return scores[0] if image.ndim == 2 and templates.ndim == 2 else scores
