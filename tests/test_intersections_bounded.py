"""The self-intersection broad phase stays bounded on hostile but valid geometry (fans of slim
triangles: a closed cone, a polygon triangulated around one corner), and every route it can take
finds exactly the pairs an exhaustive all-pairs test finds.

No timing is asserted: the bounds are on the candidate pairs the broad phase generates.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import trimesh

from meshforge.ops import intersections
from meshforge.ops.intersections import broad_phase, intersecting_pairs


def cone(n: int, radius: float = 20.0, height: float = 20.0) -> np.ndarray:
    """A closed cone as an STL holds it (float32 corners): n slim triangles round the apex and a
    base disk of n triangles round its centre."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    b = np.roll(a, -1)
    p0 = np.stack([radius * np.cos(a), radius * np.sin(a), 0 * a], 1)
    p1 = np.stack([radius * np.cos(b), radius * np.sin(b), 0 * a], 1)
    side = np.stack([p0, p1, np.tile([0, 0, height], (n, 1))], 1)
    base = np.stack([p1, p0, np.zeros((n, 3))], 1)
    return np.concatenate([side, base]).astype(np.float32).astype(np.float64)


# one triangle through the base disk, one through the side, one crossing both and one that only
# touches the base from above (not an intersection)
POKES = np.array([
    [[5.0, 0.0, -3.0], [6.0, 1.0, 8.0], [7.0, -1.0, 8.0]],
    [[5.0, 0.0, 5.0], [25.0, -1.0, 5.0], [25.0, 1.0, 6.0]],
    [[-15.0, -2.0, -1.0], [-2.0, -1.0, 18.0], [-3.0, 1.0, 18.0]],
    [[0.0, 5.0, 0.0], [1.0, 6.0, 3.0], [-1.0, 6.0, 3.0]],
])


def brute_force(tri: np.ndarray) -> np.ndarray:
    """Every pair, through the same neighbour, box and SAT tests, no broad phase."""
    from meshforge.ops.topology import weld

    ids, _ = weld(tri.reshape(-1, 3))
    vid = ids.reshape(-1, 3)
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    eps = 1e-7 * float(np.linalg.norm(hi.max(axis=0) - lo.min(axis=0)))
    pairs = np.array(list(itertools.combinations(range(len(tri)), 2)), dtype=np.int64)
    pairs = intersections._boxes_overlap(lo, hi, eps, intersections._not_neighbours(vid, pairs))
    found = pairs[intersections._sat(tri, pairs, eps)]
    return found[np.lexsort((found[:, 1], found[:, 0]))]


def poked_cone(rotated: bool) -> np.ndarray:
    tri = np.concatenate([cone(120), POKES])
    if rotated:  # tilted planes: float32 corners are no longer exactly coplanar
        rot = trimesh.transformations.random_rotation_matrix(np.random.default_rng(3).random(3))[:3, :3]
        tri = (tri @ rot.T).astype(np.float32).astype(np.float64)
    return tri


@pytest.fixture
def no_budget(monkeypatch):
    """Every mesh over budget: the streamed broad phases run even on small test meshes."""
    monkeypatch.setattr(intersections, "BUDGET_FLOOR", 0)
    monkeypatch.setattr(intersections, "BUDGET_PER_FACE", 0)


@pytest.mark.parametrize("rotated", [False, True])
def test_poked_cone_pairs_match_brute_force_on_the_usual_route(rotated):
    tri = poked_cone(rotated)
    expected = brute_force(tri)
    n = len(tri) - len(POKES)
    pokes = set(range(n, len(tri)))
    assert len(expected) > 0
    assert all(a in pokes or b in pokes for a, b in expected.tolist())  # the cone itself is valid
    assert {a for a, b in expected.tolist()} | {b for a, b in expected.tolist()} >= {n, n + 1, n + 2}
    assert n + 3 not in expected  # touching the base from above is no intersection
    assert broad_phase(tri)[0] == "spheres"
    assert intersecting_pairs(tri).tolist() == expected.tolist()


