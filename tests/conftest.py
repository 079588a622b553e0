"""Fixtures of the cconv test suite.

Helpers and references are plain modules the tests import (``cases.py``,
``reference.py``, ``fuzz/strategies.py``, ``fuzz/oracle.py``); only fixtures
live here.
"""

from __future__ import annotations

import importlib
import zlib

import numpy as np
import pytest


def pytest_collection_modifyitems(config, items) -> None:
    """Everything in tests/fuzz is a randomised run: marked ``slow``, left out of the quick subset."""
    for item in items:
        if "fuzz" in item.path.parts:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's node id (reproducible, distinct per test)."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(scope="session")
def photograph():
    """The demo photograph, mean removed, with noise and a 5x10 block of NaN
    pixels far below the eye; and the eye, cut from it before the noise."""
    from cconv import demo

    img = demo.load_grey(demo.default_image_path())
    img = img - img.mean()
    template = demo.cut_template(img, demo.DEFAULT_BOX)
    noisy = demo.add_noise(img, 50.0, 0)
    noisy[540:545, 3:13] = np.nan
    return noisy, template


def _builds(family: str) -> list:
    """``cconv.<family>`` in every build this CPU runs (baseline, x86-64-v3, x86-64-v4), as pytest params."""
    from cconv import _runtime

    found = []
    for suffix, level in (("", 0), ("_v3", 3), ("_v4", 4)):
        if level <= _runtime.cpu_level():
            try:
                found.append(pytest.param(importlib.import_module(f"cconv.{family}{suffix}"),
                                          id=suffix.strip("_") or "baseline"))
            except ImportError:  # a build without that twin
                pass
    return found


@pytest.fixture(params=_builds("_correlate"))
def correlate_build(request, monkeypatch):
    """The 2-D filter (``cconv._filter2d``) runs on one build of the direct loops for the test."""
    from cconv import _filter2d

    monkeypatch.setattr(_filter2d, "_loops", request.param)
    return request.param


@pytest.fixture(params=_builds("_exact"))
def exact_build(request, monkeypatch):
    """Every call of the test runs on one build of the exact sums (``cconv._exact``)."""
    from cconv import _dispatch

    monkeypatch.setitem(_dispatch.LOADED, "_exact", request.param)
    return request.param


@pytest.fixture(scope="session")
def exact_build_names():
    """The names of the builds ``exact_build`` runs the tests on."""
    return [p.id for p in _builds("_exact")]


@pytest.fixture
def on_build():
    """``on_build(kernels, script)``: the script's output, run in a process
    whose compiled loops are capped at one build (``CCONV_KERNELS``); skips
    the test where the CPU does not run that build, fails where the script
    fails or ran another build of the exact sums than asked for (its last
    line must print ``cconv._dispatch.exact_module().__name__``)."""
    import os
    import pathlib
    import subprocess
    import sys

    from cconv import _runtime

    def run(kernels: str, script: str) -> str:
        if {"baseline": 0, "v3": 3, "v4": 4}[kernels] > _runtime.cpu_level():
            pytest.skip(f"this CPU does not run the {kernels} build")
        done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "CCONV_KERNELS": kernels},
                              capture_output=True, text=True, timeout=300, cwd=pathlib.Path(__file__).resolve().parent)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().endswith("_exact" if kernels == "baseline" else f"_exact_{kernels}")
        return done.stdout

    return run
