"""Print orientation (Tweaker-3 style): score many candidate "down" directions at once.

For a candidate up vector ``u`` a face needs support when it faces down more steeply than the
printer's overhang angle (``-n.u > sin(max_angle)``, angle measured from vertical) and it does
not lie on the bed. Faces facing straight down within ``bed_tolerance`` of the lowest point lie on
the bed: their area is the contact area, which keeps the part stable. The cost is
``overhang_area - contact_bonus * contact_area``. Candidates: the six axes, the normals of the
largest flat regions (so a big face can lie on the bed), and a Fibonacci sphere. Scoring is
vectorized over faces x candidates (in chunks to bound memory).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def fibonacci_sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i
    return np.c_[np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)]


def candidates(normals: np.ndarray, areas: np.ndarray, *, sphere: int = 128, flats: int = 32) -> np.ndarray:
    """Candidate up vectors (unit rows): current +Z first, axes, big flat faces facing down, sphere."""
    axes = np.array([[0, 0, 1], [0, 0, -1], [1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0]], dtype=np.float64)
    rounded = np.round(normals, 3)
    unique, inverse = np.unique(rounded, axis=0, return_inverse=True)
    weight = np.bincount(inverse.ravel(), weights=areas, minlength=len(unique))
    top = unique[np.argsort(weight)[::-1][:flats]]
    top = -top / np.maximum(np.linalg.norm(top, axis=1, keepdims=True), 1e-12)  # that face down -> up = -n
    cands = np.concatenate([axes, top, fibonacci_sphere(sphere)])
    keep = np.unique(np.round(cands, 6), axis=0, return_index=True)[1]
    keep = np.r_[0, np.setdiff1d(np.sort(keep), [0])]  # current orientation stays first
    return cands[keep]


def score(vertices: np.ndarray, faces: np.ndarray, ups: np.ndarray, *, max_angle_deg: float,
          bed_tolerance: float, chunk: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(overhang area, bed contact area) for each candidate up vector."""
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=1) / 2.0
    normals = cross / np.maximum(2.0 * area, 1e-300)[:, None]
    limit = np.sin(np.radians(max_angle_deg))
    overhang = np.empty(len(ups))
    contact = np.empty(len(ups))
    for s in range(0, len(ups), chunk):
        u = ups[s:s + chunk].T  # 3 x k
        down = -(normals @ u)  # F x k: 1 = facing straight down
        heights = vertices @ u  # V x k
        lowest = heights.min(axis=0)
        face_top = heights[faces].max(axis=1)  # F x k: highest corner of each face
        on_bed = (face_top <= lowest + bed_tolerance) & (down > 0.999)
        needs = (down > limit) & ~on_bed
        overhang[s:s + chunk] = area @ needs
        contact[s:s + chunk] = area @ on_bed
    return overhang, contact


def rotation_to_z(up: np.ndarray) -> np.ndarray:
    """4x4 rotation taking ``up`` to +Z."""
    import trimesh

    return trimesh.geometry.align_vectors(np.asarray(up, dtype=np.float64), np.array([0.0, 0.0, 1.0]))


def best_orientation(mesh: Any, *, max_angle_deg: float = 45.0, contact_bonus: float = 0.5,
                     min_improvement: float = 0.1, sphere: int = 128, max_faces: int = 200_000,
                     min_contact: float = 0.0, seed: int = 0) -> dict[str, Any]:
    """Choose the up vector minimising support. Returns a dict with ``matrix`` (4x4, identity when
    the current orientation is kept), ``up``, overhang/contact areas before and after, ``rotated``.

    Rotates only when the cost drops by more than ``min_improvement`` of the current overhang area
    (and by at least 0.5 % of the surface), so near-ties keep the modeller's orientation.
    A flat base is a hard requirement, not a bonus: when any candidate rests at least
    ``min_contact`` (mesh units squared) on the bed, candidates that rest on less (a part balanced
    on an edge or a point) are not considered, however little support they need.
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    if len(faces) > max_faces:  # score a uniform sample of faces (memory and time bound)
        rng = np.random.default_rng(seed)
        sample = faces[rng.choice(len(faces), max_faces, replace=False)]
    else:
        sample = faces
    tri = vertices[sample]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=1) / 2.0
    normals = cross / np.maximum(2.0 * area, 1e-300)[:, None]
    total = float(area.sum())
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    bed_tolerance = 1e-4 * float(np.linalg.norm(extent)) + 1e-9
    ups = candidates(normals, area, sphere=sphere)
    overhang, contact = score(vertices, sample, ups, max_angle_deg=max_angle_deg, bed_tolerance=bed_tolerance)
    cost = overhang - contact_bonus * contact
    stable = contact >= max(min_contact, 1e-12)
    if stable.any():
        cost = np.where(stable, cost, np.inf)
    best = int(np.argmin(cost))
    gain = cost[0] - cost[best]
    rotate = best != 0 and gain > max(min_improvement * overhang[0], 0.005 * total)
    pick = best if rotate else 0
    return {
        "matrix": rotation_to_z(ups[pick]) if rotate else np.eye(4),
        "up": ups[pick].tolist(),
        "rotated": bool(rotate),
        "candidates": int(len(ups)),
        "support_area_before": float(overhang[0]),
        "support_area_after": float(overhang[pick]),
        "bed_contact_before": float(contact[0]),
        "bed_contact_after": float(contact[pick]),
        "surface_area": total,
    }
