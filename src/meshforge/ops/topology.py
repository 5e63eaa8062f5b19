"""Edge-level topology of a triangle mesh after welding coincident vertices: pure numpy/scipy.

One :func:`topology` call sorts the edges once and answers every print question that depends on
them: boundary edges and loops (holes), non-manifold edges and vertices, winding consistency,
shells and per-shell signed volume. STL stores a triangle soup, so everything is computed on the
*welded* mesh: a soup is not open just because it is a soup.

Conventions (the finding docs rely on them):

- faces whose three corners do not weld to three distinct vertices, or that touch a non-finite
  vertex, are *index-degenerate* and left out of the edge tables (admesh and PrusaSlicer drop them
  too); they are reported by the hygiene check;
- a boundary edge is used by exactly one face, a non-manifold edge by three or more;
- a winding conflict is a manifold edge whose two faces traverse it in the same direction;
- a non-manifold vertex is one whose faces form two or more fans (a bow-tie), not counting
  vertices already on a non-manifold edge;
- shells are vertex-connected components (as the corpus manifest counts them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Topology:
    n_faces: int  # faces of the input mesh
    n_vertices: int  # welded vertices
    faces: np.ndarray  # (n_faces, 3) welded vertex index per corner (-1 at non-finite corners)
    valid: np.ndarray  # (n_faces,) bool: three distinct finite welded vertices
    boundary_edges: np.ndarray  # (b, 2) welded vertex pairs used by one face
    boundary_faces: np.ndarray  # face indices touching a boundary edge
    boundary_loops: int  # connected chains of boundary edges (holes)
    nonmanifold_edges: np.ndarray  # (k, 2) welded vertex pairs used by >= 3 faces
    nonmanifold_faces: np.ndarray
    nonmanifold_counts: np.ndarray  # (k,) faces on each non-manifold edge
    nonmanifold_vertices: np.ndarray  # welded vertex ids (bow-ties), see module doc
    winding_conflicts: int  # manifold edges traversed twice in the same direction
    winding_faces: np.ndarray
    shell_of_face: np.ndarray  # (n_faces,) shell label (-1 for invalid faces)
    n_shells: int
    shell_volume: np.ndarray  # (n_shells,) signed volume per shell (input units cubed)
    shell_area: np.ndarray  # (n_shells,) surface area per shell
    volume: float  # signed volume of the valid faces

    @property
    def closed(self) -> bool:
        return len(self.boundary_edges) == 0

    @property
    def edge_manifold(self) -> bool:
        return len(self.nonmanifold_edges) == 0


def weld(vertices: np.ndarray, tolerance: float = 0.0) -> tuple[np.ndarray, int]:
    """Map each vertex to a welded id: exact matches always, and within ``tolerance`` (absolute).

    Tolerance welding rounds to a grid twice (the second grid offset by half a cell) so points
    straddling a grid line still merge. Non-finite vertices map to -1.
    """
    v = np.asarray(vertices, dtype=np.float64)
    n = len(v)
    finite = np.isfinite(v).all(axis=1)
    ids = np.full(n, -1, dtype=np.int64)
    if not finite.any():
        return ids, 0
    fv = v[finite]
    if tolerance > 0:
        rep, count = _group_rows(np.round(fv / tolerance).astype(np.int64))
        # representative position of each group (first member), regrouped on an offset grid
        first = np.zeros(count, dtype=np.int64)
        first[rep[::-1]] = np.arange(len(rep))[::-1]
        rep2, count = _group_rows(np.round(fv[first] / tolerance + 0.5).astype(np.int64))
        rep = rep2[rep]
    else:
        rep, count = _group_rows(fv)
    ids[finite] = rep
    return ids, count


def _group_rows(rows: np.ndarray) -> tuple[np.ndarray, int]:
    """Group equal rows: (label per row, number of groups). One lexsort, no np.unique(axis=0)."""
    if len(rows) == 0:
        return np.zeros(0, dtype=np.int64), 0
    order = np.lexsort(rows.T[::-1])
    s = rows[order]
    new = np.empty(len(rows), dtype=bool)
    new[0] = True
    np.any(s[1:] != s[:-1], axis=1, out=new[1:])
    labels = np.empty(len(rows), dtype=np.int64)
    labels[order] = np.cumsum(new) - 1
    return labels, int(new.sum())


def _components(n: int, a: np.ndarray, b: np.ndarray) -> tuple[int, np.ndarray]:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    return connected_components(graph, directed=False)


def signed_volumes(triangles: np.ndarray) -> np.ndarray:
    """Signed volume of the tetrahedron (origin, v0, v1, v2) per triangle; sum = mesh volume."""
    t = np.asarray(triangles, dtype=np.float64)
    centre = np.zeros(3)
    if len(t):
        finite = np.isfinite(t).all(axis=(1, 2))
        if finite.any():
            centre = t[finite].reshape(-1, 3).mean(axis=0)  # volumes relative to the centroid: less cancellation
    a, b, c = t[:, 0] - centre, t[:, 1] - centre, t[:, 2] - centre
    return np.einsum("ij,ij->i", a, np.cross(b, c)) / 6.0


def volumes_and_areas(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed tetra volumes (about the vertices' centroid) and areas from one cross product.

    a . ((b - a) x (c - a)) == a . (b x c), so the area normal also gives the volume.
    """
    v = np.asarray(vertices, dtype=np.float64)
    used = v[np.isfinite(v).all(axis=1)]
    vc = v - (used.mean(axis=0) if len(used) else 0.0)
    a, b, c = vc[faces[:, 0]], vc[faces[:, 1]], vc[faces[:, 2]]
    cross = np.cross(b - a, c - a)
    return np.einsum("ij,ij->i", a, cross) / 6.0, 0.5 * np.linalg.norm(cross, axis=1)


