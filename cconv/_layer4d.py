"""The 4-D layer, ``conv2d_forward`` and ``conv2d_backward``: the layer
of ``torch.nn.functional.conv2d`` (channels, stride, padding, dilation,
groups, bias).  Options are checked here, then one of two routes runs:

- 'direct' (the default for all but single-channel layers): every option.
  Blocked direct convolutions (``cconv._conv2d_direct``, one build per ISA)
  read a zero-padded, stride-phase-split copy of the input in place; the
  layouts, offsets and blocking are chosen by ``cconv._layer4d_plan``.  No
  BLAS, no im2col; every pass runs on all of cconv's threads, and dw is the
  same bits on every run and thread count.  'gemm' is another name for it,
  kept for callers of the im2col + BLAS route it replaced.
- the single-channel route ('direct' and 'fft'): the 3-D layer's own
  engine (``cconv._layer3d``), for C = 1, stride 1, dilation 1 and one image
  or one filter, where a matrix product would be a matrix-vector product.
  The zero padding is applied to a copy of ``x`` first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from . import _engine, _layer3d, _layer4d_plan
from ._cache import LayerCache, checked_dout
from ._engine import Method
from ._layer3d import ConvCache
from ._layer4d_plan import Layer, LayerShape
from ._nonfinite import finite_part, restore
from ._threads import for_work
from ._validation import (
    as_kernel_array,
    as_real_array,
    check_choice,
    check_int,
    check_memory,
    check_ndim,
    compute_dtype,
    copy_bytes,
    int_pair,
)

__all__ = ["Conv2dCache", "conv2d_forward", "conv2d_backward"]

METHODS = ("auto", "gemm", "direct", "fft")
#: The methods of the 4-D layer, as a type ('gemm' is an alias of 'direct').
Conv2dMethod = Literal["auto", "gemm", "direct", "fft"]
#: An int, or a pair of ints for the height and the width.
IntPair = int | Sequence[int]
#: Zero padding: an int or a pair of ints, or 'valid' or 'same'.
Padding = IntPair | Literal["valid", "same"]


class Conv2dCache(LayerCache):
    """What :func:`conv2d_backward` needs from a call of :func:`conv2d_forward`.

    Treat it as opaque.  It holds ``x`` (N, C, H, W) and ``w`` (F, C //
    groups, KH, KW) as the kernels saw them (by reference when no
    conversion was needed: changing them in place between the two calls
    changes the gradients), the layer's options, the method the forward pass
    ran and whether there was a bias.
    """

    __slots__ = ("_has_bias", "_layer", "_inner")

    def __init__(self, x: np.ndarray, w: np.ndarray, has_bias: bool, layer: Layer, method: str,
                 inner: ConvCache | None = None) -> None:
        super().__init__(x, w, method)
        self._has_bias = has_bias
        self._layer = layer
        self._inner = inner  # the 3-D layer's cache, on the single-channel route

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        """Shape of the forward output, and so of the ``dout`` backward takes."""
        return self._layer.out_shape

    def __repr__(self) -> str:
        return (
            f"<cconv.Conv2dCache x{self._x.shape} w{self._w.shape} {self._x.dtype} "
            f"{self._method} -> out{self.out_shape}>"
        )


def _layer(x_shape: tuple[int, ...], w_shape: tuple[int, ...], stride: IntPair, padding: Padding,
           dilation: IntPair, groups: int) -> Layer:
    """The layer's options, checked, and the sizes they imply."""
    s = LayerShape(*x_shape, *w_shape)
    strides = int_pair(stride, "stride", 1)
    dilations = int_pair(dilation, "dilation", 1)
    groups_ = check_int(groups, "groups", 1)
    if s.c % groups_ or s.f % groups_:
        raise ValueError(
            f"groups={groups} must divide both x's channels C={s.c} and w's filters F={s.f} "
            f"(x{x_shape}, w{w_shape})"
        )
    if s.cg * groups_ != s.c:
        raise ValueError(
            f"w's channel size {s.cg} does not match x's: w{w_shape} with groups={groups} "
            f"expects C // groups = {s.c // groups_} channels per filter (x{x_shape})"
        )
    extent = (dilations[0] * (s.kh - 1) + 1, dilations[1] * (s.kw - 1) + 1)
    pad = _padding(padding, extent, strides, stride)
    sizes = []
    for size, (lo, hi), e, step, axis in zip((s.ih, s.iw), pad, extent, strides, ("height", "width")):
        if size + lo + hi < e:
            raise ValueError(
                f"no output: the filter's {axis} {e} (w{w_shape}, dilation={dilation!r}) "
                f"exceeds x's padded {axis} {size + lo + hi} (x{x_shape}, padding={padding!r})"
            )
        sizes.append((size + lo + hi - e) // step + 1)
    # Past the padded size, a larger stride or a 1-tap dilation changes
    # nothing: clamp them, so that huge values reach the loops as C ints.
    sh, sw = (min(step, size + lo + hi) for step, size, (lo, hi) in zip(strides, (s.ih, s.iw), pad))
    dh, dw = (1 if s.kh == 1 else dilations[0], 1 if s.kw == 1 else dilations[1])
    return Layer(s, (sh, sw), (dh, dw), pad, groups_, (sizes[0], sizes[1]))


def _single_channel(layer: Layer) -> bool:
    """Whether the 3-D layer's engine can compute this layer."""
    s = layer.shape
    return s.c == 1 and layer.stride == (1, 1) and layer.dilation == (1, 1) and (s.n == 1 or s.f == 1)


def _padding(padding: Padding, extent: tuple[int, int], stride: tuple[int, int],
             stride_given: IntPair) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) for ``padding`` as given."""
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0), (0, 0))
        if padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    f"padding='same' needs stride 1 (as in PyTorch); got stride={stride_given!r}"
                )
            # The extra pixel of an even extent goes to the bottom/right.
            (top, left) = ((e - 1) // 2 for e in extent)
            return ((top, extent[0] - 1 - top), (left, extent[1] - 1 - left))
        raise ValueError(f"padding must be an int, a pair of ints, 'valid' or 'same'; got {padding!r}")
    ph, pw = int_pair(padding, "padding", 0)
    return ((ph, ph), (pw, pw))


def _check_arrays(x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> None:
    check_ndim(x, "x", (4,), "of shape (N, C, H, W)")
    check_ndim(w, "w", (4,), "of shape (F, C // groups, KH, KW)")
    if w.shape[2] == 0 or w.shape[3] == 0:
        raise ValueError(f"w is empty: shape {w.shape}; its height and width must be at least 1")
    if b is not None:
        check_ndim(b, "b", (1,), "of shape (F,)")
        if b.shape[0] != w.shape[0]:
            raise ValueError(
                f"b has length {b.shape[0]}, but w has {w.shape[0]} filters (w{w.shape}); "
                f"expected b of shape ({w.shape[0]},)"
            )


def conv2d_forward(
    x: npt.ArrayLike,
    w: npt.ArrayLike,
    b: npt.ArrayLike | None = None,
    stride: IntPair = 1,
    padding: Padding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    method: Conv2dMethod = "auto",
) -> tuple[npt.NDArray[np.floating], Conv2dCache]:
    """Forward pass of a 2-D convolution layer over (N, C, H, W) images.

    The layer of ``torch.nn.functional.conv2d``: a cross-correlation of each
    image with each filter, summed over channels, with stride, zero padding,
    dilation and groups, plus a bias per filter.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W)
        The input.
    w : array_like, shape (F, C // groups, KH, KW)
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
    method : {'auto', 'direct', 'gemm', 'fft'}, optional
        'direct' runs cconv's blocked direct convolutions, for every
        option: register-blocked kernels over filters and output pixels
        reading a padded copy of ``x`` in place (no im2col, no BLAS).
        'gemm' is another name for 'direct' (the im2col + BLAS route it
        names was replaced by it).  'fft' is the 3-D layer's FFTs (see
        :func:`conv_forward`), for a single-channel layer only: C = 1,
        stride 1, dilation 1, and N = 1 or F = 1.  (Along an axis of one
        filter tap any dilation counts as 1, and so does a stride past the
        padded size, which leaves one output.)  'auto' (the default)
        uses the 3-D layer's choice (its direct loops or its FFTs) for a
        single-channel layer, 'direct' elsewhere.

    Returns
    -------
    out : ndarray, shape (N, F, H', W')
        ``H' = (H + pad_top + pad_bottom - dilation*(KH - 1) - 1) // stride + 1``,
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
    float32, any memory layout, inputs never modified.  The 'direct' path
    allocates one zero-padded copy of ``x`` (split by stride phase, only the
    phases the filter's taps use) and the packed filters, no window matrix,
    and runs on up to :func:`get_num_threads` threads with no BLAS and no
    process-wide setting touched.

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
    layer = _layer(x.shape, w.shape, stride, padding, dilation, groups)
    operands = [(x, "x"), (w, "w")] + ([] if b is None else [(b, "b")])
    dtype = compute_dtype(*operands)
    route = _route(check_choice(method, "method", METHODS), layer)
    if route == "direct":
        extra = (math.prod(layer.out_shape) * dtype.itemsize
                 + _layer4d_plan.workspace_bytes(layer, dtype.itemsize, False))
    else:  # the padded copy of x, and what the 3-D layer's pass allocates
        single = _single_plan(layer, "fft" if method == "fft" else "auto", dtype, backward=False)
        extra = _padded_size(layer) * dtype.itemsize + single.workspace
    check_memory(copy_bytes(x, dtype) + copy_bytes(w, dtype) + extra,
                 lambda: f"conv2d_forward(x{x.shape}, w{w.shape})")
    if x.size == 0 or w.size == 0 or math.prod(layer.out_shape) == 0:
        # No products to take (no channels, images or filters): only the bias.
        out = np.zeros(layer.out_shape, dtype)
        if b is not None:
            with np.errstate(invalid="ignore", over="ignore"):
                out += as_kernel_array(b, dtype).reshape(-1, 1, 1)
        cache = Conv2dCache(as_kernel_array(x, dtype), as_kernel_array(w, dtype), b is not None, layer, "direct")
        return out, cache
    if route == "single":
        return _forward_single(x, w, b, layer, single, dtype)
    return _forward_direct(x, w, b, layer, dtype)


def _padded_size(layer: Layer) -> int:
    """Elements of the zero-padded (N, H + pads, W + pads) input of the single-channel route."""
    s = layer.shape
    (pt, pb), (pl, pr) = layer.pad
    return s.n * (s.ih + pt + pb) * (s.iw + pl + pr)


def _single_plan(layer: Layer, method: Method, dtype: np.dtype, backward: bool,
                 cached: bool = False) -> _engine.Plan:
    """The 3-D engine's plan of a single-channel layer: N padded images, F filters."""
    s = layer.shape
    (pt, pb), (pl, pr) = layer.pad
    return _engine.plan(method, s.n, s.f, (s.ih + pt + pb, s.iw + pl + pr), (s.kh, s.kw), dtype.itemsize,
                        backward, cached)


def _flops(layer: Layer) -> int:
    """Multiply-adds of the layer's forward pass."""
    s = layer.shape
    return math.prod(layer.out_shape) * s.cg * s.kh * s.kw


def _route(method: str, layer: Layer) -> Literal["single", "direct"]:
    """'direct' or 'single' (the 3-D layer's engine, which then resolves 'auto')."""
    if method in ("gemm", "direct"):
        return "direct"
    if _single_channel(layer):
        return "single"
    if method == "auto":
        return "direct"
    s = layer.shape
    raise ValueError(
        f"method={method!r} takes a single-channel layer only (C = 1, stride 1, "
        f"dilation 1, N = 1 or F = 1); got x with N={s.n}, C={s.c}, w with F={s.f}, "
        f"stride={layer.stride}, dilation={layer.dilation}: use 'direct' or 'auto'"
    )


def _forward_direct(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, layer: Layer,
                    dtype: np.dtype) -> tuple[np.ndarray, Conv2dCache]:
    xk = as_kernel_array(x, dtype)
    wk = as_kernel_array(w, dtype)
    bk = None if b is None else as_kernel_array(b, dtype)
    out = _layer4d_plan.forward(xk, wk, bk, layer, for_work(_flops(layer)))
    return out, Conv2dCache(xk, wk, b is not None, layer, "direct")


def _forward_single(x: np.ndarray, w: np.ndarray, b: np.ndarray | None, layer: Layer, plan: _engine.Plan,
                    dtype: np.dtype) -> tuple[np.ndarray, Conv2dCache]:
    """A single-channel layer by the 3-D layer's engine: (N or F) valid correlations."""
    (pt, pb), (pl, pr) = layer.pad
    x3 = as_kernel_array(x[:, 0], dtype)
    if pt or pb or pl or pr:
        x3 = np.pad(x3, ((0, 0), (pt, pb), (pl, pr)))
    out3, inner = _layer3d.forward(x3, as_kernel_array(w[:, 0], dtype), 3, plan)
    out = out3.reshape(layer.out_shape)  # (N, 1, ...) or (1, F, ...): the same data
    if b is not None:
        with np.errstate(invalid="ignore", over="ignore"):
            out += as_kernel_array(b, dtype).reshape(-1, 1, 1)
    xk, wk = x.astype(dtype, copy=False), w.astype(dtype, copy=False)
    return out, Conv2dCache(xk, wk, b is not None, layer, inner.method, inner)


def conv2d_backward(
    dout: npt.ArrayLike, cache: Conv2dCache, *, method: Conv2dMethod = "auto"
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.floating], npt.NDArray[np.floating] | None]:
    """Backward pass of :func:`conv2d_forward`.

    Parameters
    ----------
    dout : array_like, shape (N, F, H', W')
        Upstream derivative: the gradient of some loss with respect to the
        forward output.
    cache : Conv2dCache
        The second value :func:`conv2d_forward` returned.
    method : {'auto', 'direct', 'gemm', 'fft'}, optional
        As for :func:`conv2d_forward`, whatever the forward pass ran:
        'direct' (or its other name 'gemm') takes every layer, 'fft' a single-channel layer
        only; 'auto' is the 3-D layer's choice for a single-channel layer
        (reusing the spectra an FFT forward pass left in the cache),
        'direct' for other layers.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
        Gradient of ``sum(out * dout)`` with respect to ``x``.
    dw : ndarray, shape (F, C // groups, KH, KW)
        Gradient with respect to ``w``.
    db : ndarray of shape (F,), or None
        Gradient with respect to ``b``: ``dout`` summed over all but the
        filter axis.  None when the forward pass had no bias.

    Raises
    ------
    ValueError
        If ``cache`` did not come from :func:`conv2d_forward`, ``dout``'s
        shape is not the forward output's, or ``method`` is unknown or does
        not apply to the layer.
    TypeError
        If ``dout`` has a dtype cconv cannot compute in.

    Notes
    -----
    Computed in the forward dtype promoted with ``dout``'s.  The 'direct'
    path computes ``dx`` as a direct convolution of ``dout`` with the
    transposed filters (one stride phase at a time) and ``dw`` as a
    reduction over pixels split into a fixed set of work items, so every
    pass uses all threads, even for one image and one group, and ``dw`` has
    the same bits whatever the thread count.  NaN and
    Inf propagate as in PyTorch's float64 layer: padding zeros are terms of
    ``dw`` (0 * Inf is NaN there), and ``dx`` has no terms beyond ``dout``.

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
    dout = checked_dout(cache, Conv2dCache, "conv2d_forward", dout)
    layer = cache._layer
    route = _route(check_choice(method, "method", METHODS), layer)
    dtype = compute_dtype((dout, "dout"), (cache.x, "x"))
    if route == "single" and cache.x.size and cache.w.size:
        dx, dw = _backward_single(dout, cache, "fft" if method == "fft" else "auto", dtype)
    else:
        dx, dw = _backward_direct(dout, cache, dtype)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and Inf are data
        db = dout.sum(axis=(0, 2, 3), dtype=dtype) if cache._has_bias else None
    return dx, dw, db


def _backward_single(dout: np.ndarray, cache: Conv2dCache, method: Method,
                     dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """dx and dw of a single-channel layer by the 3-D layer."""
    layer = cache._layer
    s = layer.shape
    inner = cache._inner
    spectra = None if inner is None else inner.spectra_in(dtype)
    plan = _single_plan(layer, method, dtype, backward=True, cached=spectra is not None)
    finite_filter = bool(np.isfinite(cache.w).all())
    # A filter with NaN or Inf takes a second pass, on its finite part, without kept spectra.
    second = plan if finite_filter else _single_plan(layer, method, dtype, backward=True)
    check_memory(copy_bytes(dout, dtype) + 2 * _padded_size(layer) * dtype.itemsize + plan.workspace
                 + (0 if finite_filter else second.workspace),
                 lambda: f"conv2d_backward(dout{dout.shape}, cache of x{cache.x.shape}, w{cache.w.shape})")
    if inner is None:  # the forward pass ran the 4-D kernels: the 3-D layer's view of it
        (pt, pb), (pl, pr) = layer.pad
        x3 = np.pad(cache.x[:, 0], ((0, 0), (pt, pb), (pl, pr)))
        inner = ConvCache(x3, np.ascontiguousarray(cache.w[:, 0]), 3, "direct")
    dout3 = as_kernel_array(dout.reshape(inner.out_shape), dtype)
    if finite_filter:
        dx3, dw3 = _layer3d.backward(dout3, inner, dtype, spectra, plan)
    else:
        dx3, dw3 = _backward_nonfinite_filter(dout3, inner, dtype, spectra, plan, second)
    (pt, _), (pl, _) = layer.pad
    dx = np.ascontiguousarray(dx3[:, pt : pt + s.ih, pl : pl + s.iw]).reshape(s.n, s.c, s.ih, s.iw)
    return dx, dw3.reshape(s.f, s.cg, s.kh, s.kw)


def _backward_nonfinite_filter(dout3: np.ndarray, inner: ConvCache, dtype: np.dtype,
                               spectra: tuple[np.ndarray, np.ndarray] | None, plan: _engine.Plan,
                               second: _engine.Plan) -> tuple[np.ndarray, np.ndarray]:
    """The 3-D layer's dx and dw for a filter holding NaN or Inf, dx as PyTorch has it.

    The 3-D layer's dx is the full correlation of ``dout`` with the
    flipped filter, which multiplies the filter by zeros beyond ``dout``'s
    edges (NaN from an infinite tap).  The 4-D layer's own gradient has
    no terms there: dx is computed from the filter's finite part (a second
    pass, as ``second`` plans it), then its NaN and infinities restored from
    the terms inside ``dout`` alone.
    """
    _, dw3 = _layer3d.backward(dout3, inner, dtype, spectra, plan)
    w = inner.w
    finite = ConvCache(inner.x, finite_part(w), 3, inner.method)
    dx3, _ = _layer3d.backward(dout3, finite, dtype, None, second)
    kh, kw = w.shape[1:]
    reduce = inner.x.shape[0] == 1 and dout3.shape[0] != 1
    restore(dx3, dout3, w[:, ::-1, ::-1], reduce=reduce, pad=(kh - 1, kh - 1, kw - 1, kw - 1), pad_zeros=False)
    return dx3, dw3


def _backward_direct(dout: np.ndarray, cache: Conv2dCache, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    layer = cache._layer
    s = layer.shape
    check_memory(
        copy_bytes(cache.x, dtype) + copy_bytes(cache.w, dtype) + copy_bytes(dout, dtype)
        + (cache.x.size + cache.w.size) * dtype.itemsize + _layer4d_plan.workspace_bytes(layer, dtype.itemsize, True),
        lambda: f"conv2d_backward(dout{dout.shape}, cache of x{cache.x.shape}, w{cache.w.shape})",
    )
    x = as_kernel_array(cache.x, dtype)
    w = as_kernel_array(cache.w, dtype)
    dout = as_kernel_array(dout, dtype)
    if x.size == 0 or w.size == 0 or dout.size == 0:
        return np.zeros((s.n, s.c, s.ih, s.iw), dtype), np.zeros((s.f, s.cg, s.kh, s.kw), dtype)
    return _layer4d_plan.backward(x, w, dout, layer, for_work(3 * _flops(layer)))
