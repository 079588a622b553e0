"""Hypothesis fuzz of every public entry point.

Each call gets arbitrary shapes (sizes 0 and 1, filters larger than images,
0-D to 4-D arrays), every NumPy dtype kind, every memory layout (Fortran,
sliced, negative and zero strides, read-only, unaligned, byte-swapped,
subclasses, masked) and things that are not arrays at all (lists, ragged
lists, tuples, scalars, None, memoryview, bytes, str, dicts, sets).

The property, for every call: it either

* returns results equal to the SciPy reference (normwise relative error within
  the tolerance of the dtype it computed in, which must be the documented one),
  in new C-contiguous arrays that share no memory with any input; or
* raises ``ValueError`` / ``TypeError`` whose message names an argument the
  specification says is wrong (``x``, ``w``, ``b``, ``dout``, ``cache``,
  ``method``, the 4-D layer's ``stride``, ``padding``, ``dilation``,
  ``groups``, and ``a``, ``h``, ``n``); or
* for a huge declared size (a zero-stride ``np.broadcast_to`` view), raises
  ``MemoryError`` (or ``ValueError``) naming the shape, quickly, before
  allocating: the peak of memory traced (tracemalloc, which sees NumPy's
  allocations) during the call stays under 64 MiB.  Shapes whose byte size
  overflows int64 cannot be created by NumPy and are skipped.

Nothing else: no other exception type, no warning (warnings are turned into
errors around every call), no crash.  Inputs are never modified: the bytes
of every array involved (and of the buffer it views) are hashed before and
after each call.

The expected outcome is worked out independently of cconv, from the
specification: which argument is at fault (possibly several: any of them may
be reported), else the reference result (SciPy's for the 3-D layer, the
window/einsum ``layer_forward``/``layer_backward`` for the 4-D one).

``cconv.dask`` (when Dask is installed) has its own oracle: the in-memory
call on the same data, over random chunkings; it must give the same result
or refuse with the same exception type.

The 4-D layer (``conv2d_forward``/``conv2d_backward``) gets, besides the
above: (N, C, H, W) shapes with groups, filters larger than the padded image
and channels that do not match; every option (stride, padding, dilation,
groups) valid in every spelling (int, NumPy integer, tuple or list pair,
'valid'/'same', large strides) and invalid (0, negative, float, None, bool,
string, 1- and 3-tuples); a bias absent, of the wrong length or ndim or
dtype; each method; and in the backward pass, dout of the wrong dtype or
shape, and caches that are not a ``Conv2dCache`` (the 3-D layer's
``ConvCache`` among them).

``match_template`` gets (H, W) and (N, H, W) images and (HH, WW) and
(K, HH, WW) templates (templates larger than the image, leading sizes that
do not broadcast, empty ones, wrong ndims, junk), each of the six methods
and unknown ones, ``pad_input`` bools and non-bools, and a huge image.  Each
score map is checked against ``reference.match_scores`` on its pair: the
normalised scores within 1e-9 (float64) / 2e-4 (float32) absolute, in their
range, and exactly the documented value (0; sqdiff_normed 1) on windows or
templates that are flat (constant for ccoeff_normed, all zero for the
others); the others normwise on the scale of their terms.

``find_matches`` gets score maps of distinct values (with NaN and
infinities) and with ties, of every real dtype and layout (junk and wrong
ndims too), and every option valid and invalid.  Every match must be a
non-NaN score of the map that meets the threshold, best first, no two in one
map within ``min_distance``; on maps whose candidates are distinct, the list
must be exactly that of a greedy reference (best candidate first, accepted
unless an accepted match of its map is within ``min_distance``).

Environment
-----------
``CCONV_FUZZ_EXAMPLES``
    Hypothesis examples per fuzz test (default 40, so CI stays fast: the
    file runs in a few seconds; ``CCONV_FUZZ_EXAMPLES=500``, a long run,
    takes under a minute).  No example database is written.

The regression tests at the end pin, one minimal reproduction each, the bugs
the fuzz found (all fixed) in ``cconv.testing``, ``set_num_threads`` and
``conv2d_forward`` (an option of 2**63 or more raised OverflowError),
``match_template`` (inputs not in C order) and ``find_matches`` (a peak
beside a suppressed candidate lost, the worst infinity never a match, a
threshold beyond float, a huge ``min_distance``).
"""

from __future__ import annotations

import copy
import hashlib
import math
import os
import re
import subprocess
import sys
import tracemalloc
import warnings
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import cconv
from cconv.testing import numerical_gradient, rel_error

EXAMPLES = int(os.environ.get("CCONV_FUZZ_EXAMPLES", "40"))

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=False,
    database=None,
    print_blob=True,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)

METHODS = ("auto", "direct", "fft")
BAD_METHODS = (None, "FFT", "", "naive", 3)

# A huge declared size must be refused at once: no machine has this much.
HUGE_BYTES = 2**40  # 1 TiB
HUGE_PEAK = 64 * 2**20  # bytes traced while refusing: far below any copy of the input


# --------------------------------------------------------------------------
# dtypes, values, layouts, forms
# --------------------------------------------------------------------------

# Real kinds cconv computes in (bool/int -> float64, float16/32 -> float32).
REAL_DTYPES = tuple(
    np.dtype(d)
    for d in (
        "?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8",
        "f2", "f4", "f8", ">f8", ">i4", ">f4", ">u2",
    )
)
# Kinds it refuses with TypeError.  np.longdouble is float64 on some
# platforms (then it is accepted); the oracle decides from itemsize.
BAD_DTYPES = tuple(
    np.dtype(d)
    for d in (
        np.longdouble, "c8", "c16", "O", "U3", "S3", "M8[s]", "m8[ms]",
        [("a", "<i4"), ("b", "<f8")], "V8",
    )
)
ALL_DTYPES = REAL_DTYPES * 2 + BAD_DTYPES  # weighted towards the computable
# For calls meant to succeed: every real kind, and float32 often enough that
# both operands are float32 (the native float32 path) in a fair share.
VALID_DTYPES = REAL_DTYPES + (np.dtype("f4"),) * 8 + (np.dtype("f8"),) * 4

STYLES = ("normal", "normal", "normal", "small", "zeros", "const", "wide")

LAYOUTS = (
    "C", "C", "C", "F", "transposed", "sliced", "negative", "zero_stride",
    "readonly", "unaligned", "unaligned_writeable", "byteswapped",
    "readonly_sliced_negative",
)

ARRAY_FORMS = ("array", "array", "array", "array", "array", "list", "tuple",
               "memoryview", "subclass")
JUNK_FORMS = ("masked", "ragged", "scalar", "none", "bytes", "bytes_view",
              "dict", "str", "set")
ALL_FORMS = ARRAY_FORMS * 3 + JUNK_FORMS
VALID_FORMS = ("array",) * 6 + ("list", "tuple", "memoryview", "subclass")


def _is_computable(dt: np.dtype) -> bool:
    """The specification's dtype rule, written out independently."""
    return dt.kind in "biu" or (dt.kind == "f" and dt.itemsize <= 8)


def _compute_dtype(*dtypes) -> np.dtype:
    """float32 when every operand is float16/float32, else float64."""
    for dt in dtypes:
        if not (dt.kind == "f" and dt.itemsize <= 4):
            return np.dtype(np.float64)
    return np.dtype(np.float32)


_SCALES = {
    # Float magnitudes that keep every product and sum representable in the
    # dtype cconv computes in (float16 inputs compute in float32).
    2: (1e-2, 1.0, 1e2, 1e3),
    4: (1e-6, 1e-3, 1.0, 1e3, 1e6),
    8: (1e-30, 1e-6, 1.0, 1e6, 1e30),
}


def _fill(rng: np.random.Generator, shape, dt: np.dtype, style: str) -> np.ndarray:
    """Values of ``dt`` in ``shape``, native byte order (layouts swap later)."""
    native = dt.newbyteorder("=") if dt.byteorder not in "|=" else dt
    if style == "zeros":
        return np.zeros(shape, native)
    if style in ("distinct", "specials") and dt.kind in "biuf":
        return _score_values(rng, shape, native, specials=style == "specials")
    if dt.kind == "b":
        if style == "const":
            return np.ones(shape, native)
        return rng.random(shape) < 0.5
    if dt.kind in "iu":
        info = np.iinfo(native)
        if style == "const":
            return np.full(shape, 3, native)
        if style == "wide":  # the whole range: float64 rounding included
            return rng.integers(info.min, info.max, size=shape, dtype=native, endpoint=True)
        lo = 0 if dt.kind == "u" else -8
        return rng.integers(lo, 8, size=shape).astype(native)
    if dt.kind == "f":
        scale = _SCALES.get(dt.itemsize, (1.0,))
        if style == "const":
            return np.full(shape, 1.5, native)
        if style == "small":
            return rng.integers(-4, 5, size=shape).astype(native)
        s = scale[rng.integers(len(scale))] if style == "wide" else 1.0
        return (rng.standard_normal(shape) * s).astype(native)
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(native)
    if dt.kind == "O":
        out = np.empty(shape, dtype=object)
        flat = out.reshape(-1)
        for i in range(flat.size):
            flat[i] = float(rng.standard_normal())
        return out
    if dt.kind in "US":
        return rng.integers(0, 9, size=shape).astype(native)  # "3", b"7": numeric text
    if dt.kind in "mM":
        return rng.integers(0, 1000, size=shape).astype(native)
    return np.zeros(shape, native)  # structured, void


