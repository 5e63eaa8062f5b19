"""Self-intersecting triangle pairs: a broad phase (bounding spheres in a scipy k-d tree, or a numpy
uniform grid, whichever suits the triangle sizes; or every edge cast as a segment through an Embree
BVH, :func:`intersecting_pairs_by_rays`) and a numpy separating-axis test.

Broad phase: see :func:`_broad_phase` (candidates, then an exact, slightly widened box test). Narrow
phase: the 11-axis separating-axis test (two face normals, nine edge cross products), vectorized
over chunks of pairs, in float64.

Conventions: pairs sharing a (welded) vertex are skipped, as the corpus manifest and Blender's
3D-Print Toolbox do; touching within ``eps`` is not an intersection; coplanar overlaps are not
counted (the duplicate-face check reports exact copies).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from meshforge.ops.topology import sort_keys

if TYPE_CHECKING:
    from meshforge.ops.thickness import RayCaster

CHUNK = 262_144
RAYS_MIN_FACES = 50_000  # below this the exhaustive test takes well under a second whatever the mesh
CROWDED = 12.0  # triangles per grid cell (see crowding): surfaces 3-6, stacked/overlapping parts 17+


def intersecting_pairs(
    triangles: np.ndarray,
    vertex_ids: np.ndarray | None = None,
    *,
    eps_rel: float = 1e-7,
    rays: Callable[[], np.ndarray | None] | None = None,
) -> np.ndarray:
    """(k, 2) indices ``i < j`` of triangles that properly intersect.

    ``triangles`` is (n, 3, 3); ``vertex_ids`` (n, 3) welded vertex ids used to skip neighbours
    (defaults to exact position matching). Non-finite triangles are ignored.

    ``rays`` is the edge-ray broad phase (:func:`intersecting_pairs_by_rays`) bound by the caller,
    returning the same pairs in the same rows, or None when it cannot run (no Embree). It is taken
    for meshes of ``RAYS_MIN_FACES`` or more whose sizes are mixed or which are crowded with stacked
    and overlapping parts, where the sphere and grid broad phases drown in candidate pairs (the
    corpus chair subdivided to 204 k faces: 65 s by them, 0.6 s by rays, same pairs).
    """
    tri = np.asarray(triangles, dtype=np.float64)
    n = len(tri)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    if vertex_ids is None:
        from meshforge.ops.topology import weld

        ids, _ = weld(tri.reshape(-1, 3))
        vertex_ids = ids.reshape(-1, 3)
    vertex_ids = np.asarray(vertex_ids, dtype=np.int64)
    # boxes by elementwise min/max of the three corners (reductions over an axis of 3 are ~5x
    # slower); NaN propagates through np.minimum/np.maximum, so the boxes also tell finiteness
    lo = np.minimum(np.minimum(tri[:, 0], tri[:, 1]), tri[:, 2])
    hi = np.maximum(np.maximum(tri[:, 0], tri[:, 1]), tri[:, 2])
    finite = np.isfinite(lo).all(axis=1) & np.isfinite(hi).all(axis=1)
    keep = np.flatnonzero(finite)
    if len(keep) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    t = tri
    if len(keep) < n:
        t, lo, hi = tri[keep], lo[keep], hi[keep]
    uniform = uniform_sizes(lo, hi)
    if rays is not None and len(keep) >= RAYS_MIN_FACES and (not uniform or crowding(lo, hi) > CROWDED):
        found = rays()
        if found is not None:
            return found
    diag = float(np.linalg.norm(hi.max(axis=0) - lo.min(axis=0)))
    eps = eps_rel * diag if diag > 0 else 0.0
    pairs = _candidates(lo, hi, eps, t, uniform=uniform)
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    vid = vertex_ids if len(keep) == n else vertex_ids[keep]
    # neighbours sharing any vertex are not self-intersections (most candidates: filter them first)
    pairs = _boxes_overlap(lo, hi, eps, _not_neighbours(vid, pairs))
    hits = [pairs[s : s + CHUNK][_sat(t, pairs[s : s + CHUNK], eps)] for s in range(0, len(pairs), CHUNK)]
    found = np.concatenate(hits) if hits else np.zeros((0, 2), dtype=np.int64)
    found = keep[found]
    found.sort(axis=1)
    return found[np.lexsort((found[:, 1], found[:, 0]))]


def intersecting_pairs_by_rays(
    caster: RayCaster,
    vertex_ids: np.ndarray,
    face_ids: np.ndarray,
    *,
    eps_rel: float = 1e-7,
) -> np.ndarray:
    """:func:`intersecting_pairs` for large meshes, with the ray caster's BVH as the broad phase.

    Two triangles that properly intersect (not coplanar, not merely touching) meet along a segment
    whose ends lie on edges: some edge of one crosses the other. So each unique edge is cast as a
    segment (from just past one end to just before the other); every face it passes through,
    paired with the faces on that edge, is a candidate, and the same neighbour filter and SAT test
    decide. The BVH is the one the thickness and gap checks build anyway. It pays where the sphere
    and grid broad phases drown in candidates (stacked or overlapping parts, mixed sizes: the corpus
    chair subdivided to 204 k faces, 65 s -> 0.6 s); on a clean 1.3 M sphere it is slower than the
    k-d tree (3.9 s vs 1.7 s: in float32, 700 k of its 2 M edges graze their own faces and need the
    all-hits query).

    ``caster`` holds the faces to test (``caster.faces``, finite); ``vertex_ids`` are their welded
    corner ids (same rows) and ``face_ids`` the index each row has in the caller's mesh; pairs of
    those indices come back. The ends are skipped by 1e-5 of the edge: a corner clipped less deeply
    than that is a touch in Embree's float32 anyway. Needs the open3d backend (``all_hits``).
    """
    v = caster.vertices
    f = caster.faces
    wid = np.asarray(vertex_ids, dtype=np.int64)
    n = len(f)
    if n < 2:
        return np.zeros((0, 2), dtype=np.int64)
    sk, start, count, face_of_half, rep = _edge_groups(wid)
    p0 = v[f.reshape(-1)[rep]]
    p1 = v[f[:, [1, 2, 0]].reshape(-1)[rep]]
    d = p1 - p0
    length = np.linalg.norm(d, axis=1)
    ok = length > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        d = d / np.where(ok, length, 1.0)[:, None]
    skip = 1e-5 * length
    edge_ids = np.flatnonzero(ok)
    origin = p0[edge_ids] + d[edge_ids] * skip[edge_ids, None]
    remaining = length[edge_ids] - 2.0 * skip[edge_ids]
    # first hits for all edges (one BVH traversal each); the few that meet a face inside the segment
    # then list every face they pass through (coincident duplicates and coplanar grazes included)
    t, face = caster.first_hits(origin, d[edge_ids])
    inside = (face >= 0) & (t < remaining)
    if not inside.any():
        return np.zeros((0, 2), dtype=np.int64)
    edge_ids, origin, remaining = edge_ids[inside], origin[inside], remaining[inside]
    ray, t, others, uv = caster.all_hits(origin, d[edge_ids])
    keep = t < remaining[ray]
    edges, others, uv = edge_ids[ray[keep]], others[keep], uv[keep]
    edges, others = _across_hit_edges(wid, sk, start, count, face_of_half, edges, others, uv)
    # a face holding either end of the edge only touches it (and float32 Embree reports the edge's
    # own faces all along it): drop those before the duplicate and pair bookkeeping
    ends = (wid.reshape(-1)[rep[edges]], wid[:, [1, 2, 0]].reshape(-1)[rep[edges]])
    w = wid[others]
    touching = np.zeros(len(others), dtype=bool)
    for end in ends:
        touching |= (w[:, 0] == end) | (w[:, 1] == end) | (w[:, 2] == end)
    edges, others = edges[~touching], others[~touching]
    edges, others = _with_coincident(wid, edges, others)
    # every face on the edge x the face the edge passes through
    which, pos = _members(start, count, edges)
    pairs = np.stack([face_of_half[pos], others[which]], axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = _not_neighbours(wid, pairs)
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    # the narrow phase on the few faces involved, with the exhaustive test's tolerance (diagonal of the faces' box)
    used = np.zeros(len(v), dtype=bool)
    used[f.reshape(-1)] = True
    diag = float(np.linalg.norm(np.ptp(v[used], axis=0)))
    eps = eps_rel * diag if diag > 0 else 0.0
    involved, local = np.unique(pairs, return_inverse=True)
    tri = v[f[involved]]
    lo = np.minimum(np.minimum(tri[:, 0], tri[:, 1]), tri[:, 2])
    hi = np.maximum(np.maximum(tri[:, 0], tri[:, 1]), tri[:, 2])
    local = np.unique(_boxes_overlap(lo, hi, eps, local.reshape(-1, 2)), axis=0)
    found = involved[local[_sat(tri, local, eps)]] if len(local) else np.zeros((0, 2), dtype=np.int64)
    found = np.asarray(face_ids)[found]
    found.sort(axis=1)
    return found[np.lexsort((found[:, 1], found[:, 0]))]


def _edge_groups(wid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Unique undirected edges of faces ``wid`` (welded ids), as groups of their half-edges: the
    sorted edge keys, each group's start and size, the face of every half-edge in that order, and
    one half-edge per edge (``rep``: face rep // 3, corner rep % 3)."""
    nv = int(wid.max()) + 1
    a = wid.reshape(-1)
    b = wid[:, [1, 2, 0]].reshape(-1)
    key = np.minimum(a, b) * nv + np.maximum(a, b)
    sk, order = sort_keys(key, nv * nv)  # ties keep half-edge order, as a stable argsort would
    start = np.flatnonzero(np.r_[True, sk[1:] != sk[:-1]])
    count = np.diff(np.r_[start, len(sk)])
    return sk, start, count, order // 3, order[start]


