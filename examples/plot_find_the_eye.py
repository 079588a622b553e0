"""
Find the eye in a noisy photograph
==================================

The experiment of the notebook cconv grew out of, and what ``cconv-demo``
does: cut a 60x60 template around an eye from a photograph, bury the
photograph in heavy noise, and find the eye again as the peak of the
cross-correlation, computed by :func:`cconv.conv_forward` and checked
against :func:`scipy.signal.correlate2d`.  Then the harder case: a
brightness gradient across the picture, where plain correlation fails and the
normalised score of :func:`cconv.match_template` still finds the eye.
"""

import time

import matplotlib.pyplot as plt
import numpy as np
import scipy.signal
from matplotlib import cbook
from matplotlib.patches import Rectangle

import cconv
from cconv.testing import rel_error

# %%
# The photograph of Grace Hopper that ships with matplotlib, in grey levels
# 0-255 (ITU-R BT.601 luma), minus its mean.  The template is the 60x60 box
# around her left eye, minus its own mean, cut from the clean image; the
# image then gets Gaussian noise of standard deviation 50 grey levels.
with cbook.get_sample_data("grace_hopper.jpg") as f:
    rgb = plt.imread(f).astype(np.float64)
image = rgb @ [0.299, 0.587, 0.114]
image -= image.mean()
y0, x0, h, w = 157, 275, 60, 60
template = image[y0:y0 + h, x0:x0 + w].copy()
template -= template.mean()
noisy = image + np.random.default_rng(0).normal(0, 50, image.shape)
print(f"image {noisy.shape}, template {template.shape}")

# %%
# The correlation, both ways.  ``conv_forward`` takes a batch of images,
# (N, H, W): this one is a batch of one.  Its result is SciPy's to rounding
# (the notebook's ``rel_error``, elementwise), and the peak is where the
# template was cut.
t0 = time.perf_counter()
ref = scipy.signal.correlate2d(noisy, template, mode="valid")
t1 = time.perf_counter()
out, cache = cconv.conv_forward(noisy[None], template)
t2 = time.perf_counter()
corr = out[0]
found = np.unravel_index(np.argmax(corr), corr.shape)
print(f"scipy.signal.correlate2d {1e3 * (t1 - t0):.0f} ms, cconv.conv_forward {1e3 * (t2 - t1):.1f} ms "
      f"(method {cache.method!r})")
print(f"rel_error against SciPy: {rel_error(corr, ref):.1e}; "
      f"largest difference / largest value: {np.abs(corr - ref).max() / np.abs(ref).max():.1e}")
print(f"template cut at ({y0}, {x0}), peak of the correlation at ({found[0]}, {found[1]})")
assert (found[0], found[1]) == (y0, x0)

# %%
# The harder case: 400 grey levels more below row 400, rising smoothly (a
# logistic ramp over about 40 rows).  The plain correlation of a zero-mean
# template ignores a constant, but not a ramp: it now peaks in the bright
# band, wherever the template's own light-to-dark profile best matches the
# ramp.  ``ccoeff_normed``, the normalised cross-correlation, scores each
# window after removing the window's own mean and dividing by its own
# contrast, so it still finds the eye.
rows = np.arange(noisy.shape[0])[:, None]
ramp = 400 / (1 + np.exp(-(rows - 400) / 40))
graded = noisy + ramp
graded -= graded.mean()
plain = cconv.conv_forward(graded[None], template)[0][0]
ncc = cconv.match_template(graded, template, method="ccoeff_normed")
plain_at = np.unravel_index(np.argmax(plain), plain.shape)
ncc_at = np.unravel_index(np.argmax(ncc), ncc.shape)
print(f"with the gradient: plain correlation peaks at ({plain_at[0]}, {plain_at[1]}), "
      f"ccoeff_normed at ({ncc_at[0]}, {ncc_at[1]}), score {ncc.max():.2f}")
assert (ncc_at[0], ncc_at[1]) == (y0, x0) and (plain_at[0], plain_at[1]) != (y0, x0)

# %%
# The figure: top row, the noisy image with the template's box (dashed
# cyan) and the match (red), the template, and the two correlation maps,
# SciPy's and cconv's (the same map, peak circled).  Bottom row, the
# gradient case: the image with both answers, the two score maps, and the
# gradient that was added.
fig, axes = plt.subplots(2, 4, figsize=(16, 8.6))


def boxes(ax, matches):
    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), w, h, fill=False, ec="cyan", ls="--", lw=1.5,
                           label="template cut here"))
    for (my, mx), colour, label in matches:
        ax.add_patch(Rectangle((mx - 0.5, my - 0.5), w, h, fill=False, ec=colour, lw=2, label=label))
    ax.legend(loc="lower right", fontsize="small")


def score_map(ax, scores, title):
    ax.imshow(scores, cmap="viridis")
    py, px = np.unravel_index(np.argmax(scores), scores.shape)
    ax.plot(px, py, "o", mfc="none", mec="red", ms=14, mew=2)
    ax.set_title(title)


axes[0, 0].imshow(noisy, cmap="gray")
boxes(axes[0, 0], [(found, "red", "best match")])
axes[0, 0].set_title("Noisy image (sigma 50)")
axes[0, 1].imshow(template, cmap="gray")
axes[0, 1].set_title("Template (60x60)")
score_map(axes[0, 2], ref, "scipy.signal.correlate2d")
score_map(axes[0, 3], corr, "cconv.conv_forward")
axes[1, 0].imshow(graded, cmap="gray")
boxes(axes[1, 0], [(plain_at, "orange", "plain correlation"), (ncc_at, "red", "ccoeff_normed")])
axes[1, 0].set_title("With a brightness gradient")
score_map(axes[1, 1], plain, "gradient: plain correlation")
score_map(axes[1, 2], ncc, "gradient: match_template, ccoeff_normed")
axes[1, 3].plot(ramp[:, 0], rows[:, 0])
axes[1, 3].invert_yaxis()
axes[1, 3].set_xlabel("grey levels added")
axes[1, 3].set_ylabel("row")
axes[1, 3].set_title("The brightness gradient, row by row")
for ax in axes.ravel()[:7]:
    ax.axis("off")
fig.tight_layout()
