"""Independent references for cconv's public functions.

Nothing in here imports cconv: these are the yardsticks cconv is measured
against.  Provided:

* SciPy references, built from :func:`scipy.signal.correlate2d` one image at a
  time, with NumPy's broadcasting rule for the leading axis;
* plain-NumPy loop references (the textbook naive loops), slow, meant for
  small cases, and sharing no code with SciPy;
* the 4-D layer (channels, stride, padding, dilation, groups, bias) as in
  ``torch.nn.functional.conv2d``, by strided window views and ``einsum``,
  one filter tap at a time;
* template-matching scores (OpenCV's six definitions), one window at a time,
  which windows hold a bad pixel, and ``find_matches``' greedy suppression;
* ``cconv.testing.rel_error``'s definition, entry by entry.

All references compute in float64, whatever the input dtype.

Test modules import it directly (``pythonpath = ["tests"]`` in
``pyproject.toml``).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import correlate2d

__all__ = [
    "broadcast_pairs",
    "scipy_forward",
    "scipy_backward",
    "loop_forward",
    "loop_backward",
    "layer_padding",
    "layer_output_shape",
    "layer_forward",
    "layer_backward",
    "match_scores",
    "match_batch",
    "window_covers",
    "greedy_matches",
    "rel_error",
]


def _as_f64(a) -> np.ndarray:
    return np.array(a, dtype=np.float64, copy=True)


def _filters_3d(w: np.ndarray) -> np.ndarray:
    """A 2-D filter is one filter shared by every image: view it as (1, HH, WW)."""
    return w[np.newaxis] if w.ndim == 2 else w


def broadcast_pairs(nx: int, nw: int) -> tuple[int, list[tuple[int, int]]]:
    """Output leading size and the (image index, filter index) of each output.

    NumPy's rule for one axis: equal sizes pair up, a size of 1 repeats.
    Anything else raises ``ValueError`` (as ``np.broadcast_shapes`` does).
    """
    (n,) = np.broadcast_shapes((nx,), (nw,))
    pairs = [(i if nx != 1 else 0, i if nw != 1 else 0) for i in range(n)]
    return n, pairs


# --------------------------------------------------------------------------
# SciPy references
# --------------------------------------------------------------------------


def scipy_forward(x, w) -> np.ndarray:
    """out[n] = correlate2d(x[n], w[n], 'valid') with leading-axis broadcasting."""
    x = _as_f64(x)
    w3 = _filters_3d(_as_f64(w))
    n, pairs = broadcast_pairs(x.shape[0], w3.shape[0])
    ho = x.shape[1] - w3.shape[1] + 1
    wo = x.shape[2] - w3.shape[2] + 1
    out = np.zeros((n, ho, wo))
    for k, (i, j) in enumerate(pairs):
        out[k] = correlate2d(x[i], w3[j], mode="valid")
    return out


def scipy_backward(x, w, dout) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of sum(out * dout) w.r.t. x and w.

    dx[n] = correlate2d(dout[n], flipped w[n], 'full') and
    dw[n] = correlate2d(x[n], dout[n], 'valid'), each accumulated into the
    operand that was broadcast, so dx has x's shape and dw has w's shape.
    """
    x = _as_f64(x)
    w = _as_f64(w)
    dout = _as_f64(dout)
    w3 = _filters_3d(w)
    n, pairs = broadcast_pairs(x.shape[0], w3.shape[0])
    assert dout.shape == (n, x.shape[1] - w3.shape[1] + 1, x.shape[2] - w3.shape[2] + 1)
    dx = np.zeros_like(x)
    dw3 = np.zeros_like(w3)
    for k, (i, j) in enumerate(pairs):
        dx[i] += correlate2d(dout[k], w3[j][::-1, ::-1], mode="full")
        dw3[j] += correlate2d(x[i], dout[k], mode="valid")
    dw = dw3[0] if w.ndim == 2 else dw3
    return dx, dw


# --------------------------------------------------------------------------
# Plain NumPy loop references (naive, for small cases only)
# --------------------------------------------------------------------------


def loop_forward(x, w) -> np.ndarray:
    """Naive forward pass: slide each filter over its image, one window at a time."""
    x = _as_f64(x)
    w3 = _filters_3d(_as_f64(w))
    n, pairs = broadcast_pairs(x.shape[0], w3.shape[0])
    _, hh, ww = w3.shape
    ho, wo = x.shape[1] - hh + 1, x.shape[2] - ww + 1
    out = np.zeros((n, ho, wo))
    for k, (i, j) in enumerate(pairs):
        for r in range(ho):
            for c in range(wo):
                out[k, r, c] = np.sum(x[i, r : r + hh, c : c + ww] * w3[j])
    return out


