"""``scipy.signal``'s 2-D correlations on cconv's engine, behind :mod:`cconv.signal`.

How a call runs: SciPy's argument rules in SciPy's order; then, for float32
and float64, and for integers of at most 16 bits whose sums a float holds
exactly, the 2-D filter of ``cconv._filter2d`` (its direct loop applies the
boundary rule inside, reading ``in1`` in place with no extended copy; its
FFTs correlate an extended copy); for the other types, the part of ``in1``
that the requested outputs read is extended by the boundary rule
(``cconv._boundary``) and correlated, in the valid sense, with ``in2``
(conjugated for correlation, flipped for convolution).  The sums are done in
the output dtype as :mod:`cconv.signal` says.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import numpy.typing as npt

from . import _engine, _filter2d
from ._boundary import extend
from ._engine import METHODS, Method
from ._validation import check_choice, check_memory
from ._workspace import scratch_array

__all__ = ["correlate2d", "convolve2d"]

_MODES = ("valid", "same", "full")
# SciPy's boundary names, and the rule each one is.
_BOUNDARIES = {"fill": "fill", "pad": "fill", "wrap": "wrap", "circular": "wrap",
               "symm": "symmetric", "symmetric": "symmetric", "reflect": None}


def correlate2d(in1: npt.ArrayLike, in2: npt.ArrayLike, mode: str = "full", boundary: str = "fill",
                fillvalue: object = 0, *, method: Literal["auto", "direct", "fft"] = "auto") -> np.ndarray:
    """Cross-correlate two 2-D arrays, as ``scipy.signal.correlate2d``.

    Parameters
    ----------
    in1 : array_like
        First input, 2-D.
    in2 : array_like
        Second input, 2-D; conjugated if complex.
    mode : {'full', 'valid', 'same'}, optional
        The output's size: every overlap ('full', the default), only the
        placements of ``in2`` inside ``in1`` ('valid'; if ``in2`` is the
        larger in every dimension the inputs swap, and the result is, as
        SciPy's, the flipped correlation of ``in2`` with ``in1``, ``in1``
        conjugated), or ``in1``'s size, centred on the 'full' output
        ('same': it starts at ``in2.shape // 2``).
    boundary : {'fill', 'wrap', 'symm'}, optional
        How ``in1`` extends past its edges: ``fillvalue`` ('fill', or
        'pad'), periodically ('wrap', or 'circular'), or by half-sample
        symmetric reflection ('symm', or 'symmetric'), repeated as far as
        ``in2`` reaches.
    fillvalue : scalar, optional
        The value of ``in1`` beyond its edges with 'fill'; converted to the
        output dtype as SciPy converts it.
    method : {'auto', 'direct', 'fft'}, optional
        Keyword only, cconv's own: 'direct' runs the compiled loops, 'fft'
        multiplies FFTs of the extended input, 'auto' (the default) asks
        cconv's cost model (small cases stay direct).  Applies to float and
        complex data; integer and long double data are always summed
        exactly by direct loops.

    Returns
    -------
    out : ndarray
        Of dtype ``np.result_type(in1, in2)``, summed in that dtype.

    Raises
    ------
    ValueError
        As SciPy raises it: inputs not 2-D, an unknown ``mode`` or
        ``boundary``, 'valid' with neither input containing the other, a
        ``fillvalue`` that does not convert, a dtype SciPy's correlate2d
        does not take (bool with bool, float16, object, strings, ...); and
        boundary 'wrap' or 'symm' on an empty axis of ``in1`` where SciPy
        divides by zero (SIGFPE).
    TypeError
        As SciPy raises it: an ``in2`` of strings, bytes or times, which
        SciPy's correlate2d fails to conjugate.

    Notes
    -----
    Integer sums wrap exactly as SciPy's do; float results agree with
    SciPy's to the rounding of a different summation order (exactly, on
    integer-valued data, with the direct loops), and to machine precision
    relative to the largest output with 'fft'.  NaN and Inf propagate as in
    SciPy on every method, complex infinities as C's complex ``*`` makes
    them (``(1+0j) * (inf+infj)`` is ``inf+infj``).  The inputs are never modified; the compiled
    loops release the GIL.

    Examples
    --------
    >>> import numpy as np
    >>> from cconv.signal import correlate2d
    >>> correlate2d(np.arange(9).reshape(3, 3), np.ones((2, 2), int), mode="valid")
    array([[ 8, 12],
           [20, 24]])
    """
    return _correlate_or_convolve(in1, in2, mode, boundary, fillvalue, method, convolve=False)


def convolve2d(in1: npt.ArrayLike, in2: npt.ArrayLike, mode: str = "full", boundary: str = "fill",
               fillvalue: object = 0, *, method: Literal["auto", "direct", "fft"] = "auto") -> np.ndarray:
    """Convolve two 2-D arrays, as ``scipy.signal.convolve2d``.

    Parameters
    ----------
    in1, in2 : array_like
        The inputs, 2-D.  'valid' swaps them if ``in2`` is the larger in
        every dimension (convolution commutes).
    mode, boundary, fillvalue, method
        As for :func:`correlate2d`, except that 'same' starts at
        ``(in2.shape - 1) // 2`` of the 'full' output, as SciPy's does (one
        sample before :func:`correlate2d`'s for even sizes).

    Returns
    -------
    out : ndarray
        The convolution over the requested region, of dtype
        ``np.result_type(in1, in2)`` and summed in it, as SciPy sums.

    Raises
    ------
    ValueError
        As for :func:`correlate2d`.

    Examples
    --------
    A 2x2 kernel over the identity, 'same' keeping its top-left corner:

    >>> import numpy as np
    >>> from cconv.signal import convolve2d
    >>> convolve2d(np.eye(3), [[1, 2], [3, 4]], mode="same")
    array([[1., 2., 0.],
           [3., 5., 2.],
           [0., 3., 5.]])
    """
    return _correlate_or_convolve(in1, in2, mode, boundary, fillvalue, method, convolve=True)


def _correlate_or_convolve(in1: npt.ArrayLike, in2: npt.ArrayLike, mode: str, boundary: str, fillvalue: object,
                           method: Method, convolve: bool) -> np.ndarray:
    name = "convolve2d" if convolve else "correlate2d"
    a = np.asarray(in1)
    k = np.asarray(in2)
    if not a.ndim == k.ndim == 2:
        raise ValueError(f"{name} inputs must both be 2-D arrays")
    swapped = mode == "valid" and _swap_needed(a.shape, k.shape)
    if swapped:
        a, k = k, a
    if mode not in _MODES:
        raise ValueError("Acceptable mode flags are 'valid', 'same', or 'full'.")
    if boundary not in _BOUNDARIES:
        raise ValueError(
            "Acceptable boundary flags are 'fill', 'circular' (or 'wrap'), and 'symmetric' (or 'symm')."
        )
    check_choice(method, "method", METHODS)
    if not convolve and k.dtype.kind in "SUMmV":
        # SciPy conjugates in2 before its C code sees the types: for strings,
        # bytes, times and void, NumPy >= 2.3 raises TypeError there, older
        # NumPy warns (DeprecationWarning) and SciPy's C code then refuses the
        # type (below).  The same call (the method, as SciPy makes it) gives
        # the same outcome.
        k[:0, :0].conj()
    common = _common_dtype(a, k)
    rule = _BOUNDARIES[boundary]
    if rule is None:  # a name SciPy's Python layer accepts and its C layer refuses
        raise ValueError("Incorrect boundary value.")
    # SciPy's C layer converts the fill value to the common type before it
    # looks for a loop of that type: a fill value it cannot convert speaks first.
    fill = _fill_value(fillvalue, common) if rule == "fill" and common is not None else None
    dtype = common if common is not None and _summable(common) else None
    if dtype is None:
        raise ValueError("convolve2d not available for this type.")
    fill = _zero(dtype) if fill is None else fill
    out = _correlate(a, k, mode, rule, fill, dtype, method, convolve)
    # Swapped inputs: convolution commutes; correlation comes out flipped.
    return out[::-1, ::-1].copy() if swapped and not convolve else out


def _swap_needed(shape1: tuple[int, ...], shape2: tuple[int, ...]) -> bool:
    """SciPy's rule for 'valid': the larger input goes first; one must contain the other."""
    ok1 = ok2 = True
    for s1, s2 in zip(shape1, shape2):
        ok1, ok2 = ok1 and s1 >= s2, ok2 and s2 >= s1
    if not (ok1 or ok2):
        raise ValueError("For 'valid' mode, one must be at least as large as the other in every dimension")
    return not ok1


