"""One printable solid from overlapping / non-manifold shells (manifold3d), and the drift measure.

The mesh is cut into patches along non-manifold edges (edges with != 2 faces), so two cubes
sharing an edge or a bow-tie vertex become two closed patches. Each closed patch becomes a
``manifold3d.Manifold``; all are unioned in one batch boolean (overlaps and intersections between
shells resolve into one solid). Patches manifold3d refuses (open, inconsistently wound) are dropped
only when they are negligible; otherwise the caller gets ``None`` and a reason, and falls back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meshforge.ops.repair import Stats, diagonal, make, weld_exact


def manifold_patches(faces: np.ndarray) -> np.ndarray:
    """Label of each face: faces joined through edges used by exactly two faces."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(faces)
    key = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    face_of = np.repeat(np.arange(n), 3)
    order = np.lexsort((key[:, 1], key[:, 0]))
    k = key[order]
    f = face_of[order]
    new_group = np.r_[True, (k[1:] != k[:-1]).any(axis=1)]
    group = np.cumsum(new_group) - 1
    counts = np.bincount(group)
    first = np.flatnonzero(new_group)
    two = counts == 2
    pairs = np.c_[f[first[two]], f[first[two] + 1]]
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels


def _face_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    return np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1) / 2.0


def solidify(mesh: Any, *, drop_fraction: float = 0.001) -> tuple[Any | None, Stats]:
    """Union of the mesh's closed patches as one manifold solid, or (None, stats with "reason")."""
    import manifold3d

    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    vertices, faces, _ = weld_exact(vertices, faces)
    stats: Stats = {"path": "manifold3d", "patches": 0, "patches_refused": 0, "refused_area_fraction": 0.0}
    if len(faces) == 0:
        return None, {**stats, "reason": "no triangles"}
    labels = manifold_patches(faces)
    areas = _face_areas(vertices, faces)
    total_area = float(areas.sum()) or 1.0
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(labels.max() + 2))
    solids = []
    refused_area = 0.0
    reasons: set[str] = set()
    for i in range(labels.max() + 1):  # one iteration per patch (shell), not per face
        patch = faces[order[bounds[i]:bounds[i + 1]]]
        used, local = np.unique(patch, return_inverse=True)
        m = manifold3d.Manifold(manifold3d.Mesh64(vert_properties=np.ascontiguousarray(vertices[used]),
                                                  tri_verts=np.ascontiguousarray(local.reshape(-1, 3), dtype=np.uint64)))
        status = m.status()
        if status == manifold3d.Error.NoError and not m.is_empty():
            solids.append(m)
        else:
            refused_area += float(areas[order[bounds[i]:bounds[i + 1]]].sum())
            reasons.add(status.name if status != manifold3d.Error.NoError else "empty")
            stats["patches_refused"] += 1
    stats["patches"] = int(labels.max() + 1)
    stats["refused_area_fraction"] = refused_area / total_area
    if stats["refused_area_fraction"] > drop_fraction or not solids:
        return None, {**stats, "reason": f"manifold3d refused {stats['patches_refused']} patch(es): {', '.join(sorted(reasons))}"}
    result = manifold3d.Manifold.batch_boolean(solids, manifold3d.OpType.Add) if len(solids) > 1 else solids[0]
    out = result.to_mesh64()
    new_vertices = np.asarray(out.vert_properties)[:, :3].astype(np.float64)
    new_faces = np.asarray(out.tri_verts).astype(np.int64)
    new_vertices, new_faces, _ = weld_exact(new_vertices, new_faces)
    stats["solids_unioned"] = len(solids)
    stats["volume"] = float(result.volume())
    return make(new_vertices, new_faces), stats


def surface_points(mesh: Any, count: int, seed: int = 0) -> np.ndarray:
    """Vertices (up to ``count``) plus ``count`` area-weighted random points on the surface."""
    rng = np.random.default_rng(seed)
    vertices = np.asarray(mesh.vertices)
    faces = np.asarray(mesh.faces)
    if len(faces) == 0:
        return vertices
    areas = _face_areas(vertices, faces)
    prob = areas / areas.sum() if areas.sum() > 0 else None
    pick = rng.choice(len(faces), size=count, p=prob)
    r = rng.random((count, 2))
    flip = r.sum(axis=1) > 1
    r[flip] = 1 - r[flip]
    tri = vertices[faces[pick]]
    pts = tri[:, 0] + r[:, :1] * (tri[:, 1] - tri[:, 0]) + r[:, 1:] * (tri[:, 2] - tri[:, 0])
    verts = vertices if len(vertices) <= count else vertices[rng.choice(len(vertices), count, replace=False)]
    return np.concatenate([verts, pts])


def distances_to(mesh: Any, points: np.ndarray) -> np.ndarray:
    """Distance from each point to the closest point on ``mesh``'s triangles."""
    try:
        import open3d as o3d  # BVH closest-point queries, ~50x trimesh's on large meshes

        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, dtype=np.float32)),
                            o3d.core.Tensor(np.asarray(mesh.faces, dtype=np.uint32)))
        return scene.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy().astype(np.float64)
    except ImportError:
        import trimesh

        _, dist, _ = trimesh.proximity.closest_point(mesh, points)
        return np.asarray(dist)


def hausdorff(a: Any, b: Any, *, samples: int = 20000) -> float:
    """Symmetric Hausdorff distance, estimated from vertices and surface samples of both meshes."""
    if len(a.faces) == 0 or len(b.faces) == 0:
        return float("inf") if len(a.faces) != len(b.faces) else 0.0
    return float(max(distances_to(b, surface_points(a, samples)).max(), distances_to(a, surface_points(b, samples)).max()))


def drift(before: Any, after: Any, *, samples: int = 20000) -> float:
    """Hausdorff distance as a fraction of the input's bounding-box diagonal."""
    diag = diagonal(before)
    return hausdorff(before, after, samples=samples) / diag if diag > 0 else 0.0
