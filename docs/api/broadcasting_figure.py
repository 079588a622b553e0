"""The broadcasting rules of cconv's leading axis, drawn (for conventions.rst).

As NumPy's broadcasting pictures draw it: an operand of leading size 1 is
repeated (dashed, faded) to pair with every entry of the other.
"""

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

COLOURS = {"image": "#9ecae1", "filter": "#fdae6b", "out": "#a1d99b"}
COLUMNS = {"image": 0.0, "filter": 1.9, "out": 3.9}
SIZES = {"image": 1.0, "filter": 0.6, "out": 0.85}


def box(ax, kind, row, label, copy=False):
    """One array of a batch, in its column at its row; ``copy``: a broadcast repeat."""
    s = SIZES[kind]
    x, y = COLUMNS[kind], 2.4 - 1.2 * row - s / 2
    ax.add_patch(Rectangle((x, y), s, s, fc=COLOURS[kind], ec="0.5" if copy else "k", lw=1,
                           ls="--" if copy else "-", alpha=0.45 if copy else 1))
    ax.text(x + s / 2, y + s / 2, label, ha="center", va="center", fontsize=10, color="0.45" if copy else "k")


cases = [
    ("one filter for every image\nx (N, H, W), w (KH, KW) or (1, KH, KW)", 3, 1, "dw sums over the N images"),
    ("K filters against one image\nx (1, H, W), w (K, KH, KW)", 1, 3, "dx sums over the K filters"),
    ("image n with filter n\nx (N, H, W), w (N, KH, KW)", 3, 3, "each gradient its own"),
]

fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
for ax, (title, n, k, gradient) in zip(axes, cases):
    ax.set_xlim(-0.3, 5.0)
    ax.set_ylim(-0.9, 3.3)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=11)
    for p in range(max(n, k)):
        box(ax, "image", p, f"x[{p if n > 1 else 0}]", copy=n == 1 and p > 0)
        box(ax, "filter", p, f"w[{p if k > 1 else 0}]" if k > 1 else "w", copy=k == 1 and p > 0)
        box(ax, "out", p, f"out[{p}]")
        y = 2.4 - 1.2 * p
        ax.text(1.45, y, "\u22c6", ha="center", va="center", fontsize=16)
        ax.annotate("", (COLUMNS["out"] - 0.1, y), (COLUMNS["filter"] + SIZES["filter"] + 0.1, y),
                    arrowprops={"arrowstyle": "-|>", "color": "0.3", "lw": 1.2})
    ax.text(2.35, -0.75, gradient, ha="center", fontsize=10, style="italic")
fig.text(0.5, 0.02, "Dashed: the same array, shared.  Leading sizes neither equal nor 1 (2 images with 3 filters) "
         "raise ValueError.", ha="center", fontsize=11)
