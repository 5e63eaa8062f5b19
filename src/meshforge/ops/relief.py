"""Height map -> closed, manifold, outward-facing solid (a relief or lithophane on a flat base).

Vectorized: the top is the height grid (two triangles per cell), the bottom a fan from one centre
vertex to the boundary ring at z = 0, and the sides one quad per boundary edge joining the grid's
boundary vertices to the ring. Every edge is shared by exactly two triangles, so the result is
watertight by construction (no boolean, no repair): V = H*W + ring + 1, F = 2(H-1)(W-1) + 3*ring.
"""

from __future__ import annotations

import numpy as np


def boundary_ring(rows: int, cols: int) -> np.ndarray:
    """Grid indices of the boundary, counter-clockwise seen from +Z (row 0 is the image's top, +Y)."""
    idx = np.arange(rows * cols).reshape(rows, cols)
    bottom = idx[rows - 1, :]  # y = 0, x increasing
    right = idx[rows - 2 :: -1, cols - 1]  # x = max, y increasing
    top = idx[0, cols - 2 :: -1]  # y = max, x decreasing
    left = idx[1 : rows - 1, 0]  # x = 0, y decreasing
    return np.concatenate([bottom, right, top, left])


def heightmap_solid(heights: np.ndarray, pixel_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """(vertices, faces) of the solid under ``heights`` (rows x cols, mm, all > 0) on the plane z = 0."""
    h = np.asarray(heights, dtype=np.float64)
    if h.ndim != 2 or min(h.shape) < 2:
        raise ValueError("heights must be a 2D grid of at least 2 x 2")
    if not np.isfinite(h).all() or h.min() <= 0:
        raise ValueError("heights must be finite and > 0")
    rows, cols = h.shape
    jj, ii = np.meshgrid(np.arange(cols), np.arange(rows))
    top = np.column_stack([jj.ravel() * pixel_mm, (rows - 1 - ii.ravel()) * pixel_mm, h.ravel()])

    idx = np.arange(rows * cols).reshape(rows, cols)
    a, b = idx[:-1, :-1].ravel(), idx[:-1, 1:].ravel()  # a top-left, b top-right
    c, d = idx[1:, :-1].ravel(), idx[1:, 1:].ravel()  # c bottom-left, d bottom-right
    top_faces = np.concatenate([np.column_stack([c, d, b]), np.column_stack([c, b, a])])

    ring = boundary_ring(rows, cols)
    n = len(ring)
    base = rows * cols
    ring_bottom = top[ring].copy()
    ring_bottom[:, 2] = 0.0
    centre = np.array([[(cols - 1) * pixel_mm / 2, (rows - 1) * pixel_mm / 2, 0.0]])
    centre_index = base + n
    k = np.arange(n)
    k1 = (k + 1) % n
    bottom_faces = np.column_stack([np.full(n, centre_index), base + k1, base + k])
    side_faces = np.concatenate([
        np.column_stack([base + k, base + k1, ring[k1]]),
        np.column_stack([base + k, ring[k1], ring[k]]),
    ])
    vertices = np.concatenate([top, ring_bottom, centre])
    faces = np.concatenate([top_faces, bottom_faces, side_faces]).astype(np.int64)
    return vertices, faces


def luminance_heights(gray: np.ndarray, *, min_mm: float, max_mm: float, dark_is_thick: bool,
                      border_px: int = 0, smooth_px: float = 0.0) -> np.ndarray:
    """Thickness per sample from 8-bit luminance; a border frame at full thickness when ``border_px``."""
    lum = np.asarray(gray, dtype=np.float64) / 255.0
    if smooth_px > 0:
        from scipy.ndimage import gaussian_filter

        lum = gaussian_filter(lum, sigma=smooth_px, mode="nearest")
    t = 1.0 - lum if dark_is_thick else lum
    heights = min_mm + (max_mm - min_mm) * np.clip(t, 0.0, 1.0)
    if border_px > 0:
        heights = np.pad(heights, border_px, mode="constant", constant_values=max_mm)
    return heights


__all__ = ["boundary_ring", "heightmap_solid", "luminance_heights"]
