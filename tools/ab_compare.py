"""Compare two installations of cconv on the same calls, interleaved.

A noisy, shared machine makes two separate benchmark runs incomparable at
the few-percent level.  This script starts one worker process per Python
interpreter (each with its own cconv installed), sets up the same cases in
both, then alternates short bursts of timed calls between them for many
rounds.  Each round gives a paired ratio B/A of the bursts' medians; the
median of those ratios (with its quartiles) is robust to drift and to the
other processes on the machine.

Usage::

    python tools/ab_compare.py A_PYTHON B_PYTHON [--rounds 30] [--burst 7] [--case NAME ...]

The cases are defined in ``CASES`` below (code run in the worker with
``np`` and ``cconv`` imported): each has a setup and a statement.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time

import numpy as np

CASES = {
    "seed-fwd-f64": ("rng = np.random.default_rng(1); x = rng.standard_normal((1, 512, 512)); "
                     "w = rng.standard_normal((60, 60))",
                     "cconv.conv_forward(x, w)"),
    "seed-bwd-f64": ("rng = np.random.default_rng(1); x = rng.standard_normal((1, 512, 512)); "
                     "w = rng.standard_normal((60, 60)); c = cconv.conv_forward(x, w)[1]; "
                     "d = rng.standard_normal(c.out_shape)",
                     "cconv.conv_backward(d, c)"),
    "seed-fwd-f32": ("rng = np.random.default_rng(1); x = rng.standard_normal((1, 512, 512)).astype('f4'); "
                     "w = rng.standard_normal((60, 60)).astype('f4')",
                     "cconv.conv_forward(x, w)"),
    "3x3-fwd-f32": ("rng = np.random.default_rng(2); x = rng.standard_normal((64, 128, 128)).astype('f4'); "
                    "w = rng.standard_normal((3, 3)).astype('f4')",
                    "cconv.conv_forward(x, w)"),
    "3x3-bwd-f32": ("rng = np.random.default_rng(2); x = rng.standard_normal((64, 128, 128)).astype('f4'); "
                    "w = rng.standard_normal((3, 3)).astype('f4'); c = cconv.conv_forward(x, w)[1]; "
                    "d = rng.standard_normal(c.out_shape).astype('f4')",
                    "cconv.conv_backward(d, c)"),
    "3x3-fwd-f64": ("rng = np.random.default_rng(2); x = rng.standard_normal((64, 128, 128)); "
                    "w = rng.standard_normal((3, 3))",
                    "cconv.conv_forward(x, w)"),
    "3x3-bwd-f64": ("rng = np.random.default_rng(2); x = rng.standard_normal((64, 128, 128)); "
                    "w = rng.standard_normal((3, 3)); c = cconv.conv_forward(x, w)[1]; "
                    "d = rng.standard_normal(c.out_shape)",
                    "cconv.conv_backward(d, c)"),
}

# Seconds between bursts: OpenMP threads spin for a while after a parallel
# loop, and would steal the cores from the other worker's burst.
PAUSE = 0.3

WORKER = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import cconv
    env = {"np": np, "cconv": cconv}
    cases = json.loads(sys.argv[1])
    fns = {}
    for name, (setup, stmt) in cases.items():
        exec(setup, env)
        fns[name] = eval("lambda: " + stmt, dict(env))
        fns[name]()
    print("ready", flush=True)
    for line in sys.stdin:
        name, burst = line.split()
        times = []
        for _ in range(int(burst)):
            t = time.perf_counter(); fns[name](); times.append(time.perf_counter() - t)
        print(json.dumps(times), flush=True)
""")


def start(python: str, cases: dict) -> subprocess.Popen:
    proc = subprocess.Popen([python, "-c", WORKER, json.dumps(cases)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd="/")
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def burst(proc: subprocess.Popen, name: str, n: int) -> float:
    time.sleep(PAUSE)  # the other worker's OpenMP threads stop spinning meanwhile
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(f"{name} {n}\n")
    proc.stdin.flush()
    return float(np.median(json.loads(proc.stdout.readline())))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a")
    parser.add_argument("b")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--burst", type=int, default=7)
    parser.add_argument("--case", action="append", choices=sorted(CASES))
    args = parser.parse_args(argv)
    cases = {k: CASES[k] for k in (args.case or CASES)}
    print("| case | A ms (median) | B ms (median) | B / A median | quartiles |")
    print("|---|---|---|---|---|")
    for name in cases:
        ta, tb, ratios = [], [], []
        # The worker started second runs measurably slower (seen: 8-12% with
        # the same installation on both sides), so each half of the rounds
        # starts the workers in the other order.
        for half in range(2):
            if half == 0:
                a = start(args.a, {name: cases[name]})
                b = start(args.b, {name: cases[name]})
            else:
                b = start(args.b, {name: cases[name]})
                a = start(args.a, {name: cases[name]})
            for i in range(args.rounds // 2):
                first, second = (a, b) if i % 2 == 0 else (b, a)
                t1, t2 = burst(first, name, args.burst), burst(second, name, args.burst)
                x, y = (t1, t2) if i % 2 == 0 else (t2, t1)
                ta.append(x)
                tb.append(y)
                ratios.append(y / x)
            for p in (a, b):
                assert p.stdin is not None
                p.stdin.close()
                p.wait()
        q1, q2, q3 = np.percentile(ratios, [25, 50, 75])
        print(f"| {name} | {np.median(ta) * 1e3:.3f} | {np.median(tb) * 1e3:.3f} | {q2:.3f} | {q1:.3f}-{q3:.3f} |",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