def _score_values(rng: np.random.Generator, shape, dt: np.dtype, specials: bool) -> np.ndarray:
    """Score maps: distinct values where ``dt`` holds them (bool cannot), in
    random places; ``specials`` puts NaN, inf and -inf (repeats possible) in
    a float map."""
    n = math.prod(shape)
    if dt.kind == "b":
        return rng.random(shape) < 0.5
    # At most 3 * 9 * 9 values: integers (and halves) exact in int8 .. float16.
    values = rng.permutation(n) - (0 if dt.kind == "u" else n // 2)
    out = (values * 0.5 if dt.kind == "f" else values).astype(dt).reshape(shape)
    if specials and dt.kind == "f" and n:
        flat = out.reshape(-1)
        where = rng.choice(n, size=int(rng.integers(1, min(n, 4) + 1)), replace=False)
        flat[where] = rng.choice(np.array([np.nan, np.inf, -np.inf]), size=where.size)
    return out


def _sentinel(dt: np.dtype):
    if dt.kind == "f" or dt.kind == "c":
        return np.nan  # reading a gap of a strided view would show
    if dt.kind in "iu":
        return 99
    return None


def _layout(a: np.ndarray, layout: str) -> np.ndarray:
    """``a``'s values (except zero_stride, which repeats some) in ``layout``."""
    nd = a.ndim
    if layout == "C":
        return np.array(a, order="C", copy=True)
    if layout == "F":
        return np.array(a, order="F", copy=True)
    if layout == "transposed":
        return np.array(a.T, order="C", copy=True).T
    if layout == "sliced":
        steps = (2, 3, 2, 3, 2)[:nd]
        big = np.empty(tuple(s * k for s, k in zip(a.shape, steps)), dtype=a.dtype)
        fill = _sentinel(a.dtype)
        if fill is not None:
            big[...] = fill
        view = big[tuple(slice(None, None, k) for k in steps) + (Ellipsis,)]
        view[...] = a
        return view
    flip = (slice(None, None, -1),) * nd + (Ellipsis,)  # Ellipsis: 0-D stays an array
    if layout == "negative":
        return np.array(a[flip], order="C", copy=True)[flip]
    if layout == "zero_stride":
        if a.size == 0 or nd == 0:
            return np.broadcast_to(np.array(a, copy=True), a.shape)
        axes = [i for i in range(nd) if a.shape[i] > 1] or [0]
        index = [slice(None)] * nd
        index[axes[0]] = slice(0, 1)
        return np.broadcast_to(np.array(a[tuple(index)], copy=True), a.shape)
    if layout == "readonly":
        b = np.array(a, copy=True)
        b.flags.writeable = False
        return b
    if layout in ("unaligned", "unaligned_writeable"):
        if a.dtype.hasobject or a.size == 0:
            return _layout(a, "readonly" if layout == "unaligned" else "C")
        raw = b"\0" + np.ascontiguousarray(a).tobytes()
        buf = raw if layout == "unaligned" else bytearray(raw)  # bytes: read-only
        return np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    if layout == "byteswapped":
        return np.array(a, dtype=a.dtype.newbyteorder(), copy=True)
    if layout == "readonly_sliced_negative":
        b = _layout(a[flip], "sliced")[flip]
        b.flags.writeable = False
        return b
    raise AssertionError(layout)


class _Sub(np.ndarray):
    """A plain ndarray subclass: must be accepted like an ndarray."""


def _ragged(a: np.ndarray):
    nested = a.tolist() if a.ndim >= 2 and a.size else [[1.0, 2.0], [3.0]]
    if not isinstance(nested, list):
        return [[1.0], [2.0, 3.0]]
    inner = nested
    while isinstance(inner[0], list) and inner[0] and isinstance(inner[0][0], list):
        inner = inner[0]
    inner[0] = list(inner[0]) + [0.0]  # one row longer than the others
    return nested


def _form(a: np.ndarray, form: str, keep_shape: bool = False):
    """What is passed for the array ``a``: ``(value, arrays that value holds)``.

    ``keep_shape``: a value NumPy turns back into an array of ``a``'s shape
    (a list of an empty array would lose it).
    """
    if keep_shape and form in ("list", "tuple") and 0 in a.shape:
        form = "array"
    if form == "array":
        return a, [a]
    if form == "list":
        return a.tolist(), []
    if form == "tuple":
        def to_tuple(v):
            return tuple(to_tuple(i) for i in v) if isinstance(v, list) else v
        return to_tuple(a.tolist()), []
    if form == "memoryview":
        try:
            return memoryview(a), [a]
        except (ValueError, TypeError, BufferError, NotImplementedError):
            return a, [a]  # datetime, object, ...: no buffer export
    if form == "subclass":
        return a.view(_Sub), [a]
    if form == "masked":
        return np.ma.masked_array(a, mask=np.zeros(a.shape, bool)), [a]
    if form == "ragged":
        return _ragged(a), []
    if form == "scalar":
        return 2.5, []
    if form == "none":
        return None, []
    if form == "bytes":
        return b"\x01\x02\x03\x04\x05\x06\x07\x08", []
    if form == "bytes_view":
        raw = bytearray(b"\x01\x02\x03\x04")
        return memoryview(raw), [np.frombuffer(raw, np.uint8)]
    if form == "dict":
        return {"x": 1.0}, []
    if form == "str":
        return "abc", []
    if form == "set":
        return {1.0, 2.0}, []
    raise AssertionError(form)


@dataclass
class Operand:
    value: object
    arrays: list
    desc: str
    saved: object = None  # a deep copy of a value holding no array, to compare after


@st.composite
def operands(draw, shape, dtypes=ALL_DTYPES, forms=ALL_FORMS, layouts=LAYOUTS, styles=STYLES,
             keep_shape=False):
    dt = draw(st.sampled_from(dtypes))
    style = draw(st.sampled_from(styles))
    layout = draw(st.sampled_from(layouts))
    form = draw(st.sampled_from(forms))
    seed = draw(st.integers(0, 2**32 - 1))
    base = _fill(np.random.default_rng(seed), tuple(shape), dt, style)
    if not dt.isnative:
        base = base.astype(dt)
    arr = _layout(base, layout)
    value, arrays = _form(arr, form, keep_shape)
    op = Operand(value, arrays, f"{form}/{layout}/{arr.dtype.str}/{style}/{tuple(shape)}/seed={seed}")
    if not arrays:
        op.saved = copy.deepcopy(value)
    return op


# --------------------------------------------------------------------------
# shapes
# --------------------------------------------------------------------------

@st.composite
def conv_shapes(draw):
    """(x shape, w shape), mostly 3-D x and 2-D/3-D w, biased towards valid pairs."""
    h = draw(st.integers(0, 9))
    wd = draw(st.integers(0, 9))
    hh = draw(st.integers(0, h + 1))  # h + 1: a filter taller than the image
    ww = draw(st.integers(0, wd + 1))
    nx = draw(st.sampled_from((1, 1, 2, 3, 0)))
    nw = draw(st.sampled_from((1, nx, nx, 2, 3, 0)))
    xnd = draw(st.sampled_from((3,) * 8 + (0, 1, 2, 4)))
    wnd = draw(st.sampled_from((2,) * 4 + (3,) * 4 + (0, 1, 4)))
    xs = {0: (), 1: (wd,), 2: (h, wd), 3: (nx, h, wd), 4: (1, nx, h, wd)}[xnd]
    ws = {0: (), 1: (ww,), 2: (hh, ww), 3: (nw, hh, ww), 4: (1, nw, hh, ww)}[wnd]
    return xs, ws


@st.composite
def valid_conv_shapes(draw):
    h = draw(st.integers(1, 9))
    wd = draw(st.integers(1, 9))
    hh = draw(st.integers(1, h))
    ww = draw(st.integers(1, wd))
    nx = draw(st.sampled_from((1, 1, 2, 3, 0)))
    w3 = draw(st.booleans())
    if w3:
        nw = draw(st.sampled_from((1, nx, nx) + ((2, 3) if nx == 1 else ())))
        return (nx, h, wd), (nw, hh, ww)
    return (nx, h, wd), (hh, ww)


# --------------------------------------------------------------------------
# the oracle
# --------------------------------------------------------------------------

@dataclass
class Expect:
    """Acceptable errors as (exception type, argument name) pairs, or success."""

    errors: set = field(default_factory=set)
    huge: str | None = None  # the shape a MemoryError must name

    def add(self, exc, name):
        self.errors.add((exc, name))


def _convert(value, name: str, expect: Expect):
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
    if not _is_computable(arr.dtype):
        expect.add(TypeError, name)
        return None
    return arr


def _names(message: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", message) is not None


def _check_raised(exc: BaseException, expect: Expect, peak: int = 0) -> None:
    """``exc`` must be one of the acceptable errors, naming its argument."""
    message = str(exc)
    ok = [name for typ, name in expect.errors if type(exc) is typ and _names(message, name)]
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


def _call(fn, *args, trace=False, **kwargs):
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


def _stop_trace(trace: bool) -> int:
    if not trace:
        return 0
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def _root(a: np.ndarray) -> np.ndarray:
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _fingerprint(a: np.ndarray):
    """Shape, strides, flags and bytes of ``a`` and of the buffer it views."""
    root = _root(a)
    parts = [a.shape, a.strides, a.dtype.str, a.flags.writeable, root.flags.writeable]
    parts.append(hashlib.sha256(root.tobytes(order="A")).hexdigest())
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
                assert not np.shares_memory(r, _root(a)), "output shares memory with an input"
        for i, r in enumerate(results):
            for s in results[i + 1:]:
                assert not np.shares_memory(r, s), "two outputs share memory"


def _err(actual, expected, floor: float) -> float:
    """Normwise relative error max|a - e| / max(max|e|, floor).

    ``floor`` is the largest single product in the sums (max|a| * max|b| of
    the two operands): where a result cancels to (near) zero, rounding
    errors are of the size of its terms, not of the result.
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"shape {a.shape}, expected {e.shape}"
    if e.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(e))), floor)
    err = float(np.max(np.abs(a - e)))
    return err if scale == 0 else err / scale


def _amax(a) -> float:
    a = np.asarray(a, dtype=np.float64)
    return float(np.max(np.abs(a))) if a.size else 0.0


TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def _forward_expect(xa, wa, x_name="x", w_name="w", expect=None) -> Expect:
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


def _declared_bytes(a: np.ndarray, itemsize: int) -> int:
    return math.prod(a.shape) * itemsize


# --------------------------------------------------------------------------
# conv_forward
# --------------------------------------------------------------------------

@st.composite
def huge_operand(draw):
    """A zero-stride view declaring more than HUGE_BYTES (an int64-sized product)."""
    dt = np.dtype(draw(st.sampled_from(("f8", "f4", "f2", "i4", "?"))))
    n = draw(st.sampled_from((1, 1, 2, 7)))
    h = 2 ** draw(st.integers(20, 31)) - draw(st.integers(0, 2**19))
    wd = 2 ** draw(st.integers(20, 31)) - draw(st.integers(0, 2**19))
    # NumPy cannot create an array whose byte size overflows its index type
    # (an int64 product): skip those.
    assume(n * h * wd * dt.itemsize < 2**63)
    assume(n * h * wd * 4 >= HUGE_BYTES)
    x = np.broadcast_to(np.ones((), dt), (n, h, wd))
    return Operand(x, [x], f"huge broadcast {x.shape} {dt}")


@st.composite
def forward_case(draw):
    kind = draw(st.sampled_from(("valid",) * 6 + ("any",) * 6 + ("huge",)))
    if kind == "valid":
        xs, ws = draw(valid_conv_shapes())
        return (draw(operands(xs, dtypes=VALID_DTYPES, forms=VALID_FORMS, keep_shape=True)),
                draw(operands(ws, dtypes=VALID_DTYPES, forms=VALID_FORMS, keep_shape=True)))
    if kind == "huge":
        x = draw(huge_operand())
        hh, ww = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        wshape = draw(st.sampled_from(((hh, ww), (1, hh, ww), (x.value.shape[0], hh, ww))))
        w = draw(operands(wshape, dtypes=REAL_DTYPES, forms=("array",)))
        return x, w
    xs, ws = draw(conv_shapes())
    return draw(operands(xs)), draw(operands(ws))


def _run_forward(x: Operand, w: Operand, method, ref) -> None:
    expect = Expect()
    if method not in METHODS:
        expect.add(ValueError, "method")
    xa = _convert(x.value, "x", expect)
    wa = _convert(w.value, "w", expect)
    _forward_expect(xa, wa, expect=expect)
    itemsize = 4 if all(a is not None and a.dtype.kind == "f" and a.dtype.itemsize <= 4
                        for a in (xa, wa)) else 8
    huge = [a for a in (xa, wa) if a is not None and _declared_bytes(a, itemsize) >= HUGE_BYTES]
    if huge:
        expect.huge = str(huge[0].shape)
    guard = Guard(x, w)
    result, exc, peak = _call(cconv.conv_forward, x.value, w.value, method=method,
                              trace=expect.huge is not None)
    guard.check_unchanged()
    if exc is not None:
        _check_raised(exc, expect, peak)
        return
    assert not expect.errors and expect.huge is None, (
        f"returned, but expected one of {expect.errors} (huge: {expect.huge})"
    )
    out, cache = result
    dtype = _compute_dtype(xa.dtype, wa.dtype)
    assert out.dtype == dtype, f"computed in {out.dtype}, expected {dtype}"
    guard.check_fresh(out)
    expected = ref.scipy_forward(xa, wa)
    err = _err(out, expected, _amax(xa) * _amax(wa))
    assert err <= TOL[dtype], f"error {err:.3g} > {TOL[dtype]} ({dtype}, method={method})"
    assert isinstance(cache, cconv.ConvCache)
    event(f"forward ok {dtype} {method}")


@pytest.mark.parametrize("method", METHODS)
@FUZZ
@given(case=forward_case())
def test_fuzz_conv_forward(ref, method, case):
    _run_forward(*case, method, ref)


@FUZZ
@given(case=forward_case(), method=st.sampled_from(METHODS + BAD_METHODS))
def test_fuzz_conv_forward_any_method(ref, case, method):
    _run_forward(*case, method, ref)


# --------------------------------------------------------------------------
# conv_backward
# --------------------------------------------------------------------------


@st.composite
def backward_case(draw):
    xs, ws = draw(valid_conv_shapes())
    x = draw(operands(xs, dtypes=VALID_DTYPES, forms=VALID_FORMS, keep_shape=True))
    w = draw(operands(ws, dtypes=VALID_DTYPES, forms=VALID_FORMS, keep_shape=True))
    fmethod = draw(st.sampled_from(METHODS))
    n = ws[0] if len(ws) == 3 and xs[0] == 1 else xs[0]
    out_shape = (n, xs[1] - ws[-2] + 1, xs[2] - ws[-1] + 1)
    kind = draw(st.sampled_from(("exact",) * 6 + ("dtype", "shape", "junk")))
    if kind == "exact":
        dout = draw(operands(out_shape, dtypes=VALID_DTYPES, forms=VALID_FORMS, keep_shape=True))
    elif kind == "dtype":
        dout = draw(operands(out_shape, dtypes=BAD_DTYPES, forms=ARRAY_FORMS))
    elif kind == "shape":
        wrong = draw(st.sampled_from((
            out_shape[1:], out_shape + (1,), (out_shape[0] + 1,) + out_shape[1:],
            (out_shape[0], out_shape[1] + 1, out_shape[2]),
            (out_shape[0], out_shape[1], out_shape[2] + 1), (), (1,) + out_shape[1:],
        )))
        dout = draw(operands(wrong, dtypes=VALID_DTYPES, forms=VALID_FORMS, keep_shape=True))
    else:
        dout = draw(operands(out_shape, dtypes=REAL_DTYPES, forms=JUNK_FORMS))
    ckind = draw(st.sampled_from(("real",) * 8 + ("other", "junk")))
    junk_cache = draw(st.sampled_from(("none", "tuple", "dict", "array", "object", "list", "fake")))
    method = draw(st.sampled_from(METHODS * 3 + BAD_METHODS[:2]))
    return x, w, fmethod, dout, ckind, junk_cache, method


class _FakeCache:
    """Duck-types a cache: has x, w and out_shape, but is no ConvCache."""

    def __init__(self, x, w):
        self.x, self.w = x, w
        self.out_shape = (x.shape[0], x.shape[1] - w.shape[1] + 1, x.shape[2] - w.shape[2] + 1)
        self._x, self._w, self._w_ndim, self._spectra = x, w, 3, None


@FUZZ
@given(case=backward_case())
def test_fuzz_conv_backward(ref, case):
    x, w, fmethod, dout, ckind, junk_cache, method = case
    guard = Guard(x, w, dout)
    fwd, exc, _ = _call(cconv.conv_forward, x.value, w.value, method=fmethod)
    assert exc is None, f"valid forward call raised {type(exc).__name__}: {exc}"
    out, cache = fwd
    xa, wa = np.asarray(x.value), np.asarray(w.value)  # what the forward pass saw
    if ckind == "other":  # a real cache, of another (valid) forward call
        xa = np.ones((2, 6, 5), np.float32)
        wa = np.full((3, 2), 0.5)
        cache = cconv.conv_forward(xa, wa)[1]
    elif ckind == "junk":
        cache = {
            "none": None,
            "tuple": (xa, wa),
            "dict": {"x": xa, "w": wa},
            "array": xa,
            "object": object(),
            "list": [xa, wa],
            "fake": _FakeCache(np.array(xa, dtype=np.float64).reshape((-1,) + xa.shape[-2:]),
                               np.array(wa, dtype=np.float64).reshape((-1,) + wa.shape[-2:])),
        }[junk_cache]

    expect = Expect()
    if method not in METHODS:
        expect.add(ValueError, "method")
    if not isinstance(cache, cconv.ConvCache):
        expect.add(ValueError, "cache")
    da = _convert(dout.value, "dout", expect)
    w3 = wa if wa.ndim == 3 else wa[np.newaxis]
    nx, nw = xa.shape[0], w3.shape[0]
    out_shape = (nw if nx == 1 else nx, xa.shape[1] - w3.shape[1] + 1, xa.shape[2] - w3.shape[2] + 1)
    if da is not None and da.shape != out_shape:
        expect.add(ValueError, "dout")

    result, exc, _ = _call(cconv.conv_backward, dout.value, cache, method=method)
    guard.check_unchanged()
    if exc is not None:
        _check_raised(exc, expect)
        return
    assert not expect.errors, f"returned, but expected one of {expect.errors}"
    dx, dw = result
    dtype = _compute_dtype(_compute_dtype(xa.dtype, wa.dtype), _compute_dtype(da.dtype))
    assert dx.dtype == dtype and dw.dtype == dtype, (dx.dtype, dw.dtype, dtype)
    assert dx.shape == xa.shape and dw.shape == wa.shape
    guard.check_fresh(dx, dw)
    for r in (dx, dw):
        assert not np.shares_memory(r, out)
    edx, edw = ref.scipy_backward(xa, wa, da)
    tol = TOL[dtype]
    err_dx = _err(dx, edx, _amax(da) * _amax(wa))
    err_dw = _err(dw, edw, _amax(da) * _amax(xa))
    assert err_dx <= tol, f"dx error {err_dx:.3g} > {tol} ({dtype}, {fmethod} -> {method})"
    assert err_dw <= tol, f"dw error {err_dw:.3g} > {tol} ({dtype}, {fmethod} -> {method})"
    # The cache is not consumed or changed by a backward pass.
    again = cconv.conv_backward(dout.value, cache, method=method)
    assert np.array_equal(again[0], dx) and np.array_equal(again[1], dw)
    event(f"backward ok {dtype} {fmethod}->{method}")


# --------------------------------------------------------------------------
# conv2d_forward / conv2d_backward: the 4-D layer
# --------------------------------------------------------------------------

METHODS_2D = ("auto", "gemm", "direct", "fft")
BAD_METHODS_2D = BAD_METHODS + ("GEMM", "im2col", ("gemm",))

_NUMPY_INTS = (np.int64, np.int32, np.int16, np.uint8, np.uint64)
# Valid but large: window offsets beyond 32 bits, and beyond int64.
BIG_STRIDES = (2**31, 2**40 + 3, np.int64(2**33), 2**63, np.uint64(2**64 - 1), 2**70)


def _option_int(lo: int, hi: int, big=()):
    small = st.integers(lo, hi)
    numpy = st.builds(lambda t, v: t(v), st.sampled_from(_NUMPY_INTS), st.integers(lo, hi))
    return st.one_of(small, small, numpy, *([st.sampled_from(big)] if big else []))


def _option(lo: int, hi: int, big=()):
    """An int option as PyTorch takes it: one int (also NumPy's) or a pair (tuple or list)."""
    one = _option_int(lo, hi, big)
    return st.one_of(one, one, st.tuples(one, one), st.lists(one, min_size=2, max_size=2))


# Wrong in form or value, for any of stride, dilation, padding, groups.
BAD_OPTIONS = st.sampled_from((
    0, -1, -2, np.int64(-3), (1, 0), (0, 1), [1, -1], (-1, -1), 1.0, 1.5, np.float64(2.0),
    None, True, False, np.bool_(True), (1, True), (np.bool_(False), 1), "1", "", "full",
    "SAME", (1, 2, 3), (1,), (), [1, 1, 1], (1.0, 1), (None, 1), 1j, ("same", 1), {1, 2},
))


def _pair_fault(value, minimum: int):
    """``(pair, faults)``: the option as two ints, or None and the error types it calls for.

    The specification: an int, or a pair (tuple or list) of ints, each at
    least ``minimum``; bools are not ints, NumPy integers are.  A sequence of
    another length is "not an int or a pair": either error type may say so.
    """
    items = value if isinstance(value, (tuple, list)) else (value, value)
    faults = set()
    if len(items) != 2:
        faults |= {ValueError, TypeError}
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            faults.add(TypeError)
        elif v < minimum:
            faults.add(ValueError)
    if faults:
        return None, faults
    return (int(items[0]), int(items[1])), set()


@dataclass
class Options2d:
    stride: object = 1
    padding: object = 0
    dilation: object = 1
    groups: object = 1

    def kwargs(self):
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation,
                "groups": self.groups}


def _options_expect(opts: Options2d, expect: Expect):
    """Each option checked on its own: (stride, padding, dilation, groups), None where faulty.

    ``padding`` comes back as 'valid', 'same' or a pair of ints.
    """
    stride, faults = _pair_fault(opts.stride, 1)
    for exc in faults:
        expect.add(exc, "stride")
    dilation, faults = _pair_fault(opts.dilation, 1)
    for exc in faults:
        expect.add(exc, "dilation")
    if isinstance(opts.padding, str):
        padding = opts.padding if opts.padding in ("valid", "same") else None
        if padding is None:
            expect.add(ValueError, "padding")
    else:
        padding, faults = _pair_fault(opts.padding, 0)
        for exc in faults:
            expect.add(exc, "padding")
    groups = opts.groups
    if isinstance(groups, (bool, np.bool_)) or not isinstance(groups, (int, np.integer)):
        expect.add(TypeError, "groups")
        groups = None
    elif groups < 1:
        expect.add(ValueError, "groups")
        groups = None
    else:
        groups = int(groups)
    if padding == "same" and stride is not None and stride != (1, 1):
        expect.add(ValueError, "padding")  # 'same' needs stride 1
        expect.add(ValueError, "stride")
    return stride, padding, dilation, groups


def _pads(padding, wshape, dilation):
    """((top, bottom), (left, right)) by PyTorch's rule (the odd pixel of 'same' at the end)."""
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(wshape[2:], dilation)]
        return tuple((t // 2, t - t // 2) for t in totals)
    return (padding[0],) * 2, (padding[1],) * 2


def _single_channel(xshape, wshape, stride, dilation) -> bool:
    return (xshape[1] == 1 and stride == (1, 1) and dilation == (1, 1)
            and (xshape[0] == 1 or wshape[0] == 1))


def _conv2d_expect(xa, wa, ba, has_b, opts: Options2d, method, expect: Expect):
    """The faults of a conv2d_forward call; returns the layer (or None if it is refused).

    The layer: (stride, pads, dilation, groups, output shape, padding as the
    reference takes it: 'valid', 'same' or a pair).
    """
    if not isinstance(method, str) or method not in METHODS_2D:
        expect.add(ValueError, "method")
    stride, padding, dilation, groups = _options_expect(opts, expect)
    if xa is not None and xa.ndim != 4:
        expect.add(ValueError, "x")
        xa = None
    if wa is not None and wa.ndim != 4:
        expect.add(ValueError, "w")
        wa = None
    if wa is not None and (wa.shape[2] == 0 or wa.shape[3] == 0):
        expect.add(ValueError, "w")
        wa = None
    if has_b and ba is not None:
        if ba.ndim != 1:
            expect.add(ValueError, "b")
        elif wa is not None and ba.shape[0] != wa.shape[0]:
            expect.add(ValueError, "b")
    if xa is None or wa is None:
        return None
    (n, c, h, wd), (f, cg, hh, ww) = xa.shape, wa.shape
    if groups is not None:
        if c % groups or f % groups or cg * groups != c:
            for name in ("groups", "x", "w"):
                expect.add(ValueError, name)
    if padding is None or dilation is None or stride is None:
        return None
    pads = _pads(padding, wa.shape, dilation)
    out_hw = []
    for size, (lo, hi), k, d, s in zip((h, wd), pads, (hh, ww), dilation, stride):
        extent = d * (k - 1) + 1
        if size + lo + hi < extent:  # no output
            for name in ("x", "w", "padding", "dilation"):
                expect.add(ValueError, name)
            return None
        out_hw.append((size + lo + hi - extent) // s + 1)
    if method == "fft" and not _single_channel(xa.shape, wa.shape, stride, dilation):
        expect.add(ValueError, "method")
    if groups is None:
        return None
    return stride, pads, dilation, groups, (n, f, *out_hw), padding


# With three operands, all float32 (the native float32 path) is rare from
# VALID_DTYPES alone: a third of the valid calls draw from these.
FLOAT32_DTYPES = tuple(np.dtype(d) for d in ("f4", "f4", "f4", "f2", ">f4"))


def _bias_operand(draw, f: int, kind: str, dtypes=VALID_DTYPES):
    if kind == "none":
        return Operand(None, [], "no bias", saved=None)
    if kind == "valid":
        return draw(operands((f,), dtypes=dtypes, forms=VALID_FORMS, keep_shape=True))
    if kind == "length":
        return draw(operands((f + draw(st.sampled_from((1, 2))),) if f < 2 or draw(st.booleans())
                             else (f - 1,), dtypes=REAL_DTYPES, forms=ARRAY_FORMS))
    if kind == "ndim":
        return draw(operands(draw(st.sampled_from(((), (1, f), (f, 1), (f, f)))), dtypes=REAL_DTYPES,
                             forms=ARRAY_FORMS))
    return draw(operands((f,)))  # anything: every dtype, junk forms


def _valid_operands_2d(draw, xs, ws, bkind):
    """x, w and b (of kind ``bkind``) of real dtypes and array-like forms."""
    dtypes = draw(st.sampled_from((VALID_DTYPES, VALID_DTYPES, FLOAT32_DTYPES)))
    return (draw(operands(xs, dtypes=dtypes, forms=VALID_FORMS, keep_shape=True)),
            draw(operands(ws, dtypes=dtypes, forms=VALID_FORMS, keep_shape=True)),
            _bias_operand(draw, ws[0], bkind, dtypes))


@st.composite
def conv2d_layers(draw, single=None):
    """A valid layer: (x shape, w shape, Options2d), in any valid spelling of the options.

    ``single``: the single-channel layer ('direct'/'fft' apply): C = 1,
    stride 1, dilation 1, one image or one filter.
    """
    single = draw(st.booleans()) if single is None else single
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    if single:
        g, cg = 1, 1
        n, fg = draw(st.sampled_from(((1, 1), (1, 2), (1, 3), (2, 1), (3, 1), (0, 1), (1, 0))))
        stride = draw(st.sampled_from((1, (1, 1), [1, 1], np.int64(1), np.uint8(1))))
        dilation = draw(st.sampled_from((1, (1, 1), np.int32(1))))
    else:
        g = draw(st.sampled_from((1, 1, 1, 2, 3)))
        cg = draw(st.sampled_from((1, 1, 2, 3, 0)))
        fg = draw(st.sampled_from((1, 1, 2, 0)))
        n = draw(st.sampled_from((1, 1, 2, 3, 0)))
        stride = draw(_option(1, 3, BIG_STRIDES))
        dilation = draw(_option(1, 3, BIG_STRIDES))
    sp, _ = _pair_fault(stride, 1)
    dp, _ = _pair_fault(dilation, 1)
    if dp[0] > 8:
        kh = 1  # a large dilation: only a filter one tap high fits
    if dp[1] > 8:
        kw = 1
    choices = [_option(0, 2), st.just("valid")] + ([st.just("same")] * 2 if sp == (1, 1) else [])
    padding = draw(st.one_of(*choices))
    groups = draw(st.sampled_from((g, g, np.int64(g), np.uint8(g))))
    pads = _pads(padding if isinstance(padding, str) else _pair_fault(padding, 0)[0],
                 (0, 0, kh, kw), dp)
    sizes = []
    for (lo, hi), k, d in zip(pads, (kh, kw), dp):
        low = max(0, d * (k - 1) + 1 - lo - hi)  # 0: an empty image the padding makes room for
        sizes.append(draw(st.integers(max(low, 1 if padding == "same" else 0), low + 6)))
    xshape = (n, cg * g, *sizes)
    wshape = (fg * g, cg, kh, kw)
    return xshape, wshape, Options2d(stride, padding, dilation, groups)


@st.composite
def any_options(draw):
    def one(good):
        return draw(st.one_of(good, good, good, BAD_OPTIONS))
    return Options2d(
        stride=one(_option(1, 3, BIG_STRIDES)),
        padding=one(st.one_of(_option(0, 2), st.sampled_from(("valid", "same")))),
        dilation=one(_option(1, 3, BIG_STRIDES)),
        groups=one(_option_int(1, 3)),
    )


@st.composite
def huge_operand_4d(draw):
    """A zero-stride (N, C, H, W) view declaring more than HUGE_BYTES."""
    x3 = draw(huge_operand())
    c = draw(st.sampled_from((1, 1, 2)))
    n, h, wd = x3.value.shape
    assume(n * c * h * wd * x3.value.dtype.itemsize < 2**63)  # as huge_operand: NumPy's limit
    x = np.broadcast_to(x3.value[:, np.newaxis], (n, c, h, wd))
    return Operand(x, [x], f"huge broadcast {x.shape} {x.dtype}")


@st.composite
def conv2d_forward_case(draw, method=None):
    """(x, w, b, Options2d, method): valid layers, anything at all, or a huge x."""
    kind = draw(st.sampled_from(("valid",) * 6 + ("any",) * 5 + ("huge",)))
    if method is None:
        method = draw(st.sampled_from(METHODS_2D + BAD_METHODS_2D))
    if kind == "valid":
        single = True if method in ("direct", "fft") and draw(st.integers(0, 3)) else None
        xs, ws, opts = draw(conv2d_layers(single=single))
        bkind = draw(st.sampled_from(("none", "valid", "valid", "valid")))
        return (*_valid_operands_2d(draw, xs, ws, bkind), opts, method)
    if kind == "huge":
        x = draw(huge_operand_4d())
        n, c = x.value.shape[:2]
        f = draw(st.sampled_from((1, 2, c)))
        ws = (f, c, draw(st.integers(1, 3)), draw(st.integers(1, 3)))
        w = draw(operands(ws, dtypes=REAL_DTYPES, forms=("array",)))
        b = _bias_operand(draw, f, draw(st.sampled_from(("none", "valid"))))
        opts = Options2d(stride=draw(_option(1, 2)), padding=draw(_option(0, 1)))
        return x, w, b, opts, method
    # anything: wrong ndims, sizes 0 and 1, filters larger than the padded
    # image, channels that do not match, every dtype and junk form
    n = draw(st.sampled_from((1, 1, 2, 0)))
    c = draw(st.sampled_from((1, 2, 3, 4, 0)))
    h, wd = draw(st.integers(0, 7)), draw(st.integers(0, 7))
    f = draw(st.sampled_from((1, 2, 3, 4, 0)))
    cg = draw(st.sampled_from((c, c, 1, 2, 0)))
    hh, ww = draw(st.integers(0, h + 3)), draw(st.integers(0, wd + 3))
    x4, w4 = (n, c, h, wd), (f, cg, hh, ww)
    xs = draw(st.sampled_from((x4,) * 8 + ((), (wd,), (h, wd), (c, h, wd), (1,) + x4)))
    ws = draw(st.sampled_from((w4,) * 8 + ((hh, ww), (cg, hh, ww), (1,) + w4)))
    bkind = draw(st.sampled_from(("none", "valid", "valid", "length", "ndim", "any")))
    return (draw(operands(xs)), draw(operands(ws)), _bias_operand(draw, f, bkind),
            draw(any_options()), method)


def _run_conv2d_forward(x: Operand, w: Operand, b: Operand, opts: Options2d, method, ref):
    expect = Expect()
    xa = _convert(x.value, "x", expect)
    wa = _convert(w.value, "w", expect)
    has_b = b.value is not None
    ba = _convert(b.value, "b", expect) if has_b else None
    layer = _conv2d_expect(xa, wa, ba, has_b, opts, method, expect)
    present = [a for a in (xa, wa, ba) if a is not None]
    itemsize = 4 if all(a.dtype.kind == "f" and a.dtype.itemsize <= 4 for a in present) else 8
    if xa is not None and xa.ndim == 4 and _declared_bytes(xa, itemsize) >= HUGE_BYTES:
        expect.huge = str(xa.shape)
    guard = Guard(x, w, b)
    result, exc, peak = _call(cconv.conv2d_forward, x.value, w.value, b.value, **opts.kwargs(),
                              method=method, trace=expect.huge is not None)
    guard.check_unchanged()
    if exc is not None:
        _check_raised(exc, expect, peak)
        return None
    assert not expect.errors and expect.huge is None, (
        f"returned, but expected one of {expect.errors} (huge: {expect.huge})"
    )
    out, cache = result
    stride, pads, dilation, groups, out_shape, padding = layer
    dtype = _compute_dtype(*(a.dtype for a in present))
    assert out.dtype == dtype, f"computed in {out.dtype}, expected {dtype}"
    assert out.shape == out_shape, (out.shape, out_shape)
    guard.check_fresh(out)
    assert isinstance(cache, cconv.Conv2dCache), type(cache)
    expected = ref.layer_forward(xa, wa, ba, stride=stride, padding=padding, dilation=dilation,
                                 groups=groups)
    err = _err(out, expected, max(_amax(xa) * _amax(wa), _amax(ba) if has_b else 0.0))
    assert err <= TOL[dtype], f"error {err:.3g} > {TOL[dtype]} ({dtype}, method={method})"
    event(f"conv2d_forward ok {dtype} {method}")
    return out, cache, (xa, wa, ba, stride, padding, dilation, groups)


@pytest.mark.parametrize("method", METHODS_2D)
@FUZZ
@given(data=st.data())
def test_fuzz_conv2d_forward(ref, method, data):
    _run_conv2d_forward(*data.draw(conv2d_forward_case(method=method)), ref)


@FUZZ
@given(case=conv2d_forward_case())
def test_fuzz_conv2d_forward_any_method(ref, case):
    _run_conv2d_forward(*case, ref)


@st.composite
def conv2d_backward_case(draw):
    xs, ws, opts = draw(conv2d_layers())
    x, w, b = _valid_operands_2d(draw, xs, ws, draw(st.sampled_from(("none", "valid"))))
    sp, dp = _pair_fault(opts.stride, 1)[0], _pair_fault(opts.dilation, 1)[0]
    single = _single_channel(xs, ws, sp, dp)
    fmethod = draw(st.sampled_from(METHODS_2D if single else ("auto", "gemm")))
    padding = opts.padding if isinstance(opts.padding, str) else _pair_fault(opts.padding, 0)[0]
    pads = _pads(padding, ws, dp)
    out_shape = (xs[0], ws[0]) + tuple(
        (size + lo + hi - d * (k - 1) - 1) // s + 1
        for size, (lo, hi), k, d, s in zip(xs[2:], pads, ws[2:], dp, sp))
    kind = draw(st.sampled_from(("exact",) * 6 + ("dtype", "shape", "junk")))
    if kind == "exact":
        dout = draw(operands(out_shape, dtypes=VALID_DTYPES, forms=VALID_FORMS, keep_shape=True))
    elif kind == "dtype":
        dout = draw(operands(out_shape, dtypes=BAD_DTYPES, forms=ARRAY_FORMS))
    elif kind == "shape":
        n, f, ho, wo = out_shape
        wrong = draw(st.sampled_from((
            out_shape[1:], out_shape + (1,), (n + 1, f, ho, wo), (n, f + 1, ho, wo),
            (n, f, ho + 1, wo), (n, f, ho, wo + 1), (), (1, 1, 1, 1) if out_shape != (1, 1, 1, 1)
            else (1, 1, 1, 2), (n, f, wo, ho) if ho != wo else (n, f, ho, wo + 2),
        )))
        dout = draw(operands(wrong, dtypes=VALID_DTYPES, forms=VALID_FORMS, keep_shape=True))
    else:
        dout = draw(operands(out_shape, dtypes=REAL_DTYPES, forms=JUNK_FORMS))
    ckind = draw(st.sampled_from(("real",) * 8 + ("other", "junk")))
    junk = draw(st.sampled_from(("none", "tuple", "dict", "array", "object", "list", "fake",
                                 "conv3d", "conv3d")))
    return x, w, b, opts, fmethod, dout, ckind, junk


class _FakeConv2dCache:
    """Duck-types a Conv2dCache (its public and private attributes), but is none."""

    def __init__(self, cache):
        for name in ("x", "w", "out_shape", "method"):
            setattr(self, name, getattr(cache, name))
        for name in cconv.Conv2dCache.__slots__:
            setattr(self, name, getattr(cache, name))


# Another valid forward call: its cache, passed with a dout drawn for the first.
_OTHER_2D = dict(x=np.linspace(-1, 1, 2 * 4 * 7 * 6, dtype=np.float32).reshape(2, 4, 7, 6),
                 w=np.linspace(1, -2, 6 * 2 * 3 * 3).reshape(6, 2, 3, 3), b=np.arange(6.0),
                 stride=2, padding=1, dilation=1, groups=2)


@FUZZ
@given(case=conv2d_backward_case())
def test_fuzz_conv2d_backward(ref, case):
    x, w, b, opts, fmethod, dout, ckind, junk = case
    guard = Guard(x, w, b, dout)
    fwd = _run_conv2d_forward(x, w, b, opts, fmethod, ref)  # checked like any forward call
    assert fwd is not None, "a valid forward call was refused"
    out, cache, (xa, wa, ba, stride, padding, dilation, groups) = fwd
    if ckind == "other":
        o = _OTHER_2D
        xa, wa, ba = o["x"], o["w"], o["b"]
        stride, padding, dilation, groups = (2, 2), (1, 1), (1, 1), 2
        cache = cconv.conv2d_forward(xa, wa, ba, stride=2, padding=1, groups=2)[1]
    elif ckind == "junk":
        cache = {
            "none": None,
            "tuple": (out, cache),
            "dict": {"x": xa, "w": wa},
            "array": xa,
            "object": object(),
            "list": [xa, wa],
            "fake": _FakeConv2dCache(cache),
            # The 3-D layer's cache is not the 4-D layer's.
            "conv3d": cconv.conv_forward(np.ones((1, 4, 4)), np.ones((2, 2)))[1],
        }[junk]
    has_b = ba is not None

    expect = Expect()
    if not isinstance(cache, cconv.Conv2dCache):
        expect.add(ValueError, "cache")
    da = _convert(dout.value, "dout", expect)
    pads = _pads(padding, wa.shape, dilation)
    out_shape = (xa.shape[0], wa.shape[0]) + tuple(
        (size + lo + hi - d * (k - 1) - 1) // s + 1
        for size, (lo, hi), k, d, s in zip(xa.shape[2:], pads, wa.shape[2:], dilation, stride))
    if da is not None and da.shape != out_shape:
        expect.add(ValueError, "dout")

    result, exc, _ = _call(cconv.conv2d_backward, dout.value, cache)
    guard.check_unchanged()
    if exc is not None:
        _check_raised(exc, expect)
        return
    assert not expect.errors, f"returned, but expected one of {expect.errors}"
    dx, dw, db = result
    fdtype = _compute_dtype(*(a.dtype for a in (xa, wa, ba) if a is not None))
    dtype = _compute_dtype(fdtype, _compute_dtype(da.dtype))
    grads = (dx, dw) + ((db,) if has_b else ())
    assert all(g.dtype == dtype for g in grads), ([g.dtype for g in grads], dtype)
    assert dx.shape == xa.shape and dw.shape == wa.shape
    if has_b:
        assert db.shape == (wa.shape[0],)
    else:
        assert db is None, "db for a forward pass without bias"
    guard.check_fresh(*grads)
    for g in grads:
        assert not np.shares_memory(g, out)
    edx, edw, edb = ref.layer_backward(xa, wa, da, stride=stride, padding=padding,
                                       dilation=dilation, groups=groups)
    tol = TOL[dtype]
    errs = {"dx": _err(dx, edx, _amax(da) * _amax(wa)), "dw": _err(dw, edw, _amax(da) * _amax(xa))}
    if has_b:
        errs["db"] = _err(db, edb, _amax(da))
    bad = {k: v for k, v in errs.items() if not v <= tol}
    assert not bad, f"errors {bad} > {tol} ({dtype}, {cache.method})"
    # The cache is not consumed or changed by a backward pass: the same
    # results again, bit for bit.
    again = cconv.conv2d_backward(dout.value, cache)
    again = (again[0], again[1]) + ((again[2],) if has_b else ())
    for name, a, g in zip(("dx", "dw", "db"), again, grads):
        assert np.array_equal(a, g), f"{name} of a second call differs"
    event(f"conv2d_backward ok {dtype} {cache.method}")


# --------------------------------------------------------------------------
# match_template
# --------------------------------------------------------------------------

MATCH_METHODS = ("sqdiff", "sqdiff_normed", "ccorr", "ccorr_normed", "ccoeff", "ccoeff_normed")
BAD_MATCH_METHODS = (None, "", "CCOEFF_NORMED", "TM_CCOEFF_NORMED", "ccoeff-normed", "auto", 3,
                     ("ccorr",), b"ccorr")
PAD_INPUTS = (False, True, np.bool_(True), np.bool_(False))
BAD_PAD_INPUTS = (None, 0, 1, "True", "", np.int64(1), 1.0, [True])
# The normalised scores, their range and the score of a flat window.
NORMED = {"ccoeff_normed": ((-1.0, 1.0), 0.0), "ccorr_normed": ((-1.0, 1.0), 0.0),
          "sqdiff_normed": ((0.0, 1.0), 1.0)}
# Normalised scores: absolute.  The others: normwise, as in test_match.py,
# with the size of their terms as the floor (_match_floor).
MATCH_TOL = {np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-10}
NORMED_TOL = {np.dtype(np.float32): 2e-4, np.dtype(np.float64): 1e-9}
MATCH_LAYOUTS = LAYOUTS


@st.composite
def match_case(draw):
    """(image, templates): valid pairs, anything at all, or a huge image."""
    kind = draw(st.sampled_from(("valid",) * 6 + ("any",) * 5 + ("huge",)))
    if kind == "huge":
        x = draw(huge_operand())
        if x.value.shape[0] == 1 and draw(st.booleans()):  # (H, W), still huge
            x = Operand(x.value[0], [x.value[0]], f"huge broadcast {x.value.shape[1:]}")
        hh, ww = draw(st.integers(1, 5)), draw(st.integers(1, 5))
        n = x.value.shape[0] if x.value.ndim == 3 else 1
        tshape = draw(st.sampled_from(((hh, ww), (1, hh, ww), (n, hh, ww), (2, hh, ww))))
        return x, draw(operands(tshape, dtypes=REAL_DTYPES, forms=("array",), layouts=MATCH_LAYOUTS))
    if kind == "valid":
        xs, ts = draw(valid_conv_shapes())
        dtypes = draw(st.sampled_from((VALID_DTYPES, VALID_DTYPES, FLOAT32_DTYPES)))
        ops = (dict(dtypes=dtypes, forms=VALID_FORMS, keep_shape=True, layouts=MATCH_LAYOUTS),) * 2
    else:  # wrong ndims, sizes 0 and 1, templates larger than the image, every dtype and junk
        xs, ts = draw(conv_shapes())
        ops = (dict(layouts=MATCH_LAYOUTS),) * 2
    if len(xs) == 3 and xs[0] == 1 and draw(st.booleans()):
        xs = xs[1:]  # one (H, W) image
    x = draw(operands(xs, **ops[0]))
    if kind == "valid" and 0 not in xs[:1] + ts[:1] and draw(st.booleans()):
        # Templates cut from the image (plus noise): scores near the best,
        # where sqdiff_normed is not clipped to 1.
        x3 = np.asarray(x.value).reshape((-1,) + xs[-2:])
        cuts = []
        for k in range(ts[0] if len(ts) == 3 else 1):
            i = k if x3.shape[0] > 1 else 0
            y0, x0 = draw(st.integers(0, xs[-2] - ts[-2])), draw(st.integers(0, xs[-1] - ts[-1]))
            cuts.append(x3[i, y0:y0 + ts[-2], x0:x0 + ts[-1]])
        t = np.array(np.stack(cuts).reshape(ts))
        noise = draw(st.sampled_from((0.0, 0.0, 1e-3, 0.3)))
        if noise:
            rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
            t = (t + noise * rng.standard_normal(ts)).astype(t.dtype if t.dtype.kind == "f" else "f8")
        return x, Operand(t, [t], f"cut from the image, noise {noise}")
    return x, draw(operands(ts, **ops[1]))


def _match_expect(ia, ta, expect: Expect) -> None:
    """The shape rules: those of conv_forward, with (H, W) one image."""
    if ia is not None and ia.ndim not in (2, 3):
        expect.add(ValueError, "image")
        ia = None
    x3 = None if ia is None else ia.reshape((1,) * (3 - ia.ndim) + ia.shape)
    _forward_expect(x3, ta, "image", "templates", expect)


def _match_floor(method: str, img: np.ndarray, t: np.ndarray) -> float:
    """The size of the terms of an unnormalised score (of the one pair)."""
    n = t.size
    if method == "sqdiff":
        return n * (_amax(t) + _amax(img)) ** 2
    if method == "ccoeff":
        return n * _amax(t - t.mean()) * _amax(img - img.mean())
    return n * _amax(t) * _amax(img)


def _check_match_pair(ref, got, img2, t2, method, pad_input, dtype) -> None:
    """One score map against the reference, flat windows exactly."""
    want = ref.match_scores(img2, t2, method, pad_input)
    assert got.shape == want.shape, (got.shape, want.shape)
    assert np.all(np.isfinite(got)), "a score is not finite"
    img, t = img2.astype(np.float64), t2.astype(np.float64)
    hh, ww = t.shape
    if pad_input:  # as the reference pads
        img = np.pad(img, ((hh // 2, hh - 1 - hh // 2), (ww // 2, ww - 1 - ww // 2)))
    if method not in NORMED:
        err = _err(got, want, _match_floor(method, img, t))
        assert err <= MATCH_TOL[dtype], f"{method}: error {err:.3g} > {MATCH_TOL[dtype]} ({dtype})"
        return
    (low, high), flat_value = NORMED[method]
    assert got.min() >= low and got.max() <= high, f"{method} outside [{low}, {high}]"
    windows = np.lib.stride_tricks.sliding_window_view(img, (hh, ww))
    if method == "ccoeff_normed":  # no variance
        flat = (windows.max(axis=(-2, -1)) == windows.min(axis=(-2, -1))) | (t.max() == t.min())
    else:  # no energy
        flat = ~windows.any(axis=(-2, -1)) | (not t.any())
    assert np.all(got[flat] == flat_value), f"{method}: a flat window does not score {flat_value}"
    err = float(np.max(np.abs(got - want)[~flat], initial=0.0))
    assert err <= NORMED_TOL[dtype], f"{method}: error {err:.3g} > {NORMED_TOL[dtype]} ({dtype})"
    event(f"match_template flat windows: {'none' if not flat.any() else 'all' if flat.all() else 'some'}")


def _run_match(x: Operand, t: Operand, method, pad_input, ref) -> None:
    expect = Expect()
    if not isinstance(method, str) or method not in MATCH_METHODS:
        expect.add(ValueError, "method")
    if not isinstance(pad_input, (bool, np.bool_)):
        expect.add(TypeError, "pad_input")
    ia = _convert(x.value, "image", expect)
    ta = _convert(t.value, "templates", expect)
    _match_expect(ia, ta, expect)
    itemsize = 4 if all(a is not None and a.dtype.kind == "f" and a.dtype.itemsize <= 4
                        for a in (ia, ta)) else 8
    if ia is not None and _declared_bytes(ia, itemsize) >= HUGE_BYTES:
        expect.huge = str(ia.shape)
    guard = Guard(x, t)
    result, exc, peak = _call(cconv.match_template, x.value, t.value, method=method,
                              pad_input=pad_input, trace=expect.huge is not None)
    guard.check_unchanged()
    if exc is not None:
        _check_raised(exc, expect, peak)
        return
    assert not expect.errors and expect.huge is None, (
        f"returned, but expected one of {expect.errors} (huge: {expect.huge})"
    )
    dtype = _compute_dtype(ia.dtype, ta.dtype)
    assert result.dtype == dtype, f"computed in {result.dtype}, expected {dtype}"
    guard.check_fresh(result)
    x3 = ia.reshape((1,) * (3 - ia.ndim) + ia.shape)
    t3 = ta.reshape((1,) * (3 - ta.ndim) + ta.shape)
    n, pairs = ref.broadcast_pairs(x3.shape[0], t3.shape[0])
    size = x3.shape[1:] if pad_input else (x3.shape[1] - t3.shape[1] + 1, x3.shape[2] - t3.shape[2] + 1)
    shape = size if ia.ndim == 2 and ta.ndim == 2 else (n, *size)
    assert result.shape == shape, (result.shape, shape)
    for p, (i, j) in enumerate(pairs):
        _check_match_pair(ref, result.reshape((n, *size))[p], x3[i], t3[j], method,
                          bool(pad_input), dtype)
    event(f"match_template ok {dtype} {method} pad_input={bool(pad_input)}")


@pytest.mark.parametrize("method", MATCH_METHODS)
@FUZZ
@given(case=match_case(), pad_input=st.sampled_from(PAD_INPUTS))
def test_fuzz_match_template(ref, method, case, pad_input):
    _run_match(*case, method, pad_input, ref)


@FUZZ
@given(case=match_case(), method=st.sampled_from(MATCH_METHODS + BAD_MATCH_METHODS),
       pad_input=st.sampled_from(PAD_INPUTS * 2 + BAD_PAD_INPUTS))
def test_fuzz_match_template_any_args(ref, case, method, pad_input):
    _run_match(*case, method, pad_input, ref)


# --------------------------------------------------------------------------
# find_matches
# --------------------------------------------------------------------------

# Score maps: distinct values (their order is the answer), with NaN and
# infinities, and ties.  ('wide' integers are not drawn: their float64
# rounding, which the comparison with a threshold uses, makes ties.)
SCORE_STYLES = ("distinct",) * 4 + ("specials",) * 3 + ("small", "zeros", "const", "normal")
SCORE_DTYPES = REAL_DTYPES + (np.dtype("f8"),) * 6 + (np.dtype("f4"),) * 2

GOOD_NUMS = st.one_of(st.integers(1, 12), st.sampled_from(
    (np.int64(3), np.int32(1), np.uint8(2), np.uint64(2**64 - 1), 2**70)))
BAD_NUMS = st.sampled_from((0, -1, np.int64(0), -2**70, 1.0, 2.5, np.float64(3), None, "3",
                            True, np.bool_(True), [3], 1j))
GOOD_DISTANCES = st.one_of(st.integers(0, 2), st.integers(0, 2), st.integers(0, 12), st.sampled_from(
    (np.int64(2), np.uint8(0), np.int16(1), 100, np.uint64(1000), 2**40, np.int64(2**62), 2**70)))
BAD_DISTANCES = st.sampled_from((-1, -5, np.int64(-1), -2**70, 1.0, 2.0, np.float32(1), None, "2",
                                 True, np.bool_(False), [1], 1j))
# (A Fraction or an int beyond float: test_find_matches_threshold_beyond_float.)
GOOD_THRESHOLDS = st.one_of(
    st.none(), st.none(), st.none(), st.floats(-30, 30), st.floats(allow_nan=False),
    st.integers(-10, 10),
    st.sampled_from((np.float32(0.5), np.float64(-1.5), np.int64(2), np.uint8(0), np.float16(1.5),
                     np.inf, -np.inf, -0.0)))
BAD_THRESHOLDS = st.sampled_from((np.nan, np.float32(np.nan), "0.5", True, np.bool_(False), 1j,
                                  [0.5], b"1", {0.5}))
LOWER_IS_BETTER = (False, True, np.bool_(True), np.bool_(False))
BAD_LOWER_IS_BETTER = (0, 1, None, "True", np.int64(1), 1.0, [True])


@st.composite
def find_matches_case(draw):
    """(scores, num, min_distance, threshold, lower_is_better)."""
    kind = draw(st.sampled_from(("valid",) * 6 + ("scores",) * 2 + ("options",) * 2))
    side = st.one_of(st.integers(1, 9), st.integers(1, 9), st.integers(0, 9))
    h, w = draw(side), draw(side)
    if kind == "scores":  # any ndim, every dtype and junk form
        shape = draw(st.sampled_from(((3, h, w), (h, w), (1, 1, h, w), (w,), ())))
        scores = draw(operands(shape))
    else:
        shape = (h, w) if draw(st.booleans()) else (draw(st.sampled_from((1, 2, 3, 0))), h, w)
        scores = draw(operands(shape, dtypes=SCORE_DTYPES, forms=VALID_FORMS, styles=SCORE_STYLES,
                               keep_shape=True))
    bad = kind == "options"
    bad_one = draw(st.sampled_from(("num", "min_distance", "threshold", "lower_is_better", "all")))

    def option(name, good, wrong):
        return draw(wrong if bad and bad_one in (name, "all") else good)

    threshold = option("threshold", GOOD_THRESHOLDS, BAD_THRESHOLDS)
    values = np.asarray(scores.value) if scores.arrays else None
    if (not bad and values is not None and values.size and values.dtype.kind in "biuf"
            and draw(st.booleans())):  # a score of the map: ">=" and "<=" hold with equality
        threshold = values.reshape(-1)[draw(st.integers(0, values.size - 1))].item()
        if isinstance(threshold, float) and math.isnan(threshold):
            threshold = None
        elif isinstance(threshold, bool):
            threshold = int(threshold)
    return (scores, option("num", GOOD_NUMS, BAD_NUMS),
            option("min_distance", GOOD_DISTANCES, BAD_DISTANCES), threshold,
            option("lower_is_better", st.sampled_from(LOWER_IS_BETTER),
                   st.sampled_from(BAD_LOWER_IS_BETTER)))


def _count_fault(value, name: str, low: int, expect: Expect) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        expect.add(TypeError, name)
    elif value < low:
        expect.add(ValueError, name)


def _greedy_matches(good: np.ndarray, candidate: np.ndarray, num: int, min_distance: int):
    """The specification's suppression, one candidate at a time, best first.

    ``good``: the scores, higher better; ``candidate``: where a match may be.
    Returns ``(index, y, x)`` of the matches (an order among ties is arbitrary).
    """
    where = [tuple(int(i) for i in p) for p in np.argwhere(candidate)]
    where.sort(key=lambda p: -good[p])
    accepted = []
    for k, y, x in where:
        if len(accepted) == num:
            break
        if all(k != k2 or max(abs(y - y2), abs(x - x2)) > min_distance for k2, y2, x2 in accepted):
            accepted.append((k, y, x))
    return accepted


def _local_maxima(good: np.ndarray, min_distance: int) -> np.ndarray:
    """Where ``good`` is the largest within ``min_distance`` (Chebyshev) in its map."""
    m, h, w = good.shape
    d = min(min_distance, max(h, w))
    out = np.zeros(good.shape, bool)
    for k, y, x in np.ndindex(good.shape):
        near = good[k, max(y - d, 0):y + d + 1, max(x - d, 0):x + d + 1]
        out[k, y, x] = good[k, y, x] >= np.max(near)
    return out


@FUZZ
@given(case=find_matches_case())
def test_fuzz_find_matches(case):
    scores, num, min_distance, threshold, lower_is_better = case
    expect = Expect()
    sa = _convert(scores.value, "scores", expect)
    if sa is not None and sa.ndim not in (2, 3):
        expect.add(ValueError, "scores")
    _count_fault(num, "num", 1, expect)
    _count_fault(min_distance, "min_distance", 0, expect)
    if threshold is not None:
        if isinstance(threshold, (bool, np.bool_)) or not isinstance(
                threshold, (int, float, np.integer, np.floating)):
            expect.add(TypeError, "threshold")
        elif math.isnan(threshold):
            expect.add(TypeError, "threshold")
            expect.add(ValueError, "threshold")
    if not isinstance(lower_is_better, (bool, np.bool_)):
        expect.add(TypeError, "lower_is_better")
    guard = Guard(scores)
    result, exc, _ = _call(cconv.find_matches, scores.value, num=num, min_distance=min_distance,
                           threshold=threshold, lower_is_better=lower_is_better)
    guard.check_unchanged()
    if exc is not None:
        _check_raised(exc, expect)
        return
    assert not expect.errors, f"returned, but expected one of {expect.errors}"
    s3 = sa.reshape((1,) * (3 - sa.ndim) + sa.shape)
    f3 = s3.astype(np.float64)
    good = -f3 if lower_is_better else f3
    candidate = ~np.isnan(f3)
    if threshold is not None:
        candidate &= (f3 <= threshold) if lower_is_better else (f3 >= threshold)

    # The properties, whatever the ties.
    assert type(result) is list and len(result) <= num
    for i, m in enumerate(result):
        assert type(m) is cconv.Match and all(type(v) is int for v in m[:3]), m
        k, y, x = m[:3]
        assert 0 <= k < f3.shape[0] and 0 <= y < f3.shape[1] and 0 <= x < f3.shape[2], m
        assert m.score == s3[k, y, x], f"{m}: the map holds {s3[k, y, x]!r}"
        assert candidate[k, y, x], f"{m}: NaN, or beyond the threshold {threshold!r}"
        if i:
            assert good[result[i - 1][:3]] >= good[k, y, x], f"not best first: {result}"
        for other in result[:i]:
            near = other.pair == k and max(abs(other.y - y), abs(other.x - x)) <= min_distance
            assert not near, f"{other} and {m} within {min_distance}"

    # The exact answer, where the order is unambiguous.
    values = good[candidate]
    if np.unique(values).size < values.size:
        event("find_matches: ties (properties only)")
        return
    want = _greedy_matches(good, candidate, int(num), int(min_distance))
    assert [m[:3] for m in result] == want, f"{result}, expected {want}"
    event(f"find_matches exact, {len(want)} matches")


# --------------------------------------------------------------------------
# cconv.testing.rel_error
# --------------------------------------------------------------------------

@st.composite
def rel_error_case(draw):
    shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple))
    other = draw(st.sampled_from(("same", "same", "scalar", "ones", "random")))
    if other == "same":
        shape_b = shape
    elif other == "scalar":
        shape_b = ()
    elif other == "ones":
        shape_b = tuple(1 for _ in shape)
    else:
        shape_b = draw(st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple))
    a = draw(operands(shape))
    b = draw(operands(shape_b))
    if draw(st.integers(0, 3)) == 0:  # equal arrays: exactly 0
        b = draw(operands(shape, dtypes=REAL_DTYPES, forms=ARRAY_FORMS))
        arr = np.asarray(a.value) if a.arrays else None
        if arr is not None and _is_computable(arr.dtype):
            b = Operand(np.array(arr, copy=True), [], "copy of a")
            b.arrays = [b.value]
    return a, b


def _leads_with(message: str, names) -> bool:
    """``message`` starts with one of ``names``: the argument is its subject.

    Stricter than :func:`_names` for one-letter names: ``a`` is also the
    article ("b is a masked array").
    """
    return any(re.match(rf"{re.escape(n)}(?!\w)", message) for n in names)


def _rel_error_reference(fa: np.ndarray, fb: np.ndarray) -> float:
    """The documented definition, entry by entry, in plain Python floats."""
    worst = 0.0
    for x, y in np.broadcast(fa, fb):
        x, y = float(x), float(y)
        if math.isnan(x) or math.isnan(y):
            return math.nan
        if x == y:  # also inf == inf
            e = 0.0
        elif math.isinf(x) or math.isinf(y):
            e = 1.0  # the limit of |x - y| / (|x| + |y|)
        else:
            e = abs(x - y) / max(1e-8, abs(x) + abs(y))
        worst = max(worst, e)
    return worst


@FUZZ
@given(case=rel_error_case())
def test_fuzz_rel_error(case):
    a, b = case
    guard = Guard(a, b)
    result, exc, _ = _call(rel_error, a.value, b.value)
    guard.check_unchanged()
    expect = Expect()
    fa = _convert(a.value, "a", expect)
    fb = _convert(b.value, "b", expect)
    if expect.errors:
        assert exc is not None, f"returned {result!r}; expected one of {expect.errors}"
        names = [n for t, n in expect.errors if type(exc) is t]
        assert names, f"raised {type(exc).__name__}: {exc}; expected one of {expect.errors}"
        assert _leads_with(str(exc), names), f"message names none of {names}: {exc}"
        event(f"rel_error {type(exc).__name__}")
        return
    fa, fb = fa.astype(np.float64), fb.astype(np.float64)
    if fa.size == 0 and fb.size == 0:  # documented: 0 for two empty arrays
        assert exc is None, f"raised {type(exc).__name__}: {exc}"
        assert result == 0.0 and type(result) is float
        return
    try:
        bshape = np.broadcast_shapes(fa.shape, fb.shape)
    except ValueError:
        assert exc is not None, f"returned {result!r} for shapes {fa.shape} and {fb.shape}"
        assert type(exc) is ValueError, f"{type(exc).__name__}: {exc}"
        message = str(exc)
        assert _names(message, "b") and str(fa.shape) in message and str(fb.shape) in message, message
        assert _leads_with(message, ["a"]), message
        event("rel_error shapes do not broadcast")
        return
    assert exc is None, f"raised {type(exc).__name__}: {exc}"
    assert type(result) is float
    expected = _rel_error_reference(fa, fb) if math.prod(bshape) else 0.0
    if math.isnan(expected):  # None in an object array, NaN: NaN out
        assert math.isnan(result)
        return
    assert result == pytest.approx(expected, rel=1e-12, abs=0.0), (result, expected)
    assert 0.0 <= result <= 1.0
    event("rel_error ok")


@st.composite
def special_pair(draw):
    """Float arrays with inf, -inf and NaN, and a second one equal in places."""
    from hypothesis.extra import numpy as hnp

    shape = draw(hnp.array_shapes(min_dims=0, max_dims=2, min_side=0, max_side=4))
    dt = draw(st.sampled_from((np.float64, np.float32)))
    values = st.one_of(st.floats(-1e3, 1e3, width=32), st.sampled_from((np.inf, -np.inf, np.nan, 0.0)))
    a = draw(hnp.arrays(dt, shape, elements=values))
    b = draw(hnp.arrays(dt, shape, elements=values))
    same = draw(hnp.arrays(np.bool_, shape))
    b = np.where(same, a, b).astype(dt)
    return a, b


@FUZZ
@given(case=special_pair())
def test_fuzz_rel_error_special_values(case):
    a, b = case
    result, exc, _ = _call(rel_error, a, b)
    assert exc is None, f"raised {type(exc).__name__}: {exc}"
    expected = _rel_error_reference(a.astype(np.float64), b.astype(np.float64)) if a.size else 0.0
    if math.isnan(expected):
        assert math.isnan(result), result
        event("rel_error NaN")
        return
    assert result == pytest.approx(expected, rel=1e-12, abs=0.0), (result, expected)
    event("rel_error special ok")


# --------------------------------------------------------------------------
# cconv.testing.numerical_gradient (tiny inputs: two calls per entry)
# --------------------------------------------------------------------------

GOOD_H = st.one_of(st.floats(1e-6, 1e-1), st.sampled_from((1e-5, np.float64(1e-4), np.float32(1e-3), 1)))
BAD_H = st.sampled_from((0, 0.0, -1e-5, float("nan"), float("inf"), float("-inf"), np.float64(-1),
                         np.float16(1e-9), 10**400, None, "1e-5", [1e-5], np.array([1e-5, 2e-5]),
                         1j, True, np.bool_(True)))


@st.composite
def gradient_case(draw):
    kind = draw(st.sampled_from(("valid",) * 5 + ("x", "dout", "h")))
    if kind == "x":
        xs, ws = draw(conv_shapes())
        xs = tuple(min(s, 4) for s in xs)
        ws = draw(st.sampled_from(((1, 1), (2, 2), (1, 2))))
    else:
        xs, ws = draw(valid_conv_shapes())
        xs = (min(xs[0], 2),) + tuple(min(s, 4) for s in xs[1:])
        ws = tuple(min(s, t) for s, t in zip(ws[-2:], xs[1:]))
    styles = ("normal", "small", "zeros", "const")
    if kind == "x":  # anything at all
        x = draw(operands(xs, styles=styles))
    else:
        x = draw(operands(xs, dtypes=REAL_DTYPES, forms=VALID_FORMS, styles=styles, keep_shape=True))
    w = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).standard_normal(ws)
    n = xs[0] if len(xs) == 3 else 1
    out_shape = (n, max(xs[-2] - ws[0] + 1, 0) if len(xs) >= 2 else 0,
                 max(xs[-1] - ws[1] + 1, 0) if xs else 0)
    if kind == "dout":
        dshape = draw(st.sampled_from((out_shape, (), (1, 1, 1), out_shape[1:],
                                       (out_shape[0] + 2,) + out_shape[1:],
                                       (out_shape[0], out_shape[1] + 2, out_shape[2]))))
        dout = draw(operands(dshape, styles=styles))
    else:
        dout = draw(operands(out_shape, dtypes=VALID_DTYPES, forms=VALID_FORMS, styles=styles,
                             keep_shape=True))
    h = draw(BAD_H if kind == "h" else GOOD_H)
    method = draw(st.sampled_from(METHODS))
    return x, w, dout, h, method


def _h_fault(h):
    """The error a step ``h`` calls for (TypeError or ValueError), or None."""
    if isinstance(h, (bool, np.bool_)) or not isinstance(h, (int, float, np.integer, np.floating)):
        return TypeError
    try:
        value = float(h)
    except OverflowError:
        return ValueError
    return None if math.isfinite(value) and value > 0 else ValueError


@FUZZ
@given(case=gradient_case())
def test_fuzz_numerical_gradient(ref, case):
    x, w, dout, h, method = case
    guard = Guard(x, dout)

    def f(v):
        return cconv.conv_forward(v, w, method=method)[0]

    result, exc, _ = _call(numerical_gradient, f, x.value, dout.value, h=h)
    guard.check_unchanged()
    expect = Expect()
    h_fault = _h_fault(h)
    if h_fault is not None:
        expect.add(h_fault, "h")
    xa = _convert(x.value, "x", expect)
    da = _convert(dout.value, "dout", expect)
    if xa is not None and xa.size:
        # f is called with a float64 copy of x: conv_forward's rules apply to it.
        _forward_expect(xa, w, expect=expect)
        if da is not None and not expect.errors:
            out_shape = (xa.shape[0], xa.shape[1] - w.shape[0] + 1, xa.shape[2] - w.shape[1] + 1)
            if da.shape != out_shape:  # exactly f(x)'s shape: no broadcasting
                expect.add(ValueError, "dout")

    if exc is not None:
        _check_raised(exc, expect)
        return
    assert not expect.errors, f"returned, but expected one of {expect.errors}"
    xf = xa.astype(np.float64)
    assert type(result) is np.ndarray and result.dtype == np.float64
    assert result.shape == xf.shape
    assert result.flags.writeable  # (C order is not promised here)
    for a in guard.arrays:
        assert not np.shares_memory(result, _root(a)), "output shares memory with an input"
    if xf.size == 0:
        event("numerical_gradient: empty x")  # no entry to perturb: f is never called
        return
    df = da.astype(np.float64)
    edx, _ = ref.scipy_backward(xf, w, df)
    err = _err(result, edx, _amax(df) * _amax(w))
    assert err <= 1e-6, f"numerical gradient off by {err:.3g} (h={h!r}, method={method})"
    event("numerical_gradient ok")


# --------------------------------------------------------------------------
# get_num_threads / set_num_threads
# --------------------------------------------------------------------------

MAX_THREADS = 4096  # the documented largest count

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
        _, exc, _ = _call(cconv.set_num_threads, n)
        if exc is not None:
            expect = Expect(errors={(ValueError if integer else TypeError, "n")})
            _check_raised(exc, expect)
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


# --------------------------------------------------------------------------
# pinned cases
# --------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_huge_broadcast_is_refused_before_allocating(method, dtype):
    # 320 GB as float64 if it were materialised: refused, not attempted.
    x = np.broadcast_to(dtype(1), (1, 200_000, 200_000))
    _, exc, peak = _call(cconv.conv_forward, x, np.ones((3, 3), dtype), method=method, trace=True)
    assert type(exc) in (MemoryError, ValueError), repr(exc)  # not NumPy's _ArrayMemoryError
    assert "200000" in str(exc)
    assert peak < HUGE_PEAK, f"allocated {peak / 2**20:.0f} MiB before refusing"


def test_shapes_overflowing_int64_cannot_be_created():
    # Why the fuzz skips them: NumPy itself refuses.
    with pytest.raises(ValueError):
        np.broadcast_to(np.float64(1), (2**32, 2**32, 2**32))


# --------------------------------------------------------------------------
# regressions: minimal reproductions of the bugs the fuzz found (once strict
# xfails, now fixed)
# --------------------------------------------------------------------------

def _f(v):
    return cconv.conv_forward(v, np.ones((2, 2)))[0]


@pytest.mark.parametrize("h", ["1e-5", None, [1e-5], 1j, True])
def test_numerical_gradient_non_numeric_h_names_h(h):
    # Was: NumPy's "'>' not supported between ..." or "truth value ...".
    with pytest.raises(TypeError, match=r"^h\b.*" + re.escape(repr(h))):
        numerical_gradient(_f, np.ones((1, 3, 3)), np.ones((1, 2, 2)), h=h)


@pytest.mark.parametrize("h", [float("inf"), float("nan"), 0, -1e-5, 10**400])
def test_numerical_gradient_rejects_infinite_or_non_positive_h(h):
    # Was: h=inf accepted, a NaN gradient returned.
    with pytest.raises(ValueError, match=r"^h\b.*positive finite"):
        numerical_gradient(_f, np.ones((1, 3, 3)), np.ones((1, 2, 2)), h=h)


@pytest.mark.parametrize("which", ["x", "dout"])
def test_numerical_gradient_complex_input(which):
    # Was: cast to real with a ComplexWarning (the imaginary part dropped).
    args = {"x": np.ones((1, 3, 3)), "dout": np.ones((1, 2, 2))}
    args[which] = args[which] * (1 + 1j)
    with pytest.raises(TypeError, match=rf"^{which}\b.*complex"):
        numerical_gradient(_f, args["x"], args["dout"])


@pytest.mark.parametrize("shape", [(5,), (1, 2), (2, 2, 2), (1, 1, 1), (2, 2)])
def test_numerical_gradient_bad_dout_names_dout(shape):
    # Was: NumPy's broadcast error (naming no argument), or a silent
    # broadcast of dout against f(x)'s output.
    with pytest.raises(ValueError, match=r"^dout\b.*" + re.escape(str(shape))):
        numerical_gradient(_f, np.ones((1, 3, 3)), np.ones(shape))


def test_numerical_gradient_fortran_x():
    # Was: a Fortran-ordered x gave uninitialised memory (fixed in ca41cd9).
    x = np.asfortranarray(np.arange(12.0).reshape(1, 3, 4))
    w = np.array([[1.0, 2.0], [3.0, 4.0]])
    dout = np.ones((1, 2, 3))
    g = numerical_gradient(lambda v: cconv.conv_forward(v, w)[0], x, dout)
    expected = [[[1, 3, 3, 2], [4, 10, 10, 6], [3, 7, 7, 4]]]  # worked out by hand
    np.testing.assert_allclose(g, expected, rtol=1e-8)


def test_numerical_gradient_empty_x_does_not_call_f():
    def f(v):
        raise AssertionError("f called")

    g = numerical_gradient(f, np.ones((0, 3)), np.ones((7,)))
    assert g.shape == (0, 3) and g.dtype == np.float64


@pytest.mark.parametrize("which", ["a", "b"])
def test_rel_error_complex(which):
    # Was: the imaginary part silently dropped (rel_error(1+1j, 1-1j) == 0).
    args = {"a": np.array([1 + 1j]), "b": np.array([1 - 1j])}
    if which == "b":
        args["a"] = np.array([1.0])
    with pytest.raises(TypeError, match=rf"^{which}\b.*complex"):
        rel_error(args["a"], args["b"])


@pytest.mark.parametrize("sa, sb", [((0, 3), (1, 3)), ((2, 0), ()), ((0,), (1,)), ((0, 3), (0, 4))])
def test_rel_error_empty(sa, sb):
    # Was: ValueError "zero-size array to reduction operation maximum".
    assert rel_error(np.ones(sa), np.ones(sb)) == 0.0


def test_rel_error_shapes_that_do_not_broadcast():
    with pytest.raises(ValueError, match=r"^a\b.*\bb\b.*\(2, 3\).*\(4,\)"):
        rel_error(np.ones((2, 3)), np.ones(4))


def test_rel_error_infinities_and_nan():
    inf = np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value" RuntimeWarning either
        assert rel_error([inf, 1.0], [inf, 1.0]) == 0.0
        assert rel_error([-inf, 2.0], [-inf, 2.0]) == 0.0
        assert rel_error([inf, 1.0], [inf, 3.0]) == 0.5  # the finite entry decides
        assert rel_error([inf], [1.0]) == 1.0
        assert rel_error([inf], [-inf]) == 1.0
        assert math.isnan(rel_error([np.nan, 1.0], [np.nan, 1.0]))
        assert math.isnan(rel_error([inf, 1.0], [inf, np.nan]))


@pytest.mark.parametrize("option", [
    {"stride": 2**63}, {"stride": (1, 2**64)}, {"stride": np.uint64(2**63)}, {"dilation": 2**63},
], ids=["stride", "stride pair", "stride uint64", "dilation"])
def test_conv2d_option_of_2_63_or_more(option):
    # Found by the conv2d fuzz: it raised OverflowError from the compiled
    # loops' C ssize_t, naming no argument (now clamped).  A 1x1
    # filter: the window of any stride or dilation fits, one output per
    # stride; the layer is valid by the specification.  Either a result or a
    # ValueError naming the option is acceptable.
    x = np.arange(50.0).reshape(1, 2, 5, 5)
    w = np.ones((3, 2, 1, 1))
    (name,) = option
    try:
        out, cache = cconv.conv2d_forward(x, w, **option)
    except ValueError as exc:
        assert _names(str(exc), name), str(exc)
        return
    stride = option.get("stride", 1)
    s = (stride, stride) if not isinstance(stride, tuple) else stride
    expected = (x[:, :, :: int(s[0]), :: int(s[1])].sum(axis=1, keepdims=True)
                * np.ones((1, 3, 1, 1)))
    np.testing.assert_allclose(out, expected)


@pytest.mark.parametrize("n", [2**31, 2**63, 4097, 100_000, np.int64(2**40)])
def test_set_num_threads_overflow(n):
    # Was: OverflowError from the C shim for 2**31 and beyond.
    before = cconv.get_num_threads()
    try:
        with pytest.raises(ValueError, match=r"^n\b.*" + re.escape(repr(n))):
            cconv.set_num_threads(n)
        assert cconv.get_num_threads() == before
    finally:
        cconv.set_num_threads(before)


def test_set_num_threads_accepts_the_documented_range():
    before = cconv.get_num_threads()
    try:
        for n in (1, np.int32(2), np.uint8(3), MAX_THREADS):
            cconv.set_num_threads(n)  # (no parallel loop started: 4096 threads)
            if cconv._runtime.openmp_enabled():
                assert cconv.get_num_threads() == n
    finally:
        cconv.set_num_threads(before)


def _run_child(code: str, tmp_path) -> None:
    """Run ``code`` in a fresh interpreter (a crash fails only the test), outside
    the checkout (so the installed package is imported), with no core file."""

    def no_core_dump():
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120,
                          cwd=tmp_path, preexec_fn=no_core_dump)
    assert proc.returncode == 0, f"exit status {proc.returncode}: {proc.stderr[-300:]!r}"


def test_set_num_threads_huge_count_refused_not_crashing(tmp_path):
    # Was: set_num_threads(100_000) accepted; the next call died of SIGSEGV
    # inside libgomp.  In a child process, so a crash fails only this test.
    code = (
        "import re, numpy as np, cconv\n"
        "try:\n"
        "    cconv.set_num_threads(100_000)\n"
        "except ValueError as e:\n"
        "    assert re.match(r'n\\b.*100000', str(e)), str(e)\n"
        "    cconv.conv_forward(np.ones((4, 64, 64)), np.ones((3, 3)), method='direct')\n"
        "    raise SystemExit(0)\n"
        "cconv.conv_forward(np.ones((4, 64, 64)), np.ones((3, 3)), method='direct')\n"
        "raise SystemExit(3)\n"
    )
    _run_child(code, tmp_path)


# --------------------------------------------------------------------------
# bugs the match_template / find_matches fuzz found, now fixed: inputs not in
# C order, a peak beside a suppressed candidate, the worst infinity, a
# threshold beyond float, a huge min_distance (it crashed the interpreter)
# --------------------------------------------------------------------------

_ORDERS = {
    "fortran": np.asfortranarray,
    "transposed": lambda a: np.ascontiguousarray(a.T).T,
    "zero_stride": lambda a: np.broadcast_to(a[..., :1, :], a.shape),  # rows repeat
}


@pytest.mark.parametrize("which", ["image", "templates"])
@pytest.mark.parametrize("order", list(_ORDERS))
@pytest.mark.parametrize("method", ["ccorr", "ccoeff_normed"])
def test_match_template_not_c_ordered(ref, which, order, method):
    args = {"image": np.arange(30.0).reshape(5, 6) % 7, "templates": np.array([[1.0, 2.0], [0.0, 5.0]])}
    args[which] = _ORDERS[order](args[which])
    want = ref.match_scores(np.array(args["image"]), np.array(args["templates"]), method)
    got = cconv.match_template(args["image"], args["templates"], method)
    np.testing.assert_allclose(got, want, atol=1e-9)


def test_find_matches_peak_beside_a_suppressed_candidate():
    # 10 is a match; 9 (2 from it) is suppressed; 8 is 4 from 10, 2 from the
    # suppressed 9: by the documented rule ("a better match suppresses the
    # worse") it is the second match.
    s = np.array([[10.0, 0.0, 9.0, 0.0, 8.0]])
    got = cconv.find_matches(s, num=5, min_distance=2)
    assert [tuple(m) for m in got] == [(0, 0, 0, 10.0), (0, 0, 4, 8.0)]


@pytest.mark.parametrize("lower_is_better", [False, True])
def test_find_matches_worst_infinity_is_a_score(lower_is_better):
    worst = np.inf if lower_is_better else -np.inf
    got = cconv.find_matches(np.array([[1.0, worst]]), num=5, min_distance=0,
                             lower_is_better=lower_is_better)
    assert [tuple(m) for m in got] == [(0, 0, 0, 1.0), (0, 0, 1, worst)]


@pytest.mark.parametrize("threshold, want", [(Fraction(19, 2), 2), (10**400, 0), (-10**400, 5)],
                         ids=["fraction", "int 1e400", "int -1e400"])
def test_find_matches_threshold_beyond_float(threshold, want):
    s = np.array([[1.0, 0.0, 9.5, 0.0, 10.0]])
    try:
        got = cconv.find_matches(s, num=5, min_distance=0, threshold=threshold)
    except (TypeError, ValueError) as exc:  # refused: it must say why
        assert _names(str(exc), "threshold"), f"{type(exc).__name__}: {exc}"
        return
    assert len(got) == want, got


@pytest.mark.parametrize("min_distance", ["2**31", "2**40", "2**61", "np.int64(2**62)"])
def test_find_matches_huge_min_distance(min_distance, tmp_path):
    # A valid distance (an int >= 0): one match per map, as for any distance
    # beyond the map.  In a child process, so a crash fails only this test.
    code = (
        "import warnings, numpy as np, cconv\n"
        "warnings.simplefilter('error')\n"
        "s = np.arange(12.0).reshape(3, 4)\n"
        f"got = cconv.find_matches(s, num=5, min_distance={min_distance})\n"
        "assert [tuple(m) for m in got] == [(0, 2, 3, 11.0)], got\n"
    )

    _run_child(code, tmp_path)


# --------------------------------------------------------------------------
# cconv.dask: the oracle is the in-memory call on the same data
# --------------------------------------------------------------------------
#
# cconv.dask validates with the in-memory functions' own rules, so for any
# input (shapes, dtypes, chunkings, filters of any size) it must either give
# the in-memory result, chunked in any way, or raise the same exception type
# naming the same argument.


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
    x = _fill(rng, (n, h, wd), xdt, "normal") if xdt.kind != "O" else np.zeros((n, h, wd), object)
    w = _fill(rng, wshape, wdt, "normal")
    return x, w, chunks, draw(st.sampled_from(("layer", "match")))


@FUZZ
@given(case=dask_case())
def test_fuzz_dask_equals_in_memory(case):
    da = pytest.importorskip("dask.array")
    cd = pytest.importorskip("cconv.dask")
    x, w, chunks, what = case
    if what == "layer":
        want, exc_mem, _ = _call(cconv.conv_forward, x, w)
    else:
        want, exc_mem, _ = _call(cconv.match_template, x, w)
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
        assert isinstance(exc, ValueError) and _names(str(exc), "w")
        event("dask layer: K filters against one image refused")
        return
    want = want[0] if what == "layer" else want
    assert got.shape == want.shape and got.dtype == want.dtype
    scale = max(_amax(want), 1.0)
    assert np.max(np.abs(got - want), initial=0.0) <= 1e-9 * scale if want.dtype == np.float64 \
        else np.max(np.abs(got - want), initial=0.0) <= 1e-4 * scale
    event(f"dask {what}: equal")
