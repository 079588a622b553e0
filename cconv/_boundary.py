"""Images extended beyond their edges, as SciPy's boundary modes extend them.

The SciPy drop-ins (``cconv.signal``, ``cconv.ndimage``) turn every output
mode and boundary rule into one operation: the part of the image that the
requested outputs read, extended by the boundary rule where it reaches past
an edge, then a valid correlation of that with the kernel.  This module does
the extending; any number of leading (batch) axes is carried along.

The rules, for an axis of length ``n`` and an index ``i`` outside it:

- ``'fill'``: a constant (SciPy's 'fill', 'constant', 'grid-constant');
- ``'wrap'``: ``i mod n`` (periodic);
- ``'symmetric'``: half-sample symmetric, period 2n: ``... b a | a b c | c b ...``
  (SciPy's 'symm' and ndimage's 'reflect', 'grid-mirror');
- ``'mirror'``: whole-sample symmetric, period 2n - 2: ``... c b | a b c | b a ...``
  (a single sample repeats);
- ``'nearest'``: the edge sample repeats.

Each repeats as far as needed: a kernel longer than the image sees the
periodic extension of the rule.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ._workspace import scratch_array

__all__ = ["RULES", "source_index", "extend"]

RULES = ("fill", "wrap", "symmetric", "mirror", "nearest")


def source_index(index: np.ndarray, n: int, rule: str) -> np.ndarray:
    """The index inside ``[0, n)`` that each ``index`` reads; -1 for the fill value."""
    index = np.asarray(index, dtype=np.int64)
    if rule == "fill":
        return np.where((index >= 0) & (index < n), index, -1)
    if rule == "wrap":
        return index % n
    if rule == "symmetric":
        k = index % (2 * n)
        return np.where(k >= n, 2 * n - 1 - k, k)
    if rule == "mirror":
        if n == 1:
            return np.zeros_like(index)
        k = index % (2 * n - 2)
        return np.where(k >= n, 2 * n - 2 - k, k)
    if rule == "nearest":
        return np.clip(index, 0, n - 1)
    raise ValueError(f"unknown boundary rule {rule!r}")


def extend(x: np.ndarray, rows: tuple[int, int], cols: tuple[int, int], rule: str,
           fill: object = 0, dtype: npt.DTypeLike | None = None, scratch: bool = False) -> np.ndarray:
    """Rows ``[rows[0], rows[1])`` and columns ``[cols[0], cols[1])`` of ``x``
    extended by ``rule``, as a C-contiguous array of ``dtype``.

    ``x`` is (..., H, W); the ranges may reach past either edge (or lie
    wholly outside, for 'fill').  Only the extended borders are gathered
    index by index; the part inside the image is one block copy.  With
    ``scratch`` the result is the calling thread's scratch space (see
    ``cconv._workspace``), valid until its next ``extend(..., scratch=True)``:
    for a copy that lives only inside one call.  A range inside the image
    needs no extension: the result is then ``x`` itself (or a view of it)
    where that is C-contiguous of ``dtype``, to be read, not written.
    """
    *lead, h, w = x.shape
    dtype = x.dtype if dtype is None else np.dtype(dtype)
    (r0, r1), (c0, c1) = rows, cols
    if 0 <= r0 <= r1 <= h and 0 <= c0 <= c1 <= w:
        inside = x[..., r0:r1, c0:c1]
        if inside.dtype == dtype and inside.flags.c_contiguous and inside.flags.aligned:
            return inside
    shape = (*lead, r1 - r0, c1 - c0)
    out = scratch_array("extend", shape, dtype) if scratch else np.empty(shape, dtype=dtype)
    if out.size == 0:
        return out
    if rule != "fill" and (h == 0 or w == 0):
        raise ValueError(f"boundary rule {rule!r} cannot extend an empty image (shape {x.shape})")
    # The block of the requested range that lies inside the image.
    i0, i1 = max(r0, 0), min(r1, h)
    j0, j1 = max(c0, 0), min(c1, w)
    if rule == "fill":
        if not (i0 < i1 and j0 < j1):
            out[...] = fill
            return out
        # The image block, then the fill around it: each element written once.
        out[..., i0 - r0 : i1 - r0, j0 - c0 : j1 - c0] = x[..., i0:i1, j0:j1]
        out[..., : i0 - r0, :] = fill
        out[..., i1 - r0 :, :] = fill
        out[..., i0 - r0 : i1 - r0, : j0 - c0] = fill
        out[..., i0 - r0 : i1 - r0, j1 - c0 :] = fill
        return out
    ri = source_index(np.arange(r0, r1), h, rule)
    ci = source_index(np.arange(c0, c1), w, rule)
    if not (i0 < i1 and j0 < j1):  # nothing inside: gather everything
        out[...] = x[..., ri, :][..., ci]
        return out
    inner_rows = slice(i0 - r0, i1 - r0)
    out[..., inner_rows, j0 - c0 : j1 - c0] = x[..., i0:i1, j0:j1]
    # Left and right borders of the inner rows, from the image's columns...
    for cs in (slice(0, j0 - c0), slice(j1 - c0, c1 - c0)):
        if cs.stop > cs.start:
            out[..., inner_rows, cs] = x[..., i0:i1, :][..., ci[cs]]
    # ...then the top and bottom rows, gathered whole.
    for rs in (slice(0, i0 - r0), slice(i1 - r0, r1 - r0)):
        if rs.stop > rs.start:
            out[..., rs, :] = x[..., ri[rs], :][..., ci]
    return out
