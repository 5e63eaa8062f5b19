"""The fast paths of the exact welds give the answer of the plain lexsort, hash collisions included."""

from __future__ import annotations

import numpy as np
import pytest

from meshforge.io import stl


def lexsort_weld(vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference: one lexsort of every corner's bit pattern (the reader's weld before hashing)."""
    v = np.ascontiguousarray(vertices) + vertices.dtype.type(0)
    if len(v) == 0:
        return v, np.zeros(0, dtype=np.int64)
    bits = v.view(np.uint32 if v.dtype.itemsize == 4 else np.uint64)
    order = np.lexsort(bits.T[::-1])
    ordered = bits[order]
    start = np.ones(len(order), dtype=bool)
    start[1:] = (ordered[1:] != ordered[:-1]).any(axis=1)
    index = np.empty(len(order), dtype=np.int64)
    index[order] = np.cumsum(start) - 1
    return v[order[start]], index


def _corners() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    grid = rng.integers(-2, 3, size=(3000, 3)).astype(np.float64) * 0.5  # few distinct rows, many repeats
    odd = grid[:40].copy()
    odd[0] = [0.0, -0.0, 0.0]
    odd[1] = [-0.0, 0.0, -0.0]
    odd[2] = np.nan
    odd[3] = [np.inf, -np.inf, 1.0]
    odd[4] = np.frombuffer(np.uint64(0x7FF8000000000001).tobytes(), np.float64)[0]  # a NaN with another payload
    odd[5] = np.frombuffer(np.uint64(0x7FF8000000000001).tobytes(), np.float64)[0]
    odd[6] = [5e-324, -5e-324, 1e308]
    return {
        "grid": grid,
        "odd": odd,
        "soup": rng.normal(size=(5000, 3)),  # every row distinct
        "float32": grid.astype(np.float32),
        "one": np.array([[1.0, 2.0, 3.0]]),
        "empty": np.zeros((0, 3)),
    }


CORNERS = _corners()


def _same(got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray]) -> None:
    assert got[0].dtype == want[0].dtype and got[0].shape == want[0].shape
    assert got[0].tobytes() == want[0].tobytes()  # bit for bit: NaN payloads and signs of zero too
    assert got[1].dtype == np.int64
    np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("name", sorted(CORNERS))
def test_weld_exact_equals_the_lexsort(name: str) -> None:
    with np.errstate(all="ignore"):
        _same(stl.weld_exact(CORNERS[name]), lexsort_weld(CORNERS[name]))


@pytest.mark.parametrize(
    "fake_hash",
    [
        pytest.param(lambda bits: np.zeros(len(bits), dtype=np.uint64), id="every-row-collides"),
        pytest.param(lambda bits: (bits[:, 0].astype(np.uint64) & np.uint64(3)) << np.uint64(62), id="four-hashes"),
        pytest.param(lambda bits: np.full(len(bits), 2**64 - 1, dtype=np.uint64), id="all-ones"),
    ],
)
@pytest.mark.parametrize("name", sorted(CORNERS))
def test_weld_exact_is_exact_when_hashes_collide(monkeypatch: pytest.MonkeyPatch, fake_hash, name: str) -> None:
    monkeypatch.setattr(stl, "_hash_rows", fake_hash)
    with np.errstate(all="ignore"):
        _same(stl.weld_exact(CORNERS[name]), lexsort_weld(CORNERS[name]))


def test_weld_exact_of_a_real_soup_gives_a_closed_mesh_index() -> None:
    trimesh = pytest.importorskip("trimesh")
    ico = trimesh.creation.icosphere(subdivisions=2)
    corners = ico.vertices[ico.faces].reshape(-1, 3)
    vertices, index = stl.weld_exact(corners)
    assert len(vertices) == len(ico.vertices)
    np.testing.assert_array_equal(vertices[index], corners)


# --- topology: fans walked or doubled, shells from sorted edges --------------------------------


def _weld_concat(*meshes):
    trimesh = pytest.importorskip("trimesh")
    merged = trimesh.util.concatenate(list(meshes))
    vertices, index = stl.weld_exact(np.asarray(merged.vertices))
    return trimesh.Trimesh(vertices, index[merged.faces], process=False)


def _bowties_by_graph(mesh) -> list[int]:
    """Bow-ties of a closed consistently wound mesh from scipy's components of the corner graph."""
    from meshforge.ops import topology as topo

    faces = np.asarray(mesh.faces)
    start, end = faces.reshape(-1), faces[:, [1, 2, 0]].reshape(-1)
    order = np.argsort(np.minimum(start, end) * len(mesh.vertices) + np.maximum(start, end), kind="stable")
    h1, h2 = order[0::2], order[1::2]
    e1, e2 = 3 * (h1 // 3) + (h1 % 3 + 1) % 3, 3 * (h2 // 3) + (h2 % 3 + 1) % 3
    n, comp = topo._components(len(start), np.concatenate([h1, e1]), np.concatenate([e2, h2]))
    fan_vertex = np.zeros(n, dtype=np.int64)
    fan_vertex[comp] = start
    return np.flatnonzero(np.bincount(fan_vertex, minlength=len(mesh.vertices)) > 1).tolist()


def _closed_meshes() -> dict[str, object]:
    trimesh = pytest.importorskip("trimesh")
    cone = trimesh.creation.cone(radius=5.0, height=10.0, sections=300)  # apex valence 300
    mirrored = cone.vertices * [1.0, 1.0, -1.0] + [0.0, 0.0, 20.0]  # apex (0, 0, 10) maps onto itself exactly
    flipped = trimesh.Trimesh(mirrored, cone.faces[:, ::-1], process=False)  # a mirror turns the winding: undo it
    cubes = [trimesh.creation.box((10, 10, 10)).apply_translation((10 * k, 10 * k, 10 * k)) for k in range(3)]
    return {
        "cones-apex-to-apex": _weld_concat(cone, flipped),
        "three-cubes-corner-to-corner": _weld_concat(*cubes),
        "cylinder-300": trimesh.creation.cylinder(radius=5.0, height=3.0, sections=300),
        "sphere": trimesh.creation.icosphere(subdivisions=3),
    }


@pytest.mark.parametrize("steps", [None, 0, 1, 4])
def test_closed_mesh_bowties_walked_or_doubled_match_the_graph(monkeypatch: pytest.MonkeyPatch, steps) -> None:
    from meshforge.ops import topology as topo

    if steps is not None:  # 0/1: every vertex by doubling; 4: the cones' apex and caps by doubling
        monkeypatch.setattr(topo, "FAN_WALK_STEPS", steps)
    for name, mesh in _closed_meshes().items():
        t = topo.topology(mesh.vertices, mesh.faces)
        assert t.closed and t.edge_manifold and t.winding_conflicts == 0, name
        assert t.nonmanifold_vertices.tolist() == _bowties_by_graph(mesh), name
    cones = _closed_meshes()["cones-apex-to-apex"]
    assert len(topo.topology(cones.vertices, cones.faces).nonmanifold_vertices) == 1


def test_sorted_edge_components_label_like_scipy_over_any_edge_list() -> None:
    from meshforge.ops import topology as topo

    rng = np.random.default_rng(5)
    n = 400
    a, b = rng.integers(0, n, 300), rng.integers(0, n, 300)  # many components, isolated nodes too
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    key = np.unique(lo * n + hi)
    got = topo._sorted_components(n, key // n, key % n)
    want = topo._components(n, a, b)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])


