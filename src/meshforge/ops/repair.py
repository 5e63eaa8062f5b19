"""Mesh hygiene repairs as pure functions: clean, weld, winding, debris.

Each takes a ``trimesh.Trimesh`` (never modified) and returns ``(new_mesh, stats)`` where ``stats``
holds plain numbers for the report; ``new_mesh`` is the input object itself when nothing changed.
Everything is vectorized over faces/edges (numpy/scipy); no Python loops over faces.

Order (REQUIREMENTS P13, PrusaSlicer/admesh import repair): weld exact -> weld nearby (tolerance =
shortest edge, growing by bbox diameter / 10,000, 2 passes) -> remove degenerate -> remove
unconnected facets -> consistent winding -> flip if volume < 0 -> fill small holes -> re-check.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Stats = dict[str, Any]


def make(vertices: np.ndarray, faces: np.ndarray) -> Any:
    import trimesh

    return trimesh.Trimesh(vertices=np.asarray(vertices, dtype=np.float64),
                           faces=np.asarray(faces, dtype=np.int64).reshape(-1, 3), process=False)


def diagonal(mesh: Any) -> float:
    if len(mesh.vertices) == 0:
        return 0.0
    finite = mesh.vertices[np.isfinite(mesh.vertices).all(axis=1)]
    if len(finite) == 0:
        return 0.0
    return float(np.linalg.norm(finite.max(axis=0) - finite.min(axis=0)))


def boundary_edges(faces: np.ndarray) -> np.ndarray:
    """Edges (sorted vertex pairs) used by exactly one face."""
    if len(faces) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    unique, counts = np.unique(edges, axis=0, return_counts=True)
    return unique[counts == 1]


def edge_counts(faces: np.ndarray) -> tuple[int, int]:
    """(boundary edges, non-manifold edges) of an indexed mesh."""
    if len(faces) == 0:
        return 0, 0
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return int((counts == 1).sum()), int((counts > 2).sum())


def compact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Drop vertices no face references; returns (vertices, faces, removed)."""
    used = np.zeros(len(vertices), dtype=bool)
    used[faces.ravel()] = True
    if used.all():
        return vertices, faces, 0
    remap = np.cumsum(used) - 1
    return vertices[used], remap[faces], int((~used).sum())


