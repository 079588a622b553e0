"""Template matching with a cross-correlation layer: ``python -m cconv.demo``.

This reproduces a classic notebook experiment (originally done on the 'lena'
image) on the photograph of Grace Hopper that ships with matplotlib:

1. load a photograph and turn it into a grey float64 image on a 0-255 scale,
   then subtract its mean;
2. cut a 60x60 template around one of the eyes from this clean image and
   subtract the template's own mean;
3. add Gaussian noise (sigma 50 by default, fixed seed) to the image;
4. cross-correlate the noisy image with the template twice, with
   ``scipy.signal.correlate2d(img, template, mode='valid')`` and with
   ``cconv.conv_forward(img[None], template)``, and time both;
5. take the argmax of the correlation as the best match, check it is where the
   template was cut, and compare the two results;
6. match the template again with normalised cross-correlation,
   ``cconv.match_template(img, template)`` (``'ccoeff_normed'``);
7. the harder case: add a brightness gradient to the noisy photograph (400
   grey levels rising smoothly across row 400, a logistic ramp of scale 40
   pixels) and match both ways.  Plain correlation now prefers the bright
   band, whatever its shape; the normalised score still finds the eye;
8. save the figure: the noisy image with the match marked, the template,
   the two correlation maps, and a second row with the normalised score map
   and the gradient case.

Run ``python -m cconv.demo --help`` for the options (another image, another
box, the noise level, the seed, where to write the figure).  The demo needs
matplotlib and SciPy, which ``pip install cconv[demo]`` brings in; the rest of
cconv never imports matplotlib.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes

PROG = "cconv.demo"

#: Top, left, height, width of a 60x60 box centred on Grace Hopper's left eye
#: (the one on the right of the picture) in ``grace_hopper.jpg``.
DEFAULT_BOX = (157, 275, 60, 60)

#: The harder case's brightness gradient: amplitude (grey levels), the row
#: it is centred on, and the scale (pixels) of its logistic ramp.
GRADIENT = (400.0, 400, 40.0)

#: ITU-R BT.601 luma weights for R, G, B.
LUMA = (0.299, 0.587, 0.114)


class DemoError(Exception):
    """A problem with the user's input, reported as one line and exit status 2."""


def default_image_path() -> str:
    """Path of the Grace Hopper photograph bundled with matplotlib.

    Returns
    -------
    str
        Absolute path of ``grace_hopper.jpg`` in matplotlib's sample data.
    """
    from matplotlib import cbook

    return str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False))


def load_grey(path: str) -> np.ndarray:
    """Read an image file as a grey float64 array on a 0-255 scale.

    Parameters
    ----------
    path : str
        Image file readable by ``matplotlib.pyplot.imread`` (PNG natively,
        JPEG, TIFF, ... through Pillow).

    Returns
    -------
    numpy.ndarray
        2-D float64 array.  Colour images are converted with the luma weights
        0.299, 0.587, 0.114 (an alpha channel is dropped); images that load as
        floats in 0-1 (PNG) or as 16-bit integers are rescaled to 0-255 so that
        a given noise sigma means the same for every file type.

    Raises
    ------
    DemoError
        If the file does not exist, cannot be read as an image, or does not
        have the shape of a grey or colour image.
    """
    import matplotlib.pyplot as plt

    if not os.path.exists(path):
        raise DemoError(f"image not found: {path}")
    if not os.path.isfile(path):
        raise DemoError(f"not a file: {path}")
    try:
        raw = plt.imread(path)
    except Exception as exc:  # Pillow and matplotlib raise many kinds
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DemoError(f"cannot read image: {path} ({reason})") from None

    img = np.asarray(raw)
    if img.dtype.kind == "f":
        img = img.astype(np.float64) * 255.0
    elif img.dtype.kind in "iu":
        scale = 255.0 / np.iinfo(img.dtype).max if img.dtype.itemsize > 1 else 1.0
        img = img.astype(np.float64) * scale
    else:
        raise DemoError(f"cannot read image: {path} (unexpected pixel type {img.dtype})")

    if img.ndim == 3 and img.shape[2] in (1, 2):  # grey, grey + alpha
        img = img[:, :, 0]
    elif img.ndim == 3 and img.shape[2] in (3, 4):  # RGB, RGBA
        img = img[:, :, :3] @ np.asarray(LUMA)
    elif img.ndim != 2:
        raise DemoError(f"cannot read image: {path} (unsupported image shape {img.shape})")
    return np.ascontiguousarray(img, dtype=np.float64)


