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


def _exact_builds():
    """(name, module) of every build of the exact sums (``cconv._exact``) this CPU runs."""
    from cconv import _runtime

    found = []
    for suffix, level in (("", 0), ("_v3", 3), ("_v4", 4)):
        if level > _runtime.cpu_level():
            continue
        try:
            found.append(pytest.param(importlib.import_module(f"cconv._exact{suffix}"), id=suffix.strip("_") or "baseline"))
        except ImportError:
            continue
    return found


@pytest.fixture(params=_exact_builds())
def exact_build(request, monkeypatch):
    """Every call of the test runs on one build of the exact sums."""
    from cconv import _build

    monkeypatch.setattr(_build, "_exact", request.param)
    return request.param


@pytest.fixture(scope="session")
def exact_build_names():
    """The names of the builds ``exact_build`` runs the tests on."""
    return [p.id for p in _exact_builds()]
