"""
Run a SciPy script on cconv by changing its import
==================================================

A small analysis written for SciPy, as it might be found in a lab's
notebook: a 1-D signal smoothed and cross-correlated to find a delay, a
photograph blurred by a point-spread function and restored by
Richardson-Lucy deconvolution (``fftconvolve``, over and over), and a 3-D
volume smoothed, differentiated and filtered along one axis.  Every call is
``signal.<name>`` or ``ndimage.<name>``, so the whole script runs on either
library by its first line::

    from scipy import signal, ndimage     # or
    from cconv import signal, ndimage

It runs here once with each, and every result is compared: equal for the
integer volume, within rounding for the floats.  Then the one place where
cconv differs from SciPy on purpose: a NaN pixel in ``fftconvolve``.
"""

import time

import matplotlib.pyplot as plt
import numpy as np
import scipy
from matplotlib import cbook

import cconv


def analysis(signal, ndimage):
    """The script: every convolution goes through the two modules it is given."""
    rng = np.random.default_rng(0)
    out, times = {}, {}

    def step(name, fn):
        start = time.perf_counter()
        out[name] = fn()
        times[name] = time.perf_counter() - start

    # A noise source heard on two channels, the second 37 samples late.
    source = rng.normal(0, 1, 200_000)
    a = source + rng.normal(0, 0.5, source.size)
    b = np.roll(source, 37) + rng.normal(0, 0.5, source.size)
    window = np.hanning(301) / np.hanning(301).sum()
    step("1-D: signal.convolve, 301 taps", lambda: signal.convolve(a, window, mode="same"))
    step("1-D: signal.correlate, the delay", lambda: signal.correlate(b[:20_000], a[:20_000], mode="full"))
    smooth = out["1-D: signal.convolve, 301 taps"]
    step("1-D: ndimage.correlate1d, a derivative", lambda: ndimage.correlate1d(smooth, [-0.5, 0, 0.5]))

    # The photograph, blurred by a Gaussian PSF, then restored.
    with cbook.get_sample_data("grace_hopper.jpg") as f:
        image = (plt.imread(f).astype(np.float64) @ [0.299, 0.587, 0.114]) / 255
    yy, xx = np.mgrid[-15:16, -15:16]
    psf = np.exp(-(xx**2 + yy**2) / (2 * 3.0**2))
    psf /= psf.sum()
    step("2-D: signal.fftconvolve, the blur", lambda: signal.fftconvolve(image, psf, mode="same"))
    blurred = out["2-D: signal.fftconvolve, the blur"]

    def richardson_lucy(observed, iterations=15):
        estimate = np.full(observed.shape, 0.5)
        mirrored = psf[::-1, ::-1]
        for _ in range(iterations):
            ratio = observed / np.maximum(signal.fftconvolve(estimate, psf, mode="same"), 1e-12)
            estimate = estimate * signal.fftconvolve(ratio, mirrored, mode="same")
        return estimate

    step("2-D: Richardson-Lucy, 30 fftconvolve", lambda: richardson_lucy(blurred))

    # A volume of blobs (uint8, as from a microscope), smoothed in 3-D.
    centres = rng.integers(8, 88, (40, 3))
    zz, yy3, xx3 = np.mgrid[:96, :96, :96]
    volume = np.zeros((96, 96, 96))
    for z, y, x in centres:
        volume += 200 * np.exp(-((zz - z) ** 2 + (yy3 - y) ** 2 + (xx3 - x) ** 2) / 18)
    volume = np.clip(volume + rng.normal(0, 20, volume.shape), 0, 255).astype(np.uint8)
    g = np.exp(-np.arange(-2, 3) ** 2 / 2.0)
    gauss3 = g[:, None, None] * g[None, :, None] * g[None, None, :]
    gauss3 /= gauss3.sum()
    step("3-D: ndimage.correlate, 5x5x5 Gaussian (uint8)", lambda: ndimage.correlate(volume, gauss3))
    laplace3 = -np.ones((3, 3, 3))
    laplace3[1, 1, 1] = 26
    smoothed = out["3-D: ndimage.correlate, 5x5x5 Gaussian (uint8)"].astype(np.float64)
    step("3-D: ndimage.convolve, 3x3x3 Laplacian", lambda: ndimage.convolve(smoothed, laplace3))
    step("3-D: ndimage.convolve1d along z", lambda: ndimage.convolve1d(volume, [1, 4, 6, 4, 1], axis=0,
                                                                    output=np.float64))
    return out, times, (blurred, psf)


