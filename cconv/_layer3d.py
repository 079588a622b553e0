"""The 3-D layer, ``conv_forward`` and ``conv_backward``: (N, H, W) images
correlated with (KH, KW) or (K, KH, KW) filters.  Validation, dtype
promotion, the engine's plan of the call and the memory check it implies,
then the correlation engine (``cconv._engine``) or its FFT route
(``cconv._fft``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import _engine, _fft
from ._cache import LayerCache, checked_dout
from ._engine import Method
from ._validation import (
    as_batch,
    as_kernel_array,
    as_real_array,
    check_batch_pair,
    check_memory,
    compute_dtype,
    copy_bytes,
)

__all__ = ["ConvCache", "conv_forward", "conv_backward", "forward", "backward"]


class ConvCache(LayerCache):
    """What :func:`conv_backward` needs from a call of :func:`conv_forward`.

    Treat it as opaque: it holds the forward inputs, already converted to the
    dtype and layout the kernels use (``x`` of shape (Nx, H, W), ``w`` of
    shape (Nw, KH, KW)), the number of dimensions ``w`` was given with, so
    that ``dw`` comes back in the caller's shape, and the method the forward
    pass ran.  The arrays are held by reference when no conversion was
    needed: changing ``x`` or ``w`` in place between the forward and the
    backward call changes the gradients.  After an FFT forward pass it also
    holds the spectra of ``x`` and ``w`` (of their finite parts), which an
    FFT backward pass reuses, and whether either held NaN or Inf.
    """

    __slots__ = ("_w_ndim", "_spectra", "_nonfinite")

    def __init__(self, x: np.ndarray, w: np.ndarray, w_ndim: int, method: str,
                 spectra: tuple[np.ndarray, np.ndarray] | None = None, nonfinite: bool = False) -> None:
        super().__init__(x, w, method)
        self._w_ndim = w_ndim
        self._spectra = spectra
        self._nonfinite = nonfinite

    @property
    def out_shape(self) -> tuple[int, int, int]:
        """Shape of the forward output, and so of the ``dout`` backward takes."""
        (nx, ih, iw), (nw, kh, kw) = self._x.shape, self._w.shape
        return (_engine.pair_count(nx, nw), ih - kh + 1, iw - kw + 1)

    def spectra_in(self, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray] | None:
        """The spectra of x and w an FFT forward pass kept, if they have ``dtype``'s precision."""
        spectra = self._spectra
        if spectra is None or spectra[0].dtype != np.result_type(dtype, np.complex64):
            return None  # none kept, or float32 ones for a float64 backward pass
        return spectra

    def __repr__(self) -> str:
        return (
            f"<cconv.ConvCache x{self._x.shape} w{self._w.shape} {self._x.dtype} "
            f"{self._method} -> out{self.out_shape}>"
        )


def conv_forward(
    x: npt.ArrayLike, w: npt.ArrayLike, *, method: Method = "auto"
) -> tuple[npt.NDArray[np.floating], ConvCache]:
    """Forward pass of a 2-D convolution layer (cross-correlation) over a batch.

    Parameters
    ----------
    x : array_like, shape (N, H, W)
        The images.
    w : array_like, shape (KH, KW) or (K, KH, KW)
        The filters, with ``KH <= H`` and ``KW <= W``.  The leading axes of
        ``x`` and ``w`` broadcast as in NumPy: a 2-D ``w`` (or one of shape
        (1, KH, KW)) is one filter for every image; ``x`` of shape (1, H, W)
        with ``w`` of shape (K, KH, KW) matches K templates against one image;
        equal leading sizes pair image n with filter n.
    method : {'auto', 'direct', 'fft'}, optional
        'direct' runs the compiled loops, 'fft' multiplies real FFTs of the
        image's own size (``scipy.fft``), 'auto' (the default) picks the one
        a cost model predicts is faster for these shapes.  Large filters
        favour 'fft'; its error is of the order of machine epsilon times the
        norm of the result rather than of each element.  NaN and Inf stay
        local on every method (see Notes).

    Returns
    -------
    out : ndarray, shape (N', H - KH + 1, W - KW + 1)
        ``out[n]`` is the valid cross-correlation of ``x[n]`` with ``w[n]``,
        as ``scipy.signal.correlate2d(x[n], w[n], mode='valid')`` computes it;
        ``N'`` is the broadcast leading size.  A new C-contiguous array.
    cache : ConvCache
        Pass it to :func:`conv_backward`.

    Raises
    ------
    TypeError
        If ``x`` or ``w`` is complex, object, string, datetime, structured,
        long double or masked.
    MemoryError
        If the call would need more memory than the system has available:
        refused before anything is allocated.
    ValueError
        If a shape is wrong: ``x`` not 3-D, ``w`` not 2-D or 3-D, an empty
        image or filter, a filter larger than the image, or leading sizes that
        do not broadcast; or if ``method`` is unknown.

    Notes
    -----
    float32 and float64 are computed natively and float32 stays float32;
    mixed float32/float64 computes in float64; bool and integer inputs are
    promoted to float64 and float16 to float32.  Any memory layout is
    accepted, and the inputs are never modified.  The compiled loops run
    without the GIL, on up to :func:`cconv.get_num_threads` threads (see
    :func:`cconv.threads` for how many each call takes).

    NaN and Inf are not errors: an output is NaN, +Inf or -Inf exactly where
    ``scipy.signal.correlate2d``'s is (NaN where a window holds a NaN, meets
    an infinity with a zero tap, or sums +Inf and -Inf terms), and every
    other output is what finite inputs give.  The direct loops do this by
    IEEE arithmetic.  The FFT route transforms the finite part of its
    operands and writes the non-finite outputs back where the non-finite
    values reach: free when the inputs are finite (the check reads the
    spectra's DC terms); up to about twice a finite call for a few
    non-finite cells, each marking its windows; 3-10x for a large share of
    them, whose windows are counted by FFTs of 0/1 masks.

    Examples
    --------
    >>> import numpy as np, cconv
    >>> x = np.arange(16.0).reshape(1, 4, 4)
    >>> out, cache = cconv.conv_forward(x, np.ones((2, 2)))
    >>> out
    array([[[10., 14., 18.],
            [26., 30., 34.],
            [42., 46., 50.]]])
    """
    x = as_real_array(x, "x")
    w = as_real_array(w, "w")
    check_batch_pair(x, w, ("x", "w"))
    dtype = compute_dtype((x, "x"), (w, "w"))
    w3 = as_batch(w)
    plan = _engine.plan(method, x.shape[0], w3.shape[0], x.shape[1:], w3.shape[1:], dtype.itemsize)
    check_memory(copy_bytes(x, dtype) + copy_bytes(w3, dtype) + plan.workspace,
                 lambda: f"conv_forward(x{x.shape}, w{w.shape}, method={plan.method!r})")
    return forward(as_kernel_array(x, dtype), as_kernel_array(w3, dtype), w.ndim, plan)


