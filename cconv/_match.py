"""Template matching: OpenCV's six scores, many templates, and peak finding.

Every score is built from three pieces, each computed once per call:

- the correlation of the image with the templates, by cconv's own 3-D layer
  (its cost model picks the direct loops or the FFT for the sizes at hand);
- per-window sums of the image and of its square;
- per-template sums.

Window sums.  scikit-image takes them from 2-D integral images (cumulative
sums over the whole image), whose magnitude grows with the image: on a large
image with a large mean the difference of four huge numbers loses the
window's variance and normalised scores leave [-1, 1].  Here the image's
mean is subtracted first, and the sums run along one axis at a time
(a column sum over the template's height, then a row sum over its width), in
float64: a rounding error is relative to one column or row of the window, not
to the whole image.  The correlation is also taken on the mean-subtracted
image; the mean's share is added back exactly where a score needs it.

Flat windows.  A window whose variance (for the ccoeff scores) or whose
energy, the sum of squares (for ccorr_normed and sqdiff_normed), is within
the rounding error of the computation has no defined normalised score: it
gets 0 (``sqdiff_normed``: 1, the worst match, as in OpenCV).  That error is
bounded by ``max(4 * eps64 * (H*WW + W*HH + n), n * (8 * eps)**2) * scale**2``
for an H x W image and an HH x WW template of n pixels, ``eps`` that of the
compute dtype and ``scale`` the image's largest magnitude (for ccoeff: its
largest distance from its mean): for a 2048x2048 image and a 64x64 template,
windows whose standard deviation is below about 2e-7 of ``scale``.  A
template that is itself flat by the same rule makes every normalised score
0 (1).  Normalised scores are clipped to their range, so rounding never
takes them past -1 or 1 (0 or 1).
"""

from __future__ import annotations

import numbers
from collections import namedtuple

import numpy as np
import scipy.ndimage

from . import _engine
from ._conv3d import conv_forward
from ._validation import as_real_array, check_memory, check_ndim, compute_dtype, copy_bytes

__all__ = ["MATCH_METHODS", "Match", "match_template", "find_matches"]

MATCH_METHODS = ("sqdiff", "sqdiff_normed", "ccorr", "ccorr_normed", "ccoeff", "ccoeff_normed")

Match = namedtuple("Match", ["index", "y", "x", "score"])
Match.__doc__ = """One match: score map ``index`` (the pair of image and template), top-left
corner ``(y, x)`` of the window (its centre with ``pad_input=True``), and the score."""


def _box_sums(a: np.ndarray, hh: int, ww: int) -> np.ndarray:
    """Sums of ``a[n]`` over every ``hh x ww`` window, one axis at a time, in float64."""
    c = np.zeros((a.shape[0], a.shape[1] + 1, a.shape[2]))
    np.cumsum(a, axis=1, out=c[:, 1:])
    cols = c[:, hh:] - c[:, :-hh]  # (N, H', W): sums over hh rows
    r = np.zeros((a.shape[0], cols.shape[1], cols.shape[2] + 1))
    np.cumsum(cols, axis=2, out=r[:, :, 1:])
    return r[:, :, ww:] - r[:, :, :-ww]


def _check_match_args(image, templates, method, pad_input):
    if not isinstance(method, str) or method not in MATCH_METHODS:
        raise ValueError(f"method must be one of {MATCH_METHODS}; got {method!r}")
    if not isinstance(pad_input, (bool, np.bool_)):
        raise TypeError(f"pad_input must be True or False; got {pad_input!r}")
    check_ndim(image, "image", (2, 3), "of shape (H, W) or (N, H, W)")
    check_ndim(templates, "templates", (2, 3), "of shape (HH, WW) or (K, HH, WW)")
    h, w = image.shape[-2:]
    hh, ww = templates.shape[-2:]
    if h == 0 or w == 0:
        raise ValueError(f"image is empty: shape {image.shape}; H and W must be at least 1")
    if hh == 0 or ww == 0:
        raise ValueError(f"templates are empty: shape {templates.shape}; HH and WW must be at least 1")
    if hh > h or ww > w:
        raise ValueError(
            f"templates ({hh}, {ww}) are larger than the image ({h}, {w}): shapes "
            f"templates{templates.shape}, image{image.shape}"
        )
    if image.ndim == 3 and templates.ndim == 3:
        n, k = image.shape[0], templates.shape[0]
        if n != k and 1 not in (n, k):
            raise ValueError(
                f"image and templates have leading sizes that do not broadcast: image{image.shape}, "
                f"templates{templates.shape}; expected equal sizes (image n with template n), or 1 on either side"
            )