# %%
# The same script, once on SciPy and once on cconv.
from scipy import ndimage as scipy_ndimage  # noqa: E402
from scipy import signal as scipy_signal  # noqa: E402

from cconv import ndimage as cconv_ndimage  # noqa: E402
from cconv import signal as cconv_signal  # noqa: E402

theirs, their_times, (blurred, psf) = analysis(scipy_signal, scipy_ndimage)
ours, our_times, _ = analysis(cconv_signal, cconv_ndimage)

print(f"SciPy {scipy.__version__}, cconv {cconv.__version__} on {cconv.get_num_threads()} threads\n")
print(f"{'step':48s} {'SciPy ms':>9s} {'cconv ms':>9s} {'speed-up':>9s}  agreement")
for name in theirs:
    a, b = np.asarray(ours[name]), np.asarray(theirs[name])
    assert a.dtype == b.dtype and a.shape == b.shape, name
    if a.dtype.kind in "iu":
        agreement = "equal" if np.array_equal(a, b) else "DIFFERENT"
    else:
        agreement = f"max diff / max {np.abs(a - b).max() / np.abs(b).max():.1e}"
    print(f"{name:48s} {1e3 * their_times[name]:9.1f} {1e3 * our_times[name]:9.1f} "
          f"{their_times[name] / our_times[name]:8.1f}x  {agreement}")
    assert agreement == "equal" or float(agreement.split()[-1]) < 1e-9, name
delay = np.argmax(ours["1-D: signal.correlate, the delay"]) - (20_000 - 1)
print(f"\nthe second channel is {delay} samples late")

# %%
# What the script computed (cconv's results): the blurred and the restored
# photograph, a slice of the smoothed volume and of its Laplacian (the
# blobs' centres stand out).
fig, axes = plt.subplots(1, 4, figsize=(12, 3.4))
axes[0].imshow(blurred, cmap="gray")
axes[0].set_title("blurred (fftconvolve)")
axes[1].imshow(ours["2-D: Richardson-Lucy, 30 fftconvolve"], cmap="gray", vmin=0, vmax=1)
axes[1].set_title("Richardson-Lucy, 15 iterations")
axes[2].imshow(ours["3-D: ndimage.correlate, 5x5x5 Gaussian (uint8)"][48], cmap="magma")
axes[2].set_title("volume, smoothed (z = 48)")
laplacian = ours["3-D: ndimage.convolve, 3x3x3 Laplacian"][48]
limit = np.abs(laplacian).max()
axes[3].imshow(laplacian, cmap="RdBu_r", vmin=-limit, vmax=limit)
axes[3].set_title("its 3-D Laplacian (z = 48)")
for ax in axes:
    ax.set_axis_off()
fig.tight_layout()

# %%
# The one deliberate difference.  A dead pixel (NaN) in the blurred image:
# SciPy's FFT spreads it over the whole output; cconv keeps NaN where the
# direct sum has it, the pixels whose window holds the dead one.
dead = blurred.copy()
dead[200, 300] = np.nan
with np.errstate(invalid="ignore"):
    spread = scipy_signal.fftconvolve(dead, psf, mode="same")
local = cconv_signal.fftconvolve(dead, psf, mode="same")
print(f"NaN outputs: SciPy {np.isnan(spread).sum()} of {spread.size}, cconv {np.isnan(local).sum()} "
      f"(the {psf.shape[0]}x{psf.shape[1]} window around the dead pixel)")
assert np.isnan(local).sum() == psf.size
fin = np.isfinite(local)
print(f"elsewhere cconv's result is the blur of the image without that pixel: max difference "
      f"{np.abs(local[fin] - cconv_signal.fftconvolve(np.nan_to_num(dead), psf, mode='same')[fin]).max():.1e}")