def cut_template(img: np.ndarray, box: tuple[int, int, int, int]) -> np.ndarray:
    """Cut a box out of an image and subtract the box's mean.

    Parameters
    ----------
    img : numpy.ndarray
        2-D image.
    box : tuple of int
        ``(y, x, h, w)``: top row, left column, height and width.

    Returns
    -------
    numpy.ndarray
        A new ``(h, w)`` float64 array with zero mean.

    Raises
    ------
    DemoError
        If the box is empty or does not lie entirely inside the image.
    """
    y, x, h, w = box
    rows, cols = img.shape
    if h <= 0 or w <= 0:
        raise DemoError(f"box height and width must be positive, got {h}x{w}")
    if y < 0 or x < 0:
        raise DemoError(f"box top and left must be >= 0, got y={y}, x={x}")
    if y + h > rows or x + w > cols:
        raise DemoError(
            f"box y={y}, x={x}, {h}x{w} does not fit in the {rows}x{cols} image"
        )
    template = img[y:y + h, x:x + w].astype(np.float64)  # a copy
    template -= template.mean()
    return template


def add_noise(img: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Return ``img`` plus Gaussian noise of standard deviation ``sigma``.

    Parameters
    ----------
    img : numpy.ndarray
        Image to corrupt; it is not modified.
    sigma : float
        Standard deviation of the noise, in grey levels (0-255 scale).
    seed : int
        Seed of ``numpy.random.default_rng``, so runs are reproducible.

    Returns
    -------
    numpy.ndarray
        The noisy image, float64, C-contiguous.
    """
    rng = np.random.default_rng(seed)
    return img + rng.normal(0.0, sigma, size=img.shape)


def add_gradient(img: np.ndarray, amplitude: float, row: float, scale: float) -> np.ndarray:
    """Return ``img`` plus a brightness ramp rising down the image.

    The ramp is ``amplitude / (1 + exp(-(y - row) / scale))``: dark above
    ``row``, ``amplitude`` grey levels brighter below it, changing smoothly
    over a few ``scale`` rows.
    """
    rows = np.arange(img.shape[0], dtype=np.float64)[:, None]
    return img + amplitude / (1.0 + np.exp(-(rows - row) / scale))


def best_match(corr: np.ndarray) -> tuple[int, int]:
    """Position ``(y, x)`` of the largest value of a 2-D correlation map."""
    y, x = np.unravel_index(np.argmax(corr), corr.shape)
    return int(y), int(x)


def measure(noisy: np.ndarray, template: np.ndarray) -> dict[str, Any]:
    """Correlate the image with the template with SciPy and with cconv, timed.

    Parameters
    ----------
    noisy : numpy.ndarray
        2-D image.
    template : numpy.ndarray
        2-D template, no larger than the image.

    Returns
    -------
    dict
        ``scipy`` and ``cconv``: the two ``valid`` correlation maps (2-D);
        ``t_scipy`` and ``t_cconv``: wall-clock seconds of one call each;
        ``rel_error``: ``cconv.testing.rel_error`` between the two maps
        (elementwise, the notebook's measure); ``norm_error``: the largest
        difference over the largest value of SciPy's map.
    """
    import scipy.signal

    import cconv
    from cconv.testing import rel_error

    t0 = time.perf_counter()
    ref = scipy.signal.correlate2d(noisy, template, mode="valid")
    t1 = time.perf_counter()
    out, _cache = cconv.conv_forward(noisy[None], template)
    t2 = time.perf_counter()
    out = out[0]
    return {
        "scipy": ref,
        "cconv": out,
        "t_scipy": t1 - t0,
        "t_cconv": t2 - t1,
        "rel_error": float(rel_error(out, ref)),
        "norm_error": float(np.max(np.abs(out - ref)) / np.max(np.abs(ref))),
    }


def plot(noisy: np.ndarray, template: np.ndarray, box: tuple[int, int, int, int], found: tuple[int, int],
         ref: np.ndarray, out: np.ndarray, path: str, extra: dict[str, Any] | None = None) -> None:
    """Save the figure of the experiment.

    Parameters
    ----------
    noisy : numpy.ndarray
        The noisy image.
    template : numpy.ndarray
        The zero-mean template.
    box : tuple of int
        ``(y, x, h, w)`` where the template was cut (drawn dashed, cyan).
    found : tuple of int
        ``(y, x)`` of the best match (drawn in red, with a cross at its centre).
    ref, out : numpy.ndarray
        Correlation maps from SciPy and from cconv (their maximum is circled).
    path : str
        Where to write the figure; the format follows the file extension.
    extra : dict, optional
        The normalised matching: ``ncc`` (its score map on ``noisy``),
        ``graded`` (the image with the gradient), ``graded_plain`` and
        ``graded_ncc`` (its two score maps); drawn as a second row.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    y, x, h, w = box
    fy, fx = found
    rows = 1 if extra is None else 2
    fig, axes = plt.subplots(rows, 4, figsize=(16, 4.5 * rows), squeeze=False)

    def show_image(ax: Axes, image: np.ndarray, matches: list[tuple[tuple[int, int], str, str]], title: str) -> None:
        ax.imshow(image, cmap="gray")
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, ec="cyan",
                               lw=1.5, ls="--", label="template cut here"))
        for (my, mx), colour, label in matches:
            ax.add_patch(Rectangle((mx - 0.5, my - 0.5), w, h, fill=False, ec=colour, lw=1.5, label=label))
            ax.plot(mx + (w - 1) / 2, my + (h - 1) / 2, "+", color=colour, ms=10, mew=1.5)
        ax.legend(loc="lower right", fontsize="small", framealpha=0.8)
        ax.set_title(title)

    def show_map(ax: Axes, corr: np.ndarray, title: str) -> None:
        ax.imshow(corr, cmap="viridis")
        py, px = best_match(corr)
        ax.plot(px, py, "o", mfc="none", mec="red", ms=12, mew=1.5)
        ax.set_title(title)

    try:
        show_image(axes[0, 0], noisy, [((fy, fx), "red", "best match")], "Noisy image")
        axes[0, 1].imshow(template, cmap="gray")
        axes[0, 1].set_title("Template")
        show_map(axes[0, 2], ref, "scipy.signal.correlate2d")
        show_map(axes[0, 3], out, "cconv.conv_forward")
        if extra is not None:
            show_map(axes[1, 0], extra["ncc"], "cconv.match_template (ccoeff_normed)")
            show_image(axes[1, 1], extra["graded"],
                       [(best_match(extra["graded_plain"]), "orange", "plain correlation"),
                        (best_match(extra["graded_ncc"]), "red", "ccoeff_normed")],
                       "With a brightness gradient")
            show_map(axes[1, 2], extra["graded_plain"], "gradient: plain correlation")
            show_map(axes[1, 3], extra["graded_ncc"], "gradient: ccoeff_normed")
        for ax in axes.ravel():
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(path, dpi=100)
    finally:
        plt.close(fig)


