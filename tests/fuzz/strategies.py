"""The fuzz's inputs: Hypothesis strategies shared by the fuzz modules.

Arbitrary shapes (sizes 0 and 1, filters larger than images, 0-D to 4-D
arrays), every NumPy dtype kind, every memory layout (Fortran, sliced,
negative and zero strides, read-only, unaligned, byte-swapped, subclasses,
masked) and things that are not arrays at all (lists, ragged lists, tuples,
scalars, None, memoryview, bytes, str, dicts, sets).

Environment
-----------
``CCONV_FUZZ_EXAMPLES``
    Hypothesis examples per fuzz test (default 40, so CI stays fast;
    ``CCONV_FUZZ_EXAMPLES=500`` is a long run).  No example database is
    written.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass

import numpy as np
from cases import with_layout
from hypothesis import HealthCheck, assume, settings
from hypothesis import strategies as st

from fuzz.oracle import HUGE_BYTES

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

# Not a method of any of the layers.
BAD_METHODS = (None, "FFT", "", "naive", 3)


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

# With three operands, all float32 (the native float32 path) is rare from
# VALID_DTYPES alone: a third of the valid calls draw from these.
FLOAT32_DTYPES = tuple(np.dtype(d) for d in ("f4", "f4", "f4", "f2", ">f4"))

STYLES = ("normal", "normal", "normal", "small", "zeros", "const", "wide")

# cases.with_layout's layouts, weighted towards C order.
LAYOUTS = (
    "C", "C", "C", "F", "transposed", "sliced", "negative", "zero_stride",
    "readonly", "unaligned_readonly", "unaligned", "byteswapped",
    "readonly_sliced_negative",
)

ARRAY_FORMS = ("array", "array", "array", "array", "array", "list", "tuple",
               "memoryview", "subclass")

JUNK_FORMS = ("masked", "ragged", "scalar", "none", "bytes", "bytes_view",
              "dict", "str", "set")

ALL_FORMS = ARRAY_FORMS * 3 + JUNK_FORMS

VALID_FORMS = ("array",) * 6 + ("list", "tuple", "memoryview", "subclass")

_SCALES = {
    # Float magnitudes that keep every product and sum representable in the
    # dtype cconv computes in (float16 inputs compute in float32).
    2: (1e-2, 1.0, 1e2, 1e3),
    4: (1e-6, 1e-3, 1.0, 1e3, 1e6),
    8: (1e-30, 1e-6, 1.0, 1e6, 1e30),
}


def fill(rng: np.random.Generator, shape, dt: np.dtype, style: str) -> np.ndarray:
    """Values of ``dt`` in ``shape``, native byte order (layouts swap later).

    ``style``: "normal", "small" (integers), "zeros", "const", "wide" (the
    whole range of an integer dtype, float magnitudes far from 1);
    "distinct" and "specials" are score maps (see ``_score_values``).
    """
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
    base = fill(np.random.default_rng(seed), tuple(shape), dt, style)
    if not dt.isnative:
        base = base.astype(dt)
    arr = with_layout(base, layout)
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
def image_and_filter(draw, largest=9):
    """(H, W, HH, WW): an image of sides 1 to ``largest`` and a filter that fits in it."""
    h = draw(st.integers(1, largest))
    wd = draw(st.integers(1, largest))
    return h, wd, draw(st.integers(1, h)), draw(st.integers(1, wd))


@st.composite
def valid_conv_shapes(draw):
    """(x shape, w shape) the 3-D layer takes: broadcasting, N = 0 and 2-D w included."""
    h, wd, hh, ww = draw(image_and_filter())
    nx = draw(st.sampled_from((1, 1, 2, 3, 0)))
    w3 = draw(st.booleans())
    if w3:
        nw = draw(st.sampled_from((1, nx, nx) + ((2, 3) if nx == 1 else ())))
        return (nx, h, wd), (nw, hh, ww)
    return (nx, h, wd), (hh, ww)


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


# --------------------------------------------------------------------------
# backward passes
# --------------------------------------------------------------------------


@st.composite
def douts(draw, out_shape, wrong_shapes):
    """A dout for a forward output of ``out_shape``: mostly of that shape (any real
    dtype and array-like form), else of a refused dtype, of one of
    ``wrong_shapes``, or junk."""
    kind = draw(st.sampled_from(("exact",) * 6 + ("dtype", "shape", "junk")))
    if kind == "exact":
        return draw(operands(out_shape, dtypes=VALID_DTYPES, forms=VALID_FORMS, keep_shape=True))
    if kind == "dtype":
        return draw(operands(out_shape, dtypes=BAD_DTYPES, forms=ARRAY_FORMS))
    if kind == "shape":
        wrong = draw(st.sampled_from(wrong_shapes))
        return draw(operands(wrong, dtypes=VALID_DTYPES, forms=VALID_FORMS, keep_shape=True))
    return draw(operands(out_shape, dtypes=REAL_DTYPES, forms=JUNK_FORMS))


# Caches that are none.  Each layer's fuzz adds its own kinds (a look-alike,
# the other layer's cache).
JUNK_CACHES = ("none", "tuple", "dict", "array", "object", "list")


def junk_cache(kind, xa, wa, **more):
    """A value passed as a cache that is none, made of the inputs ``xa`` and ``wa``.

    ``more``: kinds added (or replaced) by the caller, name to value.
    """
    return {
        "none": None,
        "tuple": (xa, wa),
        "dict": {"x": xa, "w": wa},
        "array": xa,
        "object": object(),
        "list": [xa, wa],
        **more,
    }[kind]


# --------------------------------------------------------------------------
# NaN and Inf
# --------------------------------------------------------------------------

SPECIALS = (np.nan, np.inf, -np.inf)


@st.composite
def sprinkled(draw, shape, dtype, most=4):
    """A standard-normal array of ``shape`` with up to ``most`` NaN/Inf, corners favoured."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    if draw(st.booleans()):  # zeros too, so that Inf meets 0
        a[rng.random(shape) < 0.2] = 0.0
    count = draw(st.integers(0, most))
    for _ in range(count):
        index = tuple(
            draw(st.sampled_from([0, n - 1]) | st.integers(0, n - 1)) for n in shape
        )
        a[index] = draw(st.sampled_from(SPECIALS))
    return a.astype(dtype)
