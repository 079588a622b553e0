"""Fuzz of the thread-count knob: set_num_threads with any value."""

from __future__ import annotations

import numpy as np
from cases import MAX_THREADS
from hypothesis import event, given
from hypothesis import strategies as st

import cconv
from fuzz.oracle import Expect, attempt, check_raised
from fuzz.strategies import FUZZ

THREAD_COUNTS = st.one_of(
    st.integers(-3, 8),
    st.integers(MAX_THREADS - 3, MAX_THREADS + 3),
    st.integers(2**31 - 2, 2**80),
    st.sampled_from((0, -1, 1.0, 2.5, "2", None, True, False, np.int64(2), np.int32(3),
                     np.uint8(1), np.uint64(2**64 - 1), np.float64(2.0), [2], 1j,
                     np.int64(2**40), np.bool_(True), 100_000)),
)


@FUZZ
@given(n=THREAD_COUNTS)
def test_fuzz_set_num_threads(n):
    before = cconv.get_num_threads()
    integer = isinstance(n, (int, np.integer)) and not isinstance(n, (bool, np.bool_))
    valid = integer and 1 <= n <= MAX_THREADS
    try:
        _, exc, _ = attempt(cconv.set_num_threads, n)
        if exc is not None:
            expect = Expect(errors={(ValueError if integer else TypeError, "n")})
            check_raised(exc, expect)
            assert repr(n) in str(exc), f"the message does not show the value {n!r}: {exc}"
            assert cconv.get_num_threads() == before, "a refused count changed the setting"
            return
        assert valid, f"set_num_threads({n!r}) was accepted"
        assert cconv.get_num_threads() == (int(n) if cconv._runtime.openmp_enabled() else 1)
        event("set_num_threads ok")
        if n <= 8:  # (large counts start that many threads: no call made)
            out, _ = cconv.conv_forward(np.ones((3, 5, 5)), np.ones((2, 2)), method="direct")
            assert np.array_equal(out, np.full((3, 4, 4), 4.0))
    finally:
        cconv.set_num_threads(before)
