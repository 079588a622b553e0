"""Template matching: OpenCV's six scores, many templates, and peak finding.

Every score is built from three pieces, each computed once per call:

- the correlation of the image with the templates, by cconv's own 3-D layer
  (its cost model picks the direct loops or the FFT for the sizes at hand);
- per-window sums of the image and of its square;
- per-template sums.

Window sums.  scikit-image takes them from 2-D integral images (cumulative
sums over the whole image), whose magnitude grows with the image: on a large
image with a large mean the difference of four huge numbers loses the
window's variance, and normalised scores leave [-1, 1].  Here the image's
mean is subtracted first, then a compiled loop (``window_sums``) keeps
running sums in float64, slid one row down and one column across at a time
and started afresh every window length: a rounding error is relative to one
window's sum, never to the whole image's.  The correlation is also taken on
the mean-subtracted image; the mean's share is added back exactly where a
score needs it.  Score maps are finished in chunks of about 64 MiB of float64
work, so memory stays proportional to the image and the output.

Flat windows.  A window whose variance (for the ccoeff scores) or whose
energy, the sum of squares (for ccorr_normed and sqdiff_normed), is within
the rounding error of the computation has no defined normalised score: it
gets 0 (``sqdiff_normed``: 1, the worst match, as in OpenCV).  That error is
below ``n * max(8 * eps64, (8 * eps)**2) * scale**2`` for a template of n
pixels, ``eps`` that of the compute dtype and ``scale`` the image's largest
magnitude (for ccoeff: its largest distance from its mean), i.e. windows
whose standard deviation is below about 3e-8 (float64) or 1e-6 (float32) of
``scale``.  A template that is itself flat by the same rule makes every
normalised score 0 (1).  Normalised scores are clipped to their range, so
rounding never takes them past -1 or 1 (0 or 1).
"""

from __future__ import annotations

import math
import numbers
from typing import Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from . import _engine, _fft
from . import _validation as valid
from ._match_cy import Score, finish_scores, window_sums
from ._threads import for_work

__all__ = ["MATCH_METHODS", "Match", "match_template", "find_matches"]

MATCH_METHODS = ("sqdiff", "sqdiff_normed", "ccorr", "ccorr_normed", "ccoeff", "ccoeff_normed")
#: The scores of template matching, as a type.
MatchMethod = Literal["sqdiff", "sqdiff_normed", "ccorr", "ccorr_normed", "ccoeff", "ccoeff_normed"]

# What the compiled score pass computes from each method's correlation.
_SCORES = {"ccorr": Score.PLAIN, "ccoeff": Score.PLAIN, "ccorr_normed": Score.NORMED,
           "ccoeff_normed": Score.NORMED, "sqdiff": Score.SQDIFF, "sqdiff_normed": Score.SQDIFF_NORMED}


class Match(NamedTuple):
    """One match found by :func:`find_matches`.

    ``pair`` is the score map it was found in (the pair of image and
    template; 0 for a 2-D map), ``(y, x)`` the top-left corner of the window
    (its centre with ``pad_input=True``), ``score`` the score there.
    """

    pair: int
    y: int
    x: int
    score: float


