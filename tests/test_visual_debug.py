"""Debug GLB: problem regions found on constructed meshes and corpus files, written as valid glTF."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh

from meshforge import testing
from meshforge.builtin.export import visual as visual_plugin
from meshforge.types import Finding, Severity, Units
from meshforge.visual.debug import CATEGORIES, debug_scene, find_problems

from referees import gltf_errors, gltf_validator


def _step():
    return next(s for s in visual_plugin.meshforge_export_steps() if s.name == "debug_glb")


def _write(tmp_path, mesh, *, units=Units("mm", "+Z"), findings=(), **params):
    spec = _step()
    p = testing.params_for(spec, params)
    view = testing.view(mesh, units=units, findings=findings, id="part")
    return spec.write(view, p, testing.step_context(spec, p, out_dir=tmp_path))


def test_open_box_borders_are_hole_faces():
    problems = find_problems(testing.open_box(20.0, holes=1))  # the +Z side removed
    assert problems.counts["hole_border_edges"] == 4
    assert problems.counts["non_manifold_edges"] == 0
    # The four side walls touch the hole with one triangle each... or two: never the bottom.
    mesh = testing.open_box(20.0, holes=1)
    hole = problems.faces["hole_border"]
    assert 4 <= hole.sum() <= 8
    assert not hole[mesh.face_normals[:, 2] < -0.9].any()


def test_a_triangle_soup_is_welded_before_edges_are_counted():
    problems = find_problems(testing.soup(testing.cube(20.0)))
    assert problems.counts["hole_border_edges"] == 0


def test_corpus_defects_match_the_manifest(corpus):
    shared = trimesh.load(corpus / "stl/trimesh/shared.STL")  # "1 non-manifold edges"
    assert find_problems(shared).counts["non_manifold_edges"] == 1
    teapot = trimesh.load(corpus / "stl/trimesh/teapot.stl")  # "open: 64 boundary edges"
    assert find_problems(teapot).counts["hole_border_edges"] == 64


def test_overhangs_are_downward_faces_off_the_bed():
    stem = testing.box((4.0, 4.0, 10.0))
    cap = testing.box((20.0, 20.0, 4.0))
    cap.apply_translation((0, 0, 7.0))
    mushroom = trimesh.util.concatenate([stem, cap])
    problems = find_problems(mushroom, overhang_deg=45.0)
    over = problems.faces["overhang"]
    normals = mushroom.face_normals
    centres_z = mushroom.triangles_center[:, 2]
    assert over.sum() == 2  # the cap's underside (two triangles)
    assert np.allclose(normals[over], (0, 0, -1)) and (centres_z[over] > 0).all()
    assert find_problems(testing.cube(20.0)).counts["overhang"] == 0  # its bottom rests on the bed


def test_thin_walls_by_inward_rays():
    plate = testing.box((20.0, 20.0, 0.5))
    problems = find_problems(plate, thin_units=0.8)
    thin = problems.faces["thin_wall"]
    assert np.abs(plate.face_normals[thin][:, 2]).min() > 0.99  # top and bottom only
    assert thin.sum() == 4
    assert find_problems(testing.cube(20.0), thin_units=0.8).counts["thin_wall"] == 0


def test_finding_samples_mark_faces():
    finding = Finding(code="geometry.degenerate_faces", severity=Severity.WARNING, message="m", samples=(0, 5, 999))
    problems = find_problems(testing.cube(20.0), findings=[finding])
    assert np.flatnonzero(problems.faces["flagged"]).tolist() == [0, 5]


def test_legend_counts_add_up_to_the_faces_drawn():
    """A face on a hole's border that a finding also flags is drawn red once: the legend counted it
    under both colours, so its rows added up to more faces than the model has."""
    from meshforge.visual.debug import legend

    box = testing.open_box(20.0, holes=1)
    border = np.flatnonzero(find_problems(box).faces["hole_border"])
    inside = next(i for i in range(len(box.faces)) if i not in set(border.tolist()))
    finding = Finding(code="geometry.degenerate_faces", severity=Severity.WARNING, message="m",
                      samples=(int(border[0]), int(border[1]), inside))
    problems = find_problems(box, findings=[finding])
    rows = {row["category"]: row for row in legend(problems)}
    shown = problems.category_of_faces()
    assert sum(row["faces"] for row in rows.values()) == int((shown != list(CATEGORIES).index("ok")).sum())
    assert rows["flagged"]["total"] == 3 and rows["flagged"]["faces"] == 1  # two of them are drawn red
    assert rows["hole_border"]["faces"] == rows["hole_border"]["total"] == len(border)


def test_debug_glb_colours_each_category(tmp_path):
    paths = _write(tmp_path, testing.open_box(20.0, holes=1))
    glb, summary = paths
    assert glb.name == "part.debug.glb" and summary.name == "part.debug.json"
    scene = trimesh.load_scene(glb)
    assert "hole_border" in scene.geometry and "ok" in scene.geometry and "hole_border_edges" in scene.geometry
    rgba = scene.geometry["hole_border"].visual.material.baseColorFactor
    assert tuple(int(c) for c in rgba) == CATEGORIES["hole_border"]
    info = json.loads(summary.read_text())
    assert info["counts"]["hole_border_edges"] == 4
    assert {row["category"] for row in info["legend"]} == set(CATEGORIES) - {"ok"}


def test_debug_glb_is_y_up_metres(tmp_path):
    glb, _ = _write(tmp_path, testing.box((10.0, 20.0, 40.0)), units=Units("mm", "+Z"))
    extents = trimesh.load_scene(glb).extents
    assert extents == pytest.approx((0.010, 0.040, 0.020), rel=1e-6)  # 40 mm tall becomes 0.04 m along +Y


@pytest.mark.referee
def test_debug_glb_passes_the_khronos_validator(tmp_path, corpus):
    mesh = trimesh.load(corpus / "stl/trimesh/teapot.stl")
    glb, _ = _write(tmp_path, mesh)
    assert gltf_errors(gltf_validator(glb)) == []


def test_debug_scene_of_an_empty_mesh_is_empty():
    empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=int))
    assert len(debug_scene(empty, find_problems(empty)).geometry) == 0
