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