def _common_dtype(a: np.ndarray, k: np.ndarray) -> np.dtype | None:
    """The one type SciPy converts both inputs to, or None where NumPy has none."""
    return _result_type(a.dtype, k.dtype)


@functools.lru_cache(maxsize=256)
def _result_type(t1: np.dtype, t2: np.dtype) -> np.dtype | None:
    try:
        return np.result_type(t1, t2)
    except TypeError:
        return None


def _summable(dtype: np.dtype) -> bool:
    """Whether SciPy's correlate2d has a loop for ``dtype``: integers, float32 and wider, complex.

    Not bool (with bool), float16, object, strings, times or structured types.
    """
    return dtype.kind in "iuc" or (dtype.kind == "f" and dtype.itemsize >= 4)


def _fill_value(fillvalue: object, dtype: np.dtype) -> np.ndarray:
    """``fillvalue`` in ``dtype``, converted as SciPy's C code converts it.

    First directly (:func:`_from_object`); where that fails, SciPy tries
    complex128 and casts that to ``dtype`` (a ComplexWarning for a real
    dtype), then refuses with a ValueError; an error of that detour is
    raised as it is.
    """
    if type(fillvalue) is int and fillvalue == 0:  # the default
        return _zero(dtype)
    try:
        value = _from_object(fillvalue, dtype)
    except (TypeError, ValueError, OverflowError):
        _from_object(fillvalue, np.dtype(np.complex128)).astype(dtype)  # SciPy's detour, with its errors
        raise ValueError(
            "could not cast `fillvalue` directly to the output type (it was first converted to complex)."
        ) from None
    if value.size != 1:
        if value.size == 0:
            raise ValueError("`fillvalue` cannot be an empty array.")
        raise ValueError("`fillvalue` must be scalar or an array with one element.")
    return value.reshape(())


