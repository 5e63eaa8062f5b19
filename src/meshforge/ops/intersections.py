"""Self-intersecting triangle pairs: a broad phase (bounding spheres in a scipy k-d tree, or a numpy
uniform grid, whichever suits the triangle sizes; or every edge cast as a segment through an Embree
BVH, :func:`intersecting_pairs_by_rays`) and a numpy separating-axis test.

Broad phase: see :func:`_broad_phase` (candidates, then an exact, slightly widened box test). No
broad phase may generate more than a budget of candidate pairs (``BUDGET_PER_FACE`` per triangle):
the k-d tree estimates its count from a sample and the grid counts its own before pairing anything;
over budget, the grouped sort-and-sweep (:func:`_sweep_plan`: fans round one vertex and planar
regions need no pairs among themselves) or the grid runs, ``PAIR_CHUNK`` pairs at a time
(:func:`_choose`). Narrow phase: a plane test that settles most pairs touching along a rim
(:func:`_plane_separated`), then the 11-axis separating-axis test (two face normals, nine edge cross
products), vectorized over chunks of pairs, in float64.

Conventions: pairs sharing a (welded) vertex are skipped, as the corpus manifest and Blender's
3D-Print Toolbox do; touching within ``eps`` is not an intersection; coplanar overlaps are not
counted (the duplicate-face check reports exact copies).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from meshforge.ops.topology import sort_keys

if TYPE_CHECKING:
    from meshforge.ops.thickness import RayCaster

CHUNK = 262_144
RAYS_MIN_FACES = 50_000  # below this the exhaustive test takes well under a second whatever the mesh
CROWDED = 12.0  # triangles per grid cell (see crowding): surfaces 3-6, stacked/overlapping parts 17+
# Candidate pairs a broad phase may generate, per triangle: the corpus needs 6-507 from the k-d
# tree (the 1.3 M sphere 6, small crowded CAD files up to 507) and 6-38 from the grid; a fan of
# slim triangles needs n / 2. Above max(FLOOR, PER_FACE * n) the check takes a streamed one.
BUDGET_PER_FACE = 64
BUDGET_FLOOR = 1 << 20  # 16 MB of pairs; the worst mesh under it, a 700-segment cone, takes 0.34 s
PAIR_CHUNK = 1 << 20  # candidates held at once by the streamed broad phases
GROUP_MIN = 32  # triangles around one vertex, or in one plane, worth a group of the sweep
MAX_GROUPS = 16  # the largest groups; each adds a sweep against the rest


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
    corpus chair subdivided to 204 k faces: 65 s by them, 0.6 s by rays, same pairs) -- unless the
    grouped sweep (:func:`_sweep_plan`) fits the budget: fans of slim triangles (a cone, a polygon
    triangulated around one corner) drown the rays too. An edge cast towards its hub runs through
    it, where Embree reports every face of the fan: the 5,000-segment cone's 4,837 side edges that
    need the all-hits query list 3.8 M hits, 98% of them at or past the hub; the 20,000-segment
    cone takes 36 s and 3.9 GB.

    Every broad phase is held to a budget of ``BUDGET_PER_FACE`` candidate pairs per triangle
    (``BUDGET_FLOOR`` at least), counted or estimated before any pair exists; see :func:`_choose`.
    """
    s = _prepare(triangles, vertex_ids, eps_rel)
    if s is None:
        return np.zeros((0, 2), dtype=np.int64)
    budget = _budget(len(s.t))
    plan = None
    if rays is not None:
        wants_rays, plan = _wants_rays(s, budget)
        if wants_rays and (found := rays()) is not None:
            return found
    _, _, chunks = _choose(s, budget, plan)
    hits = [_narrow(s, pairs) for pairs in chunks]
    found = np.concatenate(hits) if hits else np.zeros((0, 2), dtype=np.int64)
    found = s.keep[found]
    found.sort(axis=1)
    return found[np.lexsort((found[:, 1], found[:, 0]))]