@pytest.mark.parametrize("rotated", [False, True])
def test_poked_cone_pairs_match_brute_force_on_the_grouped_sweep(rotated, no_budget, monkeypatch):
    tri = poked_cone(rotated)
    monkeypatch.setattr(intersections, "PAIR_CHUNK", 97)  # many chunks, rows split across them
    method, count = broad_phase(tri)
    assert method == "sweep"
    if not rotated:  # the base is one exact plane: only the pokes meet anything (all pairs: 29,890)
        assert count <= len(POKES) * len(tri)
    assert intersecting_pairs(tri).tolist() == brute_force(tri).tolist()


def test_streamed_grid_matches_brute_force(no_budget, monkeypatch):
    """A soup of small crossing triangles: the grid beats a one-axis sweep and is streamed."""
    rng = np.random.default_rng(7)
    tri = rng.uniform(0, 10, (600, 1, 3)) + rng.normal(0, 0.4, (600, 3, 3))
    monkeypatch.setattr(intersections, "PAIR_CHUNK", 101)
    assert broad_phase(tri)[0] == "grid"
    expected = brute_force(tri)
    assert len(expected) > 50
    assert intersecting_pairs(tri).tolist() == expected.tolist()


@pytest.mark.parametrize("n", [5_000, 20_000])
def test_cone_broad_phase_stays_bounded(n):
    """The valid cone: every bounding sphere and box holds the axis, so the k-d tree would pair all
    n * (2n - 1) triangles; the grouped sweep (a hub round the apex, an exact plane for the base)
    is left none, and no pair intersects."""
    tri = cone(n)
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    eps = 1e-7 * float(np.linalg.norm(hi.max(axis=0) - lo.min(axis=0)))
    assert intersections._candidates(lo, hi, eps, tri, budget=intersections._budget(len(tri))) is None
    method, count = broad_phase(tri)
    assert method == "sweep"
    assert count <= 4 * len(tri)
    assert len(intersecting_pairs(tri)) == 0


