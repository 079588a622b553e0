"""Run every benchmark of the asv suite once, without asv: do they import and run?

    python benchmarks/asv_check.py          # each benchmark with its first (smallest) parameters
    python benchmarks/asv_check.py --all    # every combination of parameters

Imports each module of ``benchmarks/benchmarks/`` as asv would, then for
each benchmark (a ``time_``, ``timeraw_``, ``mem_``, ``peakmem_`` or
``track_`` method of a class, or such a function of a module) calls
``setup_cache``, ``setup``, the benchmark and ``teardown`` once, and prints
how long the call took.  An exception fails the run; a ``setup`` that
raises ``NotImplementedError`` skips that combination, as in asv.  A call
slower than 0.5 s (the suite's budget) is marked, not failed: this is a
check that the suite runs, not a measurement.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import itertools
import pkgutil
import time

import benchmarks  # the package beside this script: benchmarks/benchmarks/

PREFIXES = ("time_", "timeraw_", "mem_", "peakmem_", "track_")
BUDGET = 0.5  # seconds a call may take


def param_lists(params) -> list[list]:
    """asv's ``params``: a list of lists, or one list for a single parameter."""
    if not params:
        return []
    return [list(p) for p in params] if isinstance(params[0], (list, tuple)) else [list(params)]


def find(package):
    """(name, owner, benchmark name, params) of every benchmark: owner is a class or a module."""
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, obj in sorted(vars(module).items()):
            if inspect.isclass(obj) and obj.__module__ == module.__name__:
                for attr in sorted(a for a in dir(obj) if a.startswith(PREFIXES)):
                    params = getattr(getattr(obj, attr), "params", getattr(obj, "params", []))
                    yield f"{info.name}.{name}.{attr}", obj, attr, param_lists(params)
            elif inspect.isfunction(obj) and name.startswith(PREFIXES):
                yield f"{info.name}.{name}", module, name, param_lists(getattr(obj, "params", []))


def run_once(owner, attr, args) -> float | None:
    """Seconds of one call of the benchmark, after its setup; None where setup skips it."""
    instance = owner() if inspect.isclass(owner) else owner
    if hasattr(instance, "setup_cache"):
        args = (instance.setup_cache(), *args)
    try:
        if hasattr(instance, "setup"):
            instance.setup(*args)
    except NotImplementedError:
        return None
    try:
        start = time.perf_counter()
        getattr(instance, attr)(*args)
        return time.perf_counter() - start
    finally:
        if hasattr(instance, "teardown"):
            instance.teardown(*args)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--all", action="store_true", help="every combination of parameters, not only the first")
    args = parser.parse_args(argv)
    count = calls = 0
    for name, owner, attr, params in find(benchmarks):
        combos = list(itertools.product(*params)) if args.all else [tuple(p[0] for p in params)]
        times = {combo: run_once(owner, attr, combo) for combo in combos}
        ran = {combo: t for combo, t in times.items() if t is not None}
        count, calls = count + 1, calls + len(ran)
        slowest = max(ran, key=lambda combo: ran[combo], default=None)
        line = f"{name}: {len(ran)} of {len(combos)} ran"
        if slowest is not None:
            line += f", slowest {ran[slowest] * 1e3:.1f} ms {slowest}"
            line += f" (over the {BUDGET} s budget)" if ran[slowest] > BUDGET else ""
        print(line)
    if count == 0:
        raise SystemExit("asv_check: no benchmark found in benchmarks/benchmarks/")
    print(f"asv suite: {count} benchmarks, {calls} calls, all ran")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