def _verdict(found: tuple[int, int], box: tuple[int, int, int, int]) -> str:
    (fy, fx), (y, x) = found, box[:2]
    return "correct" if (fy, fx) == (y, x) else f"WRONG: off by {fy - y:+d}, {fx - x:+d}"


def match_normalised(noisy: np.ndarray, template: np.ndarray) -> dict[str, Any]:
    """The normalised matching, and the gradient case by both scores.

    Returns
    -------
    dict
        ``ncc`` and ``t_ncc``: ``match_template`` scores on ``noisy`` and the
        seconds they took; ``graded``: ``noisy`` plus the brightness gradient
        (:data:`GRADIENT`), mean removed; ``graded_plain`` and ``graded_ncc``:
        its plain correlation and its ``ccoeff_normed`` scores.
    """
    import cconv

    t0 = time.perf_counter()
    ncc = cconv.match_template(noisy, template)
    t1 = time.perf_counter()
    graded = add_gradient(noisy, *GRADIENT)
    graded -= graded.mean()
    return {
        "ncc": ncc,
        "t_ncc": t1 - t0,
        "graded": graded,
        "graded_plain": cconv.conv_forward(graded[None], template)[0][0],
        "graded_ncc": cconv.match_template(graded, template),
    }


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Find a template (an eye) in a noisy photograph by "
                    "cross-correlation, with SciPy and with cconv, and plot it.",
    )
    parser.add_argument("--image", metavar="PATH",
                        help="image file (default: matplotlib's grace_hopper.jpg)")
    parser.add_argument("--box", nargs=4, type=int, metavar=("Y", "X", "H", "W"),
                        help="template box: top, left, height, width "
                             f"(default: {' '.join(map(str, DEFAULT_BOX))}, an eye in the default "
                             "image)")
    parser.add_argument("--noise", type=float, default=50.0, metavar="SIGMA",
                        help="standard deviation of the Gaussian noise, in "
                             "grey levels 0-255 (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of the noise (default: %(default)s)")
    parser.add_argument("--out", default="cconv_demo.png", metavar="PATH",
                        help="figure to write (default: %(default)s in the "
                             "current directory)")
    return parser.parse_args(argv)