def loop_backward(x, w, dout) -> tuple[np.ndarray, np.ndarray]:
    """Naive backward pass: scatter each output's upstream derivative back.

    Each output out[k, r, c] = sum(window * filter), so its derivative dout[k,
    r, c] flows to the window of x (times the filter) and to the filter (times
    the window).
    """
    x = _as_f64(x)
    w = _as_f64(w)
    dout = _as_f64(dout)
    w3 = _filters_3d(w)
    n, pairs = broadcast_pairs(x.shape[0], w3.shape[0])
    _, hh, ww = w3.shape
    ho, wo = x.shape[1] - hh + 1, x.shape[2] - ww + 1
    assert dout.shape == (n, ho, wo)
    dx = np.zeros_like(x)
    dw3 = np.zeros_like(w3)
    for k, (i, j) in enumerate(pairs):
        for r in range(ho):
            for c in range(wo):
                g = dout[k, r, c]
                dx[i, r : r + hh, c : c + ww] += g * w3[j]
                dw3[j] += g * x[i, r : r + hh, c : c + ww]
    dw = dw3[0] if w.ndim == 2 else dw3
    return dx, dw


# --------------------------------------------------------------------------
# The 4-D layer: windows and einsum
# --------------------------------------------------------------------------


def _two(v) -> tuple[int, int]:
    return (v, v) if np.isscalar(v) else (int(v[0]), int(v[1]))


def layer_padding(padding, w_shape, dilation) -> tuple[tuple[int, int], tuple[int, int]]:
    """((top, bottom), (left, right)) zeros, by PyTorch's documented rule.

    'same' pads a total of dilation * (filter - 1) per axis, the odd one
    at the end (bottom/right).
    """
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        pads = []
        for k, d in zip(w_shape[2:], _two(dilation)):
            total = d * (k - 1)
            pads.append((total // 2, total - total // 2))
        return pads[0], pads[1]
    ph, pw = _two(padding)
    return (ph, ph), (pw, pw)


def layer_output_shape(x_shape, w_shape, stride=1, padding=0, dilation=1) -> tuple[int, int, int, int]:
    """(N, F, Ho, Wo) of the layer, by PyTorch's formula (sizes as Python ints)."""
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    pad = layer_padding(padding, w_shape, dilation)
    ho = (x_shape[2] + sum(pad[0]) - dh * (w_shape[2] - 1) - 1) // sh + 1
    wo = (x_shape[3] + sum(pad[1]) - dw * (w_shape[3] - 1) - 1) // sw + 1
    return (x_shape[0], w_shape[0], ho, wo)


def _taps(x_shape, w_shape, stride, padding, dilation):
    """Padding, output size, and for every tap (a, b) the window slices of the padded input."""
    (sh, sw), (dh, dw) = _two(stride), _two(dilation)
    pad = layer_padding(padding, w_shape, dilation)
    hp = x_shape[2] + sum(pad[0])
    wp = x_shape[3] + sum(pad[1])
    kh, kw = w_shape[2:]
    ho = (hp - dh * (kh - 1) - 1) // sh + 1
    wo = (wp - dw * (kw - 1) - 1) // sw + 1
    taps = [
        (a, b, (slice(a * dh, a * dh + sh * (ho - 1) + 1, sh), slice(b * dw, b * dw + sw * (wo - 1) + 1, sw)))
        for a in range(kh)
        for b in range(kw)
    ]
    return pad, (ho, wo), taps


def layer_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1) -> np.ndarray:
    """out[n, f] = sum over f's group's channels of the strided, dilated window products, + b[f]."""
    x, w = _as_f64(x), _as_f64(w)
    n, c = x.shape[:2]
    f = w.shape[0]
    cg, fg = c // groups, f // groups
    pad, (ho, wo), taps = _taps(x.shape, w.shape, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), *pad))
    out = np.zeros((n, f, ho, wo))
    for g in range(groups):
        xg = xp[:, g * cg : (g + 1) * cg]
        for a, b_, (rows, cols) in taps:
            window = xg[:, :, rows, cols]  # (N, Cg, Ho, Wo): tap (a, b_) of every window
            out[:, g * fg : (g + 1) * fg] += np.einsum("nchw,fc->nfhw", window, w[g * fg : (g + 1) * fg, :, a, b_])
    if b is not None:
        out += _as_f64(b)[None, :, None, None]
    return out


def layer_backward(x, w, dout, stride=1, padding=0, dilation=1, groups=1):
    """(dx, dw, db): gradients of sum(layer_forward(...) * dout)."""
    x, w, dout = _as_f64(x), _as_f64(w), _as_f64(dout)
    c, (h, wd) = x.shape[1], x.shape[2:]
    f = w.shape[0]
    cg, fg = c // groups, f // groups
    pad, _, taps = _taps(x.shape, w.shape, stride, padding, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), *pad))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for g in range(groups):
        cs, fs = slice(g * cg, (g + 1) * cg), slice(g * fg, (g + 1) * fg)
        for a, b_, (rows, cols) in taps:
            window = xp[:, cs, rows, cols]
            dw[fs, :, a, b_] += np.einsum("nchw,nfhw->fc", window, dout[:, fs])
            dxp[:, cs, rows, cols] += np.einsum("nfhw,fc->nchw", dout[:, fs], w[fs, :, a, b_])
    dx = dxp[:, :, pad[0][0] : pad[0][0] + h, pad[1][0] : pad[1][0] + wd]
    return dx, dw, dout.sum(axis=(0, 2, 3))


