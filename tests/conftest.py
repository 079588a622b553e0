"""Fixtures of the cconv test suite.

Helpers and references are plain modules the tests import (``cases.py``,
``reference.py``); only fixtures live here.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest


@pytest.fixture
def rng(request) -> np.random.Generator:
    """A generator seeded from the test's node id (reproducible, distinct per test)."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))
