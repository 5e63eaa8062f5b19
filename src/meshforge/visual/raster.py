"""A vectorized numpy triangle rasterizer: visibility (z-buffer) only, no shading.

Runs anywhere (no display, no GPU, no GL library). Triangles are grouped by the size of their
pixel bounding box (powers of two), so each group tests a fixed ``S x S`` block of candidate pixels
per triangle in one numpy expression; candidates are resolved per chunk into the z-buffer by a
``np.minimum.at`` on the depth buffer followed by a "who reached the minimum" pass. Cost grows with covered pixels + triangles,
never with a Python loop over faces.

Coordinates are pixel units: ``x`` to the right, ``y`` downwards, ``z`` depth (smaller is nearer).
Pixel centres sit at ``(i + 0.5, j + 0.5)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Candidates tested per chunk (memory: ~40 bytes each at peak).
CHUNK_CANDIDATES = 1 << 22
TILE = 16  # triangles whose pixel box is larger are cut into TILE x TILE tiles
EPS = -1e-7  # barycentric tolerance: shared edges leave no cracks


@dataclass(frozen=True)
class Fragments:
    """The nearest triangle at every pixel: ``face`` (-1 = background) and its barycentrics."""

    face: np.ndarray  # (H, W) int64
    bary: np.ndarray  # (H, W, 3) float32
    depth: np.ndarray  # (H, W) float32, inf where empty

    @property
    def covered(self) -> np.ndarray:
        return self.face >= 0


def rasterize(tri: np.ndarray, width: int, height: int) -> Fragments:
    """Z-buffer ``tri`` (N, 3, 3) float triangles in pixel space into a ``width x height`` image."""
    tri = np.asarray(tri, dtype=np.float64)
    npix = width * height
    zbuf = np.full(npix, np.inf, dtype=np.float64)
    fbuf = np.full(npix, -1, dtype=np.int64)
    bbuf = np.zeros((npix, 2), dtype=np.float32)
    if len(tri) == 0:
        return _fragments(fbuf, bbuf, zbuf, width, height)

    x, y, z = tri[:, :, 0], tri[:, :, 1], tri[:, :, 2]
    finite = np.isfinite(tri).all(axis=(1, 2))
    # Pixel-centre bounding boxes, clipped to the image.
    x0 = np.clip(np.ceil(np.nanmin(x, axis=1) - 0.5), 0, width).astype(np.int64)
    x1 = np.clip(np.floor(np.nanmax(x, axis=1) - 0.5), -1, width - 1).astype(np.int64)
    y0 = np.clip(np.ceil(np.nanmin(y, axis=1) - 0.5), 0, height).astype(np.int64)
    y1 = np.clip(np.floor(np.nanmax(y, axis=1) - 0.5), -1, height - 1).astype(np.int64)
    w = x1 - x0 + 1
    h = y1 - y0 + 1
    # Edge-function coefficients: b_i(px, py) = a_i * px + b_i * py + c_i, normalized by area so
    # they are the barycentric coordinates directly.
    area = (x[:, 1] - x[:, 0]) * (y[:, 2] - y[:, 0]) - (x[:, 2] - x[:, 0]) * (y[:, 1] - y[:, 0])
    keep = finite & (w > 0) & (h > 0) & (np.abs(area) > 1e-12)
    idx = np.flatnonzero(keep)
    if len(idx) == 0:
        return _fragments(fbuf, bbuf, zbuf, width, height)
    x, y, z, area = x[idx], y[idx], z[idx], area[idx]
    x0, y0, w, h = x0[idx], y0[idx], w[idx], h[idx]
    inv = 1.0 / area
    # b0 from edge (v1, v2), b1 from edge (v2, v0); b2 = 1 - b0 - b1.
    a0 = (y[:, 1] - y[:, 2]) * inv
    bb0 = (x[:, 2] - x[:, 1]) * inv
    c0 = (x[:, 1] * y[:, 2] - x[:, 2] * y[:, 1]) * inv
    a1 = (y[:, 2] - y[:, 0]) * inv
    bb1 = (x[:, 0] - x[:, 2]) * inv
    c1 = (x[:, 2] * y[:, 0] - x[:, 0] * y[:, 2]) * inv

    coef = np.stack([a0, bb0, c0, a1, bb1, c1], axis=1)
    size = np.maximum(w, h)
    small = np.flatnonzero(size <= TILE)
    bucket = np.ceil(np.log2(size[small])).astype(np.int64)
    for k in np.unique(bucket):
        m = small[bucket == k]
        _blocks(m, x0[m], y0[m], w[m], h[m], 1 << int(k), coef, z, idx, width, zbuf, fbuf, bbuf)
    large = np.flatnonzero(size > TILE)
    if len(large):
        # Big triangles: cut their boxes into TILE x TILE tiles and drop tiles wholly outside.
        ntx = -(-w[large] // TILE)
        nty = -(-h[large] // TILE)
        count = ntx * nty
        tri_t = np.repeat(large, count)
        k = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        ty, tx = np.divmod(k, np.repeat(ntx, count))
        bx0 = x0[tri_t] + tx * TILE
        by0 = y0[tri_t] + ty * TILE
        bw = np.minimum(TILE, w[tri_t] - tx * TILE)
        bh = np.minimum(TILE, h[tri_t] - ty * TILE)
        keep_t = _tile_may_overlap(coef[tri_t], bx0, by0, bw, bh)
        tri_t, bx0, by0, bw, bh = tri_t[keep_t], bx0[keep_t], by0[keep_t], bw[keep_t], bh[keep_t]
        _blocks(tri_t, bx0, by0, bw, bh, TILE, coef, z, idx, width, zbuf, fbuf, bbuf)
    return _fragments(fbuf, bbuf, zbuf, width, height)


def _fragments(fbuf: np.ndarray, bbuf: np.ndarray, zbuf: np.ndarray, width: int, height: int) -> Fragments:
    bary = np.empty((height * width, 3), dtype=np.float32)
    bary[:, :2] = bbuf
    bary[:, 2] = 1.0 - bbuf[:, 0] - bbuf[:, 1]
    return Fragments(
        face=fbuf.reshape(height, width),
        bary=bary.reshape(height, width, 3),
        depth=zbuf.astype(np.float32).reshape(height, width),
    )


def _tile_may_overlap(coef: np.ndarray, bx0: np.ndarray, by0: np.ndarray, bw: np.ndarray, bh: np.ndarray) -> np.ndarray:
    """False for tiles whose four corner pixel centres all lie outside one edge of the triangle."""
    cx = np.stack([bx0, bx0 + bw - 1, bx0, bx0 + bw - 1], axis=1) + 0.5
    cy = np.stack([by0, by0, by0 + bh - 1, by0 + bh - 1], axis=1) + 0.5
    l0 = coef[:, 0, None] * cx + coef[:, 1, None] * cy + coef[:, 2, None]
    l1 = coef[:, 3, None] * cx + coef[:, 4, None] * cy + coef[:, 5, None]
    l2 = 1.0 - l0 - l1
    return (l0.max(axis=1) >= EPS) & (l1.max(axis=1) >= EPS) & (l2.max(axis=1) >= EPS)


def _blocks(
    tri: np.ndarray,
    bx0: np.ndarray,
    by0: np.ndarray,
    bw: np.ndarray,
    bh: np.ndarray,
    s: int,
    coef: np.ndarray,
    z: np.ndarray,
    idx: np.ndarray,
    width: int,
    zbuf: np.ndarray,
    fbuf: np.ndarray,
    bbuf: np.ndarray,
) -> None:
    """Test an ``s x s`` block of pixels at (bx0, by0) (only bw x bh of it valid) against triangle ``tri``."""
    oy, ox = np.divmod(np.arange(s * s, dtype=np.int64), s)
    per_chunk = max(1, CHUNK_CANDIDATES // (s * s))
    for start in range(0, len(tri), per_chunk):
        sl = slice(start, start + per_chunk)
        t = tri[sl]
        c = coef[t]
        px = bx0[sl, None] + ox[None, :]
        py = by0[sl, None] + oy[None, :]
        cx = px + 0.5
        cy = py + 0.5
        l0 = c[:, 0, None] * cx + c[:, 1, None] * cy + c[:, 2, None]
        l1 = c[:, 3, None] * cx + c[:, 4, None] * cy + c[:, 5, None]
        inside = (ox[None, :] < bw[sl, None]) & (oy[None, :] < bh[sl, None])
        inside &= (l0 >= EPS) & (l1 >= EPS) & (l0 + l1 <= 1.0 - EPS)
        rows, cols = np.nonzero(inside)
        if len(rows) == 0:
            continue
        tri_i = t[rows]
        b0 = l0[rows, cols]
        b1 = l1[rows, cols]
        depth = b0 * z[tri_i, 0] + b1 * z[tri_i, 1] + (1.0 - b0 - b1) * z[tri_i, 2]
        pix = py[rows, cols] * width + px[rows, cols]
        np.minimum.at(zbuf, pix, depth)
        win = depth <= zbuf[pix]
        pix = pix[win]
        fbuf[pix] = idx[tri_i[win]]
        bbuf[pix, 0] = b0[win]
        bbuf[pix, 1] = b1[win]