def weld_exact(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Merge vertices with bit-identical positions (-0.0 is 0.0), keeping the original vertex order;
    returns (vertices, faces, merged)."""
    if len(vertices) == 0:
        return vertices, faces, 0
    labels, first = _groups(np.asarray(vertices))
    merged = len(vertices) - len(first)
    if merged == 0:
        return vertices, faces, 0
    return vertices[first], labels[faces], merged


def _groups(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(group of each row, first row of each group) for equal rows (-0.0 equals 0.0, NaN equals nothing).

    Groups are numbered in order of first appearance, so a mesh with nothing to merge keeps its
    vertex order (``topology.group_rows`` numbers them in sorted order).
    """
    from meshforge.ops.topology import group_rows

    labels, count = group_rows(rows)
    first = np.empty(count, dtype=np.int64)
    first[labels[::-1]] = np.arange(len(rows) - 1, -1, -1)  # the last write per group is its smallest row
    by_appearance = np.argsort(first)
    rank = np.empty(count, dtype=np.int64)
    rank[by_appearance] = np.arange(count)
    return rank[labels], first[by_appearance]


def clean_plan(vertices: np.ndarray, faces: np.ndarray, *, split: np.ndarray | None = None,
               drop_zero_area: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, Stats]:
    """What :func:`clean` keeps: (source vertex of each new vertex, new faces, source face of each new face, stats).

    Degenerate and duplicate faces are found by position alone (they draw nothing, or draw twice,
    whatever their UVs). Vertices merge only when their position and every column of ``split``
    (UV, normal, colour, tangent) are equal, so texture seams and hard edges stay split.
    """
    vertices = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    n_faces, n_vertices = len(faces), len(vertices)
    stats: Stats = {"faces_before": n_faces}

    finite_v = np.isfinite(vertices).all(axis=1)
    live = finite_v[faces].all(axis=1) if n_faces else np.zeros(0, dtype=bool)
    stats["non_finite_faces"] = int(n_faces - live.sum())
    face_index = np.flatnonzero(live)
    positions = np.where(finite_v[:, None], vertices, 0.0)  # unreferenced now; dropped below
    if not finite_v.all():
        # a column of its own index keeps each (zeroed) non-finite vertex from joining a real one at 0
        positions = np.column_stack([positions, np.where(finite_v, -1.0, np.arange(n_vertices))])
    at, at_first = _groups(positions)
    if split is None:
        same, same_first = at, at_first
    else:
        split = np.asarray(split, dtype=np.float64).reshape(n_vertices, -1)
        same, same_first = _groups(np.column_stack([positions, split]))

    corners = at[faces[face_index]]
    repeated = (corners[:, 0] == corners[:, 1]) | (corners[:, 1] == corners[:, 2]) | (corners[:, 2] == corners[:, 0])
    stats["degenerate_faces"] = int(repeated.sum())
    face_index, corners = face_index[~repeated], corners[~repeated]

    stats["duplicate_faces"] = 0
    if len(corners):
        _, keep = np.unique(np.sort(corners, axis=1), axis=0, return_index=True)
        keep.sort()
        stats["duplicate_faces"] = int(len(corners) - len(keep))
        face_index, corners = face_index[keep], corners[keep]

    stats["zero_area_faces"] = 0
    if drop_zero_area and len(corners):
        tri = vertices[faces[face_index]]
        area2 = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
        zero = area2 <= 0.0
        if zero.any() and edge_counts(corners[~zero])[0] <= edge_counts(corners)[0]:
            stats["zero_area_faces"] = int(zero.sum())
            face_index = face_index[~zero]

    new_faces = same[faces[face_index]]
    used = np.zeros(len(same_first), dtype=bool)
    used[new_faces.ravel()] = True
    vertex_index = same_first[used]
    new_faces = (np.cumsum(used) - 1)[new_faces]
    stats["vertices_merged"] = n_vertices - len(same_first)
    stats["unreferenced_vertices"] = len(same_first) - len(vertex_index)
    stats["faces_removed"] = n_faces - len(face_index)
    stats["faces_after"] = len(face_index)
    return vertex_index, new_faces.reshape(-1, 3), face_index, stats


def clean(mesh: Any, *, drop_zero_area: bool = True) -> tuple[Any, Stats]:
    """Drop faces with non-finite vertices, degenerate faces, duplicate faces, unreferenced vertices.

    Vertices at identical positions are merged (lossless for a bare mesh), so duplicates and
    repeated indices are found by position. Zero-area faces with three distinct vertices (needles,
    caps) are only dropped when doing so opens no new boundary edge. A mesh with UVs, normals or
    colours goes through :func:`clean_plan` with them as ``split`` (see ``scene_ops.subset``).
    """
    vertex_index, faces, _, stats = clean_plan(mesh.vertices, mesh.faces, drop_zero_area=drop_zero_area)
    changed = stats["faces_removed"] > 0 or len(vertex_index) != len(mesh.vertices)
    return (make(np.asarray(mesh.vertices, dtype=np.float64)[vertex_index], faces) if changed else mesh), stats


def _union_map(n: int, pairs: np.ndarray) -> np.ndarray:
    """Representative (smallest index) of each vertex's group, from merge pairs."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    rep = np.full(labels.max() + 1, n, dtype=np.int64)
    np.minimum.at(rep, labels, np.arange(n))
    return rep[labels]


def _nearby_pairs(vertices: np.ndarray, faces: np.ndarray, tol: float) -> np.ndarray:
    """Vertex pairs to merge: open edges whose two ends lie within ``tol`` of another open edge's ends
    (admesh's "nearby" edge matching: whole edges are zipped, single vertices never snap)."""
    from scipy.spatial import cKDTree

    open_edges = boundary_edges(faces)
    if len(open_edges) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    a, b = vertices[open_edges[:, 0]], vertices[open_edges[:, 1]]
    tree = cKDTree((a + b) / 2.0)
    pairs = tree.query_pairs(tol, output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    e1, e2 = open_edges[pairs[:, 0]], open_edges[pairs[:, 1]]
    p1a, p1b, p2a, p2b = vertices[e1[:, 0]], vertices[e1[:, 1]], vertices[e2[:, 0]], vertices[e2[:, 1]]
    same = (np.linalg.norm(p1a - p2a, axis=1) <= tol) & (np.linalg.norm(p1b - p2b, axis=1) <= tol)
    cross = (np.linalg.norm(p1a - p2b, axis=1) <= tol) & (np.linalg.norm(p1b - p2a, axis=1) <= tol)
    out = []
    if same.any():
        out += [np.c_[e1[same, 0], e2[same, 0]], np.c_[e1[same, 1], e2[same, 1]]]
    only_cross = cross & ~same
    if only_cross.any():
        out += [np.c_[e1[only_cross, 0], e2[only_cross, 1]], np.c_[e1[only_cross, 1], e2[only_cross, 0]]]
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    merged = np.concatenate(out)
    return merged[merged[:, 0] != merged[:, 1]]


def weld(mesh: Any, *, passes: int = 2, growth: float = 1e-4, max_tolerance_fraction: float = 0.001) -> tuple[Any, Stats]:
    """Exact weld, then nearby weld of open edges (P13).

    The nearby tolerance starts at the shortest edge and grows by ``growth`` x bbox diagonal each
    pass (admesh: shortest edge + diameter/10,000, 2 iterations), capped at
    ``max_tolerance_fraction`` x diagonal so a coarse mesh never collapses real features.
    Faces that collapse to a repeated index are dropped.
    """
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    open_before, _ = edge_counts(faces)
    vertices, faces, exact = weld_exact(vertices, faces)
    diag = diagonal(mesh)
    stats: Stats = {"exact_merged": exact, "nearby_merged": 0, "open_edges_before": open_before, "passes": 0}
    if len(faces):
        edge_len = np.linalg.norm(vertices[faces] - vertices[np.roll(faces, -1, axis=1)], axis=2)
        positive = edge_len[edge_len > 0]
        shortest = float(positive.min()) if len(positive) else 0.0
    else:
        shortest = 0.0
    tol = shortest
    for _ in range(passes):
        tol = min(tol + growth * diag, max_tolerance_fraction * diag)
        pairs = _nearby_pairs(vertices, faces, tol)
        stats["passes"] += 1
        if len(pairs) == 0:
            continue
        rep = _union_map(len(vertices), pairs)
        stats["nearby_merged"] += int((rep != np.arange(len(vertices))).sum())
        faces = rep[faces]
        keep = (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 2] != faces[:, 0])
        faces = faces[keep]
    stats["tolerance"] = tol
    if stats["nearby_merged"]:
        _, keep = np.unique(np.sort(faces, axis=1), axis=0, return_index=True)
        faces = faces[np.sort(keep)]
    vertices, faces, _ = compact(vertices, faces)
    stats["open_edges_after"], stats["non_manifold_edges_after"] = edge_counts(faces)
    stats["faces_removed"] = len(mesh.faces) - len(faces)
    changed = exact or stats["nearby_merged"] or len(faces) != len(mesh.faces)
    return (make(vertices, faces) if changed else mesh), stats


def face_components(faces: np.ndarray, n_vertices: int) -> np.ndarray:
    """Label of each face's shell (faces sharing a vertex are in one shell)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n_faces = len(faces)
    rows = np.repeat(np.arange(n_faces), 3)
    graph = coo_matrix((np.ones(3 * n_faces), (rows, faces.ravel() + n_faces)), shape=(n_faces + n_vertices,) * 2)
    _, labels = connected_components(graph, directed=False)
    _, labels = np.unique(labels[:n_faces], return_inverse=True)
    return labels


def signed_volumes(vertices: np.ndarray, faces: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Signed volume of each labelled shell (divergence theorem, relative to the centroid)."""
    if len(faces) == 0:
        return np.zeros(0)
    centre = vertices.mean(axis=0)
    tri = vertices[faces] - centre
    per_face = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6.0
    return np.bincount(labels, weights=per_face, minlength=labels.max() + 1)


def fix_winding(mesh: Any) -> tuple[Any, Stats]:
    """Make winding consistent inside each shell, then flip closed shells with negative volume."""
    import trimesh

    work = make(np.asarray(mesh.vertices).copy(), np.asarray(mesh.faces).copy())
    before = work.faces.copy()
    stats: Stats = {}
    if len(work.faces):
        trimesh.repair.fix_winding(work)
    faces = np.asarray(work.faces, dtype=np.int64).copy()
    stats["faces_reversed"] = int((faces != before).any(axis=1).sum())
    labels = face_components(faces, len(work.vertices)) if len(faces) else np.zeros(0, dtype=np.int64)
    volumes = signed_volumes(work.vertices, faces, labels)
    closed = _closed_shells(faces, labels)
    flip_shell = (volumes < 0) & closed
    flip = flip_shell[labels] if len(labels) else np.zeros(0, dtype=bool)
    faces[flip] = faces[flip][:, ::-1]
    stats["shells_inverted"] = int(flip_shell.sum())
    stats["faces_flipped"] = int(flip.sum())
    changed = stats["faces_reversed"] or stats["faces_flipped"]
    return (make(work.vertices, faces) if changed else mesh), stats


def _closed_shells(faces: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per shell: True when no edge of the shell is open."""
    n = labels.max() + 1 if len(labels) else 0
    closed = np.ones(n, dtype=bool)
    if n == 0:
        return closed
    edges = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    edge_label = np.repeat(labels, 3)
    _, inverse, counts = np.unique(edges, axis=0, return_inverse=True, return_counts=True)
    open_edge = counts[inverse.ravel()] == 1
    closed[np.unique(edge_label[open_edge])] = False
    return closed


def remove_debris(mesh: Any, *, max_fraction: float = 0.001) -> tuple[Any, Stats]:
    """Drop shells smaller than ``max_fraction`` of the largest shell.

    Size is |volume| when every shell is closed, else surface area (open shells have no volume).
    """
    faces = np.asarray(mesh.faces, dtype=np.int64)
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    stats: Stats = {"shells_before": 0, "shells_removed": 0, "faces_removed": 0}
    if len(faces) == 0:
        return mesh, stats
    labels = face_components(faces, len(vertices))
    n = labels.max() + 1
    stats["shells_before"] = int(n)
    if n < 2:
        return mesh, stats
    if _closed_shells(faces, labels).all():
        size = np.abs(signed_volumes(vertices, faces, labels))
        stats["measure"] = "volume"
    else:
        tri = vertices[faces]
        area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1) / 2.0
        size = np.bincount(labels, weights=area, minlength=n)
        stats["measure"] = "area"
    small = size < max_fraction * size.max()
    if not small.any():
        return mesh, stats
    keep = ~small[labels]
    stats["shells_removed"] = int(small.sum())
    stats["faces_removed"] = int((~keep).sum())
    stats["removed_fraction"] = float(size[small].sum() / size.sum())
    new_vertices, new_faces, _ = compact(vertices, faces[keep])
    return make(new_vertices, new_faces), stats
