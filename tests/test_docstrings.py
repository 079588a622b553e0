"""The Examples sections of cconv's docstrings, run as doctests.

Every Python module of the installed package is searched (the public
functions live in private modules: ``cconv._layer3d``, ``cconv._match``, ...),
as ``pytest --doctest-modules --pyargs cconv`` would, but from here, so that
the README's test command runs them and a wheel's test run checks the
wheel's own docstrings.  The printed outputs must hold on every NumPy cconv
supports (1.24 to 2.x), so the examples print Python numbers, not NumPy
scalars, whose repr changed in NumPy 2.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.machinery
import importlib.util
import pkgutil

import pytest

import cconv


def _examples(module_name: str) -> list[doctest.DocTest]:
    """The docstrings of ``module_name`` that hold examples."""
    module = importlib.import_module(module_name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    return [t for t in finder.find(module, module_name) if t.examples]


def _modules_with_examples() -> list[str]:
    names = []
    for _, name, is_pkg in pkgutil.iter_modules(cconv.__path__, "cconv."):
        if is_pkg or name == "cconv.__main__":
            continue
        origin = importlib.util.find_spec(name).origin or ""
        if origin.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)):
            # Compiled modules: signatures, no examples; and the per-ISA
            # twins must not be imported on a CPU that lacks their ISA.
            continue
        if name == "cconv.dask" and importlib.util.find_spec("dask") is None:
            continue  # cconv.dask needs Dask, which cconv[test] brings
        if _examples(name):
            names.append(name)
    return sorted(names)


MODULES = _modules_with_examples()


def test_examples_found() -> None:
    """The search finds the examples (a broken search would pass vacuously)."""
    for name in ("cconv._layer3d", "cconv._layer4d", "cconv._match", "cconv.testing", "cconv._signal", "cconv._ndimage"):
        assert name in MODULES


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name: str) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in _examples(module_name):
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0, f"{results.failed} of {results.attempted} examples failed in {module_name} (above)"
