"""Plain-NumPy references for the SciPy drop-ins (cconv.signal, cconv.ndimage).

Written from the specification (SciPy's documented behaviour and the notes
of issue #14), independently of cconv's code: the boundary extension is
``np.pad``'s, the sums are sliding windows.  Used where SciPy itself is not
a usable reference (its 'reflect' results for kernels reaching 4n samples
or more before an axis of length n) and as a second opinion in the unit
tests.  Loaded by file path (the suite runs with ``--import-mode=importlib``).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["correlate2d", "ndimage_sum", "c_cast", "NDIMAGE_PAD", "SIGNAL_PAD"]

# SciPy's boundary names -> np.pad's modes (np.pad repeats as far as needed).
SIGNAL_PAD = {"fill": "constant", "pad": "constant", "wrap": "wrap", "circular": "wrap",
              "symm": "symmetric", "symmetric": "symmetric"}
NDIMAGE_PAD = {"reflect": "symmetric", "grid-mirror": "symmetric", "mirror": "reflect", "nearest": "edge",
               "wrap": "wrap", "grid-wrap": "wrap", "constant": "constant", "grid-constant": "constant"}


def _pad(x: np.ndarray, widths, mode: str, value=0) -> np.ndarray:
    if mode == "constant":
        return np.pad(x, widths, mode="constant", constant_values=value)
    if mode == "reflect" and any(n == 1 for n in x.shape[-2:]):
        # whole-sample mirror of a single sample: the sample itself
        for axis in (-2, -1):
            if x.shape[axis] == 1:
                w = [(0, 0)] * x.ndim
                w[axis] = widths[axis] if len(widths) == x.ndim else widths[axis + 2]
                x = np.pad(x, w, mode="edge")
                widths = [(0, 0) if i == x.ndim + axis else wi for i, wi in enumerate(widths)]
        return np.pad(x, widths, mode="reflect")
    return np.pad(x, widths, mode=mode)


def _window_sum(xe: np.ndarray, k: np.ndarray, dtype) -> np.ndarray:
    """Valid correlation of xe with k, summed in ``dtype`` (wrapping for integers)."""
    win = sliding_window_view(xe, k.shape)
    if np.dtype(dtype).kind in "iu":
        with np.errstate(over="ignore"):
            return (win * k).sum(axis=(-2, -1), dtype=dtype)
    return np.einsum("ijkl,kl->ij", win.astype(dtype), k.astype(dtype))


def correlate2d(in1, in2, mode="full", boundary="fill", fillvalue=0, convolve=False, dtype=None):
    """``scipy.signal.correlate2d`` / ``convolve2d`` of the specification.

    Integers are summed modulo 2**bits in ``np.result_type(in1, in2)``;
    floats and complex in ``dtype`` (default: the widest of their kind,
    long double, to serve as an accurate reference).
    """
    a, k = np.asarray(in1), np.asarray(in2)
    out_dtype = np.result_type(a, k)
    swapped = False
    if mode == "valid" and not all(s1 >= s2 for s1, s2 in zip(a.shape, k.shape)):
        a, k, swapped = k, a, True
    if dtype is None:
        dtype = out_dtype if out_dtype.kind in "iu" else (
            np.clongdouble if out_dtype.kind == "c" else np.longdouble)
    a = a.astype(out_dtype)
    k = k.astype(out_dtype)
    k = k[::-1, ::-1] if convolve else np.conj(k)
    (h, w), (kh, kw) = a.shape, k.shape
    shape = {"full": (h + kh - 1, w + kw - 1), "same": (h, w), "valid": (h - kh + 1, w - kw + 1)}[mode]
    if kh == 0 or kw == 0 or 0 in shape or (0 in (h, w) and SIGNAL_PAD[boundary] != "constant"):
        return np.zeros(shape, out_dtype)  # no terms (an empty in1 only extends by a constant)
    fill = np.array(fillvalue).astype(out_dtype) if SIGNAL_PAD[boundary] == "constant" else 0
    xe = _pad(a, ((kh - 1, kh - 1), (kw - 1, kw - 1)), SIGNAL_PAD[boundary], fill)
    with np.errstate(invalid="ignore", over="ignore"):
        full = _window_sum(xe, k, dtype)
    if mode == "same":
        r, c = ((kh - 1) // 2, (kw - 1) // 2) if convolve else (kh // 2, kw // 2)
        full = full[r : r + h, c : c + w]
    elif mode == "valid":
        full = full[kh - 1 : h, kw - 1 : w]
    if swapped and not convolve:  # SciPy flips the correlation of in2 with in1 (conj(in1))
        full = full[::-1, ::-1]
    with np.errstate(invalid="ignore", over="ignore"):
        return full.astype(out_dtype) if out_dtype.kind in "iu" else full


def ndimage_sum(input, weights, mode="reflect", cval=0.0, origin=0, convolve=False, dtype=np.longdouble):
    """The sums of ``scipy.ndimage.correlate`` / ``convolve`` on 2-D real data, in ``dtype``.

    out[i, j] = sum over a, b of w[a, b] * ext(x)[i - kh // 2 - o0 + a, j - kw // 2 - o1 + b],
    with the weights flipped and the origin ``-o - (1 - k % 2)`` for convolve.
    Weights of magnitude at most DBL_EPSILON are no terms (SciPy skips them).
    """
    x = np.asarray(input, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    origins = [origin] * 2 if np.ndim(origin) == 0 else list(origin)
    if convolve:
        w = w[::-1, ::-1]
        origins = [-o - (0 if n % 2 else 1) for o, n in zip(origins, w.shape)]
    (h, wd), (kh, kw) = x.shape, w.shape
    r0, c0 = kh // 2 + origins[0], kw // 2 + origins[1]
    xe = _pad(x, ((r0, kh - 1 - r0), (c0, kw - 1 - c0)), NDIMAGE_PAD[mode], cval)
    xe = xe.astype(dtype)
    out = np.zeros((h, wd), dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        for a in range(kh):
            for b in range(kw):
                if abs(w[a, b]) > np.finfo(np.float64).eps:
                    out += xe[a : a + h, b : b + wd] * dtype(w[a, b])
    return out


def c_cast(values: np.ndarray, dtype) -> np.ndarray:
    """double -> ``dtype`` as C casts on x86-64 (values in range: truncation toward zero)."""
    dt = np.dtype(dtype)
    v = np.asarray(values, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        if dt.kind == "b":
            return v.astype(np.uint8) != 0
        if dt == np.uint32:
            return v.astype(np.int64).astype(np.uint32)
        return v.astype(dt)