# --------------------------------------------------------------------------
# Template matching: every window, by the definitions
# --------------------------------------------------------------------------


def match_scores(image, template, method, pad_input=False) -> np.ndarray:
    """OpenCV's score ``method`` of a 2-D template at every placement in a 2-D image.

    Each window is taken out and scored on its own, in float64, with its mean
    subtracted directly (no running sums).  Windows (or templates) with zero
    variance (ccoeff_normed) or zero energy (ccorr_normed, sqdiff_normed)
    get 0 (sqdiff_normed: 1).  ``pad_input`` pads the image with zeros so
    that the output has its size and is indexed by the template's centre
    (HH // 2, WW // 2).
    """
    img, t = _as_f64(image), _as_f64(template)
    hh, ww = t.shape
    if pad_input:
        img = np.pad(img, ((hh // 2, hh - 1 - hh // 2), (ww // 2, ww - 1 - ww // 2)))
    ho, wo = img.shape[0] - hh + 1, img.shape[1] - ww + 1
    out = np.zeros((ho, wo))
    tc = t - t.mean()
    for r in range(ho):
        for c in range(wo):
            win = img[r : r + hh, c : c + ww]
            if method == "sqdiff":
                out[r, c] = np.sum((t - win) ** 2)
            elif method == "ccorr":
                out[r, c] = np.sum(t * win)
            elif method == "ccoeff":
                out[r, c] = np.sum(tc * (win - win.mean()))
            elif method == "ccoeff_normed":
                wc = win - win.mean()
                den = np.sqrt(np.sum(wc * wc) * np.sum(tc * tc))
                out[r, c] = np.sum(tc * wc) / den if den > 0 else 0.0
            elif method == "ccorr_normed":
                den = np.sqrt(np.sum(win * win) * np.sum(t * t))
                out[r, c] = np.sum(t * win) / den if den > 0 else 0.0
            elif method == "sqdiff_normed":
                den = np.sqrt(np.sum(win * win) * np.sum(t * t))
                out[r, c] = min(np.sum((t - win) ** 2) / den, 1.0) if den > 0 else 1.0
            else:
                raise ValueError(method)
    return out


def match_batch(image, templates, method, pad_input=False) -> np.ndarray:
    """:func:`match_scores` with the leading-axis broadcasting of the 3-D layer."""
    x = image if image.ndim == 3 else image[None]
    t = templates if templates.ndim == 3 else templates[None]
    n, pairs = broadcast_pairs(x.shape[0], t.shape[0])
    out = np.stack([match_scores(x[i], t[j], method, pad_input) for i, j in pairs])
    return out[0] if image.ndim == 2 and templates.ndim == 2 else out


def window_covers(bad, hh, ww) -> np.ndarray:
    """Whether each valid window of a 2-D mask holds a True: a loop, as the spec reads."""
    ho, wo = bad.shape[0] - hh + 1, bad.shape[1] - ww + 1
    return np.array([[bad[r:r + hh, c:c + ww].any() for c in range(wo)] for r in range(ho)])


def greedy_matches(good: np.ndarray, candidate: np.ndarray, num: int, min_distance: int):
    """The specification's suppression, one candidate at a time, best first.

    ``good``: the (M, H, W) scores, higher better; ``candidate``: where a
    match may be.  Returns ``(index, y, x)`` of the matches (an order among
    ties is arbitrary).
    """
    where = [tuple(int(i) for i in p) for p in np.argwhere(candidate)]
    where.sort(key=lambda p: -good[p])
    accepted = []
    for k, y, x in where:
        if len(accepted) == num:
            break
        if all(k != k2 or max(abs(y - y2), abs(x - x2)) > min_distance for k2, y2, x2 in accepted):
            accepted.append((k, y, x))
    return accepted


# --------------------------------------------------------------------------
# cconv.testing.rel_error
# --------------------------------------------------------------------------


def rel_error(fa: np.ndarray, fb: np.ndarray) -> float:
    """The documented definition, entry by entry, in plain Python floats."""
    worst = 0.0
    for x, y in np.broadcast(fa, fb):
        x, y = float(x), float(y)
        if math.isnan(x) or math.isnan(y):
            return math.nan
        if x == y:  # also inf == inf
            e = 0.0
        elif math.isinf(x) or math.isinf(y):
            e = 1.0  # the limit of |x - y| / (|x| + |y|)
        else:
            e = abs(x - y) / max(1e-8, abs(x) + abs(y))
        worst = max(worst, e)
    return worst