def broad_phase(
    triangles: np.ndarray, vertex_ids: np.ndarray | None = None, *, eps_rel: float = 1e-7, rays: bool = False
) -> tuple[str, int | None]:
    """The broad phase :func:`intersecting_pairs` takes for these triangles and how many candidate
    pairs it generates in all: "spheres", "grid" or "sweep" (the streamed ones hold at most
    ``PAIR_CHUNK`` at a time), or with ``rays`` (Embree at hand) "rays" (count None). Nothing is
    paired; for tests and benchmarks."""
    s = _prepare(triangles, vertex_ids, eps_rel)
    if s is None:
        return "none", 0
    budget = _budget(len(s.t))
    wants_rays, plan = _wants_rays(s, budget) if rays else (False, None)
    if wants_rays:
        return "rays", None
    method, count, _ = _choose(s, budget, plan)
    return method, count


def _budget(n: int) -> int:
    return max(BUDGET_FLOOR, BUDGET_PER_FACE * n)


def _wants_rays(s: _Soup, budget: int) -> tuple[bool, _Plan | None]:
    """Should the edge rays run (see :func:`intersecting_pairs`)? With the grouped sweep when it
    was planned and fits the budget. It is planned only when some vertex has so many faces that
    their pairs alone would pass the budget: planning costs 0.3-0.5 s on the crowded meshes the
    rays take in 0.6-1 s (corpus chair x16, four stacked spheres, 2CylinderEngine), none of which
    has such a hub."""
    if len(s.t) < RAYS_MIN_FACES or (s.uniform and crowding(s.lo, s.hi) <= CROWDED):
        return False, None
    ids = s.vid.reshape(-1)
    if int(np.bincount(ids[ids >= 0]).max()) ** 2 <= budget:
        return True, None
    plan = _sweep_plan(s, limit=budget)
    return plan is None, plan


class _Soup(NamedTuple):
    t: np.ndarray  # (n, 3, 3) finite triangles, float64
    lo: np.ndarray  # (n, 3) their boxes
    hi: np.ndarray
    vid: np.ndarray  # (n, 3) welded corner ids
    keep: np.ndarray  # their rows in the input
    eps: float  # touching tolerance
    uniform: bool  # uniform_sizes(lo, hi)
    planes: bool  # _planes_decidable


def _prepare(triangles: np.ndarray, vertex_ids: np.ndarray | None, eps_rel: float) -> _Soup | None:
    """The finite triangles and what every broad phase needs of them; None when fewer than two."""
    tri = np.asarray(triangles, dtype=np.float64)
    n = len(tri)
    if n < 2:
        return None
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
        return None
    t, vid = tri, vertex_ids
    if len(keep) < n:
        t, lo, hi, vid = tri[keep], lo[keep], hi[keep], vertex_ids[keep]
    bottom, top = lo.min(axis=0), hi.max(axis=0)
    diag = float(np.linalg.norm(top - bottom))
    eps = eps_rel * diag if diag > 0 else 0.0
    size = float(max(np.abs(bottom).max(), np.abs(top).max()))
    return _Soup(t, lo, hi, vid, keep, eps, uniform_sizes(lo, hi), _planes_decidable(size, diag, eps))


def _choose(s: _Soup, budget: int, plan: _Plan | None = None) -> tuple[str, int, Iterable[np.ndarray]]:
    """(method, candidate pairs in all, the candidates in chunks).

    The usual broad phase (:func:`_candidates`) when it fits the budget: the k-d tree estimates
    its count from a sample before pairing anything, the grid counts its pairs exactly. Otherwise
    the one of the grouped sweep (:func:`_sweep_plan`) and the grid with fewer candidates, both
    streamed ``PAIR_CHUNK`` pairs at a time, so memory stays bounded whatever the count (the
    grid's count is taken before its owner-cell test, so it is an upper bound). The 5,000-segment
    cone (10,000 faces, valid): 50 M sphere candidates, 25 M of them reaching the SAT (108 s of
    CPU, 2.5 GB); every box of its slim triangles contains the axis, so no box broad phase does
    better, while its hub and its planar base leave the grouped sweep none (0.05 s, 120 MB).
    """
    pairs = _candidates(s.lo, s.hi, s.eps, s.t, uniform=s.uniform, budget=budget)
    if pairs is not None:
        return ("spheres" if s.uniform else "grid"), len(pairs), (pairs,)
    if plan is None:
        plan = _sweep_plan(s)
    assert plan is not None  # no limit: always a plan
    if plan.count > budget:
        grid = _grid_layout(s.lo, s.hi, s.eps)
        if grid.count < plan.count:
            return "grid", grid.count, (_grid_chunk(grid, a, b) for a, b in _range_pairs(grid.ranges, PAIR_CHUNK))
    return "sweep", plan.count, plan.chunks()


