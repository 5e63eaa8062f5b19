"""Print repairs on small known-defect meshes and real corpus files (issue 4, print part)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from meshforge import Status

from meshforge import testing as t
from meshforge.asset import Inputs
from meshforge.builtin.repair import cleanup, placement, solid
from meshforge.ops import holes, orient, repair
from meshforge.types import Units

STEPS = {s.name: s for m in (cleanup, solid, placement) for s in m.meshforge_repair_steps()}
REPAIR_CHAIN = ["clean", "weld", "fix_winding", "fill_holes", "solidify", "remove_debris", "to_mm", "orient", "place_on_bed"]
USES = {"clean": "mesh.clean", "weld": "mesh.weld", "fix_winding": "mesh.fix_winding", "fill_holes": "mesh.fill_holes",
        "solidify": "mesh.solidify", "remove_debris": "mesh.remove_debris", "to_mm": "print.to_millimetres",
        "orient": "print.orient", "place_on_bed": "print.place_on_bed"}


def load(corpus, rel):
    return trimesh.load(corpus / rel, process=False, force="mesh")


def open_edges(mesh) -> int:
    return repair.edge_counts(np.asarray(mesh.faces))[0]


def test_clean_drops_non_finite_degenerate_duplicate_faces_and_unreferenced_vertices():
    cube = t.cube()
    vertices = np.vstack([cube.vertices, [[np.nan, 0, 0], [1, 2, 3], [50, 50, 50]]])
    faces = np.vstack([cube.faces, cube.faces[:2], [[0, 0, 1]], [[8, 0, 1]]])  # 2 duplicates, 1 degenerate, 1 NaN
    result = t.run_repair(STEPS["mesh.clean"], trimesh.Trimesh(vertices, faces, process=False))
    assert result.details["duplicate_faces"] == 2
    assert result.details["degenerate_faces"] == 1
    assert result.details["non_finite_faces"] == 1
    assert len(result.scene.faces) == 12 and len(result.scene.vertices) == 8
    assert result.scene.is_watertight and np.isfinite(result.scene.vertices).all()


def test_clean_keeps_zero_area_faces_whose_removal_would_open_the_mesh():
    mesh, stats = repair.clean(t.cube())
    assert stats["faces_removed"] == 0 and mesh.is_watertight


def test_weld_closes_a_triangle_soup():
    result = t.run_repair(STEPS["mesh.weld"], t.soup(t.cube()))
    assert result.details["open_edges_before"] == 36 and result.details["open_edges_after"] == 0
    assert result.scene.is_watertight


def test_weld_zips_near_coincident_cracks(corpus):
    mesh = load(corpus, "stl/trimesh/featuretype.STL")
    welded, stats = repair.weld(mesh)
    assert stats["open_edges_before"] > 500  # bit-identical weld alone leaves the cracks
    assert stats["nearby_merged"] > 0 and stats["open_edges_after"] == 0


def test_weld_never_snaps_a_real_small_hole_shut(corpus):
    welded, stats = repair.weld(load(corpus, "stl/assimp/sphereWithHole.stl"))
    assert stats["open_edges_after"] == 9


def test_fix_winding_flips_an_inverted_mesh():
    result = t.run_repair(STEPS["mesh.fix_winding"], t.inverted(t.cube()))
    assert result.details["shells_inverted"] == 1
    assert result.scene.volume == pytest.approx(8000.0)


def test_fix_winding_makes_flipped_faces_consistent(corpus):
    mesh, _ = repair.weld(load(corpus, "stl/numpy-stl/triamid.stl"))
    assert not mesh.is_winding_consistent
    fixed, stats = repair.fix_winding(mesh)
    assert stats["faces_reversed"] > 0
    assert fixed.is_winding_consistent and fixed.volume > 0


@pytest.mark.parametrize("rel", ["ply/vtk-data/shark.ply", "stl/vtk-data/gebco7510_49cl.stl"])
def test_fix_winding_turns_inside_out_corpus_files_outward(corpus, rel):
    mesh, _ = repair.clean(load(corpus, rel))
    mesh, _ = repair.weld(mesh)
    assert mesh.volume < 0
    fixed, stats = repair.fix_winding(mesh)
    assert stats["shells_inverted"] >= 1 and fixed.volume > 0


def test_fill_holes_closes_a_missing_side():
    result = t.run_repair(STEPS["mesh.fill_holes"], t.open_box())
    assert result.details["holes_filled"] == 1
    assert result.scene.is_watertight and result.scene.volume == pytest.approx(8000.0)


def test_fill_holes_closes_touching_holes(corpus):
    mesh, _ = repair.weld(load(corpus, "stl/assimp/sphereWithHole.stl"))
    result = t.run_repair(STEPS["mesh.fill_holes"], mesh)
    assert result.details["holes_filled"] == 3
    assert result.scene.is_watertight and result.scene.is_winding_consistent and result.scene.volume > 0


def test_fill_holes_leaves_large_non_planar_holes_open():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    centre = sphere.vertices[sphere.faces].mean(axis=1)
    keep = (centre[:, 2] < 5.0) | (centre[:, 0] < 0.0)  # cut half a cap: a wide hole bent across two planes
    cut = trimesh.Trimesh(sphere.vertices, sphere.faces[keep], process=False)
    filled, stats = holes.fill_holes(cut, max_hole_edges=10)
    assert stats["holes_left"] == 1 and stats["holes_filled"] == 0 and filled is cut


def test_solidify_unions_overlapping_shells_into_one_solid():
    a, b = t.cube(), t.cube()
    b.apply_translation((10.0, 5.0, 0.0))
    result = t.run_repair(STEPS["mesh.solidify"], trimesh.util.concatenate([a, b]))
    assert result.scene is not None, result.note
    assert result.scene.is_watertight and len(result.scene.split(only_watertight=False)) == 1
    assert result.scene.volume == pytest.approx(8000 + 8000 - 10 * 15 * 20)
    assert result.details["drift_fraction"] < 0.01


def test_solidify_refuses_what_manifold3d_cannot_make_solid():
    result = t.run_repair(STEPS["mesh.solidify"], t.open_box(holes=2))
    assert result.scene is None and "refused" in result.note


def test_solidify_resolves_a_non_manifold_edge(corpus):
    mesh, _ = repair.weld(load(corpus, "stl/trimesh/shared.STL"))
    assert repair.edge_counts(mesh.faces)[1] == 1
    result = t.run_repair(STEPS["mesh.solidify"], mesh)
    assert result.scene is not None and result.scene.volume == pytest.approx(abs(mesh.volume), rel=1e-6)


@pytest.mark.parametrize("rel", ["obj/trimesh/joined_tetrahedra.obj", "stl/assimp/3DSMaxExport.STL"])
def test_solidify_caps_pieces_cut_apart_at_non_manifold_edges(corpus, rel):
    mesh, _ = repair.weld(repair.clean(load(corpus, rel))[0])
    assert repair.edge_counts(mesh.faces)[1] > 0
    result = t.run_repair(STEPS["mesh.solidify"], mesh)
    assert result.scene is not None, result.note
    assert result.details["patches_capped"] > 0
    assert repair.edge_counts(result.scene.faces) == (0, 0) and result.scene.volume > 0
    assert result.details["drift_fraction"] < 0.01


def test_solidify_drops_an_inner_wall_but_not_an_outside_sheet():
    a, b = t.cube(), t.cube()
    b.apply_translation((20.0, 0.0, 0.0))  # two cubes sharing a face: the shared face becomes an inner wall
    glued, _ = repair.weld(repair.clean(trimesh.util.concatenate([a, b]))[0])
    result = t.run_repair(STEPS["mesh.solidify"], glued)
    assert result.scene is not None and result.scene.volume == pytest.approx(16000.0)
    fin = trimesh.Trimesh([[10, 10, 10], [10, 10, 40], [10, -10, 40]], [[0, 1, 2]], process=False)  # sheet outside
    result = t.run_repair(STEPS["mesh.solidify"], trimesh.util.concatenate([t.cube(), fin]))
    assert result.scene is None and "outside" in result.note


def test_remove_debris_drops_tiny_shells_only():
    speck = t.cube(0.1)
    speck.apply_translation((50, 0, 0))
    part = t.cube(5.0)
    part.apply_translation((-50, 0, 0))  # small but not debris (1.6 % of the largest)
    result = t.run_repair(STEPS["mesh.remove_debris"], trimesh.util.concatenate([t.cube(), speck, part]),
                          max_fraction=0.001)
    assert result.details["shells_removed"] == 1
    assert len(result.scene.faces) == 24


def test_to_millimetres_converts_a_part_modelled_in_metres(corpus):
    mesh = load(corpus, "stl/trimesh/ADIS16480.STL")
    result = t.run_repair(STEPS["print.to_millimetres"], mesh, units=Units("mm", "+Z"))
    assert result.details["factor"] == 1000.0 and result.units == Units("mm", "+Z")
    assert np.max(result.scene.extents) == pytest.approx(np.max(mesh.extents) * 1000)


def test_to_millimetres_turns_gltf_metres_y_up_into_mm_z_up():
    result = t.run_repair(STEPS["print.to_millimetres"], t.box((0.1, 0.3, 0.2)), units=Units("m", "+Y"))
    assert result.units == Units("mm", "+Z")
    assert result.scene.extents == pytest.approx([100.0, 200.0, 300.0])  # the +Y height is now Z


def test_to_millimetres_leaves_plausible_millimetres_and_never_guesses_micrometres():
    assert t.run_repair(STEPS["print.to_millimetres"], t.cube()).scene is None
    assert t.run_repair(STEPS["print.to_millimetres"], t.box((4572.0, 305.0, 2438.0))).scene is None


@pytest.mark.parametrize(("metadata", "extents"), [({"height_mm": 80}, [20, 20, 80]), ({"max_size_mm": 20}, [5, 5, 20]),
                                                   ({"size_mm": [10, 10, 10]}, [2.5, 2.5, 10]), ({}, [10, 10, 40])])
def test_scale_to_target_uses_the_job_metadata(metadata, extents):
    spec = STEPS["print.scale_to_target"]
    view = t.view(t.box((10, 10, 40)), inputs=Inputs(id="figurine", metadata=metadata))
    result = spec.apply(view, t.params_for(spec), t.step_context(spec))
    got = result.scene.extents if result.scene is not None else view.mesh.extents
    assert got == pytest.approx(extents)


def table_upside_down():
    """A 60 x 60 slab on a thin leg: printed as modelled the whole slab underside needs support."""
    leg, slab = t.box((4, 4, 30)), t.box((60, 60, 4))
    slab.apply_translation((0, 0, 17))
    return trimesh.util.concatenate([leg, slab])


def test_orient_reduces_support_area_of_an_overhang_case():
    result = t.run_repair(STEPS["print.orient"], table_upside_down(), max_angle_deg=45.0)
    assert result.scene is not None
    assert result.details["support_area_after"] < 0.1 * result.details["support_area_before"]
    assert result.details["bed_contact_after"] >= 3500  # the slab lies flat on the bed
    _, after_contact = orient.score(result.scene.vertices, result.scene.faces, np.array([[0.0, 0, 1]]),
                                    max_angle_deg=45.0, bed_tolerance=1e-3)
    assert after_contact[0] >= 3500


def test_orient_keeps_a_part_that_already_prints_well():
    result = t.run_repair(STEPS["print.orient"], t.box((40, 40, 10)))
    assert result.scene is None and result.details["support_area_after"] == 0.0


def test_place_on_bed_drops_to_z0_and_centres():
    mesh = t.cube()
    mesh.apply_translation((-30, 7, 42))
    result = t.run_repair(STEPS["print.place_on_bed"], mesh)
    assert result.scene.bounds[0][2] == pytest.approx(0.0)
    assert result.scene.bounds.mean(axis=0)[:2] == pytest.approx([110.0, 105.0])
    origin = t.run_repair(STEPS["print.place_on_bed"], mesh, centre="origin")
    assert origin.scene.bounds.mean(axis=0)[:2] == pytest.approx([0.0, 0.0])


def repair_profile(export=("stl",)):
    """The print chain's repair and export steps, all forced on (the validators are another module)."""
    steps = {sid: {"uses": uses, "always": True} for sid, uses in USES.items()}
    if "3mf" in export:
        steps["3mf"] = {"uses": "threemf"}
    return {"schema": 1, "name": "print-repair-test", "summary": "test",
            "chain": {"generate": ["import"], "validate": [], "repair": REPAIR_CHAIN, "export": list(export)},
            "steps": {"import": {}, **steps}, "run": {"assume_units": "mm"}}


