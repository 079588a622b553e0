"""
A bank of templates, matched at once
====================================

Ten templates, one per digit, are matched against a noisy page of
handwritten digits in one call of :func:`cconv.match_template`, which
returns one score map per template (the page's spectrum is taken once for
all of them).  :func:`cconv.find_matches` then picks the peaks: the best
scores, best first, with non-maximum suppression, each tagged with the
template it belongs to.
"""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle
from sklearn.datasets import load_digits

import cconv

# %%
# The templates: the mean of each digit class of scikit-learn's 8x8 digits,
# enlarged 3 times (24x24 pixels).  The page: 18 digits written by other
# hands (single samples, not the means), placed on a 3x6 grid with some
# jitter, in Gaussian noise.
digits = load_digits()
scale = 3


def enlarge(img):
    return np.kron(img / 16.0, np.ones((scale, scale)))


bank = np.stack([enlarge(digits.images[digits.target == d].mean(axis=0)) for d in range(10)])
size = bank.shape[1]

rng = np.random.default_rng(3)
page = np.zeros((3 * 48, 6 * 48))
truth = []  # (digit, y, x) of each digit written on the page
for i, sample in enumerate(rng.choice(len(digits.images), 18, replace=False)):
    y = 48 * (i // 6) + rng.integers(4, 48 - size - 4)
    x = 48 * (i % 6) + rng.integers(4, 48 - size - 4)
    page[y:y + size, x:x + size] = enlarge(digits.images[sample])
    truth.append((int(digits.target[sample]), int(y), int(x)))
page += rng.normal(0, 0.35, page.shape)
print(f"page {page.shape}, bank of {len(bank)} templates of {bank.shape[1:]}")

# %%
# One call scores every placement of every template: a (10, H', W') stack of
# maps of ``ccoeff_normed``, the normalised cross-correlation, in [-1, 1].
scores = cconv.match_template(page, bank, method="ccoeff_normed")
print(f"scores {scores.shape}, {scores.dtype}")

# %%
# The peaks.  ``find_matches`` searches each map on its own: a digit can be
# the best peak of several maps (a 3 resembles an 8), so the matches are
# then taken best first, one per place: a match within half a template of a
# better one, from any map, is dropped.  ``Match.pair`` is the map, here the
# template, so the digit.
candidates = cconv.find_matches(scores, num=100, min_distance=size // 2, threshold=0.3)
found = []
for m in candidates:
    if all(max(abs(m.y - f.y), abs(m.x - f.x)) > size // 2 for f in found):
        found.append(m)
found = found[:len(truth)]
right = 0
for m in sorted(found, key=lambda m: (m.y // 48, m.x)):
    digit, ty, tx = min(truth, key=lambda t: abs(t[1] - m.y) + abs(t[2] - m.x))
    right += digit == m.pair and max(abs(ty - m.y), abs(tx - m.x)) <= scale
    print(f"template {m.pair} at ({m.y:3d}, {m.x:3d}), score {m.score:.2f}; written there: {digit}")
print(f"{right} of {len(truth)} digits read right, within {scale} pixels of where they were written")

# %%
# The figure: the page with each match boxed and labelled with its
# template's digit (green where it is the digit written there, red where not),
# the bank of templates (the means of each class, 24x24), and the score maps
# of three of them.
fig = plt.figure(figsize=(12, 9.5))
top, middle, bottom = fig.subfigures(3, 1, height_ratios=[5.2, 1.2, 2.6])
ax = top.subplots()
ax.imshow(page, cmap="gray_r")
for m in found:
    digit = min(truth, key=lambda t: abs(t[1] - m.y) + abs(t[2] - m.x))[0]
    colour = "tab:green" if digit == m.pair else "tab:red"
    ax.add_patch(Rectangle((m.x - 0.5, m.y - 0.5), size, size, fill=False, ec=colour, lw=2.5))
    ax.text(m.x + size + 1, m.y + 7, str(m.pair), color="white", fontsize=14, weight="bold",
            bbox={"fc": colour, "ec": "none", "pad": 1.5})
ax.set_title(f"The page: {right} of {len(truth)} digits found and read right "
             "(each box labelled with the template that matched)")
ax.axis("off")
for d, ax in enumerate(middle.subplots(1, 10)):
    ax.imshow(bank[d], cmap="gray_r")
    ax.set_title(f"template {d}", fontsize=10)
    ax.axis("off")
for d, ax in zip((0, 3, 8), bottom.subplots(1, 3)):
    im = ax.imshow(scores[d], cmap="RdBu_r", vmin=-1, vmax=1)
    peaks = [m for m in found if m.pair == d]
    ax.plot([m.x for m in peaks], [m.y for m in peaks], "o", mfc="none", mec="k", ms=12, mew=2)
    ax.set_title(f"map of template {d}", fontsize=10)
    ax.axis("off")
bottom.colorbar(im, ax=bottom.axes, shrink=0.8, label="ccoeff_normed")
bottom.suptitle("Three of the ten score maps, the matches found in each circled (at the window's top-left corner)",
                fontsize=11)