def _members(start: np.ndarray, count: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For grouped rows (group g at start[g], count[g] long): for every member of every group in
    ``groups``, which entry of ``groups`` it belongs to and its row position."""
    k = count[groups]
    which = np.repeat(np.arange(len(groups)), k)
    return which, np.repeat(start[groups], k) + (np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k))


def _across_hit_edges(
    wid: np.ndarray, sk: np.ndarray, start: np.ndarray, count: np.ndarray, face_of_half: np.ndarray,
    edges: np.ndarray, others: np.ndarray, uv: np.ndarray, tol: float = 1e-3,
) -> tuple[np.ndarray, np.ndarray]:
    """Add the faces across the edge a segment hit on a face's boundary (barycentric coordinate
    within ``tol`` of 0): Embree gives a point on a shared edge to one of its faces, and an edge
    crossing an edge exactly (copies of one tessellation shifted along an axis) intersects both.
    Float32 puts such a point up to ~1e-4 inside either face (measured), hence 1e-3; an extra
    candidate only costs a SAT test."""
    u, v = uv[:, 0], uv[:, 1]
    w = 1.0 - u - v
    extra_edges, extra_others = [edges], [others]
    nv = int(wid.max()) + 1
    unique_keys = sk[start]
    # (barycentric ~ 0, the two corners of the edge opposite it): u ~ 0 -> corners 0 and 2, v ~ 0 -> 0 and 1
    for near, (i, j) in ((u < tol, (0, 2)), (v < tol, (0, 1)), (w < tol, (1, 2))):
        hit = np.flatnonzero(near)
        if len(hit) == 0:
            continue
        a, b = wid[others[hit], i], wid[others[hit], j]
        key = np.minimum(a, b) * nv + np.maximum(a, b)
        g = np.searchsorted(unique_keys, key).clip(0, len(unique_keys) - 1)
        found = unique_keys[g] == key
        hit, g = hit[found], g[found]
        which, pos = _members(start, count, g)
        extra_edges.append(edges[hit[which]])
        extra_others.append(face_of_half[pos])
    return np.concatenate(extra_edges), np.concatenate(extra_others)


def _with_coincident(wid: np.ndarray, edges: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Add, for every hit face, the faces with the same three welded corners: a segment through a
    stack of duplicate faces reports one of them (Embree keeps one hit per distance)."""
    if len(others) == 0:
        return edges, others
    lo, hi = wid.min(axis=1), wid.max(axis=1)
    mid = wid.sum(axis=1) - lo - hi
    with np.errstate(over="ignore"):
        key = (lo.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ (mid.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)) ^ (
            hi.astype(np.uint64) * np.uint64(0x165667B19E3779F9))
    hit = np.unique(others)
    same_key = np.flatnonzero(np.isin(key, key[hit]))
    if len(same_key) == len(hit):
        return edges, others  # no face shares a hit face's key: no duplicates (the common case)
    # exact groups among the few faces whose hash matches a hit face's
    rows = np.stack([lo[same_key], mid[same_key], hi[same_key]], axis=1)
    order = np.lexsort(rows.T[::-1])
    sub, rows = same_key[order], rows[order]
    new = np.r_[True, (rows[1:] != rows[:-1]).any(axis=1)]
    starts = np.flatnonzero(new)
    sizes = np.diff(np.r_[starts, len(sub)])
    group_of = np.full(len(wid), -1, dtype=np.int64)
    group_of[sub] = np.cumsum(new) - 1
    which, pos = _members(starts, sizes, group_of[others])  # every hit face is in its own group
    return edges[which], sub[pos]


