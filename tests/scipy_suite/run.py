"""Run SciPy's own tests of correlate2d/convolve2d and ndimage's correlate/convolve
on cconv's drop-ins (see ``cconv_scipy_plugin.py`` for what runs and why).

    python tests/scipy_suite/run.py [--require-scipy-tests] [pytest options]

Collects the installed SciPy's ``scipy.signal.tests.test_signaltools`` and
``scipy.ndimage.tests.test_filters`` with this folder's ``pytest.ini`` (not
the project's: SciPy's tests run under SciPy's own conftest), on NumPy
arrays only (``SCIPY_ARRAY_API`` is unset).  Prints how many of SciPy's
tests ran, passed and were deselected, and exits with pytest's status.

If the installed SciPy ships no test files (a trimmed install), it says so
and exits 0, unless ``--require-scipy-tests`` is given (as in CI): then 1.
Not part of the default ``pytest`` run: it depends on SciPy's private test
modules, and it takes about a minute.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
MODULES = ("scipy.signal.tests.test_signaltools", "scipy.ndimage.tests.test_filters")


def main(argv: list[str]) -> int:
    require = "--require-scipy-tests" in argv
    argv = [a for a in argv if a != "--require-scipy-tests"]
    # NumPy arrays only: other array-API backends are out of cconv's scope.
    if os.environ.pop("SCIPY_ARRAY_API", None) is not None:
        print("scipy_suite: SCIPY_ARRAY_API unset (NumPy arrays only)")
    import scipy

    missing = [m for m in MODULES if _find(m) is None]
    if missing:
        print(f"scipy_suite: SKIPPED: SciPy {scipy.__version__} at {pathlib.Path(scipy.__file__).parent} "
              f"has no test files ({', '.join(missing)} not found); install a SciPy wheel, which "
              f"ships them")
        return 1 if require else 0
    sys.path.insert(0, str(HERE))
    import cconv_scipy_plugin  # noqa: E402  (needs the path above)
    import pytest

    args = ["-c", str(HERE / "pytest.ini"), "--rootdir", str(HERE), "--pyargs", *MODULES, *argv]
    return int(pytest.main(args, plugins=[cconv_scipy_plugin]))


def _find(name: str):
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
