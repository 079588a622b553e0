"""The fuzz's oracle: what a call may do, worked out from the specification.

For every call the fuzz makes, it either

* returns results equal to the reference (normwise relative error within the
  tolerance of the dtype it computed in, which must be the documented one),
  in new C-contiguous arrays that share no memory with any input; or
* raises ``ValueError`` / ``TypeError`` whose message names an argument the
  specification says is wrong (possibly several: any of them may be
  reported); or
* for a huge declared size (a zero-stride ``np.broadcast_to`` view), raises
  ``MemoryError`` (or ``ValueError``) naming the shape, quickly, before
  allocating: the peak of memory traced (tracemalloc, which sees NumPy's
  allocations) during the call stays under ``HUGE_PEAK``.

Nothing else: no other exception type, no warning (warnings are turned into
errors around every call), no crash.  Inputs are never modified: the bytes
of every array involved (and of the buffer it views) are hashed before and
after each call (:class:`Guard`).  Nothing here imports cconv.
"""

from __future__ import annotations

import hashlib
import math
import tracemalloc
import warnings
from dataclasses import dataclass, field

import numpy as np
from cases import names
from hypothesis import event

# A huge declared size must be refused at once: no machine has this much.
HUGE_BYTES = 2**40  # 1 TiB
HUGE_PEAK = 64 * 2**20  # bytes traced while refusing: far below any copy of the input


def is_computable(dt: np.dtype) -> bool:
    """The specification's dtype rule, written out independently."""
    return dt.kind in "biu" or (dt.kind == "f" and dt.itemsize <= 8)


@dataclass
class Expect:
    """Acceptable errors as (exception type, argument name) pairs, or success."""

    errors: set = field(default_factory=set)
    huge: str | None = None  # the shape a MemoryError must name

    def add(self, exc, name):
        self.errors.add((exc, name))


def convert(value, name: str, expect: Expect):
    """What NumPy makes of ``value`` (cconv takes any array_like), and its faults."""
    if isinstance(value, np.ma.MaskedArray):
        expect.add(TypeError, name)
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            arr = np.asarray(value)
    except (ValueError, TypeError):
        expect.add(ValueError, name)  # ragged and other non-rectangular input
        return None
    if not is_computable(arr.dtype):
        expect.add(TypeError, name)
        return None
    return arr


def check_raised(exc: BaseException, expect: Expect, peak: int = 0) -> None:
    """``exc`` must be one of the acceptable errors, naming its argument."""
    message = str(exc)
    ok = [name for typ, name in expect.errors if type(exc) is typ and names(message, name)]
    if ok:
        event(f"{type(exc).__name__} naming {ok[0]}")
        return
    # exactly MemoryError: not NumPy's _ArrayMemoryError, which means it tried
    if expect.huge is not None and type(exc) in (MemoryError, ValueError):
        assert expect.huge in message, (
            f"{type(exc).__name__} does not name the shape {expect.huge}: {message}"
        )
        assert peak < HUGE_PEAK, f"allocated {peak / 2**20:.0f} MiB before refusing"
        event(f"huge: {type(exc).__name__}")
        return
    raise AssertionError(
        f"raised {type(exc).__name__}: {message!r}\n"
        f"acceptable: {sorted((t.__name__, n) for t, n in expect.errors)}"
        + (f", MemoryError naming {expect.huge}" if expect.huge else "")
    )


def attempt(fn, *args, trace=False, **kwargs):
    """Run ``fn``; return (result, exception, peak bytes traced).

    Warnings are errors.  With ``trace``, the peak is tracemalloc's during
    the call (NumPy reports its data allocations to it); else 0.
    """
    if trace:
        tracemalloc.start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - classified by the caller
        return None, exc, _stop_trace(trace)
    return result, None, _stop_trace(trace)


def call_as_expected(expect: Expect, guard, fn, *args, **kwargs):
    """Call ``fn`` as :func:`attempt` does and hold the outcome to ``expect``.

    The inputs ``guard`` watches must come back unchanged.  An error must be
    one ``expect`` accepts (then None is returned: no public function
    returns None); a result, that no error was expected (it is returned).
    """
    result, exc, peak = attempt(fn, *args, trace=expect.huge is not None, **kwargs)
    guard.check_unchanged()
    if exc is not None:
        check_raised(exc, expect, peak)
        return None
    assert not expect.errors and expect.huge is None, (
        f"returned, but expected one of {expect.errors} (huge: {expect.huge})"
    )
    return result


def _stop_trace(trace: bool) -> int:
    if not trace:
        return 0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def root(a: np.ndarray) -> np.ndarray:
    """The array whose buffer ``a`` views."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _fingerprint(a: np.ndarray):
    """Shape, strides, flags and bytes of ``a`` and of the buffer it views."""
    base = root(a)
    parts = [a.shape, a.strides, a.dtype.str, a.flags.writeable, base.flags.writeable]
    parts.append(hashlib.sha256(base.tobytes(order="A")).hexdigest())
    if a.size <= 10**6:
        parts.append(hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest())
    return tuple(parts)


class Guard:
    """Checks that ``operands`` are unchanged and share no memory with outputs."""

    def __init__(self, *ops):
        self.ops = ops
        self.arrays = [a for op in ops for a in op.arrays]
        self.before = [_fingerprint(a) for a in self.arrays]

    def check_unchanged(self):
        for a, fp in zip(self.arrays, self.before):
            assert _fingerprint(a) == fp, "an input array was modified"
        for op in self.ops:
            if not op.arrays:
                assert op.value == op.saved or op.value is op.saved, "an input was modified"

    def check_fresh(self, *results):
        for r in results:
            assert type(r) is np.ndarray, type(r)
            assert r.flags.c_contiguous and r.flags.writeable
            for a in self.arrays:
                assert not np.shares_memory(r, root(a)), "output shares memory with an input"
        for i, r in enumerate(results):
            for s in results[i + 1:]:
                assert not np.shares_memory(r, s), "two outputs share memory"


def amax(a) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float(np.max(np.abs(a))) if a.size else 0.0


def forward_expect(xa, wa, x_name="x", w_name="w", expect=None) -> Expect:
    """Shape rules between converted ``xa`` and ``wa`` (either may be None)."""
    expect = expect or Expect()
    if xa is not None and xa.ndim != 3:
        expect.add(ValueError, x_name)
        xa = None
    if wa is not None and wa.ndim not in (2, 3):
        expect.add(ValueError, w_name)
        wa = None
    if xa is not None and (xa.shape[1] == 0 or xa.shape[2] == 0):
        expect.add(ValueError, x_name)
        xa = None
    if wa is not None and (wa.shape[-2] == 0 or wa.shape[-1] == 0):
        expect.add(ValueError, w_name)
        wa = None
    if xa is None or wa is None:
        return expect
    if wa.shape[-2] > xa.shape[1] or wa.shape[-1] > xa.shape[2]:
        expect.add(ValueError, w_name)
        expect.add(ValueError, x_name)
    if wa.ndim == 3:
        nx, nw = xa.shape[0], wa.shape[0]
        if nx != nw and 1 not in (nx, nw):
            expect.add(ValueError, w_name)
            expect.add(ValueError, x_name)
    return expect


def declared_bytes(a: np.ndarray, itemsize: int) -> int:
    return math.prod(a.shape) * itemsize