def match_template(image, templates, method="ccoeff_normed", pad_input=False):
    """Score every placement of one or many templates in one or many images.

    Parameters
    ----------
    image : array_like, shape (H, W) or (N, H, W)
        The image, or a batch of images.
    templates : array_like, shape (HH, WW) or (K, HH, WW)
        One template, or K templates of one size, with ``HH <= H`` and
        ``WW <= W``.  The leading axes broadcast as in :func:`conv_forward`:
        one image against K templates, N images against one template, or
        image n against template n.
    method : str, optional
        The score of a window ``I`` (the image under the template) against
        the template ``T``, as OpenCV's ``matchTemplate`` defines it, with
        ``I'`` and ``T'`` minus their own means:

        - ``'sqdiff'``: ``sum((T - I)**2)`` (lower is better);
        - ``'sqdiff_normed'``: that over ``sqrt(sum(T**2) * sum(I**2))``,
          in [0, 1] (lower is better);
        - ``'ccorr'``: ``sum(T * I)``;
        - ``'ccorr_normed'``: that over ``sqrt(sum(T**2) * sum(I**2))``;
        - ``'ccoeff'``: ``sum(T' * I')``;
        - ``'ccoeff_normed'`` (the default): that over
          ``sqrt(sum(T'**2) * sum(I'**2))``, the normalised
          cross-correlation, in [-1, 1]; what ``skimage.feature.match_template``
          computes.
    pad_input : bool, optional
        If True, the image is padded with zeros so that the scores have the
        image's size and ``scores[..., y, x]`` is the template centred on
        ``(y, x)`` (centre ``(HH // 2, WW // 2)``), as in scikit-image.  If
        False (the default), only placements inside the image are scored and
        ``scores[..., y, x]`` has the template's top-left corner at ``(y, x)``.

    Returns
    -------
    scores : ndarray
        Shape ``(H - HH + 1, W - WW + 1)`` for a 2-D image and template,
        ``(N', H - HH + 1, W - WW + 1)`` otherwise (N' the broadcast leading
        size), or ``H, W`` in place of the last two with ``pad_input``.
        float32 for float32 (or float16) inputs, else float64.

    Raises
    ------
    TypeError
        If an input has a dtype cconv cannot compute in, or ``pad_input`` is
        not a bool.
    ValueError
        If a shape is wrong (not 2-D or 3-D, empty, templates larger than the
        image, leading sizes that do not broadcast) or ``method`` is unknown.

    Notes
    -----
    A window with no variance (ccoeff) or no energy (ccorr, sqdiff), up to
    the rounding level of the data, gets 0 (``sqdiff_normed``: 1): see the
    module notes in ``cconv/_match.py`` for the exact rule and for how
    window sums keep their precision on large images with large means.
    Memory use is a few arrays of the scores' size and the image's, never
    one per template pixel.

    Examples
    --------
    >>> import numpy as np, cconv
    >>> image = np.zeros((6, 6)); image[2:4, 3:5] = [[1, 2], [3, 4]]
    >>> scores = cconv.match_template(image, image[1:5, 2:6])
    >>> np.unravel_index(np.argmax(scores), scores.shape)
    (1, 2)
    >>> round(float(scores.max()), 12)
    1.0
    """
    image = as_real_array(image, "image")
    templates = as_real_array(templates, "templates")
    _check_match_args(image, templates, method, pad_input)
    dtype = compute_dtype((image, "image"), (templates, "templates"))
    x = image.reshape((1,) * (3 - image.ndim) + image.shape)
    t = templates.reshape((1,) * (3 - templates.ndim) + templates.shape)
    hh, ww = t.shape[1:]
    npairs = _engine.pair_count(x.shape[0], t.shape[0])
    out_hw = (x.shape[1], x.shape[2]) if pad_input else (x.shape[1] - hh + 1, x.shape[2] - ww + 1)
    padded_hw = (x.shape[1] + hh - 1, x.shape[2] + ww - 1) if pad_input else x.shape[1:]
    # float64 statistics of the image (three image-sized arrays) and scores
    check_memory(
        copy_bytes(x, dtype) + copy_bytes(t, dtype)
        + x.shape[0] * padded_hw[0] * padded_hw[1] * (8 * 3 + dtype.itemsize)
        + npairs * out_hw[0] * out_hw[1] * (8 * 3 + dtype.itemsize),
        f"match_template(image{image.shape}, templates{templates.shape})",
    )
    x64 = x.astype(np.float64)
    t64 = t.astype(np.float64)
    if pad_input:
        pad = ((0, 0), (hh // 2, hh - 1 - hh // 2), (ww // 2, ww - 1 - ww // 2))
        x64 = np.pad(x64, pad)
    n = hh * ww
    # The image minus its mean: window sums and correlation of small numbers.
    mean = x64.mean(axis=(1, 2), keepdims=True)
    xs = x64 - mean
    s1 = _box_sums(xs, hh, ww)  # sum over each window of I - mean
    t_sum = t64.sum(axis=(1, 2)).reshape(-1, 1, 1)
    eps = np.finfo(dtype).eps

    hp, wp = x64.shape[1:]

    def floor(a):
        # Below this, a window's variance or energy is rounding error: of the
        # float64 running sums (sums of up to hp * ww + wp * hh + n squares),
        # and of the correlation in the compute dtype.
        big = np.max(np.abs(a), axis=(1, 2), keepdims=True) ** 2
        return np.maximum(4 * np.finfo(np.float64).eps * (hp * ww + wp * hh + n) * big, n * (8 * eps) ** 2 * big)

    if method.startswith("ccoeff"):
        tc = t64 - t64.mean(axis=(1, 2), keepdims=True)
        num = _correlate(xs, tc, dtype)  # sum T'(I - mean) = sum T' I'
        if method == "ccoeff":
            return _finish(num, image, templates, dtype)
        var = _box_sums(xs * xs, hh, ww) - s1 * s1 / n  # sum of I'^2 per window
        t_var = np.sum(tc * tc, axis=(1, 2)).reshape(-1, 1, 1)
        return _finish(_normalise(num, var, floor(xs), t_var, floor(tc), -1.0, 0.0), image, templates, dtype)
    # ccorr and sqdiff need the raw correlation and the raw window energy.
    corr = _correlate(xs, t64, dtype) + mean * t_sum  # sum T I
    if method == "ccorr":
        return _finish(corr, image, templates, dtype)
    energy = _box_sums(xs * xs, hh, ww) + s1 * (2 * mean) + n * mean * mean  # sum I^2
    t_energy = np.sum(t64 * t64, axis=(1, 2)).reshape(-1, 1, 1)
    floors = floor(x64), floor(t64)
    if method == "ccorr_normed":
        return _finish(_normalise(corr, energy, floors[0], t_energy, floors[1], -1.0, 0.0), image, templates, dtype)
    sqdiff = np.maximum(t_energy - 2 * corr + energy, 0.0)
    if method == "sqdiff":
        return _finish(sqdiff, image, templates, dtype)
    return _finish(_normalise(sqdiff, energy, floors[0], t_energy, floors[1], 0.0, 1.0), image, templates, dtype)


def _correlate(xs: np.ndarray, t: np.ndarray, dtype) -> np.ndarray:
    """Valid correlation by the 3-D layer, in the compute dtype, as float64."""
    out, _ = conv_forward(xs.astype(dtype, copy=False), t.astype(dtype, copy=False))
    return out.astype(np.float64, copy=False)


def _normalise(num, window, floor, templ, t_floor, low, degenerate):
    """``num / sqrt(window * templ)`` clipped to [low, 1]; ``degenerate`` where either is flat."""
    flat = (window <= floor) | (templ <= t_floor)
    denom = np.sqrt(np.maximum(window, 0.0) * templ)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.clip(num / denom, low, 1.0)
    return np.where(flat, degenerate, score)


def _finish(scores: np.ndarray, image, templates, dtype) -> np.ndarray:
    scores = np.ascontiguousarray(scores, dtype=dtype)
    return scores[0] if image.ndim == 2 and templates.ndim == 2 else scores


def find_matches(scores, num=5, min_distance=10, threshold=None, *, lower_is_better=False):
    """The best matches in score maps, best first, at most one per neighbourhood.

    Parameters
    ----------
    scores : array_like, shape (H', W') or (M, H', W')
        Score maps, as :func:`match_template` returns them; each of the M
        maps (one per pair of image and template) is searched on its own.
    num : int, optional
        At most this many matches, over all maps.
    min_distance : int, optional
        Non-maximum suppression: no two matches in one map are within
        ``min_distance`` pixels of each other along both axes (Chebyshev
        distance); a better match suppresses the worse.  0 allows
        neighbouring pixels.
    threshold : float, optional
        Only scores at least this good (``>=``; ``<=`` with
        ``lower_is_better``).
    lower_is_better : bool, optional
        For the ``sqdiff`` scores, where the best match is the smallest.

    Returns
    -------
    list of Match
        ``Match(index, y, x, score)`` named tuples, best first: ``index`` is
        the map (0 for a 2-D ``scores``), ``(y, x)`` the position in it.
        NaN scores are never matches.

    Raises
    ------
    TypeError, ValueError
        If ``scores`` is not a real 2-D or 3-D array, or an option is not of
        its type or range.

    Examples
    --------
    >>> import numpy as np, cconv
    >>> s = np.zeros((5, 8)); s[1, 1] = 0.9; s[1, 2] = 0.8; s[3, 6] = 0.7
    >>> cconv.find_matches(s, num=3, min_distance=1, threshold=0.5)
    [Match(index=0, y=1, x=1, score=0.9), Match(index=0, y=3, x=6, score=0.7)]
    """
    s = as_real_array(scores, "scores")
    check_ndim(s, "scores", (2, 3), "of shape (H', W') or (M, H', W')")
    for value, name, low in ((num, "num", 1), (min_distance, "min_distance", 0)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int; got {value!r}")
        if value < low:
            raise ValueError(f"{name} must be at least {low}; got {value!r}")
    if threshold is not None and (
        isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, numbers.Real)
        or np.isnan(threshold)
    ):
        raise TypeError(f"threshold must be a real number or None; got {threshold!r}")
    if not isinstance(lower_is_better, (bool, np.bool_)):
        raise TypeError(f"lower_is_better must be True or False; got {lower_is_better!r}")
    s3 = s.reshape((1,) * (3 - s.ndim) + s.shape).astype(np.float64)
    if lower_is_better:
        s3 = -s3
    s3 = np.where(np.isnan(s3), -np.inf, s3)
    keep = np.isfinite(s3) | (s3 == np.inf)
    if threshold is not None:
        keep &= s3 >= (-threshold if lower_is_better else threshold)
    if min_distance > 0 and s3.size:
        size = (1, 2 * min_distance + 1, 2 * min_distance + 1)
        keep &= s3 >= scipy.ndimage.maximum_filter(s3, size=size, mode="constant", cval=-np.inf)
    idx = np.flatnonzero(keep)
    idx = idx[np.argsort(-s3.ravel()[idx], kind="stable")]  # best first
    ks, ys, xs = np.unravel_index(idx, s3.shape)
    alive = np.ones(idx.size, dtype=bool)
    matches = []
    start = 0
    while len(matches) < num:
        ahead = np.flatnonzero(alive[start:])
        if ahead.size == 0:
            break
        i = start + int(ahead[0])
        k, y, x = int(ks[i]), int(ys[i]), int(xs[i])
        matches.append(Match(k, y, x, s.reshape(s3.shape)[k, y, x].item()))
        # suppress the worse candidates of the same map within min_distance
        alive[i:] &= ~((ks[i:] == k) & (np.abs(ys[i:] - y) <= min_distance)
                       & (np.abs(xs[i:] - x) <= min_distance))
        start = i + 1
    return matches