def _share_a_vertex(vid: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Per pair: do the two triangles share a vertex id? Nine 1-D comparisons on gathered columns
    (7.9 M pairs: 0.49 s CPU against 1.14 s for broadcasting (k, 3, 3) and reducing)."""
    small = len(vid) == 0 or int(vid.max()) < 2**31 - 1
    cols = [np.ascontiguousarray(vid[:, k], dtype=np.int32 if small else np.int64) for k in range(3)]
    first, second = np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1])
    a = [c[first] for c in cols]
    b = [c[second] for c in cols]
    shared = np.zeros(len(pairs), dtype=bool)
    for x in a:
        for y in b:
            shared |= x == y
    return shared


def _not_neighbours(vid: np.ndarray, pairs: np.ndarray, chunk: int = 1 << 21) -> np.ndarray:
    """The pairs that share no vertex, filtered in chunks (the gathered columns stay in cache)."""
    out = [pairs[s : s + chunk][~_share_a_vertex(vid, pairs[s : s + chunk])] for s in range(0, len(pairs), chunk)]
    return np.concatenate(out) if out else pairs[:0]


def _broad_phase(lo: np.ndarray, hi: np.ndarray, eps: float) -> np.ndarray:
    """Pairs (i < j) whose boxes overlap, widened so float rounding only adds candidates."""
    return _boxes_overlap(lo, hi, eps, _candidates(lo, hi, eps))


def _candidates(
    lo: np.ndarray, hi: np.ndarray, eps: float, tri: np.ndarray | None = None, *, uniform: bool | None = None
) -> np.ndarray:
    """Candidate pairs (a superset of the intersecting pairs), from one of two generators.

    Chosen by the spread of triangle sizes (measured on the corpus and a 1.3 M-triangle sphere):
    similar sizes (95th/50th percentile of bounding radius <= 2: scans, subdivided and sculpted
    meshes) -> bounding spheres in a k-d tree; spread-out sizes (CAD slivers, mixed scales) -> a
    uniform grid. :func:`_boxes_overlap` then drops pairs whose boxes are apart.

    With ``tri`` the spheres are the triangles' own (centroid, farthest corner): on the 1.3 M
    sphere 7.9 M candidates instead of 10.0 M for the boxes' spheres, nearly all of them
    neighbours sharing a vertex, which no bounding volume can separate. ``uniform`` is
    :func:`uniform_sizes` of these boxes when the caller has it.
    """
    if not (uniform_sizes(lo, hi) if uniform is None else uniform):
        return _grid_pairs(lo, hi, eps)
    if tri is None:
        return _sphere_pairs(lo, hi, eps)
    centre = (tri[:, 0] + tri[:, 1] + tri[:, 2]) / 3.0
    radius = np.zeros(len(tri))
    for k in range(3):
        d = tri[:, k] - centre
        np.maximum(radius, np.einsum("ij,ij->i", d, d), out=radius)
    np.sqrt(radius, out=radius)
    return _sphere_pairs(lo, hi, eps, centre, radius)


def uniform_sizes(lo: np.ndarray, hi: np.ndarray) -> bool:
    """Similar-sized triangles (95th/50th percentile of the bounding radius <= 2: scans, subdivided
    and sculpted meshes), which bounding spheres in a k-d tree pair up fast; spread-out sizes (CAD
    slivers, mixed scales) are what the grid, or the ray broad phase, is for."""
    size = 0.5 * np.linalg.norm(hi - lo, axis=1)
    median = float(np.median(size)) if len(size) else 0.0
    return median > 0 and float(np.percentile(size, 95)) <= 2.0 * median


def crowding(lo: np.ndarray, hi: np.ndarray, sample: int = 65_536) -> float:
    """How many triangles a triangle finds in its own grid cell (cells twice the median bounding
    size), estimated from a seeded sample with cells widened so a surface keeps its count.

    A surface gives 3-6 whatever its size (1.3 M sphere 3.4, bunny 5.5); stacked duplicates and
    overlapping parts give far more (corpus chair 267, subdivided x16: 779; CAD parts 17-52), and
    then the sphere broad phase drowns in candidate pairs (the subdivided chair: 65 s)."""
    n = len(lo)
    if n == 0:
        return 0.0
    ids = np.random.default_rng(0).choice(n, sample, replace=False) if n > sample else np.arange(n)
    centre = 0.5 * (lo[ids] + hi[ids])
    size = float(np.median(0.5 * np.linalg.norm(hi[ids] - lo[ids], axis=1)))
    cell = 2.0 * size / np.sqrt(len(ids) / n)  # a sample of q: cells sqrt(1/q) wider hold as many surface triangles
    if not cell > 0:
        return float(len(ids))  # all points: everything is in one cell
    k = np.floor((centre - centre.min(axis=0)) / cell).astype(np.int64)
    dims = k.max(axis=0) + 1
    _, counts = np.unique((k[:, 0] * dims[1] + k[:, 1]) * dims[2] + k[:, 2], return_counts=True)
    return float((counts.astype(np.float64) ** 2).sum() / counts.sum())


def _boxes_overlap(lo: np.ndarray, hi: np.ndarray, eps: float, pairs: np.ndarray) -> np.ndarray:
    """The pairs whose boxes overlap within ``eps`` plus a float-rounding margin, as (min, max)."""
    if len(pairs) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    span = float((hi.max(axis=0) - lo.min(axis=0)).max())
    margin = eps + 4e-7 * span
    a, b = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
    for k in range(3):
        ok = (lo[a, k] <= hi[b, k] + margin) & (lo[b, k] <= hi[a, k] + margin)
        a, b = a[ok], b[ok]
    return np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)


def _sphere_pairs(
    lo: np.ndarray, hi: np.ndarray, eps: float, centre: np.ndarray | None = None, radius: np.ndarray | None = None
) -> np.ndarray:
    """Candidates from bounding spheres (for meshes of similar-sized triangles).

    Triangles are spheres (box centre, half box diagonal + eps) sorted into size classes a factor
    of two apart. Two spheres can only touch when their centres are within the sum of the radii,
    so each class is one ``cKDTree.query_pairs`` and each pair of classes one
    ``sparse_distance_matrix`` call, all in C++ with ndarray output, and no query radius is more than
    twice what its spheres need (heavy-tailed CAD sizes stay cheap). Measured on a 1.3 M-triangle
    sphere: 2.1 s against 4.9-5.9 s for the grid; but bounding spheres of CAD slivers are loose
    (2CylinderEngine.glb: 10.3 s against 3.0 s), hence the choice in :func:`_broad_phase`.

    Without ``centre``/``radius`` the spheres circumscribe the boxes (then every pair of
    overlapping boxes is found); with them, any spheres containing the triangles (then every pair
    of touching triangles is). The trees are built unbalanced (half the build time, same queries).
    """
    from scipy.spatial import cKDTree

    if centre is None or radius is None:
        centre = 0.5 * (lo + hi)
        radius = 0.5 * np.linalg.norm(hi - lo, axis=1)
    radius = radius + eps
    top = float(radius.max())
    if top <= 0:
        return np.zeros((0, 2), dtype=np.int64)
    with np.errstate(divide="ignore"):
        cls = np.minimum(np.floor(np.log2(top / np.maximum(radius, 1e-300))), 40).astype(np.int64)
    classes = [(top / 2.0**q, np.flatnonzero(cls == q)) for q in np.unique(cls)]
    whole = len(classes) == 1
    trees = [cKDTree(centre if whole else centre[ids], balanced_tree=False, compact_nodes=False) for _, ids in classes]
    out = []
    for x, (rx, ix) in enumerate(classes):
        if len(ix) > 1:
            found = trees[x].query_pairs(2.0 * rx, output_type="ndarray")
            out.append(found if whole else ix[found].reshape(-1, 2))
        for y in range(x + 1, len(classes)):
            ry, iy = classes[y]
            m = trees[x].sparse_distance_matrix(trees[y], rx + ry, output_type="ndarray")
            if len(m):
                out.append(np.stack([ix[m["i"]], iy[m["j"]]], axis=1))
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    return out[0] if len(out) == 1 else np.concatenate(out)  # one class: no 126 MB copy


def _grid_pairs(lo: np.ndarray, hi: np.ndarray, eps: float, max_entries: float = 16.0) -> np.ndarray:
    """Candidates from a uniform grid: triangles sharing a cell, each pair once (its owner cell)."""
    n = len(lo)
    size = (hi - lo).max(axis=1)
    span = float((hi.max(axis=0) - lo.min(axis=0)).max())
    cell = max(float(np.median(size)), span / 2**20, 1e-300)  # 1x median: fewest candidate pairs (measured)
    origin = lo.min(axis=0)
    while True:
        c0 = np.floor((lo - origin) / cell).astype(np.int64)
        c1 = np.floor((hi - origin) / cell).astype(np.int64)
        extent = c1 - c0 + 1
        per = extent.prod(axis=1)
        if per.sum() <= max_entries * n or cell >= span:
            break
        cell *= 2.0
    dims = c1.max(axis=0) + 1
    # enumerate (cell, triangle) entries; most triangles touch one to eight cells
    total = int(per.sum())
    tri_of = np.repeat(np.arange(n, dtype=np.int32), per)
    local = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(per) - per, per)
    ex = extent[tri_of]
    c = c0[tri_of]
    key = ((c[:, 0] + local % ex[:, 0]) * dims[1] + c[:, 1] + (local // ex[:, 0]) % ex[:, 1]) * dims[2] + (
        c[:, 2] + local // (ex[:, 0] * ex[:, 1])
    )
    del local, ex, c
    order = np.argsort(key, kind="stable")
    key, tri_of = key[order], tri_of[order]
    # all pairs inside each cell: entry p pairs with p+1 .. end of its group
    new = np.empty(total, dtype=bool)
    new[0] = True
    np.not_equal(key[1:], key[:-1], out=new[1:])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], total)
    after = ends[np.cumsum(new) - 1] - np.arange(total) - 1
    n_pairs = int(after.sum())
    idx = np.int32 if max(n_pairs, total) < 2**31 - 1 else np.int64  # int32 halves the traffic
    a_pos = np.repeat(np.arange(total, dtype=idx), after)
    shift = (np.cumsum(after) - after - np.arange(total) - 1).astype(idx)
    b_pos = np.arange(n_pairs, dtype=idx)
    b_pos -= np.repeat(shift, after)
    a, b = tri_of[a_pos], tri_of[b_pos]
    # count each pair once: in the cell holding the lower corner of the two boxes' overlap, whose
    # integer coordinates are the per-axis max of the boxes' first cells (floor is monotonic)
    cx, cy, cz = (np.ascontiguousarray(c0[:, k]) for k in range(3))
    corner = (np.maximum(cx[a], cx[b]) * dims[1] + np.maximum(cy[a], cy[b])) * dims[2] + np.maximum(cz[a], cz[b])
    own = corner == key[a_pos]
    del a_pos, b_pos, corner
    a, b = a[own], b[own]
    # boxes overlap? one axis at a time on contiguous float32 columns, compacting as we go; the
    # boxes are widened so float32 rounding only adds candidates (the SAT test decides)
    margin = eps + 4e-7 * span
    for k in range(3):
        lk = (lo[:, k] - origin[k] - margin).astype(np.float32)
        hk = (hi[:, k] - origin[k] + margin).astype(np.float32)
        ok = (lk[a] <= hk[b]) & (lk[b] <= hk[a])
        a, b = a[ok], b[ok]
    return np.stack([a, b], axis=1).astype(np.int64)


def _sat(t: np.ndarray, pairs: np.ndarray, eps: float) -> np.ndarray:
    """True where the pair's triangles overlap on all 11 candidate separating axes."""
    A, B = t[pairs[:, 0]], t[pairs[:, 1]]
    ea = A[:, [1, 2, 0]] - A
    eb = B[:, [1, 2, 0]] - B
    na = np.cross(ea[:, 0], ea[:, 1])
    nb = np.cross(eb[:, 0], eb[:, 1])
    cross = np.cross(ea[:, :, None, :], eb[:, None, :, :]).reshape(-1, 9, 3)
    axes = np.concatenate([na[:, None], nb[:, None], cross], axis=1)  # (k, 11, 3)
    length = np.linalg.norm(axes, axis=2)
    pa = np.einsum("kaj,kvj->kav", axes, A)
    pb = np.einsum("kaj,kvj->kav", axes, B)
    tol = eps * length
    separated = (pa.max(axis=2) <= pb.min(axis=2) + tol) | (pb.max(axis=2) <= pa.min(axis=2) + tol)
    la, lb = np.linalg.norm(ea, axis=2), np.linalg.norm(eb, axis=2)
    ref = np.concatenate(
        [(la[:, 0] * la[:, 1])[:, None], (lb[:, 0] * lb[:, 1])[:, None], (la[:, :, None] * lb[:, None, :]).reshape(-1, 9)], axis=1
    )
    usable = length > 1e-9 * ref  # (near-)parallel edges give no usable axis; they never separate
    return ~(separated & usable).any(axis=1)