def triangle_areas(triangles: np.ndarray) -> np.ndarray:
    t = np.asarray(triangles, dtype=np.float64)
    return 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)


def topology(vertices: np.ndarray, faces: np.ndarray, tolerance: float = 0.0) -> Topology:
    """Weld and compute every edge-level fact at once.

    Exact matches always weld. Like PrusaSlicer's nearby matching (REQUIREMENTS 2c), ``tolerance``
    only welds vertices of edges that exact matching left open, so it closes float cracks without
    collapsing tiny edges elsewhere; a mesh closed after the exact weld is analysed once.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    vid, nv = weld(vertices)
    result = _topology(vertices, faces, vid, nv)
    if tolerance <= 0 or len(result.boundary_edges) == 0:
        return result
    # nearby weld among the open edges' vertices, then analyse again
    open_ids = np.unique(result.boundary_edges.reshape(-1))
    first = np.full(nv, -1, dtype=np.int64)
    ok = vid >= 0
    first[vid[ok][::-1]] = np.flatnonzero(ok)[::-1]  # one input vertex per welded id
    group, _ = weld(vertices[first[open_ids]], tolerance)
    target = np.zeros(group.max() + 1, dtype=np.int64) + nv
    np.minimum.at(target, group, open_ids)  # each group maps onto its smallest welded id
    remap = np.arange(nv)
    remap[open_ids] = target[group]
    if (remap[open_ids] == open_ids).all():
        return result
    used, compact = np.unique(remap, return_inverse=True)
    vid = np.where(ok, compact[np.where(ok, vid, 0)], -1)
    return _topology(vertices, faces, vid, len(used))


def _topology(vertices: np.ndarray, faces: np.ndarray, vid: np.ndarray, nv: int) -> Topology:
    n_faces = len(faces)
    wf = vid[faces] if n_faces else np.zeros((0, 3), dtype=np.int64)
    valid = (wf >= 0).all(axis=1) & (wf[:, 0] != wf[:, 1]) & (wf[:, 1] != wf[:, 2]) & (wf[:, 2] != wf[:, 0])
    fidx = np.flatnonzero(valid)
    F = wf[fidx]
    m = len(F)

    # directed half-edges: corner k -> corner k+1 of face j; index h = 3*j + k
    start = F.reshape(-1)
    end = F[:, [1, 2, 0]].reshape(-1)
    lo, hi = np.minimum(start, end), np.maximum(start, end)
    key = lo * max(nv, 1) + hi
    order = np.argsort(key, kind="stable")
    sk = key[order]
    new = np.empty(len(sk), dtype=bool)
    if len(sk):
        new[0] = True
        np.not_equal(sk[1:], sk[:-1], out=new[1:])
    group_start = np.flatnonzero(new)
    counts = np.diff(np.append(group_start, len(sk)))
    group_of_sorted = np.cumsum(new) - 1
    count_of_half = np.empty(len(sk), dtype=np.int64)
    count_of_half[order] = counts[group_of_sorted]

    def pairs(mask_groups: np.ndarray) -> np.ndarray:
        h = order[group_start[mask_groups]]
        return np.stack([lo[h], hi[h]], axis=1)

    def faces_of(mask_half: np.ndarray) -> np.ndarray:
        return np.unique(fidx[np.flatnonzero(mask_half) // 3])

    boundary = counts == 1
    nonmanifold = counts > 2
    boundary_edges = pairs(boundary)
    nonmanifold_edges = pairs(nonmanifold)

    # winding: a manifold edge is consistent when exactly one of its two half-edges runs lo -> hi
    forward = (start < end)[order].astype(np.int64)
    two = counts == 2
    gs2 = group_start[two]
    conflicts_mask = forward[gs2] == forward[gs2 + 1]
    winding_conflicts = int(conflicts_mask.sum())
    bad_half = np.zeros(len(sk), dtype=bool)
    bad_half[order[gs2[conflicts_mask]]] = True
    bad_half[order[gs2[conflicts_mask] + 1]] = True

    # holes: connected chains of boundary edges
    boundary_loops = 0
    if len(boundary_edges):
        bv, inv = np.unique(boundary_edges.reshape(-1), return_inverse=True)
        inv = inv.reshape(-1, 2)
        boundary_loops, _ = _components(len(bv), inv[:, 0], inv[:, 1])

    # bow-tie vertices: corners joined across manifold edges; a vertex with corners in >1 fan is bad
    nm_vertices = np.zeros(0, dtype=np.int64)
    if m:
        h1, h2 = order[gs2], order[gs2 + 1]
        same = conflicts_mask  # same direction: start meets start
        c1s, c1e = h1, 3 * (h1 // 3) + (h1 % 3 + 1) % 3
        c2s, c2e = h2, 3 * (h2 // 3) + (h2 % 3 + 1) % 3
        a = np.concatenate([c1s, c1e])
        b = np.concatenate([np.where(same, c2s, c2e), np.where(same, c2e, c2s)])
        n_comp, comp = _components(3 * m, a, b)
        # corners are only ever joined to corners of the same vertex, so each fan has one vertex
        fan_vertex = np.zeros(n_comp, dtype=np.int64)
        fan_vertex[comp] = start  # corner 3*j+k is vertex F[j, k]
        fans = np.bincount(fan_vertex, minlength=nv)
        bad = fans > 1
        if len(nonmanifold_edges):
            bad[nonmanifold_edges.reshape(-1)] = False
        nm_vertices = np.flatnonzero(bad)

    # shells and volumes
    shell_of_face = np.full(n_faces, -1, dtype=np.int64)
    if m:
        n_comp, vlabel = _components(nv, np.concatenate([F[:, 0], F[:, 1]]), np.concatenate([F[:, 1], F[:, 2]]))
        used = np.zeros(n_comp, dtype=bool)
        used[vlabel[F[:, 0]]] = True
        relabel = np.cumsum(used) - 1
        flabel = relabel[vlabel[F[:, 0]]]
        shell_of_face[fidx] = flabel
        n_shells = int(used.sum())
        vols, areas = volumes_and_areas(vertices, faces[fidx])
        shell_volume = np.bincount(flabel, weights=vols, minlength=n_shells)
        shell_area = np.bincount(flabel, weights=areas, minlength=n_shells)
        volume = float(vols.sum())
    else:
        n_shells, shell_volume, shell_area, volume = 0, np.zeros(0), np.zeros(0), 0.0

    return Topology(
        n_faces=n_faces,
        n_vertices=nv,
        faces=wf,
        valid=valid,
        boundary_edges=boundary_edges,
        boundary_faces=faces_of(count_of_half == 1),
        boundary_loops=int(boundary_loops),
        nonmanifold_edges=nonmanifold_edges,
        nonmanifold_faces=faces_of(count_of_half > 2),
        nonmanifold_counts=counts[nonmanifold],
        nonmanifold_vertices=nm_vertices,
        winding_conflicts=winding_conflicts,
        winding_faces=faces_of(bad_half),
        shell_of_face=shell_of_face,
        n_shells=int(n_shells),
        shell_volume=shell_volume,
        shell_area=shell_area,
        volume=volume,
    )
