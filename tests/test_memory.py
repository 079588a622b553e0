"""Calls that would need more memory than the machine has are refused up front."""

from __future__ import annotations

import time

import numpy as np
import pytest

import cconv
from cconv import _validation


@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
def test_huge_declared_image_is_refused_before_allocating(method):
    # 320 GB of float64 as the kernels would need it, declared with zero strides.
    x = np.broadcast_to(np.float64(1.0), (1, 200_000, 200_000))
    start = time.perf_counter()
    with pytest.raises(MemoryError, match=r"x\(1, 200000, 200000\).*GiB"):
        cconv.conv_forward(x, np.ones((3, 3)), method=method)
    assert time.perf_counter() - start < 1.0  # refused, not attempted


@pytest.mark.parametrize("method", ["direct", "fft"])
def test_budget_is_checked_in_both_passes(monkeypatch, method):
    x = np.zeros((40, 1024, 1024))  # 320 MiB
    w = np.ones((3, 3))
    out, cache = cconv.conv_forward(x, w, method="direct")
    # Pretend only 300 MiB are free: each pass allocates at least an output
    # as large as x, so both must be refused, and a small call still runs.
    monkeypatch.setattr(_validation, "_available_bytes", lambda: 300 * 2**20)
    with pytest.raises(MemoryError, match=r"conv_forward\(x\(40, 1024, 1024\)"):
        cconv.conv_forward(x, w, method=method)
    with pytest.raises(MemoryError, match=r"conv_backward\(dout\(40, 1022, 1022\)"):
        cconv.conv_backward(out, cache, method=method)
    small, _ = cconv.conv_forward(np.ones((1, 64, 64)), w, method=method)
    assert small.shape == (1, 62, 62)