def test_large_cone_skips_the_rays_that_drown_in_fans():
    """At RAYS_MIN_FACES and over, a crowded mesh goes by edge rays, unless the grouped sweep fits
    the budget: Embree lists every face of a fan a float32 hair away from a ray leaving its hub."""
    tri = cone(intersections.RAYS_MIN_FACES // 2 + 1)

    def rays():
        raise AssertionError("the edge rays were cast")

    assert len(intersecting_pairs(tri, rays=rays)) == 0


def test_polygon_fan_needs_no_candidates():
    """A 20,000-corner polygon triangulated round one corner (as an OBJ reader does), closed by a
    copy of opposite winding 1 mm above and the side walls."""
    n = 20_000
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    ring = np.stack([30 * np.cos(a), 30 * np.sin(a), 0 * a], 1)
    bottom = np.stack([np.repeat(ring[:1], n - 2, 0), ring[2:], ring[1:-1]], 1)
    top = bottom[:, ::-1] + [0.0, 0.0, 1.0]
    nxt = np.roll(ring, -1, 0)
    up = [0.0, 0.0, 1.0]
    walls = np.concatenate([np.stack([ring, nxt, nxt + up], 1), np.stack([ring, nxt + up, ring + up], 1)])
    tri = np.concatenate([bottom, top, walls]).astype(np.float32).astype(np.float64)
    method, count = broad_phase(tri)
    assert method == "sweep"
    assert count <= 4 * len(tri)
    assert len(intersecting_pairs(tri)) == 0


def test_sphere_estimate_is_close_to_the_pairs_found():
    ball = trimesh.creation.icosphere(subdivisions=5, radius=10.0)
    tri = np.asarray(ball.triangles, dtype=np.float64)
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    found = len(intersections._sphere_pairs(lo, hi, 1e-6))
    assert intersections._sphere_pairs(lo, hi, 1e-6, budget=int(0.9 * found)) is None
    assert len(intersections._sphere_pairs(lo, hi, 1e-6, budget=int(1.1 * found))) == found


def test_range_pairs_list_every_pair_once_in_order():
    rows = intersections._Ranges(
        first=np.array([10, 11, 12, 13, 14]), targets=np.arange(100, 120), start=np.array([0, 3, 3, 9, 5]),
        count=np.array([2, 0, 5, 11, 1]),
    )
    expected = [(f, 100 + s + o) for f, s, c in zip(rows.first, rows.start, rows.count, strict=True) for o in range(c)]
    for chunk in (1, 3, 4, 19, 100):
        listed = [p for a, b in intersections._range_pairs(rows, chunk) for p in zip(a.tolist(), b.tolist(), strict=True)]
        assert listed == expected, chunk


def test_grid_in_chunks_lists_what_one_pass_lists():
    rng = np.random.default_rng(1)
    tri = rng.uniform(0, 10, (400, 1, 3)) + rng.normal(0, 0.5, (400, 3, 3))
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    grid = intersections._grid_layout(lo, hi, 1e-6)
    whole = intersections._grid_pairs(lo, hi, 1e-6)
    chunked = np.concatenate([intersections._grid_chunk(grid, a, b) for a, b in intersections._range_pairs(grid.ranges, 37)])
    assert len(whole) > 100
    assert chunked.tolist() == whole.tolist()


def test_plane_test_never_drops_a_pair_the_sat_keeps():
    """Vertical triangles dipping through a tilted triangle's plane by 0.1 to 3 eps: the plane test
    drops only what the SAT's face axis rejects too (it decides with half the SAT's tolerance)."""
    rng = np.random.default_rng(5)
    rot = trimesh.transformations.random_rotation_matrix(rng.random(3))[:3, :3]
    base = np.array([[-10.0, -10.0, 0.0], [10.0, -10.0, 0.0], [0.0, 10.0, 0.0]])
    eps = 1e-7 * 40.0
    tris, dips = [base], rng.uniform(-3, 3, 400)
    for d in dips:
        x, y = rng.uniform(-3, 3, 2)
        tris.append(np.array([[x, y, -d * eps], [x + 0.3, y + 0.1, 2.0], [x - 0.2, y + 0.3, 2.0]]))
    tri = np.stack(tris) @ rot.T
    pairs = np.stack([np.zeros(len(dips), dtype=np.int64), np.arange(1, len(dips) + 1)], axis=1)
    dropped = intersections._plane_separated(tri, pairs, eps)
    crossing = intersections._sat(tri, pairs, eps)
    assert not (dropped & crossing).any()
    assert dropped[dips < 0.4].all()  # within eps / 2 above: decided without the SAT
    assert crossing[dips > 1.1].all()  # through by more than eps: an intersection


def test_sweeps_list_every_overlapping_pair_once():
    """Boxes on an integer lattice (many tied starts and ends): within a set and between two sets,
    each pair whose boxes overlap is listed, and exactly once."""
    rng = np.random.default_rng(11)
    lo = rng.integers(0, 12, (300, 3)).astype(np.float64)
    hi = lo + rng.integers(0, 4, (300, 3))
    ends = hi + 0.0
    overlap = ((lo[:, None] <= ends[None]) & (lo[None] <= ends[:, None])).all(axis=2)

    def listed(found):
        return [tuple(sorted(p)) for r in found for a, b in intersections._range_pairs(r, 1000)
                for p in zip(a.tolist(), b.tolist(), strict=True)]

    x, y = np.arange(0, 300, 2), np.arange(1, 300, 2)
    within = listed(intersections._sweep(lo, ends, x))
    assert len(within) == len(set(within))
    assert {(i, j) for i, j in itertools.combinations(x.tolist(), 2) if overlap[i, j]} <= set(within)
    between = listed(intersections._sweep(lo, ends, x, y))
    assert len(between) == len(set(between))
    assert {tuple(sorted((i, j))) for i in x.tolist() for j in y.tolist() if overlap[i, j]} <= set(between)
