"""Fixtures of the cconv test suite.

Helpers and references are plain modules the tests import (``cases.py``,
``reference.py``, ``fuzz/strategies.py``, ``fuzz/oracle.py``); only fixtures
live here.
"""

from __future__ import annotations

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