@functools.lru_cache(maxsize=32)
def _zero(dtype: np.dtype) -> np.ndarray:
    """A read-only 0-d zero of ``dtype``."""
    zero = np.zeros((), dtype)
    zero.flags.writeable = False
    return zero


def _from_object(value: object, dtype: np.dtype) -> np.ndarray:
    """``value`` as an array of ``dtype``, as NumPy's ``PyArray_FromObject`` makes it.

    An array (a 0-d one too) only by a safe cast, a TypeError otherwise;
    any other object (a Python or NumPy scalar, a list) by value.
    """
    if isinstance(value, np.ndarray):
        if not np.can_cast(value.dtype, dtype, "safe"):
            raise TypeError(f"Cannot cast array data from {value.dtype!r} to {dtype!r} according to the rule 'safe'")
        return value.astype(dtype)
    return np.array(value, dtype=dtype)


def _output_region(mode: str, n: int, k: int, convolve: bool) -> tuple[int, int]:
    """First index and size of the requested outputs, in 'full' coordinates."""
    if mode == "full":
        return 0, n + k - 1
    if mode == "same":
        return ((k - 1) // 2 if convolve else k // 2), n
    return k - 1, n - k + 1  # valid


def _correlate(a: np.ndarray, k: np.ndarray, mode: str, rule: str, fill: np.ndarray, dtype: np.dtype,
               method: Method, convolve: bool) -> np.ndarray:
    (h, w), (kh, kw) = a.shape, k.shape
    (r, oh), (c, ow) = _output_region(mode, h, kh, convolve), _output_region(mode, w, kw, convolve)
    if oh < 0 or ow < 0:  # 'full' of two empty axes: SciPy's array allocation refuses it
        raise ValueError("negative dimensions are not allowed")
    # Periodic or mirrored extension of an empty axis of in1: SciPy divides by
    # zero (SIGFPE) as soon as it has an output to compute and an index of in2
    # to wrap along that axis (its rows first); refused here instead.
    if rule != "fill" and oh * ow > 0 and kh > 0 and (h == 0 or (w == 0 and kw > 0)):
        raise ValueError(
            f"boundary {'wrap' if rule == 'wrap' else 'symm'!r} needs a non-empty in1; got shape {a.shape}"
        )
    if oh == 0 or ow == 0 or kh == 0 or kw == 0:
        return np.zeros((oh, ow), dtype)  # nothing to sum: zeros of the formula's shape
    k = k[::-1, ::-1] if convolve else np.conj(k) if k.dtype.kind == "c" else k
    # full[i] reads in1 rows i - (kh - 1) ... i: the outputs [r, r + oh) read
    # rows [r - kh + 1, r + oh) of in1, extended by the rule.
    extended = (oh + kh - 1, ow + kw - 1)
    if dtype.char in "fd":  # the 2-D filter: no extended copy, the result written once
        route = _filter2d.plan(method, 1, (oh, ow), (kh, kw), dtype.itemsize)
        check_memory((oh * ow + (a.size if a.dtype != dtype else 0)) * dtype.itemsize + route.workspace,
                     lambda: f"correlate2d(in1{a.shape}, in2{k.shape}, mode={mode!r})")
        return _filter2d.filter2d(a.astype(dtype, copy=False)[None], np.ascontiguousarray(k, dtype=dtype), rule,
                                  float(fill), (r - kh + 1, c - kw + 1), (oh, ow), route)[0]
    exact = _exact_float(a, k, fill if rule == "fill" else None, dtype) if dtype.kind in "iu" else None
    if exact is not None:
        # Every partial sum of these integers is an integer the float type
        # holds exactly: the 2-D filter sums them exactly, however it rounds
        # (the float loops' FMAs included); the result is then wrapped into
        # the result dtype as SciPy's sums wrap.
        route = _filter2d.plan("direct", 1, (oh, ow), (kh, kw), exact.itemsize)
        check_memory((a.size + oh * ow) * exact.itemsize + oh * ow * 8 + route.workspace,
                     lambda: f"correlate2d(in1{a.shape}, in2{k.shape}, mode={mode!r})")
        x = scratch_array("signal-integers", a.shape, exact)
        np.copyto(x, a, casting="unsafe")
        sums = _filter2d.filter2d(x[None], np.ascontiguousarray(k.astype(dtype), dtype=exact), rule,
                                  float(fill), (r - kh + 1, c - kw + 1), (oh, ow), route,
                                  scratch_array("signal-sums", (1, oh, ow), exact))[0]
        out = sums.astype(np.int64)
        return out.view(dtype) if dtype.itemsize == 8 else out.astype(dtype)
    plan = None
    workspace = oh * ow * dtype.itemsize
    if dtype.char in "FD":  # complex as four correlations of the engine's floats
        plan = _engine.plan(method, 1, 1, extended, (kh, kw), dtype.itemsize // 2)
        # four correlations, and the real and imaginary parts of the operands, apart
        workspace += plan.workspace * 4 + ((oh + kh - 1) * (ow + kw - 1) + kh * kw) * dtype.itemsize
    check_memory((oh + kh - 1) * (ow + kw - 1) * dtype.itemsize + workspace,
                 lambda: f"correlate2d(in1{a.shape}, in2{k.shape}, mode={mode!r})")
    x = extend(a, (r - kh + 1, r + oh), (c - kw + 1, c + ow), rule, fill, dtype, scratch=True)
    return _correlate_typed(x[None], np.ascontiguousarray(k, dtype=dtype)[None], plan)[0]


def _exact_float(a: np.ndarray, k: np.ndarray, fill: np.ndarray | None, dtype: np.dtype) -> np.dtype | None:
    """A float type in which every partial sum of ``in1`` (of at most 16 bits, or ``fill``) with ``k`` in
    ``dtype`` is an integer it holds exactly (float32 below 2**23, float64 below 2**52), or None."""
    if a.dtype.kind not in "iub" or a.dtype.itemsize > 2:
        return None
    info = np.iinfo(np.uint8 if a.dtype.kind == "b" else a.dtype)
    largest = float(max(-info.min, info.max, 0 if fill is None else abs(int(fill))))
    with np.errstate(over="ignore"):
        bound = largest * float(np.abs(k.astype(dtype).astype(np.float64)).sum())
    if bound < 2.0**23:
        return np.dtype(np.float32)
    return np.dtype(np.float64) if bound < 2.0**52 else None


def _correlate_typed(x: np.ndarray, k: np.ndarray, plan: _engine.Plan | None) -> np.ndarray:
    """Valid correlation of ``x[n]`` with ``k[n]``, summed in their dtype as SciPy sums.

    ``x`` and ``k`` are C-contiguous, of one dtype: float32/64 on the
    engine's direct loops or FFTs (``plan``, None for the other types),
    integers and long double exactly, complex as real correlations of the
    parts.
    """
    dtype = x.dtype
    if dtype.kind in "iu" or dtype == np.longdouble:
        return _engine.correlate_exact(x, k)
    if dtype.kind == "f" and plan is not None:
        return _engine.correlate(x, k, plan)
    # complex: (xr + i xi)(kr + i ki) = xr kr - xi ki + i (xr ki + xi kr)
    real = np.empty(0, dtype).real.dtype
    xr, xi = (np.ascontiguousarray(p, dtype=real) for p in (x.real, x.imag))
    kr, ki = (np.ascontiguousarray(p, dtype=real) for p in (k.real, k.imag))
    parts = {}
    for name, (p, q) in {"rr": (xr, kr), "ii": (xi, ki), "ri": (xr, ki), "ir": (xi, kr)}.items():
        parts[name] = _correlate_typed(p, q, plan)
    out = np.empty(parts["rr"].shape, dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        out.real = parts["rr"] - parts["ii"]
        out.imag = parts["ri"] + parts["ir"]
    _complex_nonfinite(out, x, k)
    return out


def _complex_nonfinite(out: np.ndarray, x: np.ndarray, k: np.ndarray) -> None:
    """The outputs that have a NaN or infinite term, as SciPy's C sums make them.

    SciPy multiplies complex values with C's ``*``, whose infinities follow
    C99 Annex G: ``(1+0j) * (inf+infj)`` is ``inf+infj``, not the ``nan+nanj``
    of the parts' products.  A product with a NaN or infinite operand has
    both parts NaN or infinite, so such an output is the sum of its terms'
    products, each made as C makes it (finite terms cannot change it).
    """
    bad_x, bad_k = ~np.isfinite(x), ~np.isfinite(k)
    if not (bad_x.any() or bad_k.any()):
        return
    (kh, kw) = k.shape[1:]
    for n in range(out.shape[0]):
        xn, kn = x[n if x.shape[0] > 1 else 0], k[n if k.shape[0] > 1 else 0]
        if bad_k[n if k.shape[0] > 1 else 0].any():
            rows, cols = np.indices(out.shape[1:]).reshape(2, -1)
        else:  # the windows holding a non-finite sample of x
            c = np.pad(bad_x[n if x.shape[0] > 1 else 0].astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
            count = c[kh:, kw:] - c[:-kh, kw:] - c[kh:, :-kw] + c[:-kh, :-kw]
            rows, cols = np.nonzero(count)
        windows = np.lib.stride_tricks.sliding_window_view(xn, (kh, kw))
        step = max(1, _WINDOW_CHUNK // (kh * kw))
        for i in range(0, rows.size, step):
            r, c = rows[i : i + step], cols[i : i + step]
            re, im = _c_multiply(windows[r, c], kn)
            with np.errstate(invalid="ignore", over="ignore"):
                out.real[n, r, c] = re.sum(axis=(1, 2))
                out.imag[n, r, c] = im.sum(axis=(1, 2))


# Values of the windows multiplied at a time where a complex output has a
# non-finite term: a dozen temporaries of this many, a few MB.
_WINDOW_CHUNK = 1 << 16


def _c_multiply(z: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real and imaginary parts of ``z * w`` as C99 Annex G multiplies (libgcc's __muldc3)."""
    with np.errstate(invalid="ignore", over="ignore"):
        a, b = np.broadcast_arrays(z.real, z.imag)
        c, d = np.broadcast_to(w.real, a.shape), np.broadcast_to(w.imag, a.shape)
        ac, bd, ad, bc = a * c, b * d, a * d, b * c
        x, y = ac - bd, ad + bc
        both = np.isnan(x) & np.isnan(y)
        if not both.any():
            return x, y
        a, b, c, d = (v[both] for v in (a, b, c, d))
        one, zero = a.dtype.type(1), a.dtype.type(0)
        z_inf = np.isinf(a) | np.isinf(b)
        a = np.where(z_inf, np.copysign(np.where(np.isinf(a), one, zero), a), a)
        b = np.where(z_inf, np.copysign(np.where(np.isinf(b), one, zero), b), b)
        c = np.where(z_inf & np.isnan(c), np.copysign(zero, c), c)
        d = np.where(z_inf & np.isnan(d), np.copysign(zero, d), d)
        w_inf = np.isinf(c) | np.isinf(d)
        c = np.where(w_inf, np.copysign(np.where(np.isinf(c), one, zero), c), c)
        d = np.where(w_inf, np.copysign(np.where(np.isinf(d), one, zero), d), d)
        a = np.where(w_inf & np.isnan(a), np.copysign(zero, a), a)
        b = np.where(w_inf & np.isnan(b), np.copysign(zero, b), b)
        overflow = ~(z_inf | w_inf) & (np.isinf(ac[both]) | np.isinf(bd[both]) | np.isinf(ad[both])
                                       | np.isinf(bc[both]))
        a, b, c, d = (np.where(overflow & np.isnan(v), np.copysign(zero, v), v) for v in (a, b, c, d))
        recalc = z_inf | w_inf | overflow
        inf = a.dtype.type(np.inf)
        x[both] = np.where(recalc, inf * (a * c - b * d), x[both])
        y[both] = np.where(recalc, inf * (a * d + b * c), y[both])
    return x, y