def forward(x: np.ndarray, w: np.ndarray, w_ndim: int, plan: _engine.Plan) -> tuple[np.ndarray, ConvCache]:
    """The forward pass of checked operands, as ``plan`` says: ``x`` (Nx, H, W) and
    ``w`` (Nw, KH, KW) C-contiguous, of one float dtype; ``w_ndim`` as the caller gave ``w``."""
    if plan.method == "direct":
        return _engine.correlate_direct(x, w, False, plan.threads), ConvCache(x, w, w_ndim, plan.method)
    out, spectra, nonfinite = _fft.correlate(x, w, plan.threads)
    return out, ConvCache(x, w, w_ndim, plan.method, spectra, nonfinite)


def conv_backward(
    dout: npt.ArrayLike, cache: ConvCache, *, method: Method = "auto"
) -> tuple[npt.NDArray[np.floating], npt.NDArray[np.floating]]:
    """Backward pass of :func:`conv_forward`.

    Parameters
    ----------
    dout : array_like, shape (N', H - KH + 1, W - KW + 1)
        Upstream derivative: the gradient of some loss with respect to the
        forward output.
    cache : ConvCache
        The second value :func:`conv_forward` returned.
    method : {'auto', 'direct', 'fft'}, optional
        As for :func:`conv_forward`; 'fft' reuses the spectra an FFT forward
        pass left in the cache.

    Returns
    -------
    dx : ndarray, same shape as ``x``
        Gradient of ``sum(out * dout)`` with respect to ``x``: the full
        cross-correlation of ``dout[n]`` with the flipped filter ``w[n]``,
        summed over ``n`` where ``x`` was broadcast.
    dw : ndarray, same shape as ``w``
        Gradient with respect to ``w``: the valid cross-correlation of
        ``x[n]`` with ``dout[n]``, summed over ``n`` where ``w`` was
        broadcast (a 2-D ``w`` gets a 2-D ``dw``).

    Raises
    ------
    ValueError
        If ``cache`` did not come from :func:`conv_forward`, ``dout``'s
        shape is not the forward output's, or ``method`` is unknown.
    TypeError
        If ``dout`` has a dtype cconv cannot compute in.

    Notes
    -----
    The gradients are computed in the forward dtype promoted with ``dout``'s
    (float32 forward with a float64 ``dout`` gives float64 gradients).

    Examples
    --------
    >>> import numpy as np, cconv
    >>> out, cache = cconv.conv_forward(np.ones((1, 3, 3)), np.ones((2, 2)))
    >>> dx, dw = cconv.conv_backward(np.ones_like(out), cache)
    >>> dx[0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> dw
    array([[4., 4.],
           [4., 4.]])
    """
    dout = checked_dout(cache, ConvCache, "conv_forward", dout)
    dtype = compute_dtype((dout, "dout"), (cache.x, "x"))
    (nx, ih, iw), (nw, kh, kw) = cache.x.shape, cache.w.shape
    spectra = cache.spectra_in(dtype)
    plan = _engine.plan(method, nx, nw, (ih, iw), (kh, kw), dtype.itemsize, backward=True,
                        cached=spectra is not None)
    check_memory(
        copy_bytes(cache.x, dtype) + copy_bytes(cache.w, dtype) + copy_bytes(dout, dtype) + plan.workspace,
        lambda: f"conv_backward(dout{dout.shape}, cache of x{cache.x.shape}, method={plan.method!r})",
    )
    dx, dw = backward(as_kernel_array(dout, dtype), cache, dtype, spectra, plan)
    if cache._w_ndim == 2:
        dw = dw[0]
    return dx, dw


def backward(dout: np.ndarray, cache: ConvCache, dtype: np.dtype, spectra: tuple[np.ndarray, np.ndarray] | None,
             plan: _engine.Plan) -> tuple[np.ndarray, np.ndarray]:
    """dx (Nx, H, W) and dw (Nw, KH, KW) of a checked ``dout``, in ``dtype``, as ``plan`` says.

    ``spectra``: the cache's spectra where they are in ``dtype``'s precision, else None.
    """
    x = as_kernel_array(cache.x, dtype)
    w = as_kernel_array(cache.w, dtype)
    if plan.method == "direct":
        return _engine.backward_direct(x, w, dout, plan.threads)
    return _fft.backward(dout, x, w, spectra, cache._nonfinite, plan.threads)
