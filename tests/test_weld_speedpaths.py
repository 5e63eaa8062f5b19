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
