"""Polygons -> triangles that stay inside the polygon (fan triangulation is wrong for concave faces).

Faces are grouped by vertex count and handled per group with numpy: triangles pass through, quads
are split along the diagonal through their reflex vertex (if any), convex n-gons are fanned. Only
concave n-gons with more than four corners (rare) go one by one through manifold3d's triangulator
after projection onto their Newell plane. Every polygon of n corners yields n - 2 triangles.
"""

from __future__ import annotations

import numpy as np


def triangulate(vertices: np.ndarray, polygons: list[np.ndarray] | np.ndarray) -> np.ndarray:
    """``polygons``: an (m, k) int array, or a list of such arrays of different k. Returns (t, 3) int64."""
    groups = [polygons] if isinstance(polygons, np.ndarray) else polygons
    out = [_group(vertices, np.asarray(g, dtype=np.int64)) for g in groups if len(g)]
    return np.concatenate(out) if out else np.zeros((0, 3), dtype=np.int64)


def _group(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    k = faces.shape[1]
    if k < 3:
        return np.zeros((0, 3), dtype=np.int64)
    if k == 3:
        return faces
    with np.errstate(all="ignore"):
        pts = vertices[faces]  # (m, k, 3)
        normal = _newell(pts)
        prev = pts - np.roll(pts, 1, axis=1)
        nxt = np.roll(pts, -1, axis=1) - pts
        turn = np.einsum("mkj,mj->mk", np.cross(prev, nxt), normal)
    reflex = turn < 0  # (m, k): corner bends the wrong way -> polygon is concave there
    if k == 4:
        # split along the diagonal through the reflex corner: 1-3 when corner 1 or 3 is reflex
        use13 = reflex[:, 1] | reflex[:, 3]
        a = faces[:, [0, 1, 2]]
        b = faces[:, [0, 2, 3]]
        c = faces[:, [1, 2, 3]]
        d = faces[:, [1, 3, 0]]
        first = np.where(use13[:, None], c, a)
        second = np.where(use13[:, None], d, b)
        return np.stack([first, second], axis=1).reshape(-1, 3)
    concave = reflex.any(axis=1)
    fan_idx = np.arange(1, k - 1)
    convex = faces[~concave]
    fan = np.stack([np.repeat(convex[:, :1], k - 2, axis=1), convex[:, fan_idx], convex[:, fan_idx + 1]], axis=2)
    parts = [fan.reshape(-1, 3)]
    for face, pts_i, n_i in zip(faces[concave], pts[concave], normal[concave], strict=True):
        parts.append(_ear(face, pts_i, n_i))
    return np.concatenate(parts)


def _newell(pts: np.ndarray) -> np.ndarray:
    nxt = np.roll(pts, -1, axis=1)
    n = np.stack([
        ((pts[..., 1] - nxt[..., 1]) * (pts[..., 2] + nxt[..., 2])).sum(axis=1),
        ((pts[..., 2] - nxt[..., 2]) * (pts[..., 0] + nxt[..., 0])).sum(axis=1),
        ((pts[..., 0] - nxt[..., 0]) * (pts[..., 1] + nxt[..., 1])).sum(axis=1),
    ], axis=1)
    return n


def _ear(face: np.ndarray, pts: np.ndarray, normal: np.ndarray) -> np.ndarray:
    """One concave polygon: project to its plane and triangulate with manifold3d (fan if that fails)."""
    k = len(face)
    fan = np.stack([np.zeros(k - 2, dtype=np.int64), np.arange(1, k - 1), np.arange(2, k)], axis=1)
    try:
        import manifold3d

        n = normal / np.linalg.norm(normal)
        axis = np.argmin(np.abs(n))
        u = np.cross(n, np.eye(3)[axis])
        u /= np.linalg.norm(u)
        v = np.cross(n, u)
        flat = np.stack([pts @ u, pts @ v], axis=1).astype(np.float64)
        tris = np.asarray(manifold3d.triangulate([flat]), dtype=np.int64).reshape(-1, 3)
        if len(tris) == k - 2 and np.isfinite(flat).all():
            return face[tris]
    except Exception:  # degenerate or self-crossing polygon: keep a fan rather than lose the face
        pass
    return face[fan]
