"""The 4-D layer on real networks' layers: cconv against PyTorch's CPU convolution.

    python benchmarks/bench_layers.py [--quick] [--threads 2] [--repeats 15]

The same table as ``python benchmarks/bench.py --only layers`` (the code is
there, ``bench.layers``): for each layer of ``bench.LAYERS`` (ResNet-18 and
MobileNet shapes), both dtypes, forward and forward+backward, the median
times of cconv and of ``torch.nn.functional.conv2d`` taken in alternation,
the speed-up (torch's time / cconv's time), cconv's GFLOP/s and its share of
the matrix-product ceiling of its dtype, issue 23's goal and whether it is
met.  ``--threads`` sets cconv's and torch's thread count (default: cconv's).
"""

from __future__ import annotations

import argparse
import sys

import bench

import cconv


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="one image per layer, 3 repeats (a smoke run)")
    p.add_argument("--threads", type=int, default=None, help="cconv's and torch's threads (default: cconv's)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per measurement")
    args = p.parse_args(argv)
    if bench.torch is None:
        print("bench_layers needs PyTorch (pip install -r benchmarks/requirements.txt)", file=sys.stderr)
        return 1
    if args.threads:
        cconv.set_num_threads(args.threads)
    forward = ["--only", "layers"] + (["--quick"] if args.quick else [])
    if args.repeats:
        forward += ["--repeats", str(args.repeats)]
    return bench.main(forward)


if __name__ == "__main__":
    sys.exit(main())
