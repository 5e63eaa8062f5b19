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


def _to_manifold(vertices: np.ndarray, faces: np.ndarray) -> Any:
    import manifold3d

    used, local = np.unique(faces, return_inverse=True)
    return manifold3d.Manifold(manifold3d.Mesh64(vert_properties=np.ascontiguousarray(vertices[used]),
                                                 tri_verts=np.ascontiguousarray(local.reshape(-1, 3), dtype=np.uint64)))


def _edge_keys(faces: np.ndarray, n: int) -> np.ndarray:
    e = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    return e[:, 0] * (n + 1) + e[:, 1]


def _capped(vertices: np.ndarray, faces: np.ndarray, cut_keys: np.ndarray) -> Any | None:
    """A refused (open) patch closed by capping its boundary loops, as a Manifold, or None.

    Cutting along non-manifold edges opens each piece where it met the others (two tetrahedra
    glued on a face: each loses the shared face); a fan over each such loop restores the piece.
    Only pieces whose every open edge is such a cut (in ``cut_keys``) are capped: holes of the
    input are fill_holes' decision, not this one's.
    """
    import manifold3d

    from meshforge.ops.holes import fill_holes
    from meshforge.ops.repair import boundary_edges

    open_e = boundary_edges(faces)
    if len(open_e) == 0 or not np.isin(open_e[:, 0] * (len(vertices) + 1) + open_e[:, 1], cut_keys).all():
        return None

    used, local = np.unique(faces, return_inverse=True)
    piece = make(vertices[used], local.reshape(-1, 3))
    capped, stats = fill_holes(piece, max_hole_edges=1 << 30, max_hole_fraction=float("inf"))
    if stats["holes_filled"] == 0 or stats["holes_left"]:
        return None
    m = _to_manifold(np.asarray(capped.vertices), np.asarray(capped.faces, dtype=np.int64))
    if m.status() != manifold3d.Error.NoError or m.is_empty():
        return None
    if m.volume() < 0:  # capped inside out
        return None
    return m


def covered(result: Any, points: np.ndarray, tol: float) -> np.ndarray:
    """Points on (within ``tol``) or inside the closed ``result``: surface a union may drop."""
    near = distances_to(result, points) <= tol
    rest = ~near
    if rest.any():
        try:
            import open3d as o3d

            scene = o3d.t.geometry.RaycastingScene()
            scene.add_triangles(o3d.core.Tensor(np.asarray(result.vertices, dtype=np.float32)),
                                o3d.core.Tensor(np.asarray(result.faces, dtype=np.uint32)))
            inside = scene.compute_occupancy(o3d.core.Tensor(points[rest].astype(np.float32)), nsamples=3).numpy() > 0.5
        except ImportError:
            inside = result.contains(points[rest])
        near[rest] = inside
    return near


def solidify(mesh: Any, *, drop_fraction: float = 0.001, cap_pieces: bool = True) -> tuple[Any | None, Stats]:
    """Union of the mesh's closed patches as one manifold solid, or (None, stats with "reason").

    Patches manifold3d refuses are capped (``cap_pieces``) and retried; what is still refused is
    dropped when under ``drop_fraction`` of the surface area, or when it lies on or inside the
    union (an inner wall, a doubled face): removing it changes nothing outside the solid.
    """
    import manifold3d

    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    vertices, faces, _ = weld_exact(vertices, faces)
    stats: Stats = {"path": "manifold3d", "patches": 0, "patches_refused": 0, "patches_capped": 0,
                    "refused_area_fraction": 0.0, "refused_covered": 0}
    if len(faces) == 0:
        return None, {**stats, "reason": "no triangles"}
    labels = manifold_patches(faces)
    keys = _edge_keys(faces, len(vertices))
    uniq, counts = np.unique(keys, return_counts=True)
    cut_keys = uniq[counts > 2]  # non-manifold edges: where the patches were cut apart
    areas = _face_areas(vertices, faces)
    total_area = float(areas.sum()) or 1.0
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(labels.max() + 2))
    solids = []
    refused: list[np.ndarray] = []
    reasons: set[str] = set()
    for i in range(labels.max() + 1):  # one iteration per patch (shell), not per face
        idx = order[bounds[i]:bounds[i + 1]]
        m = _to_manifold(vertices, faces[idx])
        status = m.status()
        if status == manifold3d.Error.NoError and not m.is_empty():
            solids.append(m)
            continue
        capped = _capped(vertices, faces[idx], cut_keys) if cap_pieces and status != manifold3d.Error.NoError else None
        if capped is not None:
            solids.append(capped)
            stats["patches_capped"] += 1
            continue
        refused.append(idx)
        reasons.add(status.name if status != manifold3d.Error.NoError else "empty")
    stats["patches"] = int(labels.max() + 1)
    stats["patches_refused"] = len(refused)
    refused_idx = np.concatenate(refused) if refused else np.zeros(0, dtype=np.int64)
    stats["refused_area_fraction"] = float(areas[refused_idx].sum()) / total_area
    if not solids:
        return None, {**stats, "reason": f"manifold3d refused all {len(refused)} patch(es): {', '.join(sorted(reasons))}"}
    result = manifold3d.Manifold.batch_boolean(solids, manifold3d.OpType.Add) if len(solids) > 1 else solids[0]
    out = result.to_mesh64()
    new_vertices = np.asarray(out.vert_properties)[:, :3].astype(np.float64)
    new_faces = np.asarray(out.tri_verts).astype(np.int64)
    new_vertices, new_faces, _ = weld_exact(new_vertices, new_faces)
    new = make(new_vertices, new_faces)
    if stats["refused_area_fraction"] > drop_fraction:
        # keep the union only if everything it drops lies on or inside it (vertices and face centroids)
        tri = vertices[faces[refused_idx]]
        pts = np.concatenate([tri.reshape(-1, 3), tri.mean(axis=1)])
        ok = covered(new, pts, 1e-6 * (diagonal(mesh) or 1.0))
        if not ok.all():
            return None, {**stats, "reason": f"manifold3d refused {len(refused)} patch(es) ({', '.join(sorted(reasons))}) "
                                             f"that lie outside the union"}
        stats["refused_covered"] = len(refused)
    stats["solids_unioned"] = len(solids)
    stats["volume"] = float(result.volume())
    return new, stats


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
