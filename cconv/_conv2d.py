"""The 4-D (N, C, H, W) convolution layer: options, validation, dispatch.

Two ways to compute it:

- 'gemm': every option (stride, padding, dilation, groups).  The compiled
  loops lower each tile of the output to one matrix product, im2col then
  ``sgemm``/``dgemm`` from SciPy's BLAS, in parallel over images, groups and
  tiles.  The tiles are sized here so that each thread's workspace stays
  near ``TILE_BYTES``.
- 'direct' and 'fft': the 3-D layer's own engine, for a single-channel layer
  (C = 1, stride 1, dilation 1, and one image or one filter), where a matrix
  product would be a matrix-vector product.  The zero padding is applied to
  a copy of ``x`` first.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from . import _blas, _engine
from ._conv3d import ConvCache, conv_backward, conv_forward
from ._nonfinite import finite_part, restore
from ._validation import (
    as_kernel_array,
    as_real_array,
    check_memory,
    check_ndim,
    compute_dtype,
    copy_bytes,
)

__all__ = ["Conv2dCache", "conv2d_forward", "conv2d_backward"]

METHODS = ("auto", "gemm", "direct", "fft")

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
# BLAS takes 32-bit sizes.
_INT_MAX = 2**31 - 1


class Conv2dCache:
    """What :func:`conv2d_backward` needs from a call of :func:`conv2d_forward`.

    Treat it as opaque.  It holds ``x`` and ``w`` as the kernels saw them
    (by reference when no conversion was needed: changing them in place
    between the two calls changes the gradients), the options, and whether
    there was a bias.
    """

    __slots__ = ("_x", "_w", "_has_bias", "_layer", "_method", "_inner", "_backward_method")

    def __init__(self, x, w, has_bias, layer, method, inner=None, backward_method=None) -> None:
        self._x = x
        self._w = w
        self._has_bias = has_bias
        self._layer = layer
        self._method = method
        self._inner = inner  # the 3-D layer's ConvCache, for 'direct' and 'fft'
        self._backward_method = backward_method  # what the 3-D backward pass is asked for

    @property
    def x(self) -> np.ndarray:
        """The input, (N, C, H, W)."""
        return self._x

    @property
    def w(self) -> np.ndarray:
        """The filters, (F, C // groups, HH, WW)."""
        return self._w

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        """Shape of the forward output, and so of the ``dout`` backward takes."""
        return self._layer.out_shape

    @property
    def method(self) -> str:
        """How the forward pass was computed: 'gemm', 'direct' or 'fft'."""
        return self._method

    def __repr__(self) -> str:
        return (
            f"<cconv.Conv2dCache x{self._x.shape} w{self._w.shape} {self._x.dtype} "
            f"{self._method} -> out{self.out_shape}>"
        )


def _pair(value, name: str, minimum: int) -> tuple[int, int]:
    """An int or a pair of ints, each at least ``minimum``, as a pair."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise ValueError(f"{name} must be an int or a pair of ints; got {value!r}")
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
            raise TypeError(f"{name} must be an int or a pair of ints; got {value!r}")
        if v < minimum:
            raise ValueError(f"{name} must be at least {minimum}; got {value!r}")
    return int(items[0]), int(items[1])


class _Layer:
    """The options of one layer, checked, and the sizes they imply."""

    __slots__ = ("shape", "stride", "dilation", "pad", "groups", "out_hw")

    def __init__(self, x_shape, w_shape, stride, padding, dilation, groups):
        n, c, h, wd = x_shape
        f, cg, hh, ww = w_shape
        self.stride = _pair(stride, "stride", 1)
        self.dilation = _pair(dilation, "dilation", 1)
        if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, numbers.Integral):
            raise TypeError(f"groups must be a positive int; got {groups!r}")
        if groups < 1:
            raise ValueError(f"groups must be a positive int; got {groups!r}")
        self.groups = int(groups)
        if c % self.groups or f % self.groups:
            raise ValueError(
                f"groups={groups} must divide both x's channels C={c} and w's filters F={f} "
                f"(x{x_shape}, w{w_shape})"
            )
        if cg * self.groups != c:
            raise ValueError(
                f"w's channel size {cg} does not match x's: w{w_shape} with groups={groups} "
                f"expects C // groups = {c // self.groups} channels per filter (x{x_shape})"
            )
        extent = (self.dilation[0] * (hh - 1) + 1, self.dilation[1] * (ww - 1) + 1)
        if isinstance(padding, str):
            if padding == "valid":
                self.pad = ((0, 0), (0, 0))
            elif padding == "same":
                if self.stride != (1, 1):
                    raise ValueError(
                        f"padding='same' needs stride 1 (as in PyTorch); got stride={stride!r}"
                    )
                # The extra pixel of an even extent goes to the bottom/right.
                self.pad = tuple(((e - 1) // 2, e - 1 - (e - 1) // 2) for e in extent)
            else:
                raise ValueError(
                    f"padding must be an int, a pair of ints, 'valid' or 'same'; got {padding!r}"
                )
        else:
            ph, pw = _pair(padding, "padding", 0)
            self.pad = ((ph, ph), (pw, pw))
        self.shape = (n, c, h, wd, f, cg, hh, ww)
        sizes = []
        for size, (lo, hi), e, s, axis in zip(
            (h, wd), self.pad, extent, self.stride, ("height", "width")
        ):
            if size + lo + hi < e:
                raise ValueError(
                    f"no output: the filter's {axis} {e} (w{w_shape}, dilation={dilation!r}) "
                    f"exceeds x's padded {axis} {size + lo + hi} (x{x_shape}, padding={padding!r})"
                )
            sizes.append((size + lo + hi - e) // s + 1)
        self.out_hw = tuple(sizes)
        # Past the padded size, a larger stride or a 1-tap dilation changes
        # nothing: clamp them, so that huge values reach the loops as C ints.
        self.stride = tuple(min(s, size + lo + hi) for s, size, (lo, hi) in zip(self.stride, (h, wd), self.pad))
        self.dilation = tuple(1 if k == 1 else d for d, k in zip(self.dilation, (hh, ww)))

    @property
    def out_shape(self):
        return (self.shape[0], self.shape[4], *self.out_hw)

    def single_channel(self) -> bool:
        """Whether the 3-D layer's engine can compute this layer."""
        n, c, *_, f, _, _, _ = self.shape
        return c == 1 and self.stride == (1, 1) and self.dilation == (1, 1) and (n == 1 or f == 1)

    def geometry(self):
        (sh, sw), (dh, dw), ((ph, _), (pw, _)) = self.stride, self.dilation, self.pad
        return (sh, sw, ph, pw, dh, dw)

    def kernel_shape(self):
        _, _, h, wd, _, cg, hh, ww = self.shape
        return (cg, h, wd, hh, ww, *self.out_hw)

    def tiles(self, itemsize: int) -> tuple[int, int]:
        """Output rows and columns per tile: whole rows when a row fits."""
        _, _, _, _, f, cg, hh, ww = self.shape
        ho, wo = self.out_hw
        window = cg * hh * ww  # workspace elements per output position
        if self.pointwise() or window * wo == 0:
            return max(ho, 1), max(wo, 1)  # no workspace: the image is the matrix, or empty
        positions = max(MIN_POSITIONS, TARGET_MACS // max(1, window * f // self.groups))
        positions = max(MIN_TILE, min(positions, TILE_BYTES // (window * itemsize)))
        if positions >= wo:
            return min(positions // wo, ho), wo
        return 1, positions

    def pointwise(self) -> bool:
        """A 1x1 filter at stride 1 without padding: the image is the matrix, no im2col."""
        _, _, _, _, _, _, hh, ww = self.shape
        return (hh, ww, self.stride, self.pad) == (1, 1, (1, 1), ((0, 0), (0, 0)))

    def workspace(self, itemsize: int, threads: int) -> tuple[int, int]:
        """Shape of the im2col workspace: one row per thread."""
        _, _, _, _, _, cg, hh, ww = self.shape
        rows, cols = self.tiles(itemsize)
        return threads, 1 if self.pointwise() else cg * hh * ww * rows * cols

    def check_blas_sizes(self) -> None:
        n, c, h, wd, f, cg, hh, ww = self.shape
        ho, wo = self.out_hw
        if max(h * wd, ho * wo, cg * hh * ww, f) > _INT_MAX:
            raise ValueError(
                f"x{(n, c, h, wd)} with w{(f, cg, hh, ww)} has an image, output or filter "
                f"of more than 2**31 - 1 elements, beyond BLAS's 32-bit sizes"
            )


def _check_arrays(x, w, b):
    check_ndim(x, "x", (4,), "of shape (N, C, H, W)")
    check_ndim(w, "w", (4,), "of shape (F, C // groups, HH, WW)")
    if w.shape[2] == 0 or w.shape[3] == 0:
        raise ValueError(f"w has an empty filter: shape {w.shape}; HH and WW must be at least 1")
    if b is not None:
        check_ndim(b, "b", (1,), "of shape (F,)")
        if b.shape[0] != w.shape[0]:
            raise ValueError(
                f"b has length {b.shape[0]}, but w has {w.shape[0]} filters (w{w.shape}); "
                f"expected b of shape ({w.shape[0]},)"
            )


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, *, method="auto"):
    """Forward pass of a 2-D convolution layer over (N, C, H, W) images.

    The layer of ``torch.nn.functional.conv2d``: a cross-correlation of each
    image with each filter, summed over channels, with stride, zero padding,
    dilation and groups, plus a bias per filter.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        The input.
    w : array_like, shape (F, C // groups, HH, WW)
        The filters.
    b : array_like, shape (F,), optional
        A bias added to each filter's output.
    stride : int or (int, int), optional
        Step between windows, at least 1.
    padding : int, (int, int), 'valid' or 'same', optional
        Zeros added on both sides of each spatial axis.  'valid' is 0;
        'same' (stride 1 only) pads so that the output has the input's size,
        with the extra pixel of an even filter at the bottom/right, as
        PyTorch does.
    dilation : int or (int, int), optional
        Spacing between filter taps, at least 1.
    groups : int, optional
        Channels and filters split into this many groups, each group's
        filters seeing only its channels.  Must divide C and F.
    method : {'auto', 'gemm', 'direct', 'fft'}, optional
        'gemm' lowers the layer to matrix products (im2col and BLAS) and
        takes every option.  'direct' and 'fft' are the 3-D layer's loops
        and FFTs (see :func:`conv_forward`), for a single-channel layer only:
        C = 1, stride 1, dilation 1, and N = 1 or F = 1.  'auto' (the
        default) uses the 3-D layer's choice where it applies, 'gemm'
        elsewhere.

    Returns
    -------
    out : ndarray, shape (N, F, H', W')
        ``H' = (H + pad_top + pad_bottom - dilation*(HH - 1) - 1) // stride + 1``,
        and the same for ``W'``.  A new C-contiguous array.
    cache : Conv2dCache
        Pass it to :func:`conv2d_backward`.

    Raises
    ------
    TypeError
        If an array has a dtype cconv cannot compute in (complex, object,
        ...), or an option is not an int (or pair of ints) where one is
        expected (a sequence of the wrong length is a ValueError).
    ValueError
        If a shape or option is wrong: ``x`` or ``w`` not 4-D, ``b`` not of
        length F, ``w``'s channels not C // groups, ``groups`` not dividing C
        and F, a stride or dilation below 1, negative padding, padding 'same'
        with a stride, a filter that leaves no output, or a ``method`` that
        does not apply.
    MemoryError
        If the call would need more memory than is available: refused before
        anything is allocated.

    Notes
    -----
    dtypes, layouts and promotion follow :func:`conv_forward`: float32 and
    float64 natively, bool and integers promoted to float64, float16 to
    float32, any memory layout, inputs never modified.  The 'gemm' path
    splits the output into tiles whose windows take at most
    ``max(TILE_BYTES, MIN_TILE * C // groups * HH * WW * itemsize)`` bytes of
    workspace per thread (512 KiB for all but very large filters); its
    matrix products run on SciPy's BLAS, held at one thread per call while
    cconv's own :func:`get_num_threads` threads run the work items.

    Examples
    --------
    >>> import numpy as np, cconv
    >>> x = np.ones((1, 2, 4, 4))
    >>> out, cache = cconv.conv2d_forward(x, np.ones((3, 2, 3, 3)), b=np.arange(3.0), padding=1)
    >>> out.shape
    (1, 3, 4, 4)
    >>> out[0, 2]
    array([[10., 14., 14., 10.],
           [14., 20., 20., 14.],
           [14., 20., 20., 14.],
           [10., 14., 14., 10.]])
    """
    x = as_real_array(x, "x")
    w = as_real_array(w, "w")
    b = None if b is None else as_real_array(b, "b")
    _check_arrays(x, w, b)
    layer = _Layer(x.shape, w.shape, stride, padding, dilation, groups)
    operands = [(x, "x"), (w, "w")] + ([] if b is None else [(b, "b")])
    dtype = compute_dtype(*operands)
    method = _resolve(method, layer)
    threads = _engine.get_num_threads()
    out_shape = layer.out_shape
    n, c, h, wd, f, _, _, _ = layer.shape
    if method == "gemm":
        extra = math.prod(layer.workspace(dtype.itemsize, threads))
    else:  # the padded copy of x; the 3-D layer checks its own needs after
        (pt, pb), (pl, pr) = layer.pad
        extra = n * (h + pt + pb) * (wd + pl + pr)
    check_memory(
        copy_bytes(x, dtype) + copy_bytes(w, dtype) + (math.prod(out_shape) + extra) * dtype.itemsize,
        f"conv2d_forward(x{x.shape}, w{w.shape})",
    )
    if x.size == 0 or w.size == 0 or math.prod(out_shape) == 0:
        # No products to take (no channels, images or filters): only the bias.
        out = np.zeros(out_shape, dtype)
        if b is not None:
            with np.errstate(invalid="ignore", over="ignore"):
                out += as_kernel_array(b, dtype).reshape(-1, 1, 1)
        cache = Conv2dCache(as_kernel_array(x, dtype), as_kernel_array(w, dtype), b is not None, layer, "gemm")
        return out, cache
    if method != "gemm":
        return _forward_3d(x, w, b, layer, method, dtype)
    layer.check_blas_sizes()
    xk = as_kernel_array(x, dtype)
    wk = as_kernel_array(w, dtype)
    bk = np.zeros(0, dtype) if b is None else as_kernel_array(b, dtype)
    ho, wo = layer.out_hw
    out = np.empty((n, f, ho * wo), dtype)
    with _blas.single_threaded_blas() as pinned:
        work = np.empty(layer.workspace(dtype.itemsize, threads if pinned else 1), dtype)
        _engine._kernels.conv2d_gemm_forward(
            xk, wk.reshape(layer.groups, f // layer.groups, -1), bk, out, work,
            layer.kernel_shape(), layer.geometry(), *layer.tiles(dtype.itemsize), layer.pointwise(),
        )
    return out.reshape(out_shape), Conv2dCache(xk, wk, b is not None, layer, method)


def _resolve(method, layer: _Layer) -> str:
    if not isinstance(method, str) or method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if method == "auto":
        return "3d" if layer.single_channel() else "gemm"
    if method in ("direct", "fft") and not layer.single_channel():
        n, c, *_, f, _, _, _ = layer.shape
        raise ValueError(
            f"method={method!r} takes a single-channel layer only (C = 1, stride 1, "
            f"dilation 1, N = 1 or F = 1); got x with N={n}, C={c}, w with F={f}, "
            f"stride={layer.stride}, dilation={layer.dilation}: use 'gemm' or 'auto'"
        )
    return method


def _forward_3d(x, w, b, layer: _Layer, method, dtype):
    """A single-channel layer by the 3-D layer: (N or F) valid correlations."""
    (pt, pb), (pl, pr) = layer.pad
    x3 = x[:, 0].astype(dtype, copy=False)
    if pt or pb or pl or pr:
        x3 = np.pad(x3, ((0, 0), (pt, pb), (pl, pr)))
    asked = "auto" if method == "3d" else method
    out3, inner = conv_forward(x3, w[:, 0].astype(dtype, copy=False), method=asked)
    out = out3.reshape(layer.out_shape)  # (N, 1, ...) or (1, F, ...): the same data
    if b is not None:
        with np.errstate(invalid="ignore", over="ignore"):
            out += as_kernel_array(b, dtype).reshape(-1, 1, 1)
    resolved = "fft" if inner._spectra is not None else "direct"
    xk, wk = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    return out, Conv2dCache(xk, wk, b is not None, layer, resolved, inner, asked)


def conv2d_backward(dout, cache):
    """Backward pass of :func:`conv2d_forward`.

    Parameters
    ----------
    dout : array_like, shape (N, F, H', W')
        Upstream derivative: the gradient of some loss with respect to the
        forward output.
    cache : Conv2dCache
        The second value :func:`conv2d_forward` returned.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        Gradient of ``sum(out * dout)`` with respect to ``x``.
    dw : ndarray, shape (F, C // groups, HH, WW)
        Gradient with respect to ``w``.
    db : ndarray of shape (F,), or None
        Gradient with respect to ``b``: ``dout`` summed over all but the
        filter axis.  None when the forward pass had no bias.

    Raises
    ------
    ValueError
        If ``cache`` did not come from :func:`conv2d_forward` or ``dout``'s
        shape is not the forward output's.
    TypeError
        If ``dout`` has a dtype cconv cannot compute in.

    Notes
    -----
    Computed by the forward pass's method, in the forward dtype promoted
    with ``dout``'s.  The 'gemm' path runs in parallel over images and
    groups (one image and group per thread at a time), each thread summing
    its own partial ``dw``.

    Examples
    --------
    >>> import numpy as np, cconv
    >>> out, cache = cconv.conv2d_forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 2, 2)), b=[0.0])
    >>> dx, dw, db = cconv.conv2d_backward(np.ones_like(out), cache)
    >>> dx[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> db
    array([4.])
    """
    if not isinstance(cache, Conv2dCache):
        raise ValueError(
            f"cache must be the Conv2dCache returned by cconv.conv2d_forward; "
            f"got {type(cache).__name__}"
        )
    dout = as_real_array(dout, "dout")
    layer = cache._layer
    if dout.shape != layer.out_shape:
        raise ValueError(
            f"dout has shape {dout.shape}, but the forward output had shape {layer.out_shape}"
        )
    dtype = compute_dtype((dout, "dout"), (cache.x, "x"))
    if cache._inner is not None:
        dx, dw = _backward_3d(dout, cache, dtype)
    else:
        dx, dw = _backward_gemm(dout, cache, dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and Inf are data
        db = dout.sum(axis=(0, 2, 3), dtype=dtype) if cache._has_bias else None
    return dx, dw, db


def _backward_3d(dout, cache, dtype):
    layer = cache._layer
    inner = cache._inner
    n, c, h, wd, f, cg, hh, ww = layer.shape
    dout3 = dout.reshape(inner.out_shape)
    dx3, dw3 = conv_backward(dout3, inner, method=cache._backward_method)
    if not np.isfinite(inner.w).all():
        dx3 = _dx_nonfinite_filter(dout3, inner, cache._backward_method)
    (pt, _), (pl, _) = layer.pad
    dx = np.ascontiguousarray(dx3[:, pt : pt + h, pl : pl + wd]).reshape(n, c, h, wd)
    return dx, dw3.reshape(f, cg, hh, ww)


def _dx_nonfinite_filter(dout3, inner, method):
    """The 3-D layer's dx for a filter holding NaN or Inf, as PyTorch has it.

    The 3-D layer's dx is the full correlation of ``dout`` with the flipped
    filter, which multiplies the filter by zeros beyond ``dout``'s edges
    (NaN from an infinite tap).  The layer's own gradient has no terms
    there: dx is computed from the filter's finite part, then its NaN and
    infinities restored from the terms inside ``dout`` alone.
    """
    w = inner.w
    finite = ConvCache(inner.x, finite_part(w), inner._w_ndim)
    dx3, _ = conv_backward(dout3, finite, method=method)
    dout3 = np.asarray(dout3, dtype=dx3.dtype)
    hh, ww = w.shape[1:]
    reduce = inner.x.shape[0] == 1 and dout3.shape[0] != 1
    restore(dx3, dout3, w[:, ::-1, ::-1], reduce=reduce, pad=(hh - 1, hh - 1, ww - 1, ww - 1), pad_zeros=False)
    return dx3


def _backward_gemm(dout, cache, dtype):
    layer = cache._layer
    n, c, h, wd, f, cg, hh, ww = layer.shape
    g = layer.groups
    threads = _engine.get_num_threads()
    check_memory(
        copy_bytes(cache.x, dtype) + copy_bytes(cache.w, dtype) + copy_bytes(dout, dtype)
        + (cache.x.size + (threads + 1) * cache.w.size
           + math.prod(layer.workspace(dtype.itemsize, threads))) * dtype.itemsize,
        f"conv2d_backward(dout{dout.shape}, cache of x{cache.x.shape}, w{cache.w.shape})",
    )
    x = as_kernel_array(cache.x, dtype)
    w = as_kernel_array(cache.w, dtype)
    dout = as_kernel_array(dout, dtype)
    dx = np.zeros((n, c, h, wd), dtype)
    if x.size == 0 or w.size == 0 or dout.size == 0:
        return dx, np.zeros((f, cg, hh, ww), dtype)
    with _blas.single_threaded_blas() as pinned:
        t = threads if pinned else 1
        dw = np.zeros((t, g, cg * hh * ww, f // g), dtype)
        work = np.empty(layer.workspace(dtype.itemsize, t), dtype)
        _engine._kernels.conv2d_gemm_backward(
            x, w.reshape(g, f // g, -1), dout.reshape(n, f, -1), dx, dw, work,
            layer.kernel_shape(), layer.geometry(), *layer.tiles(dtype.itemsize), layer.pointwise(),
        )
    dw = _engine.sum_pairs(dw)[0]  # the threads' partial sums
    return dx, np.ascontiguousarray(dw.transpose(0, 2, 1)).reshape(f, cg, hh, ww)
