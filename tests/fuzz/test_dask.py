"""Fuzz of cconv.dask: the oracle is the in-memory call on the same data.

cconv.dask validates with the in-memory functions' own rules, so for any
input (shapes, dtypes, chunkings, filters of any size) it must either give
the in-memory result, chunked in any way, or raise the same exception type
naming the same argument.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from cases import names
from hypothesis import event, given
from hypothesis import strategies as st

import cconv
from fuzz.oracle import amax, attempt
from fuzz.strategies import FUZZ, REAL_DTYPES, fill


@st.composite
def dask_case(draw):
    n = draw(st.integers(0, 3))
    h, wd = draw(st.integers(0, 20)), draw(st.integers(0, 20))
    if draw(st.integers(0, 4)):  # mostly a filter that fits
        hh, ww = draw(st.integers(1, max(1, h))), draw(st.integers(1, max(1, wd)))
    else:
        hh, ww = draw(st.integers(0, 8)), draw(st.integers(0, 8))
    xdt = draw(st.sampled_from(REAL_DTYPES * 4 + (np.dtype("c16"), np.dtype("O"))))
    wdt = draw(st.sampled_from(REAL_DTYPES))
    wshape = draw(st.sampled_from(((hh, ww),) * 3 + ((1, hh, ww), (n, hh, ww), (n, hh, ww), (n + 1, hh, ww), (hh,))))
    chunks = tuple(draw(st.integers(1, max(size, 1))) for size in (n, h, wd))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    x = fill(rng, (n, h, wd), xdt, "normal") if xdt.kind != "O" else np.zeros((n, h, wd), object)
    w = fill(rng, wshape, wdt, "normal")
    return x, w, chunks, draw(st.sampled_from(("layer", "match")))


@FUZZ
@given(case=dask_case())
def test_fuzz_dask_equals_in_memory(case):
    da = pytest.importorskip("dask.array")
    cd = pytest.importorskip("cconv.dask")
    x, w, chunks, what = case
    if what == "layer":
        want, exc_mem, _ = attempt(cconv.conv_forward, x, w)
    else:
        want, exc_mem, _ = attempt(cconv.match_template, x, w)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cd.ChunkWarning)
        xd = da.from_array(x, chunks=chunks) if x.dtype.kind != "O" else x
        try:
            if what == "layer":
                lazy, cache = cd.conv_forward(xd, w)
            else:
                lazy = cd.match_template(xd, w)
            got = lazy.compute(scheduler="sync")
            exc = None
        except Exception as e:  # noqa: BLE001 - compared with the in-memory call's
            exc = e
    if exc_mem is not None:
        if what == "layer" and exc is not None and "filters but x has" in str(exc):
            return  # K filters against one image: in memory only (documented)
        assert exc is not None, f"in memory raised {exc_mem!r}, cconv.dask returned"
        assert type(exc) is type(exc_mem), f"{exc!r} vs in memory {exc_mem!r}"
        event(f"dask {what}: refused like in memory")
        return
    if exc is not None:
        assert what == "layer" and w.ndim == 3 and x.shape[0] == 1 and w.shape[0] > 1, repr(exc)
        assert isinstance(exc, ValueError) and names(str(exc), "w")
        event("dask layer: K filters against one image refused")
        return
    want = want[0] if what == "layer" else want
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(amax(want), 1.0)
    assert np.max(np.abs(got - want), initial=0.0) <= 1e-9 * scale if want.dtype == np.float64 \
        else np.max(np.abs(got - want), initial=0.0) <= 1e-4 * scale
    event(f"dask {what}: equal")