def match_template(
    image: npt.ArrayLike, templates: npt.ArrayLike, method: MatchMethod = "ccoeff_normed", pad_input: bool = False
) -> npt.NDArray[np.floating]:
    """Score every placement of one or many templates in one or many images.

    Parameters
    ----------
    image : array_like, shape (H, W) or (N, H, W)
        The image, or a batch of images.
    templates : array_like, shape (KH, KW) or (K, KH, KW)
        One template, or K templates of one size, with ``KH <= H`` and
        ``KW <= W``.  The leading axes broadcast as in :func:`conv_forward`:
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
        ``(y, x)`` (centre ``(KH // 2, KW // 2)``), as in scikit-image.  If
        False (the default), only placements inside the image are scored and
        ``scores[..., y, x]`` has the template's top-left corner at ``(y, x)``.

    Returns
    -------
    scores : ndarray
        Shape ``(H - KH + 1, W - KW + 1)`` for a 2-D image and template,
        ``(N', H - KH + 1, W - KW + 1)`` otherwise (N' the broadcast leading
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

    NaN and Inf in the image are missing data: every window that covers one
    scores NaN, and every other window scores what it would if those pixels
    were not in the image at all (they take no part in the window sums, the
    image mean or the flatness scale).  A template holding NaN or Inf scores
    NaN everywhere.  :func:`find_matches` never returns a NaN score.

    Examples
    --------
    >>> import numpy as np, cconv
    >>> image = np.zeros((6, 6)); image[2:4, 3:5] = [[1, 2], [3, 4]]
    >>> scores = cconv.match_template(image, image[1:5, 2:6])
    >>> [int(i) for i in np.unravel_index(np.argmax(scores), scores.shape)]
    [1, 2]
    >>> round(float(scores.max()), 12)
    1.0
    """
    image = valid.as_real_array(image, "image")
    templates = valid.as_real_array(templates, "templates")
    valid.check_choice(method, "method", MATCH_METHODS)
    pad_input = valid.check_bool(pad_input, "pad_input")
    valid.check_batch_pair(image, templates, ("image", "templates"), images_ndim=(2, 3))
    dtype = valid.compute_dtype((image, "image"), (templates, "templates"))
    x = valid.as_batch(image)
    t = np.array(valid.as_batch(templates), dtype=np.float64, order="C")
    nx, nt = x.shape[0], t.shape[0]
    kh, kw = t.shape[1:]
    npairs = _engine.pair_count(nx, nt)
    # The image size, with the padding of pad_input.
    ih, iw = (x.shape[1] + kh - 1, x.shape[2] + kw - 1) if pad_input else x.shape[1:]
    oh, ow = ih - kh + 1, iw - kw + 1
    correlate = _Correlator(nx, nt, (ih, iw), (kh, kw), dtype)
    # the image in float64 and the compute dtype, its window sums; the
    # scores, the correlations and a chunk of float64 work arrays
    valid.check_memory(
        valid.copy_bytes(x, dtype) + valid.copy_bytes(t, dtype) + nx * ih * iw * (8 + dtype.itemsize)
        + nx * oh * ow * 16 + npairs * oh * ow * dtype.itemsize + correlate.plan.workspace + 4 * _CHUNK_BYTES,
        lambda: f"match_template(image{image.shape}, templates{templates.shape})",
    )
    # The image minus its mean, in float64: window sums of small numbers.
    xs = np.array(x, dtype=np.float64, order="C")  # a C-ordered copy, whatever x's layout
    if pad_input:
        pad = ((0, 0), (kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2))
        xs = np.pad(xs, pad)
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and Inf are data, not errors
        mean = xs.mean(axis=(1, 2), keepdims=True)
    # NaN or Inf in the image (a finite mean means none, at no extra cost):
    # they take no part in the statistics, and score NaN in every window
    # that covers them, computed apart, so that no window sum carries them.
    covered = None
    if not np.isfinite(mean).all():
        bad = ~np.isfinite(xs)
        xs[bad] = 0
        count = np.maximum((~bad).sum(axis=(1, 2), keepdims=True), 1)
        mean = xs.sum(axis=(1, 2), keepdims=True) / count
        xs[bad] = np.broadcast_to(mean, xs.shape)[bad]
        covered = _window_counts(bad, kh, kw) > 0
    xs -= mean
    ccoeff = method.startswith("ccoeff")
    # Per window: sum of I'^2 (I minus the window's mean) for ccoeff, else sum of I^2.
    s1 = np.empty((nx, oh, ow))
    window = np.empty((nx, oh, ow))
    threads = for_work(nx * ih * iw * 8)
    window_sums(xs, kh, kw, s1, window, np.empty((threads, 2, iw)), ccoeff,
                np.ascontiguousarray(mean.reshape(-1)))
    del s1
    # A template with NaN or Inf scores NaN everywhere.
    bad_templates = ~np.isfinite(t).all(axis=(1, 2))
    if bad_templates.any():
        t[bad_templates] = 0
    # The template's own magnitude, before its mean is taken off: the
    # rounding of that subtraction is relative to it, so a constant
    # template's leftovers (1e-17 of 0.19, say) count as flat.
    t_scale = np.max(np.abs(t), axis=(1, 2), keepdims=True)
    if ccoeff:
        t = t - t.mean(axis=(1, 2), keepdims=True)
    t_sum = t.sum(axis=(1, 2)).reshape(-1, 1, 1)
    t_sq = np.sum(t * t, axis=(1, 2)).reshape(-1, 1, 1)
    low, high = xs.min(axis=(1, 2), keepdims=True), xs.max(axis=(1, 2), keepdims=True)
    if not ccoeff:
        low, high = low + mean, high + mean
    w_floor = _flat_below(np.maximum(-low, high), kh, kw, dtype)
    t_floor = _flat_below(t_scale, kh, kw, dtype)
    correlate.operands(xs.astype(dtype, copy=False), np.ascontiguousarray(t, dtype=dtype))

    kind = _SCORES[method]
    # Per pair: the mean's share of sum T*I (0 for ccoeff, whose T' sums to 0),
    # the template's sum of squares, and the flatness floors.
    per_pair = [np.broadcast_to(a.reshape(-1), (npairs,)).astype(np.float64)
                for a in (np.zeros(1) if ccoeff else mean * t_sum, t_sq, w_floor, t_floor)]
    out = np.empty((npairs, oh, ow), dtype)
    chunk = max(1, _CHUNK_BYTES // (8 * oh * ow))
    for p0 in range(0, npairs, chunk):
        p1 = min(p0 + chunk, npairs)
        xi = slice(p0, p1) if nx > 1 else slice(0, 1)  # the pairs' images...
        ti = slice(p0, p1) if nt > 1 else slice(0, 1)  # ...and templates
        corr = correlate(xi, ti)  # sum T (I - mean), or sum T' I' for ccoeff
        offset, tsq, wf, tf = (a[p0:p1] for a in per_pair)
        finish_scores(corr, window[xi], offset, tsq, wf, tf, kind, out[p0:p1], threads)
    if covered is not None:
        out[np.broadcast_to(covered, out.shape)] = np.nan
    if bad_templates.any():
        out[np.broadcast_to(bad_templates, (npairs,))] = np.nan
    return out[0] if image.ndim == 2 and templates.ndim == 2 else out


def _window_counts(mask: np.ndarray, kh: int, kw: int) -> np.ndarray:
    """How many True values of ``mask`` (N, H, W) each valid kh x kw window holds.

    Exact integer sums over a summed-area table.
    """
    table = np.zeros((mask.shape[0], mask.shape[1] + 1, mask.shape[2] + 1), dtype=np.int64)
    np.cumsum(np.cumsum(mask, axis=1, dtype=np.int64), axis=2, out=table[:, 1:, 1:])
    return table[:, kh:, kw:] - table[:, :-kh, kw:] - table[:, kh:, :-kw] + table[:, :-kh, :-kw]


# The correlations of a chunk of score maps stay below this size (float64).
_CHUNK_BYTES = 64 * 2**20


def _flat_below(scale: np.ndarray, kh: int, kw: int, dtype: np.dtype) -> np.ndarray:
    """Variance or energy of a window (or template) below which it counts as flat.

    The rounding error of the running sums (each sum restarts every window
    length), and of the correlation in the compute dtype.
    """
    n = kh * kw
    eps64, eps = np.finfo(np.float64).eps, np.finfo(dtype).eps
    return max(8 * eps64 * n, n * (8 * eps) ** 2) * scale * scale


class _Correlator:
    """Valid correlations of chosen images with chosen templates, by cconv's own
    fastest path for the sizes at hand (planned once); the image's spectrum is taken once."""

    def __init__(self, nx: int, nt: int, image_size: tuple[int, int], template_size: tuple[int, int],
                 dtype: np.dtype) -> None:
        self.plan = _engine.plan("auto", nx, nt, image_size, template_size, dtype.itemsize)

    def operands(self, x: np.ndarray, t: np.ndarray) -> None:
        """The images (Nx, H, W) and templates (Nt, KH, KW), C-contiguous, of the compute dtype."""
        self.x, self.t = x, t
        if self.plan.method == "fft":
            self.shape = _fft.fft_shape(*x.shape[1:])
            self.spec_x = self._spectrum(x) if x.shape[0] == 1 else None

    def _spectrum(self, a: np.ndarray) -> np.ndarray:
        return _fft.rfft2([a], self.shape, "new", self.plan.threads)[0]

    def __call__(self, xi: slice, ti: slice) -> np.ndarray:
        x, t = self.x[xi], self.t[ti]
        if self.plan.method == "direct":
            return _engine.correlate_direct(x, t, False, self.plan.threads)
        spec_x = self.spec_x if self.spec_x is not None else self._spectrum(x)
        crop = (x.shape[1] - t.shape[1] + 1, x.shape[2] - t.shape[2] + 1)
        product = _fft.Product(spec_x, self._spectrum(t), True, crop, False)
        (out,) = _fft.irfft2([product], self.shape, self.plan.threads)
        return np.ascontiguousarray(out, dtype=self.x.dtype)


def find_matches(
    scores: npt.ArrayLike,
    num: int = 5,
    min_distance: int = 10,
    threshold: float | None = None,
    *,
    lower_is_better: bool = False,
) -> list[Match]:
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
        ``Match(pair, y, x, score)`` named tuples, best first: ``pair`` is
        the map (0 for a 2-D ``scores``), ``(y, x)`` the position in it.
        NaN scores are never matches; infinite ones are, in their order.

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
    [Match(pair=0, y=1, x=1, score=0.9), Match(pair=0, y=3, x=6, score=0.7)]
    """
    s = valid.as_real_array(scores, "scores")
    valid.check_ndim(s, "scores", (2, 3), "of shape (H', W') or (M, H', W')")
    num = valid.check_int(num, "num", 1)
    min_distance = valid.check_int(min_distance, "min_distance", 0)
    if threshold is not None:
        if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, numbers.Real):
            raise TypeError(f"threshold must be a real number or None; got {threshold!r}")
        try:
            limit = float(threshold)
        except OverflowError:  # an int beyond float's range
            limit = math.inf if threshold > 0 else -math.inf
        if math.isnan(limit):
            raise TypeError(f"threshold must be a real number or None; got {threshold!r}")
    lower_is_better = valid.check_bool(lower_is_better, "lower_is_better")
    s3 = valid.as_batch(s)
    if s3.dtype.kind != "f":
        s3 = s3.astype(np.float64)
    # Larger is better in `good`; NaN becomes -inf there, and is dropped below.
    good = -s3.ravel() if lower_is_better else s3.ravel()
    nan = np.isnan(good)
    if nan.any():
        good = np.where(nan, -np.inf, good)
    if threshold is not None:
        # A float64 scalar: float16/32 scores are compared with it exactly,
        # not with the threshold cast to their dtype (which can overflow).
        limit = np.float64(-limit if lower_is_better else limit)
    # Beyond the map's size, a distance suppresses the whole map.
    reach = min(min_distance, max(s3.shape[1:], default=0))
    # Greedy suppression, best first, over the best `take` scores; if they
    # run out before `num` matches (and before the threshold), start again
    # with more.  Every score left out is no better than those taken.
    size = good.size
    take = num * (2 * reach + 1) ** 2 + num
    while True:
        top = np.argpartition(good, size - take)[size - take:] if take < size else np.arange(size)
        top = top[np.argsort(-good[top], kind="stable")]
        usable = ~nan[top]
        if threshold is not None:
            usable &= good[top] >= limit
        matches = _greedy(top[usable], s3, num, reach)
        if len(matches) == num or top.size == size or (threshold is not None and good[top[-1]] < limit):
            return matches
        take *= 4


def _greedy(flat: np.ndarray, s3: np.ndarray, num: int, reach: int) -> list[Match]:
    """Accept, best first, each candidate not within ``reach`` of an accepted one of its map."""
    ks, ys, xs = np.unravel_index(flat, s3.shape)
    alive = np.ones(flat.size, dtype=bool)
    matches: list[Match] = []
    start = 0
    while len(matches) < num:
        ahead = np.flatnonzero(alive[start:])
        if ahead.size == 0:
            break
        i = start + int(ahead[0])
        k, y, x = int(ks[i]), int(ys[i]), int(xs[i])
        matches.append(Match(k, y, x, s3[k, y, x].item()))
        alive[i:] &= ~((ks[i:] == k) & (np.abs(ys[i:] - y) <= reach) & (np.abs(xs[i:] - x) <= reach))
        start = i + 1
    return matches
