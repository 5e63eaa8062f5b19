"""Hole filling: find boundary loops, close the small ones.

A loop of 3 edges gets one triangle; larger loops get a fan around their centroid (a new vertex),
which is exact for planar star-shaped holes and a good cap for the small, nearly planar holes left by
scans and exports. PrusaSlicer warns that filling large holes "does more harm than good", so a loop
longer than ``max_hole_edges`` or wider than ``max_hole_fraction`` of the bbox diagonal is left open
and reported unless it is planar and star-shaped (a flat cut: the fan is then exact) (a fairing fill from PyMeshLab lives in the meshlab plugin). Loop tracing walks boundary vertices only (never faces).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meshforge.ops.repair import Stats, diagonal, make, weld_exact


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """Closed loops of open edges, as vertex index arrays in face order (a -> b as in the face).

    Where several open edges leave one vertex (holes touching at a vertex), the walk splits the
    circuit into simple loops at each repeated vertex. Open chains that never close are skipped.
    Walks open edges only (a small set), never faces.
    """
    if len(faces) == 0:
        return []
    directed = faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    key = np.sort(directed, axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    open_directed = directed[counts[inverse.ravel()] == 1]
    if len(open_directed) == 0:
        return []
    out: dict[int, list[int]] = {}
    for a, b in open_directed.tolist():
        out.setdefault(a, []).append(b)
    loops: list[np.ndarray] = []
    for start in list(out):
        while out.get(start):
            path = [start]
            where = {start: 0}
            cur = start
            while out.get(cur):
                nxt = out[cur].pop()
                if nxt in where:  # closed a simple loop: cut it off, keep walking from nxt
                    i = where[nxt]
                    loop = path[i:]
                    if len(loop) >= 3:
                        loops.append(np.asarray(loop, dtype=np.int64))
                    for v in path[i + 1:]:
                        del where[v]
                    path = path[:i + 1]
                else:
                    where[nxt] = len(path)
                    path.append(nxt)
                cur = nxt
    return loops


def _faces_with_all_open_edges(faces: np.ndarray) -> np.ndarray:
    key = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, inverse, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    return (counts[inverse.ravel()] == 1).reshape(-1, 3).all(axis=1)


def _planarity(points: np.ndarray) -> float:
    """Largest distance of ``points`` from their best-fit plane."""
    centred = points - points.mean(axis=0)
    normal = np.linalg.svd(centred, full_matrices=False)[2][-1]
    return float(np.abs(centred @ normal).max())


def _star_shaped(points: np.ndarray) -> bool:
    """A fan from the centroid covers the loop without folding over (every fan triangle turns one way)."""
    c = points.mean(axis=0)
    normals = np.cross(points - c, np.roll(points, -1, axis=0) - c)
    total = normals.sum(axis=0)
    return bool((normals @ total > 0).all())


def fill_holes(mesh: Any, *, max_hole_edges: int = 64, max_hole_fraction: float = 0.25,
               planar_tolerance: float = 0.01) -> tuple[Any, Stats]:
    """Close every boundary loop with at most ``max_hole_edges`` edges whose perimeter is under
    ``max_hole_fraction`` x bbox diagonal, or which is planar at any size and edge count (within
    ``planar_tolerance`` x its perimeter: a flat cut such as a scan's missing base or a hemisphere's
    rim, capped exactly by a fan). Vertices at identical positions are welded first. Returns (mesh, stats)."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    # split vertices (UV or normal seams of a glTF box) are not holes: weld coincident positions first,
    # or every face of an unwelded box gets a cap on top of itself
    vertices, faces, merged = weld_exact(vertices, faces)
    loops = boundary_loops(faces)
    diag = diagonal(mesh)
    stats: Stats = {"holes_found": len(loops), "holes_filled": 0, "holes_left": 0, "faces_added": 0,
                    "largest_left_edges": 0, "vertices_welded": merged}
    new_vertices: list[np.ndarray] = []
    new_faces: list[np.ndarray] = []
    next_index = len(vertices)
    existing = {tuple(sorted(f)) for f in faces[_faces_with_all_open_edges(faces)].tolist()}
    for loop in loops:
        if len(loop) == 3 and tuple(sorted(loop.tolist())) in existing:  # a lone triangle, not a hole
            stats["holes_left"] += 1
            continue
        pts = vertices[loop]
        perimeter = float(np.linalg.norm(pts - np.roll(pts, -1, axis=0), axis=1).sum())
        planar = _planarity(pts) <= planar_tolerance * perimeter and _star_shaped(pts)
        if not planar and (len(loop) > max_hole_edges or perimeter > max_hole_fraction * diag):
            stats["holes_left"] += 1
            stats["largest_left_edges"] = max(stats["largest_left_edges"], len(loop))
            continue
        # open edge a -> b belongs to a face; the cap must use b -> a (opposite direction)
        a, b = loop, np.roll(loop, -1)
        if len(loop) == 3:
            new_faces.append(loop[::-1][None, :])
        else:
            centre = next_index
            next_index += 1
            new_vertices.append(pts.mean(axis=0)[None, :])
            new_faces.append(np.c_[b, a, np.full(len(loop), centre)])
        stats["holes_filled"] += 1
    if not new_faces:
        return mesh, stats  # unchanged: an exact weld alone is mesh.weld's job
    added = np.concatenate(new_faces)
    stats["faces_added"] = len(added)
    all_vertices = np.concatenate([vertices, *new_vertices]) if new_vertices else vertices
    return make(all_vertices, np.concatenate([faces, added])), stats
