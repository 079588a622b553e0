"""cconv.conv2d_forward / conv2d_backward against PyTorch.

PyTorch is an optional test peer: without it this module is skipped, with
the reason shown in the summary.  ``.ci/run`` installs ``torch==2.13.0`` so
these tests always run in CI.  Forward against ``torch.nn.functional.conv2d``;
dx, dw and db against autograd of ``sum(out * dout)``; NaN and Inf (drawn by
Hypothesis) where PyTorch's float64 layer puts them.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
from cases import assert_same_specials, max_rel_err, restoring_by, specials_tol, tol
from fuzz.strategies import FUZZ, sprinkled
from hypothesis import given
from hypothesis import strategies as st

import cconv

torch = pytest.importorskip(
    "torch", reason="PyTorch is an optional test peer (pip install torch==2.13.0); .ci/run installs it"
)

# A grid over every option: each value of each option meets the others.
OPTIONS = [
    dict(stride=s, padding=p, dilation=d, groups=g)
    for s, p, d, g in itertools.product(
        [1, 2, (1, 3)], [0, 1, (2, 1), "valid", "same"], [1, 2, (2, 1)], [1, 2]
    )
    if not (p == "same" and s != 1)
]
SHAPES = [  # N, C, H, W, F, HH, WW
    (2, 4, 9, 10, 6, 3, 3),
    (1, 2, 12, 7, 4, 2, 4),
    (3, 6, 7, 7, 2, 1, 1),
]


def _torch_layer(x, w, b, dout, opts):
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    with warnings.catch_warnings():
        # 'same' with an even filter: PyTorch warns that it pads a copy.
        warnings.simplefilter("ignore", UserWarning)
        out = torch.nn.functional.conv2d(xt, wt, bt, **opts)
    grads = torch.autograd.grad(out, (xt, wt, bt), torch.from_numpy(dout))
    return out.detach().numpy(), [g.numpy() for g in grads]


def _fits(shape, opts):
    n, c, h, w, f, hh, ww = shape
    if c % opts["groups"] or f % opts["groups"]:
        return False
    d = opts["dilation"] if isinstance(opts["dilation"], tuple) else (opts["dilation"],) * 2
    p = opts["padding"]
    p = (0, 0) if p in ("valid", "same") else (p if isinstance(p, tuple) else (p, p))
    return all(size + 2 * pad >= di * (k - 1) + 1 for size, pad, di, k in zip((h, w), p, d, (hh, ww)))


CASES = [(shape, opts) for shape in SHAPES for opts in OPTIONS if _fits(shape, opts)]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape,opts", CASES, ids=[f"{s}-{o}" for s, o in CASES])
def test_against_torch(rng, shape, opts, dtype):
    n, c, h, w_, f, hh, ww = shape
    x = rng.standard_normal((n, c, h, w_)).astype(dtype)
    w = rng.standard_normal((f, c // opts["groups"], hh, ww)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    out, cache = cconv.conv2d_forward(x, w, b, **opts)
    dout = rng.standard_normal(out.shape).astype(dtype)
    want_out, want_grads = _torch_layer(x, w, b, dout, opts)
    assert out.shape == want_out.shape
    assert max_rel_err(out, want_out) <= tol(dtype)
    for got, want in zip(cconv.conv2d_backward(dout, cache), want_grads):
        assert got.shape == want.shape and got.dtype == dtype
        assert max_rel_err(got, want) <= tol(dtype)


@pytest.mark.parametrize("method", ["auto", "gemm", "direct", "fft"])
def test_single_channel_against_torch(rng, method):
    x = rng.standard_normal((1, 1, 33, 40))
    w = rng.standard_normal((5, 1, 11, 8))
    b = rng.standard_normal(5)
    out, cache = cconv.conv2d_forward(x, w, b, padding="same", method=method)
    dout = rng.standard_normal(out.shape)
    want_out, want_grads = _torch_layer(x, w, b, dout, {"padding": "same"})
    assert max_rel_err(out, want_out) <= 1e-12
    for got, want in zip(cconv.conv2d_backward(dout, cache), want_grads):
        assert max_rel_err(got, want) <= 1e-12


# --------------------------------------------------------------------------
# NaN and Inf
# --------------------------------------------------------------------------


@st.composite
def layer_4d_case(draw):
    c = draw(st.sampled_from([1, 1, 2]))
    n, f = draw(st.sampled_from([(1, 1), (1, 3), (2, 1), (2, 2)]))
    h, w = draw(st.integers(3, 14)), draw(st.integers(3, 14))
    pad = draw(st.integers(0, 2))
    hh, ww = draw(st.integers(1, min(4, h + 2 * pad))), draw(st.integers(1, min(4, w + 2 * pad)))
    x = draw(sprinkled((n, c, h, w), np.float64))
    k = draw(sprinkled((f, c, hh, ww), np.float64, most=2))
    single = c == 1 and (n == 1 or f == 1)
    method = draw(st.sampled_from(("auto", "gemm", "direct", "fft") if single else ("auto", "gemm")))
    return x, k, pad, method


@pytest.mark.parametrize("strategy", ["scatter", "fft"])
@FUZZ
@given(case=layer_4d_case(), data=st.data())
def test_nan_and_inf_like_torch(strategy, case, data):
    x, w, pad, method = case
    with restoring_by(strategy):
        out, cache = cconv.conv2d_forward(x, w, padding=pad, method=method)
    dout = data.draw(sprinkled(out.shape, np.float64, most=3))
    with restoring_by(strategy):
        dx, dw, _ = cconv.conv2d_backward(dout, cache)
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    ot = torch.nn.functional.conv2d(xt, wt, padding=pad)
    gx, gw = torch.autograd.grad(ot, (xt, wt), torch.from_numpy(dout))
    assert_same_specials(out, ot.detach().numpy(), specials_tol(np.float64), f"out ({method})")
    assert_same_specials(dx, gx.numpy(), specials_tol(np.float64), f"dx ({method})")
    assert_same_specials(dw, gw.numpy(), specials_tol(np.float64), f"dw ({method})")