@pytest.mark.parametrize("rel", ["stl/assimp/sphereWithHole.stl", "stl/numpy-stl/triamid.stl", "ply/vtk-data/shark.ply",
                                 "stl/trimesh/ADIS16480.STL", "stl/vtk-data/gebco7510_49cl.stl", "stl/trimesh/featuretype.STL",
                                 "ply/vtk-data/footbones.ply"])
def test_engine_repairs_corpus_files_into_closed_outward_mm_parts(corpus, tmp_path, rel):
    from meshforge import Engine

    report = Engine(repair_profile(), entry_points=False).run(corpus / rel, out_dir=tmp_path)
    stls = [o.path for o in report.outputs if str(o.path).endswith(".stl")]
    assert stls, report.to_dict()
    out = trimesh.load(stls[0], force="mesh")
    assert out.is_watertight and out.is_winding_consistent and out.volume > 0
    assert out.bounds[0][2] == pytest.approx(0.0, abs=1e-3)
    if "ADIS" in rel:  # modelled in metres: now a 47 mm part
        assert 10.0 <= np.max(out.extents) <= 100.0


def test_fdm_print_profile_repairs_corpus_defects(corpus, tmp_path):
    from meshforge import Engine
    from meshforge.errors import ProfileError

    try:
        engine = Engine("fdm-print-stl", entry_points=False)
    except ProfileError as exc:  # the print validators land in validate/printing.py (another engineer)
        pytest.skip(f"fdm-print-stl does not resolve yet: {exc}")
    # (file, errors that honestly remain once the topology is repaired): triamid is a 4 mm pyramid
    # and the 150 mm shark has fins down to 0.06 mm: both thinner than FDM's 0.8 mm by the inward-ray
    # measure, which no repair should "fix" by reshaping the part.
    cases = {
        "stl/assimp/sphereWithHole.stl": set(),
        "stl/numpy-stl/triamid.stl": {"print.thin_walls"},
        "ply/vtk-data/shark.ply": {"print.thin_walls"},
        "stl/trimesh/ADIS16480.STL": {"print.thin_walls"},  # 0.6% of a CAD part's surface (pins, chamfers)
    }
    for rel, remaining in cases.items():
        report = engine.run(corpus / rel, out_dir=tmp_path / rel.replace("/", "_"))
        errors = {f.code for f in report.findings if f.is_error}
        assert errors == remaining, (rel, errors)
        assert (report.status is Status.PASS) == (not remaining), rel
        if "ADIS" in rel:  # modelled in metres: converted, not rejected as a 0.047 mm part
            assert "print.suspect_units" in {f.code for f in report.initial_findings}
            assert report.metrics.bounds[1][0] - report.metrics.bounds[0][0] > 10.0


def test_fill_holes_welds_split_vertices_first(corpus):
    scene = trimesh.load(corpus / "glb/trimesh/BoxTextured.glb")  # UV seams: every face has its own vertices
    view = t.view(scene)
    assert repair.edge_counts(view.mesh.faces)[0] == 24
    result = t.run_repair(STEPS["mesh.fill_holes"], scene)
    assert result.scene is None and result.details["holes_found"] == 0  # seams are not holes: no caps on faces
    weld = t.run_repair(STEPS["mesh.weld"], scene)
    assert weld.scene is not None and repair.edge_counts(weld.scene.faces) == (0, 0)


def test_fill_holes_caps_a_large_planar_rim_at_any_edge_count(corpus):
    mesh = load(corpus, "off/pmp/hemisphere.off")
    filled, stats = holes.fill_holes(repair.weld(mesh)[0])
    assert stats["holes_filled"] == 1 and repair.edge_counts(filled.faces) == (0, 0)
    assert filled.volume > 0 or -filled.volume > 0