def _check_out(path: str) -> None:
    """Fail early, before the slow part, if the figure cannot be written."""
    from matplotlib.backend_bases import FigureCanvasBase

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise DemoError(f"output directory does not exist: {folder}")
    if os.path.isdir(path):
        raise DemoError(f"output path is a directory: {path}")
    ext = os.path.splitext(path)[1][1:].lower()
    supported = FigureCanvasBase.get_supported_filetypes()
    if ext and ext not in supported:
        raise DemoError(f"unsupported figure format '.{ext}' "
                        f"(use one of: {', '.join(sorted(supported))})")


def _speedup(t_ref: float, t_new: float) -> str:
    if t_new <= 0:
        return "too fast to time"
    ratio = t_ref / t_new
    if ratio >= 1:
        return f"{ratio:.0f}x faster" if ratio >= 10 else f"{ratio:.1f}x faster"
    return f"{1 / ratio:.1f}x slower"


def run(args: argparse.Namespace) -> None:
    """Run the experiment described by parsed ``args`` and print the results.

    Raises
    ------
    DemoError
        For any problem with the user's input (image, box, noise, output path).
    """
    if not math.isfinite(args.noise) or args.noise < 0:
        raise DemoError(f"noise sigma must be a finite number >= 0, got {args.noise}")
    _check_out(args.out)

    path = args.image if args.image is not None else default_image_path()
    box = tuple(args.box) if args.box is not None else DEFAULT_BOX
    img = load_grey(path)
    img -= img.mean()
    template = cut_template(img, box)  # from the clean image
    noisy = add_noise(img, args.noise, args.seed)

    rows, cols = img.shape
    y, x, h, w = box
    print(f"image: {path} ({rows}x{cols}, grey), noise sigma {args.noise}, seed {args.seed}")
    print(f"template taken at   y={y}, x={x} ({h}x{w})")

    res = measure(noisy, template)
    fy, fx = best_match(res["cconv"])
    print(f"best match found at y={fy}, x={fx} ({_verdict((fy, fx), box)})")
    print(
        f"relative error cconv vs scipy: {res['norm_error']:.1e} of the largest value"
        f" ({res['rel_error']:.1e} elementwise, the notebook's rel_error)"
    )
    print(f"time scipy.signal.correlate2d: {res['t_scipy'] * 1e3:8.1f} ms")
    print(f"time cconv.conv_forward:       {res['t_cconv'] * 1e3:8.1f} ms "
          f"({_speedup(res['t_scipy'], res['t_cconv'])})")

    extra = match_normalised(noisy, template)
    ny, nx = best_match(extra["ncc"])
    print(f"normalised (ccoeff_normed) match at y={ny}, x={nx} ({_verdict((ny, nx), box)}), "
          f"score {extra['ncc'][ny, nx]:.3f}, {extra['t_ncc'] * 1e3:.1f} ms")
    amplitude, row, scale = GRADIENT
    print(f"harder case: + a brightness gradient of {amplitude:.0f} grey levels across row {row}")
    for name, key in (("plain correlation:", "graded_plain"), ("ccoeff_normed:    ", "graded_ncc")):
        gy, gx = best_match(extra[key])
        print(f"  {name} best match at y={gy}, x={gx} ({_verdict((gy, gx), box)})")

    try:
        plot(noisy, template, box, (fy, fx), res["scipy"], res["cconv"], args.out, extra)
    except (OSError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise DemoError(f"cannot write figure {args.out}: {reason}") from None
    print(f"figure written to {args.out}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point of ``python -m cconv.demo``.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        0 on success, 2 on a usage error (reported as one line on stderr).
    """
    args = _parse_args(argv)
    try:
        import matplotlib
        matplotlib.use("Agg")  # before pyplot is imported anywhere
        import matplotlib.pyplot  # noqa: F401
        import scipy.signal  # noqa: F401
    except ImportError as exc:
        print(f"{PROG}: error: the demo needs {exc.name or 'matplotlib and scipy'}: "
              f"pip install cconv[demo]", file=sys.stderr)
        return 2
    try:
        run(args)
    except DemoError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
