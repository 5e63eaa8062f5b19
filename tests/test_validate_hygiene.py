"""geometry.hygiene: empty, non-finite, degenerate, duplicate triangles, unreferenced vertices."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from meshforge import testing
from meshforge.builtin.validate import core
from meshforge.types import Units

STEP = core.meshforge_validate_steps()[0]


def run(mesh, units=testing.MM_Z_UP, **params):
    return testing.run_check(STEP, mesh, units=units, **params)


def by_code(findings):
    return {f.code: f for f in findings}


def test_clean_cube_and_soup_are_clean():
    assert run(testing.cube()) == []
    assert run(testing.soup(testing.cube())) == []  # a soup repeats positions, not faces


def test_degenerate_faces_are_counted():
    c = testing.cube()
    v = np.vstack([c.vertices, [[0, 0, 0], [1, 0, 0], [2, 0, 0]]])  # three collinear points
    n = len(c.vertices)
    faces = np.vstack([c.faces, [[0, 0, 1], [n, n + 1, n + 2]]])  # a repeated index, a zero-area sliver
    f = by_code(run(trimesh.Trimesh(v, faces, process=False)))["geometry.degenerate_faces"]
    assert (f.severity, f.count, f.samples) == ("warning", 2, (12, 13))


def test_area_threshold_is_in_square_millimetres():
    tiny = testing.cube(0.005)  # faces of 2.5e-5 mm^2
    assert by_code(run(tiny))["geometry.degenerate_faces"].count == 12
    assert "geometry.degenerate_faces" not in by_code(run(tiny, units=Units("m", "+Z")))  # 5 mm cube


def test_duplicate_faces_in_either_winding():
    c = testing.cube()
    faces = np.vstack([c.faces, c.faces[:1], c.faces[1:2, ::-1]])
    f = by_code(run(trimesh.Trimesh(c.vertices, faces, process=False)))["geometry.duplicate_faces"]
    assert (f.severity, f.count) == ("warning", 2)
    assert set(f.samples) <= {0, 1, 12, 13} and len(f.samples) == 2


def test_duplicates_found_across_a_soup():
    s = testing.soup(testing.cube())
    tri = s.vertices[s.faces]
    tri = np.vstack([tri, tri[:3]])
    soup = trimesh.Trimesh(tri.reshape(-1, 3), np.arange(len(tri) * 3).reshape(-1, 3), process=False)
    assert by_code(run(soup))["geometry.duplicate_faces"].count == 3


def test_unreferenced_vertices_are_info():
    c = testing.cube()
    v = np.vstack([c.vertices, [[50, 50, 50], [60, 60, 60]]])
    f = by_code(run(trimesh.Trimesh(v, c.faces, process=False)))["geometry.unreferenced_vertices"]
    assert (f.severity, f.count, f.samples) == ("info", 2, (8, 9))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_vertices_are_an_error(bad):
    c = testing.cube()
    v = c.vertices.copy()
    v[[2, 5], 1] = bad
    findings = by_code(run(trimesh.Trimesh(v, c.faces, process=False)))
    f = findings["geometry.non_finite"]
    assert (f.severity, f.count, f.samples) == ("error", 2, (2, 5))
    assert "geometry.degenerate_faces" not in findings  # faces touching bad vertices are not also "degenerate"


def test_empty_model():
    empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), process=False)
    f = by_code(run(empty))["geometry.empty"]
    assert f.severity == "error"


def test_corpus_files_with_known_hygiene_defects(corpus):
    capsule = trimesh.load(corpus / "obj/trimesh/capsule.obj", process=False, force="mesh")
    assert by_code(run(capsule))["geometry.degenerate_faces"].count == 200
    wall = trimesh.load(corpus / "obj/trimesh/wallhole.obj", process=False, force="mesh")
    found = by_code(run(wall))
    assert found["geometry.degenerate_faces"].count == 11
    assert found["geometry.duplicate_faces"].count == 1


@pytest.mark.parametrize(
    ("rel", "degenerate", "duplicate"),
    [("glb/o3dv/car.glb", 12, 23), ("stl/assimp/Spider_binary.stl", 56, 36), ("obj/trimesh/chair_model.obj", None, 6382),
     ("glb/trimesh/no_indices_3storybuilding.glb", None, 8)],
)
def test_counts_match_the_corpus_manifest(corpus, rel, degenerate, duplicate):
    from conftest import manifest

    [row] = [r for r in manifest() if r["path"] == rel]
    if degenerate:
        assert f"{degenerate} degenerate tris" in row["known_defects"]
    assert f"{duplicate} duplicate faces" in row["known_defects"]
    mesh = trimesh.load(corpus / rel, process=False, force="mesh")
    units = Units("m", "+Y") if rel.endswith(".glb") else Units("mm", "+Z")  # glTF is metres
    found = by_code(run(mesh, units=units))
    if degenerate:
        assert found["geometry.degenerate_faces"].count == degenerate
    assert found["geometry.duplicate_faces"].count == duplicate


def test_a_unit_less_file_s_areas_are_judged_in_the_unit_the_storefront_decided(corpus):
    """fuze.obj is 0.2 units across: metres for the storefront (commerce.unit_assumed says so), where
    its triangles are millimetres wide; read as mm, 973 of 1000 looked degenerate."""
    from meshforge import Engine

    store = Engine("ecommerce-glb", entry_points=False).validate(corpus / "obj/trimesh/fuze.obj")
    codes = {f.code: f for f in store.findings}
    assert codes["commerce.unit_assumed"].measured == "m"
    assert "geometry.degenerate_faces" not in codes
    printed = Engine("fdm-print-stl", entry_points=False).validate(corpus / "obj/trimesh/fuze.obj")  # stamped mm: 0.2 mm
    assert {f.code: f.count for f in printed.findings}.get("geometry.degenerate_faces", 0) > 900