# --- hygiene --------------------------------------------------------------------------------------


def test_hygiene_huge_finite_coordinates_are_not_non_finite() -> None:
    trimesh = pytest.importorskip("trimesh")
    from meshforge import testing
    from meshforge.builtin.validate.core import meshforge_validate_steps

    (step,) = meshforge_validate_steps()
    big = np.array([[1e308, 1e308, 0.0], [1e308, 0.0, 1e308], [0.0, 1e308, 1e308], [0.0, 0.0, 0.0]])
    mesh = trimesh.Trimesh(big, np.array([[0, 1, 2], [0, 1, 3]]), process=False)  # the coordinates' sum overflows
    with np.errstate(all="raise"):
        assert "geometry.non_finite" not in testing.codes(testing.run_check(step, mesh))


def test_hygiene_counts_with_a_non_finite_vertex() -> None:
    trimesh = pytest.importorskip("trimesh")
    from meshforge import testing
    from meshforge.builtin.validate.core import meshforge_validate_steps

    (step,) = meshforge_validate_steps()
    cube = trimesh.creation.box((10, 10, 10))
    v = np.vstack([cube.vertices, [[np.nan, 0.0, 0.0], [1.0, 2.0, 3.0]]])
    f = np.vstack([cube.faces, [[8, 0, 1]], cube.faces[:2, ::-1], [[1, 1, 2]]])  # NaN face, 2 reversed copies, repeat
    found = {x.code: x for x in testing.run_check(step, trimesh.Trimesh(v, f, process=False))}
    assert found["geometry.non_finite"].samples == (8,)
    assert (found["geometry.duplicate_faces"].count, found["geometry.duplicate_faces"].samples) == (2, (13, 14))  # the later copies
    assert (found["geometry.degenerate_faces"].count, found["geometry.degenerate_faces"].samples) == (1, (15,))
    assert found["geometry.unreferenced_vertices"].samples == (9,)
