"""The 2-D filter with boundary rules inside the loops (``cconv._filter2d``), each path forced.

``filter2d`` is the one loop behind the drop-ins' 2-D calls; it reads the
interior of each image in place and gathers only the patches that reach past
an edge.  Every split of the outputs (the default, the narrowest edges
('interior'), and no in-place reads at all ('strips')) runs in every build
this CPU can run (baseline, x86-64-v3, x86-64-v4), against a plain-NumPy
reference: ``np.pad``'s extension and a sliding-window sum in float64.  The
public functions' own tests (test_ndimage.py, test_signal.py) check the same
paths against SciPy.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from cconv import _engine, _filter2d


def run(x, k, rule, fill, start, shape, method="direct", out=None):
    """filter2d on the route ``method`` (planned as the drop-ins plan it)."""
    plan = _filter2d.plan(method, x.shape[0], shape, k.shape, x.itemsize)
    return _filter2d.filter2d(x, k, rule, fill, start, shape, plan, out)


# The rules of cconv._boundary, as np.pad spells them.
PAD = {"fill": "constant", "wrap": "wrap", "symmetric": "symmetric", "mirror": "reflect", "nearest": "edge"}


@pytest.fixture(params=_filter2d.PATHS)
def path(request, monkeypatch):
    """Force one split of the outputs into in-place interior and gathered edges."""
    monkeypatch.setattr(_filter2d, "PATH", request.param)
    return request.param


def reference(x, k, rule, fill, start, shape):
    """out[n, i, j] = sum_ab X[n, start + (i, j) + (a, b)] k[a, b], X = x extended by np.pad, in float64."""
    (r0, c0), (oh, ow), (kh, kw) = start, shape, k.shape
    n, h, w = x.shape
    x = x.astype(np.float64)
    if x.size == 0:  # only a constant extends an empty image
        return np.full((n, oh, ow), fill * k.astype(np.float64).sum())
    top, left = max(0, -r0), max(0, -c0)
    bottom, right = max(0, r0 + oh + kh - 1 - h), max(0, c0 + ow + kw - 1 - w)
    widths = ((0, 0), (top, bottom), (left, right))
    if PAD[rule] == "constant":
        xe = np.pad(x, widths, mode="constant", constant_values=fill)
    elif PAD[rule] == "reflect" and 1 in (h, w):  # whole-sample mirror of one sample: the sample
        xe = np.pad(np.pad(x, [(0, 0), *((p if d > 1 else (0, 0)) for p, d in zip(widths[1:], (h, w)))], "reflect"),
                    [(0, 0), *((p if d == 1 else (0, 0)) for p, d in zip(widths[1:], (h, w)))], "edge")
    else:
        xe = np.pad(x, widths, mode=PAD[rule])
    xe = xe[:, r0 + top : r0 + top + oh + kh - 1, c0 + left : c0 + left + ow + kw - 1]
    return np.einsum("nijab,ab->nij", sliding_window_view(xe, (kh, kw), axis=(1, 2)), k.astype(np.float64))


def assert_close(got, want, dtype):
    assert got.dtype == dtype and got.shape == want.shape
    scale = max(1.0, float(np.max(np.abs(want), initial=0.0)))
    assert float(np.max(np.abs(got - want), initial=0.0)) <= 64 * np.finfo(dtype).eps * scale


# (H, W, kh, kw): odd and even filters, 1-row and 1-column filters, images
# smaller than the filter, rows narrower and wider than a vector block.
SHAPES = [(1, 1, 3, 3), (3, 2, 5, 4), (7, 9, 3, 3), (20, 37, 2, 4), (33, 70, 5, 5), (2, 100, 1, 7),
          (40, 3, 7, 1), (17, 130, 9, 12)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", list(PAD))
def test_every_rule_path_and_build(correlate_build, path, dtype, rule, rng):
    for h, w, kh, kw in SHAPES:
        x = rng.standard_normal((2, h, w)).astype(dtype)
        k = rng.standard_normal((kh, kw)).astype(dtype)
        # ndimage's centred window, SciPy's 'full' and 'valid' regions, and a shifted one
        for start, shape in [((-(kh // 2), -(kw // 2)), (h, w)), ((1 - kh, 1 - kw), (h + kh - 1, w + kw - 1)),
                             ((0, 0), (h - kh + 1, w - kw + 1)), ((-(kh // 2) - 1, 1 - kw // 2), (h, w))]:
            if min(shape) < 0:
                continue
            got = run(x, k, rule, -1.5, start, shape)
            assert_close(got, reference(x, k, rule, -1.5, start, shape), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_views_in_and_out(correlate_build, path, dtype, rng):
    # Negative row strides and a strided batch read in place; a strided
    # output view written in place; an output whose rows are not contiguous
    # (or that overlaps the input) through a fresh array.
    base = rng.standard_normal((3, 31, 50)).astype(dtype)
    k = rng.standard_normal((5, 3)).astype(dtype)
    want = reference(base[::-1, ::-1], k, "mirror", 0.0, (-2, -1), (31, 50))
    got = run(base[::-1, ::-1], k, "mirror", 0.0, (-2, -1), (31, 50))
    assert_close(got, want, dtype)
    reversed_cols = base[:, :, ::-1]
    assert_close(run(reversed_cols, k, "mirror", 0.0, (-2, -1), (31, 50)),
                 reference(reversed_cols, k, "mirror", 0.0, (-2, -1), (31, 50)), dtype)
    big = np.full((3, 40, 70), 7.0, dtype)
    view = big[:, 5:36, 10:60]
    assert run(base[::-1, ::-1], k, "mirror", 0.0, (-2, -1), (31, 50), out=view) is view
    assert_close(view, want, dtype)
    assert np.all(big[:, :5] == 7) and np.all(big[:, :, :10] == 7) and np.all(big[:, :, 60:] == 7)
    columns = np.zeros((50, 31, 3), dtype).T  # last axis strided
    assert run(base[::-1, ::-1], k, "mirror", 0.0, (-2, -1), (31, 50), out=columns) is columns
    assert_close(columns, want, dtype)
    same = base.copy()
    run(same, k, "wrap", 0.0, (-2, -1), (31, 50), out=same)
    assert_close(same, reference(base, k, "wrap", 0.0, (-2, -1), (31, 50)), dtype)


@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
def test_nan_inf_and_empty_images(method, rng):
    x = rng.standard_normal((1, 12, 15))
    x[0, 3, 4], x[0, 0, 14] = np.nan, np.inf
    k = rng.standard_normal((3, 3))
    got = run(x, k, "nearest", 0.0, (-1, -1), (12, 15), method=method)
    want = reference(x, k, "nearest", 0.0, (-1, -1), (12, 15))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    ok = np.isfinite(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-9, atol=1e-9)
    empty = np.zeros((2, 0, 4))
    got = run(empty, k, "fill", 2.0, (-2, -2), (2, 6), method=method)
    np.testing.assert_allclose(got, np.full((2, 2, 6), 2.0 * k.sum()), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_bits_on_any_thread_count_and_path(correlate_build, path, dtype, rng, monkeypatch):
    # Each output is the same sum in the same order whichever thread takes
    # its block, and whether it is read in place or from a gathered strip.
    x = rng.standard_normal((3, 70, 90)).astype(dtype)
    k = rng.standard_normal((5, 6)).astype(dtype)
    results = [_filter2d.filter2d(x, k, "symmetric", 0.0, (-2, -3), (70, 90), _engine.Plan("direct", n, 0))
               for n in (1, 2, 3)]
    monkeypatch.setattr(_filter2d, "PATH", "strips")
    results.append(_filter2d.filter2d(x, k, "symmetric", 0.0, (-2, -3), (70, 90), _engine.Plan("direct", 2, 0)))
    for other in results[1:]:
        np.testing.assert_array_equal(other, results[0])
    assert_close(results[0], reference(x, k, "symmetric", 0.0, (-2, -3), (70, 90)), dtype)
