"""
A large image, chunk by chunk, on a Dask cluster
================================================

:mod:`cconv.dask` runs cconv on Dask arrays: each chunk is one task, extended
by the template's size minus one into its neighbours so that windows across
chunk edges are scored as in memory.  Here a 4096x4096 image that never
exists in one piece on the client is searched for a pattern by
:func:`cconv.dask.match_template` on a ``LocalCluster`` of two worker
workers, and the answer is checked against the in-memory
:func:`cconv.match_template`.
"""

import time

import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from dask.distributed import Client, LocalCluster, get_task_stream

import cconv
import cconv.dask as cd

# %%
# The cluster: two workers of one thread each, on this machine.  Inside a
# worker, cconv runs each task on one thread (the workers already use the
# cores).  The workers are threads of this process here (``processes=False``),
# so that the example also runs as a plain script: worker *processes* (the
# default) are started by re-importing the script, which must then create the
# cluster under ``if __name__ == "__main__":``, Dask's rule for scripts.  On a
# real cluster only this cell changes: connect a ``Client`` to its scheduler.
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None,
                       silence_logs=50)
client = Client(cluster)
print(f"{len(client.scheduler_info()['workers'])} workers")

# %%
# The image: noise, with 40 copies of a ring pattern (21x21) at random
# places, made chunk by chunk where the tasks run (in practice the chunks
# would be read there, from Zarr or TIFF tiles on shared storage).  Chunks of
# 1024x1024 make a 4x4 grid; some rings are put across chunk edges on
# purpose.
size, chunk, k = 4096, 1024, 21
yy, xx = np.mgrid[:k, :k] - k // 2
ring = (np.abs(np.hypot(yy, xx) - 7) < 1.6).astype(np.float32)

rng = np.random.default_rng(7)
spots = rng.integers(0, size - k, (40, 2))
spots[:6] = [[1014, 200], [3000, 2040], [2040, 2040], [500, 3070], [3080, 1500], [1013, 1015]]


def make_tile(block_info=None):
    """The tile of the image at this block: noise, plus the rings that reach it."""
    (y0, y1), (x0, x1) = block_info[None]["array-location"]
    tile = np.random.default_rng([y0, x0]).normal(0, 1, (y1 - y0, x1 - x0)).astype(np.float32)
    for sy, sx in spots:
        top, left = max(sy, y0), max(sx, x0)
        bottom, right = min(sy + k, y1), min(sx + k, x1)
        if top < bottom and left < right:
            tile[top - y0:bottom - y0, left - x0:right - x0] += 1.5 * ring[top - sy:bottom - sy, left - sx:right - sx]
    return tile


image = da.map_blocks(make_tile, chunks=((chunk,) * 4, (chunk,) * 4), dtype=np.float32)

# %%
# The scores: lazy, chunked like the image.  Nothing runs until
# ``compute``.  The dask graph (``scores.dask``) has one matching task per
# chunk, after the tasks that make the tiles and share their edges.
scores = cd.match_template(image, ring, method="ccoeff_normed")
print(f"scores: {scores.shape} {scores.dtype}, {scores.numblocks[0]}x{scores.numblocks[1]} chunks, "
      f"{len(scores.dask)} tasks in the graph")

start = time.perf_counter()
with get_task_stream(client) as stream:
    result = scores.compute()
elapsed = time.perf_counter() - start
print(f"computed on the cluster in {elapsed:.1f} s")

matches = cconv.find_matches(result, num=60, min_distance=k, threshold=0.5)
found = {(m.y, m.x) for m in matches}
hits = sum((int(y), int(x)) in found for y, x in spots)
print(f"{len(matches)} matches above 0.5; {hits} of {len(spots)} rings found at their exact place")

# %%
# The same in memory, in one piece, for comparison: the scores agree to the
# rounding of float32 (each tile's FFTs have their own sizes).
whole = image.compute()
in_memory = cconv.match_template(whole, ring, method="ccoeff_normed")
diff = float(np.max(np.abs(result - in_memory)))
print(f"largest difference from the in-memory scores: {diff:.1e}")
assert diff < 1e-4 and hits == len(spots)

tasks = stream.data
client.close()
cluster.close()

# %%
# The figure: the image (every 8th pixel) with its chunk grid and the
# matches; a close-up of a ring split across four chunks, found all the
# same; and the task stream, what each worker process ran when.
fig = plt.figure(figsize=(13, 9))
grid = fig.add_gridspec(2, 2, height_ratios=[2.2, 1], width_ratios=[1.6, 1])
ax = fig.add_subplot(grid[0, 0])
ax.imshow(whole[::8, ::8], cmap="gray", extent=(0, size, size, 0))
for edge in range(chunk, size, chunk):
    ax.axhline(edge, color="orange", lw=1)
    ax.axvline(edge, color="orange", lw=1)
ax.plot([m.x + k // 2 for m in matches], [m.y + k // 2 for m in matches], "o", mfc="none", mec="red", ms=9, mew=1.5)
ax.set_title(f"4096x4096 image in 16 chunks of 1024x1024 (orange): {len(matches)} rings found (red)")

ax = fig.add_subplot(grid[0, 1])
cy, cx = 1013 + k // 2, 1015 + k // 2
ax.imshow(whole[cy - 40:cy + 40, cx - 40:cx + 40], cmap="gray", extent=(cx - 40.5, cx + 39.5, cy + 39.5, cy - 40.5))
ax.axhline(chunk - 0.5, color="orange", lw=2)
ax.axvline(chunk - 0.5, color="orange", lw=2)
m = next(m for m in matches if (m.y, m.x) == (1013, 1015))
ax.add_patch(plt.Rectangle((m.x - 0.5, m.y - 0.5), k, k, fill=False, ec="red", lw=2))
ax.set_title(f"A ring across four chunks, score {m.score:.2f}")

ax = fig.add_subplot(grid[1, :])
workers = sorted({t["worker"] for t in tasks})
t0 = min(s["start"] for t in tasks for s in t["startstops"])
colours = {}
for t in tasks:
    name = t["key"][0] if isinstance(t["key"], tuple) else t["key"]
    name = ("match_template on a tile and its halo" if "match-template" in name else
            "make a tile" if name.startswith("make_tile-") else
            "gather the result" if "finalize" in name else "cut and pass halos")
    for s in t["startstops"]:
        if s["action"] != "compute":
            continue
        colour = colours.setdefault(name, f"C{len(colours)}")
        ax.barh(workers.index(t["worker"]), s["stop"] - s["start"], left=s["start"] - t0, color=colour,
                label=name if name not in ax.get_legend_handles_labels()[1] else None)
ax.set_yticks(range(len(workers)), [f"worker {i}" for i in range(len(workers))])
ax.set_xlabel("seconds")
ax.set_title("Task stream: each bar a task, on the worker that ran it")
ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4)
fig.tight_layout()
