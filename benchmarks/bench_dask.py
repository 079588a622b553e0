"""cconv.dask against the in-memory calls, on this machine.

    python benchmarks/bench_dask.py            # both tables (a few minutes)
    python benchmarks/bench_dask.py --quick    # small sizes, for CI

1. A batch of images through the 3-D layer, forward + backward: throughput of
   the in-memory call, of the threaded scheduler, and of a LocalCluster of
   1 and 2 worker processes (one thread each); Dask's overhead as a
   percentage of the in-memory time.  Inputs are persisted on the workers
   first and outputs persisted there, so only the computation is timed.
2. One large float32 image matched with a 64x64 template, tiled: time, and
   each worker's peak resident memory against the chunk size; the
   in-memory call for comparison.

Every result is checked against the in-memory call (a wrong one aborts the
run).  Times are medians of repeats after a warm-up; overheads are the Dask
time over the in-memory time, minus 1.  Nothing is asserted about times.
"""

from __future__ import annotations

import argparse
import resource
import time

import dask
import dask.array as da
import distributed
import numpy as np
from _bench_common import check, print_header, table, timeit

import cconv
import cconv.dask as cd


def layer(n, size, k, chunk, repeats):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, size, size)).astype(np.float32)
    w = rng.standard_normal((k, k)).astype(np.float32)
    dout = rng.standard_normal((n, size - k + 1, size - k + 1)).astype(np.float32)

    def in_memory():
        out, cache = cconv.conv_forward(x, w)
        return (out, *cconv.conv_backward(dout, cache))

    want = in_memory()
    t_mem = timeit(in_memory, repeats)

    def overhead(t):
        return f"{(t / t_mem - 1) * 100:+.0f}%"

    rows = [[f"in memory (cconv, {cconv.get_num_threads()} threads)", f"{t_mem * 1e3:.0f}", f"{n / t_mem:.0f}", ""]]

    def graph(xd, dd):
        out, cache = cd.conv_forward(xd, w)
        return (out, *cd.conv_backward(dd, cache))

    # (From the client's memory: Dask warns of a large graph; the inputs are
    # persisted on the workers before the timing.)
    xd = da.from_array(x, chunks=(chunk, size, size))
    dd = da.from_array(dout, chunks=(chunk, size - k + 1, size - k + 1))
    got = dask.compute(*graph(xd, dd), scheduler="threads")
    for g, r, part in zip(got, want, ("out", "dx", "dw")):
        check(g, r, f"threaded scheduler {part}")
    t = timeit(lambda: dask.compute(*graph(xd, dd), scheduler="threads"), repeats)
    pool = dask.config.get("num_workers", None) or dask.system.CPU_COUNT
    rows.append([f"threaded scheduler, {pool} threads", f"{t * 1e3:.0f}", f"{n / t:.0f}", overhead(t)])

    for workers in (1, 2):
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                      host="127.0.0.1", dashboard_address=None, silence_logs=50) as cluster, \
                distributed.Client(cluster) as client:
            xp, dp = client.persist([xd, dd])
            distributed.wait([xp, dp])
            got = client.compute(list(graph(xp, dp)), sync=True)
            for g, r, part in zip(got, want, ("out", "dx", "dw")):
                check(g, r, f"LocalCluster of {workers} {part}")

            def run():
                outs = client.persist(list(graph(xp, dp)))
                distributed.wait(outs)
                del outs

            t = timeit(run, repeats)
            rows.append([f"LocalCluster, {workers} worker process{'es' if workers > 1 else ''} x 1 thread",
                         f"{t * 1e3:.0f}", f"{n / t:.0f}", overhead(t)])
    table(f"{n} images of {size}x{size} float32, {k}x{k} filter, forward + backward (chunks of {chunk} images)",
          ["", "ms", "images/s", "overhead vs in memory"], rows)


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def big_match(size, chunk, k, in_memory):
    rng = np.random.default_rng(1)
    template = rng.uniform(0, 1, (k, k)).astype(np.float32)
    image = da.random.default_rng(2).random((size, size), chunks=chunk, dtype=np.float32)
    rows = []
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=50) as cluster, \
            distributed.Client(cluster) as client:
        before = client.run(_peak_rss_mib)
        scores = cd.match_template(image, template)
        t = time.perf_counter()
        # Keep only a summary on the client: the best score and where.
        best = client.compute(scores.max(), sync=True)
        t_dask = time.perf_counter() - t
        peaks = client.run(_peak_rss_mib)
    chunk_mib = chunk * chunk * 4 / 2**20
    rows.append([f"cconv.dask, 2 workers, chunks {chunk}x{chunk}", f"{t_dask:.1f}",
                 " / ".join(f"{peaks[a]:.0f}" for a in sorted(peaks)),
                 " / ".join(f"{before[a]:.0f}" for a in sorted(before)), f"{chunk_mib:.0f}"])
    if in_memory:
        full = image.compute()
        t = time.perf_counter()
        want = cconv.match_template(full, template)
        t_mem = time.perf_counter() - t
        check(best, want.max(), "tiled maximum against the in-memory one", tol=1e-5, scale=1.0)
        rows.append([f"cconv.match_template in memory ({cconv.get_num_threads()} threads)", f"{t_mem:.1f}",
                     f"{_peak_rss_mib():.0f} (this process)", "", ""])
    table(f"One {size}x{size} float32 image, a {k}x{k} template (ccoeff_normed)",
          ["", "seconds", "peak RSS per worker, MiB", "RSS before, MiB", "chunk MiB"], rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (CI)")
    args = parser.parse_args(argv)
    print_header({"dask": dask.__version__, "distributed": distributed.__version__})
    # The large image first: worker processes started by a process that
    # already holds gigabytes would report its peak memory as theirs.
    if args.quick:
        big_match(2048, 512, 32, in_memory=True)
        layer(32, 128, 9, 4, 3)
    else:
        big_match(16384, 2048, 64, in_memory=True)
        layer(256, 512, 9, 16, 5)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