def _narrow(s: _Soup, pairs: np.ndarray) -> np.ndarray:
    """The candidates that properly intersect: neighbours out, boxes apart out, then the SAT (after
    the cheap plane test when it is decidable: :func:`_plane_separated`)."""
    # neighbours sharing any vertex are not self-intersections (most candidates: filter them first)
    pairs = _boxes_overlap(s.lo, s.hi, s.eps, _not_neighbours(s.vid, pairs))
    hits = []
    for k in range(0, len(pairs), CHUNK):
        part = pairs[k : k + CHUNK]
        if s.planes:
            part = part[~_plane_separated(s.t, part, s.eps)]
        hits.append(part[_sat(s.t, part, s.eps)])
    return np.concatenate(hits) if hits else np.zeros((0, 2), dtype=np.int64)


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


class _Ranges(NamedTuple):
    """Pairs listed by rows: row r pairs ``first[r]`` with ``targets[start[r] : start[r] + count[r]]``."""

    first: np.ndarray
    targets: np.ndarray
    start: np.ndarray
    count: np.ndarray


def _range_pairs(rows: _Ranges, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The pairs of ``rows`` in order, ``chunk`` at a time (a row longer than a chunk is split)."""
    count = rows.count
    cum = np.cumsum(count)
    total = int(cum[-1]) if len(cum) else 0
    for p0 in range(0, total, chunk):
        p1 = min(p0 + chunk, total)
        r0 = int(np.searchsorted(cum, p0, side="right"))
        r1 = int(np.searchsorted(cum, p1 - 1, side="right")) + 1
        c = count[r0:r1]
        begin = cum[r0:r1] - c  # index of each row's first pair
        skip = np.maximum(p0 - begin, 0)
        k = np.minimum(p1 - begin, c) - skip  # this chunk's pairs of each row (>= 0)
        which = np.repeat(np.arange(r0, r1), k)
        off = np.arange(p1 - p0) - np.repeat(np.cumsum(k) - k - skip, k)
        yield rows.first[which], rows.targets[rows.start[which] + off]


class _Plan(NamedTuple):
    """The grouped sweep's candidates, as sweeps not yet listed."""

    count: int
    sweeps: list[_Ranges]

    def chunks(self) -> Iterator[np.ndarray]:
        for rows in self.sweeps:
            for a, b in _range_pairs(rows, PAIR_CHUNK):
                yield np.stack([a, b], axis=1)


class _Group(NamedTuple):
    members: np.ndarray
    clears: np.ndarray | None  # plane groups: per triangle, pairs with no member (see _clears)


def _sweep_plan(s: _Soup, limit: int | None = None) -> _Plan | None:
    """Candidates by sort-and-sweep of the boxes along one axis, with groups that need no pairs.

    A fan of slim triangles defeats every bounding volume: each box holds the hub, so all boxes
    overlap. But pairs around one vertex are neighbours, and pairs in one plane are coplanar, so
    neither intersects; and a triangle on one side of a plane (within eps / 2) crosses nothing in
    it. So the largest such groups (:func:`_groups`) are swept against the rest and each other, not
    within themselves, and a plane group only meets the triangles that do not clear its plane:
    the cone (a fan round the apex, a planar disk round the centre) is left no candidate at all.
    Each sweep takes the axis with the fewest pairs; every pair of overlapping boxes (within the
    margin of :func:`_boxes_overlap`) that may intersect is listed exactly once.

    The count is exact and known before any pair exists; with ``limit``, None as soon as it
    passes that.
    """
    lo, hi = s.lo, s.hi
    span = float((hi.max(axis=0) - lo.min(axis=0)).max())
    margin = s.eps + 4e-7 * span
    ends = hi + margin
    groups = _groups(s)
    grouped = np.zeros(len(lo), dtype=bool)
    for g in groups:
        grouped[g.members] = True
    rest = np.flatnonzero(~grouped)
    sweeps: list[_Ranges] = []
    total = 0

    def add(found: list[_Ranges]) -> bool:
        nonlocal total
        sweeps.extend(found)
        total += sum(int(r.count.sum()) for r in found)
        return limit is None or total <= limit

    if not add(_sweep(lo, ends, rest)):
        return None
    for a, ga in enumerate(groups):
        others = rest if ga.clears is None else rest[~ga.clears[rest]]
        if not add(_sweep(lo, ends, ga.members, others)):
            return None
        for gb in groups[:a]:
            x = ga.members if gb.clears is None else ga.members[~gb.clears[ga.members]]
            y = gb.members if ga.clears is None else gb.members[~ga.clears[gb.members]]
            if not add(_sweep(lo, ends, x, y)):
                return None
    return _Plan(total, sweeps)


def _sweep(lo: np.ndarray, ends: np.ndarray, x: np.ndarray, y: np.ndarray | None = None) -> list[_Ranges]:
    """Pairs of boxes ``[lo, ends]`` overlapping along the best axis: within ``x`` (``y`` None) or
    between ``x`` and ``y``. Sorted by start, a box pairs with the boxes starting inside it (ties
    to one side), so each overlapping pair is listed once."""
    best: list[_Ranges] = []
    best_count = -1
    for k in range(3):
        if y is None:
            if len(x) < 2:
                return []
            xs = x[np.argsort(lo[x, k], kind="stable")]
            start = lo[xs, k]
            first = np.arange(1, len(xs) + 1)
            found = [_Ranges(xs, xs, first, np.searchsorted(start, ends[xs, k], side="right") - first)]
        else:
            if len(x) == 0 or len(y) == 0:
                return []
            xs = x[np.argsort(lo[x, k], kind="stable")]
            ys = y[np.argsort(lo[y, k], kind="stable")]
            sx, sy = lo[xs, k], lo[ys, k]
            # y starting in x (at or after x's start), and x starting in y (strictly after y's)
            b1 = np.searchsorted(sy, sx, side="left")
            b2 = np.searchsorted(sx, sy, side="right")
            found = [
                _Ranges(xs, ys, b1, np.searchsorted(sy, ends[xs, k], side="right") - b1),
                _Ranges(ys, xs, b2, np.searchsorted(sx, ends[ys, k], side="right") - b2),
            ]
        for r in found:
            np.maximum(r.count, 0, out=r.count)
        count = sum(int(r.count.sum()) for r in found)
        if best_count < 0 or count < best_count:
            best, best_count = found, count
    return [r for r in best if r.count.any()]


def _groups(s: _Soup) -> list[_Group]:
    """Up to ``MAX_GROUPS`` disjoint groups of ``GROUP_MIN`` triangles or more whose pairs cannot
    intersect: plane groups (:func:`_plane_groups`) and hubs (the faces round one welded vertex:
    all neighbours). Planes first (they also clear the triangles on one side: a polygon fanned
    from a corner is a plane, not that corner's hub), then hubs, largest first; a triangle joins
    the first group that has it."""
    found: list[tuple[int, int, np.ndarray, tuple[np.ndarray, np.ndarray, float, float, float] | None]] = []
    for members, plane in _plane_groups(s):
        found.append((len(members), 0, members, plane))
    vid = s.vid
    ids = vid.reshape(-1)
    valence = np.bincount(ids[ids >= 0])  # -1: a non-finite corner in Topology.faces
    hubs = np.flatnonzero(valence >= GROUP_MIN)
    hubs = hubs[np.argsort(-valence[hubs], kind="stable")[:MAX_GROUPS]]
    for v in hubs:
        found.append((int(valence[v]), 1, np.flatnonzero((vid == v).any(axis=1)), None))
    found.sort(key=lambda g: (g[1], -g[0]))
    taken = np.zeros(len(vid), dtype=bool)
    groups = []
    for _, _, members, plane in found:
        members = members[~taken[members]]
        if len(members) < GROUP_MIN:
            continue
        taken[members] = True
        groups.append(_Group(members, None if plane is None else _clears(s, members, plane)))
        if len(groups) == MAX_GROUPS:
            break
    return groups


def _unit_normals(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals, computed as :func:`_sat` computes its face axes, and where they are sure:
    the cross product is 1e-6 of the edge lengths' product or more (the SAT uses any axis over
    1e-9), so its rounding tilts it by 1e-10 of the edge at most."""
    e0 = t[:, 1] - t[:, 0]
    e1 = t[:, 2] - t[:, 1]
    n = np.cross(e0, e1)
    length = np.sqrt(np.einsum("ij,ij->i", n, n))
    sure = length > 1e-6 * np.sqrt(np.einsum("ij,ij->i", e0, e0) * np.einsum("ij,ij->i", e1, e1))
    with np.errstate(invalid="ignore", divide="ignore"):
        n = n / np.where(sure, length, 1.0)[:, None]
    return n, sure


def _planes_decidable(size: float, span: float, eps: float) -> bool:
    """Can plane tests with eps / 2 to spare never disagree with the SAT's rounding? Its
    projections err by ~1e-15 of the coordinates' size and the face axes by 1e-10 of the span
    (:func:`_unit_normals`); both must stay under eps / 8 (default eps: coordinates up to 10^4
    spans from the origin). ``size``: largest coordinate magnitude; ``span``: box diagonal."""
    return eps > 0 and 1e-13 * size + 1e-9 * span <= eps / 8


def _plane_groups(s: _Soup) -> list[tuple[np.ndarray, tuple[np.ndarray, np.ndarray, float, float, float]]]:
    """Sets of ``GROUP_MIN`` triangles or more in one plane, closely enough that each lies within
    eps / 4 of every other's plane (then the SAT's own face axis separates any two), as (members,
    (unit normal, centre, offset spread, normal spread, radius)). Triangles are binned by their
    unit normal (sign made canonical) and offset, rounded; a bin is kept only when its measured
    spreads prove the bound, so the rounding can split a plane but never join two."""
    if not s.planes:
        return []
    t, eps = s.t, s.eps
    normal, sure = _unit_normals(t)
    ids = np.flatnonzero(sure)
    if len(ids) < GROUP_MIN:
        return []
    u = normal[ids]
    q = np.round(u * 2.0**20).astype(np.int64)
    # canonical sign: the first nonzero rounded component positive (both windings, one plane)
    lead = q[np.arange(len(q)), np.argmax(q != 0, axis=1)]
    flip = np.where(lead < 0, -1, 1)
    u = u * flip[:, None]
    q = q * flip[:, None]
    offset = np.einsum("ij,ij->i", u, t[ids].sum(axis=1) / 3.0)
    qd = np.round(offset / (eps / 8)).astype(np.int64)
    keys = np.stack([q[:, 0], q[:, 1], q[:, 2], qd], axis=1)
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    big = np.flatnonzero(counts >= GROUP_MIN)
    big = big[np.argsort(-counts[big], kind="stable")[: 2 * MAX_GROUPS]]
    out = []
    for b in big:
        rows = np.flatnonzero(inverse == b)
        members, un = ids[rows], u[rows]
        mean = un.mean(axis=0)
        mean /= np.linalg.norm(mean)
        pts = t[members].reshape(-1, 3)
        centre = 0.5 * (pts.min(axis=0) + pts.max(axis=0))
        rel = pts - centre
        delta = float(np.abs(rel @ mean).max())  # offset spread
        beta = float(np.linalg.norm(un - mean, axis=1).max())  # normal spread
        radius = float(np.sqrt(np.einsum("ij,ij->i", rel, rel).max()))
        # a member's vertices lie within 2 delta + 2 beta radius of another member's plane
        if 2 * delta + 2 * beta * radius <= 3 * eps / 8:
            out.append((members, (mean, centre, delta, beta, radius)))
    return out


def _clears(s: _Soup, members: np.ndarray, plane: tuple[np.ndarray, np.ndarray, float, float, float]) -> np.ndarray:
    """Per triangle: can it pair with no member of this plane group? True when its box is apart
    from the group's (then from every member's: :func:`_boxes_overlap` would drop the pair), or
    when it lies on one side of every member's plane within eps / 2 (then the SAT separates the
    two on that member's face axis). A member's plane departs from the group's by the offset
    spread plus the normal spread times the distance, hence the slack. Only triangles near the
    group are measured: a large mesh has up to ``MAX_GROUPS`` of these."""
    mean, centre, delta, beta, radius = plane
    eps = s.eps
    span = float((s.hi.max(axis=0) - s.lo.min(axis=0)).max())
    margin = eps + 4e-7 * span
    g_lo, g_hi = s.lo[members].min(axis=0) - margin, s.hi[members].max(axis=0) + margin
    near = np.flatnonzero(((s.lo <= g_hi) & (s.hi >= g_lo)).all(axis=1))
    rel = s.t[near] - centre
    h = rel @ mean  # (k, 3) signed heights of the corners over the group's plane
    rho = np.sqrt(np.einsum("ijk,ijk->ij", rel, rel).max(axis=1))
    # eps / 8 for the rounding of h (see _planes_decidable)
    slack = delta + beta * (rho + radius) + eps / 8 - eps / 2
    out = np.ones(len(s.t), dtype=bool)
    out[near] = (h.min(axis=1) >= slack) | (h.max(axis=1) <= -slack)
    return out


def _plane_separated(t: np.ndarray, pairs: np.ndarray, eps: float) -> np.ndarray:
    """Per pair: does one triangle lie on one side of the other's plane within eps / 2? The SAT's
    two face axes, decided with half its tolerance so that its rounding cannot disagree (see
    :func:`_planes_decidable`): those pairs never reach its nine edge axes. An eighth of the SAT's
    cost per pair (0.5 against 4.2 us, measured); it settles the pairs that only touch along a rim
    or a seam, which the boxes of slim triangles cannot tell apart (the 300-segment cone with its
    base: 0.33 -> 0.05 s)."""
    a, b = t[pairs[:, 0]], t[pairs[:, 1]]
    out = np.zeros(len(pairs), dtype=bool)
    for p, q in ((a, b), (b, a)):
        n, sure = _unit_normals(p)
        h = np.einsum("kj,kvj->kv", n, q - p[:, :1])
        out |= sure & ((h.min(axis=1) >= -eps / 2) | (h.max(axis=1) <= eps / 2))
    return out


def _broad_phase(lo: np.ndarray, hi: np.ndarray, eps: float) -> np.ndarray:
    """Pairs (i < j) whose boxes overlap, widened so float rounding only adds candidates."""
    return _boxes_overlap(lo, hi, eps, _candidates(lo, hi, eps))


def _candidates(
    lo: np.ndarray, hi: np.ndarray, eps: float, tri: np.ndarray | None = None, *, uniform: bool | None = None,
    budget: int | None = None,
) -> np.ndarray | None:
    """Candidate pairs (a superset of the intersecting pairs), from one of two generators.

    Chosen by the spread of triangle sizes (measured on the corpus and a 1.3 M-triangle sphere):
    similar sizes (95th/50th percentile of bounding radius <= 2: scans, subdivided and sculpted
    meshes) -> bounding spheres in a k-d tree; spread-out sizes (CAD slivers, mixed scales) -> a
    uniform grid. :func:`_boxes_overlap` then drops pairs whose boxes are apart.

    With ``tri`` the spheres are the triangles' own (centroid, farthest corner): on the 1.3 M
    sphere 7.9 M candidates instead of 10.0 M for the boxes' spheres, nearly all of them
    neighbours sharing a vertex, which no bounding volume can separate. ``uniform`` is
    :func:`uniform_sizes` of these boxes when the caller has it. With ``budget``, None instead of
    more pairs than that (estimated for the spheres, counted for the grid; nothing paired yet).
    """
    if not (uniform_sizes(lo, hi) if uniform is None else uniform):
        return _grid_pairs(lo, hi, eps, budget=budget)
    if tri is None:
        return _sphere_pairs(lo, hi, eps, budget=budget)
    centre = (tri[:, 0] + tri[:, 1] + tri[:, 2]) / 3.0
    radius = np.zeros(len(tri))
    for k in range(3):
        d = tri[:, k] - centre
        np.maximum(radius, np.einsum("ij,ij->i", d, d), out=radius)
    np.sqrt(radius, out=radius)
    return _sphere_pairs(lo, hi, eps, centre, radius, budget=budget)


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
    lo: np.ndarray, hi: np.ndarray, eps: float, centre: np.ndarray | None = None, radius: np.ndarray | None = None,
    *, budget: int | None = None,
) -> np.ndarray | None:
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

    With ``budget``: None when :func:`_sphere_estimate` expects more pairs than that.
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
    if budget is not None and _sphere_estimate(centre, top, cls, classes, trees) > budget:
        return None
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


def _sphere_estimate(
    centre: np.ndarray, top: float, cls: np.ndarray, classes: list[tuple[float, np.ndarray]], trees: list, sample: int = 1024
) -> float:
    """Pairs :func:`_sphere_pairs` would return, from a seeded sample of spheres: each one's
    neighbours by the same test (centres within the two class radii), counted in the trees
    without listing them. 11 ms on the 1.3 M sphere (7.86 M estimated, 7.86 M found), where an
    exact ``count_neighbors`` takes 1.6 s. A fan of ``k`` triangles among ``n`` is seen when
    ``k**2`` would pass the budget: it then holds ~8 of the 1,024 samples or more."""
    n = len(centre)
    ids = np.random.default_rng(0).choice(n, sample, replace=False) if n > sample else np.arange(n)
    radius = top / 2.0 ** cls[ids]  # the class radius of each sampled sphere
    degree = np.full(len(ids), -1.0)  # each sphere finds itself
    for (r, _), tree in zip(classes, trees, strict=True):
        degree += tree.query_ball_point(centre[ids], radius + r, return_length=True)
    return float(degree.mean()) * n / 2.0


def _grid_pairs(
    lo: np.ndarray, hi: np.ndarray, eps: float, max_entries: float = 16.0, *, budget: int | None = None
) -> np.ndarray | None:
    """Candidates from a uniform grid: triangles sharing a cell, each pair once (its owner cell).
    With ``budget``: None when the cells hold more pairs than that (counted before pairing)."""
    grid = _grid_layout(lo, hi, eps, max_entries)
    if budget is not None and grid.count > budget:
        return None
    chunk = max(grid.count, 1)  # within budget: one pass, as before the budget existed
    out = [_grid_chunk(grid, a, b) for a, b in _range_pairs(grid.ranges, chunk)]
    if not out:
        return np.zeros((0, 2), dtype=np.int64)
    return out[0] if len(out) == 1 else np.concatenate(out)


class _Grid(NamedTuple):
    key: np.ndarray  # (entries,) cell of each (cell, triangle) entry, sorted
    tri_of: np.ndarray  # (entries,) its triangle
    c0: tuple[np.ndarray, np.ndarray, np.ndarray]  # first cell of each triangle's box, per axis
    dims: np.ndarray
    bounds: tuple[tuple[np.ndarray, np.ndarray], ...]  # per axis: widened float32 box ends
    ranges: _Ranges  # entry p pairs with entries p+1 .. end of its cell
    count: int  # pairs of entries sharing a cell (before the owner and box tests)


def _grid_layout(lo: np.ndarray, hi: np.ndarray, eps: float, max_entries: float = 16.0) -> _Grid:
    """The cells of :func:`_grid_pairs` and how many pairs they hold (no pair listed yet)."""
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
    entries = np.arange(total)
    after = ends[np.cumsum(new) - 1] - entries - 1
    cx, cy, cz = (np.ascontiguousarray(c0[:, k]) for k in range(3))
    # contiguous float32 columns, widened so float32 rounding only adds candidates (the SAT decides)
    margin = eps + 4e-7 * span
    bounds = tuple(((lo[:, k] - origin[k] - margin).astype(np.float32), (hi[:, k] - origin[k] + margin).astype(np.float32))
                   for k in range(3))
    return _Grid(key, tri_of, (cx, cy, cz), dims, bounds, _Ranges(entries, entries, entries + 1, after), int(after.sum()))


def _grid_chunk(grid: _Grid, a_pos: np.ndarray, b_pos: np.ndarray) -> np.ndarray:
    """The pairs of entries (a_pos, b_pos) of one cell that the cell owns and whose boxes overlap."""
    small = len(grid.key) < 2**31 - 1  # int32 halves the traffic
    if small:
        a_pos, b_pos = a_pos.astype(np.int32), b_pos.astype(np.int32)
    a, b = grid.tri_of[a_pos], grid.tri_of[b_pos]
    # count each pair once: in the cell holding the lower corner of the two boxes' overlap, whose
    # integer coordinates are the per-axis max of the boxes' first cells (floor is monotonic)
    cx, cy, cz = grid.c0
    dims = grid.dims
    corner = (np.maximum(cx[a], cx[b]) * dims[1] + np.maximum(cy[a], cy[b])) * dims[2] + np.maximum(cz[a], cz[b])
    own = corner == grid.key[a_pos]
    del a_pos, b_pos, corner
    a, b = a[own], b[own]
    # boxes overlap? one axis at a time, compacting as we go
    for lk, hk in grid.bounds:
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
