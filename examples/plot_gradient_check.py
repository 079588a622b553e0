"""
Gradient checking a layer
=========================

The notebook's check, packaged in :mod:`cconv.testing`: compare a layer's
analytic gradients with central finite differences
(:func:`~cconv.testing.numerical_gradient`), measured by the notebook's
:func:`~cconv.testing.rel_error`.  It is done here for cconv's two layers,
and for a hand-written backward pass with a classic mistake, to show what a
failing check looks like.
"""

import matplotlib.pyplot as plt
import numpy as np

import cconv
from cconv.testing import numerical_gradient, rel_error

rng = np.random.default_rng(0)
threads = cconv.get_num_threads()

# %%
# The 3-D layer.  ``numerical_gradient(f, x, dout)`` is the gradient of
# ``sum(f(x) * dout)`` with respect to ``x``, by moving each entry of ``x``
# by +-h: two calls of ``f`` per entry, so small arrays (and one thread:
# :func:`cconv.threads`, since the calls are too small to share).  A layer is
# linear in each input, so the differences are exact up to rounding; as
# ``rel_error`` is the largest *elementwise* relative error, entries that
# come out near zero by cancellation show that rounding at its largest:
# 1e-10 to 1e-7 in float64.
cconv.set_num_threads(1)
x = rng.standard_normal((2, 9, 8))
w = rng.standard_normal((3, 4))
out, cache = cconv.conv_forward(x, w)
dout = rng.standard_normal(out.shape)
dx, dw = cconv.conv_backward(dout, cache)

num_dx = numerical_gradient(lambda v: cconv.conv_forward(v, w)[0], x, dout)
num_dw = numerical_gradient(lambda v: cconv.conv_forward(x, v)[0], w, dout)
errors = {"3-D dx": rel_error(num_dx, dx), "3-D dw": rel_error(num_dw, dw)}

# %%
# The 4-D layer: 3 channels, 4 filters, a bias, stride 2, padding 1 and
# dilation 2; then a layer of 2 groups.
x4 = rng.standard_normal((2, 3, 8, 7))
w4 = rng.standard_normal((4, 3, 3, 3))
b4 = rng.standard_normal(4)
options = {"stride": 2, "padding": 1, "dilation": 2}
out4, cache4 = cconv.conv2d_forward(x4, w4, b4, **options)
dout4 = rng.standard_normal(out4.shape)
dx4, dw4, db4 = cconv.conv2d_backward(dout4, cache4)


def layer(x, w, b):
    return cconv.conv2d_forward(x, w, b, **options)[0]


errors["4-D dx"] = rel_error(numerical_gradient(lambda v: layer(v, w4, b4), x4, dout4), dx4)
errors["4-D dw"] = rel_error(numerical_gradient(lambda v: layer(x4, v, b4), w4, dout4), dw4)
errors["4-D db"] = rel_error(numerical_gradient(lambda v: layer(x4, w4, v), b4, dout4), db4)

xg = rng.standard_normal((1, 4, 7, 7))
wg = rng.standard_normal((6, 2, 3, 3))  # groups=2: each filter sees 2 of the 4 channels
outg, cacheg = cconv.conv2d_forward(xg, wg, groups=2)
doutg = rng.standard_normal(outg.shape)
dxg, dwg, _ = cconv.conv2d_backward(doutg, cacheg)
errors["groups dx"] = rel_error(numerical_gradient(lambda v: cconv.conv2d_forward(v, wg, groups=2)[0], xg, doutg), dxg)
errors["groups dw"] = rel_error(numerical_gradient(lambda v: cconv.conv2d_forward(xg, v, groups=2)[0], wg, doutg), dwg)

# %%
# A backward pass of one's own, with the mistake that is easiest to make:
# ``dx`` as the full correlation of ``dout`` with the filter *unflipped*
# (the right one flips it; see :ref:`layer3d`).  Written with SciPy, it has
# the right shape and the right kind of values, and is wrong.
from scipy.signal import correlate2d  # noqa: E402

wrong_dx = np.stack([correlate2d(d, w, mode="full") for d in dout])
right_dx = np.stack([correlate2d(d, w[::-1, ::-1], mode="full") for d in dout])
errors["own dx, flipped"] = rel_error(num_dx, right_dx)
errors["own dx, unflipped (bug)"] = rel_error(num_dx, wrong_dx)

for name, err in errors.items():
    print(f"{name:>24}: rel_error {err:.1e}")
assert max(v for k, v in errors.items() if "bug" not in k) < 1e-5
cconv.set_num_threads(threads)
assert errors["own dx, unflipped (bug)"] > 0.1

# %%
# The figure: ``dx`` of the first image by finite differences, by cconv,
# their difference (on its own scale: it is rounding), and the buggy one; and
# every check's relative error, on a log scale.
fig = plt.figure(figsize=(13, 7))
grid = fig.add_gridspec(2, 4, height_ratios=[1, 1.1])
panels = [(num_dx[0], "finite differences"), (dx[0], "cconv.conv_backward"),
          (dx[0] - num_dx[0], "difference"), (wrong_dx[0], "filter unflipped (bug)")]
limit = np.abs(num_dx[0]).max()
for i, (data, title) in enumerate(panels):
    ax = fig.add_subplot(grid[0, i])
    scale = np.abs(data).max() if title == "difference" else limit
    im = ax.imshow(data, cmap="RdBu_r", vmin=-scale, vmax=scale)
    ax.set_title(title, fontsize=10)
    ax.axis("off")
    fig.colorbar(im, ax=ax, shrink=0.8, format="%.0e" if title == "difference" else None)
ax = fig.add_subplot(grid[1, :])
names = list(errors)
ax.barh(names, list(errors.values()), color=["tab:red" if "bug" in n else "tab:green" for n in names])
ax.set_xscale("log")
ax.invert_yaxis()
ax.axvline(1e-5, color="k", ls=":", lw=1)
ax.text(1.3e-5, 0, "pass below 1e-5", fontsize=9, va="center")
ax.set_xlabel("rel_error(numerical, analytic): 0 is equal, 1 unrelated")
ax.set_title("Every gradient check (float64)")
fig.tight_layout()
