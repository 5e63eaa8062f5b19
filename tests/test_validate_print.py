"""Print checks on small meshes with one known defect each, and on real corpus files.

Every constructed defect asserts the exact finding codes and counts; clean meshes must produce no
error finding from any print check.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import trimesh

from meshforge import Engine, testing
from meshforge.builtin.validate import core, printing
from meshforge.ops.intersections import intersecting_pairs, intersecting_pairs_by_rays
from meshforge.ops.thickness import RayCaster
from meshforge.ops.topology import topology
from meshforge.profiles import load_raw
from meshforge.types import Units

from conftest import manifest

STEPS = {s.name: s for s in printing.meshforge_validate_steps() + core.meshforge_validate_steps()}
PRINT_STEPS = [n for n in STEPS if n.startswith("print.")]


def run(name: str, mesh, **params):
    return testing.run_check(STEPS[name], mesh, **params)


def only(findings, code):
    hits = [f for f in findings if f.code == code]
    assert len(hits) == 1, [f.to_dict() for f in findings]
    return hits[0]


def weld_concat(*meshes) -> trimesh.Trimesh:
    m = trimesh.util.concatenate(list(meshes))
    return trimesh.Trimesh(m.vertices, m.faces, process=True)  # merge the shared corners


def flipped_one_face() -> trimesh.Trimesh:
    c = testing.cube()
    f = c.faces.copy()
    f[0] = f[0][::-1]
    return trimesh.Trimesh(c.vertices.copy(), f, process=False)


def t_shape() -> trimesh.Trimesh:
    """A 10 x 10 x 20 column with a 30 x 30 x 5 cap: the cap's 900 mm^2 underside overhangs."""
    column = testing.box((10, 10, 20)).apply_translation((0, 0, 10))
    cap = testing.box((30, 30, 5)).apply_translation((0, 0, 22.5))
    return trimesh.util.concatenate([column, cap])


# --- clean meshes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "mesh",
    [testing.cube(20.0), testing.soup(testing.cube(20.0)), trimesh.creation.icosphere(subdivisions=3, radius=20),
     trimesh.creation.annulus(r_min=10, r_max=20, height=10)],
    ids=["cube", "cube-as-soup", "sphere", "tube"],
)
def test_clean_meshes_have_no_error_findings(mesh):
    for name in [*PRINT_STEPS, "geometry.hygiene"]:
        errors = [f.to_dict() for f in run(name, mesh) if f.is_error]
        assert errors == [], name


def test_a_triangle_soup_is_not_open():
    assert run("print.closed", testing.soup(testing.cube())) == []
    assert run("print.manifold", testing.soup(testing.cube())) == []


# --- closed / manifold / orientation --------------------------------------------------------


@pytest.mark.parametrize(("holes", "edges", "loops"), [(1, 4, 1), (2, 8, 2)])
def test_holes_are_counted(holes, edges, loops):
    f = only(run("print.closed", testing.soup(testing.open_box(holes=holes))), "print.not_watertight")
    assert (f.severity, f.count, f.measured) == ("error", edges, loops)
    assert 0 < len(f.samples) <= 10


def test_cracks_below_the_weld_tolerance_close_and_exact_weld_keeps_them():
    c = testing.soup(testing.cube())
    v = c.vertices.copy()
    v[0] += 1e-9  # one corner copy off by a float crack
    cracked = trimesh.Trimesh(v, c.faces, process=False)
    assert run("print.closed", cracked) == []
    f = only(run("print.closed", cracked, weld_tolerance=0.0), "print.not_watertight")
    assert (f.count, f.measured) == (4, 1)  # the moved corner's two edges and their two former partners


def test_flipped_face_is_inconsistent_winding():
    findings = run("print.orientation", flipped_one_face())
    f = only(findings, "print.inconsistent_winding")
    assert (f.severity, f.count) == ("error", 3)
    assert 0 in f.samples
    assert [x.code for x in findings] == ["print.inconsistent_winding"]


def test_inverted_mesh_is_an_error_with_negative_volume():
    f = only(run("print.orientation", testing.inverted(testing.cube(20.0))), "print.inverted")
    assert f.severity == "error"
    assert f.measured == pytest.approx(-8000.0)


def test_inverted_volume_is_reported_in_mm3():
    f = only(run("print.orientation", testing.inverted(testing.cube(0.02)), units=Units("m", "+Z")), "print.inverted")
    assert f.measured == pytest.approx(-8000.0)


def test_a_void_is_not_inverted():
    outer = testing.cube(20.0)
    void = testing.inverted(testing.cube(10.0))
    assert run("print.orientation", trimesh.util.concatenate([outer, void])) == []


def test_double_sided_sheet_is_not_inverted():
    """Faces duplicated with reversed winding (corpus chair_model.obj) have zero volume, not negative."""
    sheet = testing.box((20, 20, 2))
    both = trimesh.Trimesh(np.vstack([sheet.vertices, sheet.vertices]),
                           np.vstack([sheet.faces, sheet.faces[:, ::-1] + len(sheet.vertices)]), process=False)
    assert "print.inverted" not in [f.code for f in run("print.orientation", both)]


def test_corpus_double_sided_chair_is_not_inverted(corpus):
    chair = trimesh.load(corpus / "obj/trimesh/chair_model.obj", process=False, force="mesh")
    assert "print.inverted" not in [f.code for f in run("print.orientation", chair)]


def test_edge_shared_by_four_faces_is_non_manifold():
    a = testing.cube(10.0)
    b = testing.cube(10.0).apply_translation((10, 10, 0))
    findings = run("print.manifold", weld_concat(a, b))
    f = only(findings, "print.non_manifold_edges")
    assert (f.severity, f.count) == ("error", 1)
    assert [x.code for x in findings] == ["print.non_manifold_edges"]


def test_cubes_touching_at_a_corner_make_a_non_manifold_vertex():
    a = testing.cube(10.0)
    b = testing.cube(10.0).apply_translation((10, 10, 10))
    findings = run("print.manifold", weld_concat(a, b))
    f = only(findings, "print.non_manifold_vertices")
    assert (f.severity, f.count) == ("error", 1)
    assert [x.code for x in findings] == ["print.non_manifold_vertices"]


# --- shells and intersections ---------------------------------------------------------------


def test_overlapping_shells_intersect():
    a = testing.cube(10.0)
    b = testing.cube(10.0).apply_translation((5, 5, 5))
    mesh = trimesh.util.concatenate([a, b])
    shells = only(run("print.shells", mesh), "print.multiple_shells")
    assert (shells.severity, shells.count) == ("info", 2)
    f = only(run("print.self_intersections", mesh), "print.self_intersections")
    assert f.severity == "warning"
    pairs = intersecting_pairs(mesh.triangles)
    assert f.measured == len(pairs) > 0
    assert f.count == len(np.unique(pairs))
    # every reported pair really crosses: one triangle from each cube
    assert ((pairs[:, 0] < 12) & (pairs[:, 1] >= 12)).all()
    assert run("print.self_intersections", mesh, severity="error")[0].severity == "error"


def test_touching_shells_do_not_intersect():
    a = testing.cube(10.0)
    b = testing.cube(10.0).apply_translation((10, 0, 0))
    assert run("print.self_intersections", trimesh.util.concatenate([a, b])) == []


def test_debris_shell_is_a_warning():
    mesh = trimesh.util.concatenate([testing.cube(20.0), testing.cube(0.5).apply_translation((40, 0, 0))])
    findings = run("print.shells", mesh)
    f = only(findings, "print.debris_shells")
    assert (f.severity, f.count) == ("warning", 1)
    assert f.samples == (12,)  # first face of the second shell
    assert only(findings, "print.multiple_shells").count == 2


def test_self_intersection_counts_match_the_corpus_manifest(corpus):
    expected = {"rear_case.stl": 15, "self_intersectA.obj": 282, "suzanne.obj": 94, "teapot.stl": 46}
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in manifest()}
    for name, pairs in expected.items():
        assert f"{pairs} intersecting triangle pairs" in rows[name]["known_defects"]
        mesh = trimesh.load(corpus / rows[name]["path"], process=False, force="mesh")
        assert len(intersecting_pairs(mesh.triangles)) == pairs, name


@pytest.mark.parametrize("rel", ["stl/numpy-stl/binary/rear_case.stl", "obj/manifold/self_intersectA.obj", "stl/trimesh/soup.stl"])
def test_both_broad_phases_find_the_same_candidates(corpus, rel):
    from meshforge.ops import intersections

    tri = trimesh.load(corpus / rel, process=False, force="mesh").triangles
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    eps = 1e-7 * float(np.linalg.norm(hi.max(axis=0) - lo.min(axis=0)))
    span = float((hi.max(axis=0) - lo.min(axis=0)).max())
    margin = eps + 4e-7 * span

    def overlapping(pairs):
        a, b = pairs[:, 0].astype(np.int64), pairs[:, 1].astype(np.int64)
        ok = ((lo[a] <= hi[b] + margin) & (lo[b] <= hi[a] + margin)).all(axis=1)
        return {(min(x, y), max(x, y)) for x, y in zip(a[ok], b[ok], strict=True)}

    grid = overlapping(intersections._grid_pairs(lo, hi, eps))
    spheres = overlapping(intersections._sphere_pairs(lo, hi, eps))
    assert grid == spheres
    assert {tuple(p) for p in intersections._broad_phase(lo, hi, eps).tolist()} == grid


# --- size, units, budget --------------------------------------------------------------------


def test_400_mm_part_exceeds_the_build_volume():
    f = only(run("print.build_volume", testing.box((400, 20, 20))), "print.exceeds_build_volume")
    assert f.severity == "error"
    assert f.measured == pytest.approx([400, 20, 20])
    assert f.threshold == [220, 210, 220]


def test_part_that_fits_only_rotated_is_a_warning():
    f = only(run("print.build_volume", testing.box((20, 215, 20))), "print.exceeds_build_volume")
    assert f.severity == "warning"
    assert "rotat" in f.message or "turning" in f.message
    assert run("print.build_volume", testing.box((20, 215, 20)), volume_mm=(220.0, 220.0, 220.0)) == []


def test_build_volume_reads_metres_as_millimetres():
    f = only(run("print.build_volume", testing.box((0.4, 0.02, 0.02)), units=Units("m", "+Z")), "print.exceeds_build_volume")
    assert f.measured == pytest.approx([400, 20, 20])


def test_model_in_metres_is_suspect_units_naming_metres():
    figurine = testing.box((0.02, 0.015, 0.04))  # a 40 mm figurine exported in metres, read as mm
    f = only(run("print.units", figurine), "print.suspect_units")
    assert f.severity == "error"
    assert f.measured == pytest.approx(0.04)
    assert re.search(r"\bin m\b", f.message)
    assert run("print.units", figurine, units=Units("m", "+Z")) == []


def test_huge_model_is_suspect_units():
    f = only(run("print.units", testing.box((4000, 100, 100))), "print.suspect_units")
    assert f.measured == pytest.approx(4000)
    assert "large" in f.message


def test_triangle_budget():
    sphere = trimesh.creation.icosphere(subdivisions=3)  # 1280 faces
    f = only(run("print.triangle_budget", sphere, max_triangles=1000), "print.too_many_triangles")
    assert (f.severity, f.measured, f.count) == ("error", 1280, 280)
    assert run("print.triangle_budget", sphere) == []


# --- the ray broad phase for large meshes of mixed triangle sizes --------------------------------


def _exhaustive_and_rays(mesh):
    view = testing.view(mesh)
    t = printing.topo(view, printing.WELD_DEFAULT)
    v, f = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces)
    ok = np.flatnonzero(t.valid & np.isfinite(v[f]).all(axis=(1, 2)))
    exhaustive = ok[intersecting_pairs(v[f[ok]], t.faces[ok])]
    rays = intersecting_pairs_by_rays(RayCaster(v, f[ok], backend="open3d"), t.faces[ok], ok)
    return exhaustive, rays


@pytest.mark.parametrize("name", [
    "obj/trimesh/chair_model.obj",  # stacked duplicate faces: Embree reports one hit per distance
    "obj/manifold/self_intersectA.obj", "stl/trimesh/soup.stl", "stl/trimesh/teapot.stl", "ply/vtk-data/footbones.ply",
    "stl/assimp/Spider_binary.stl", "obj/pmp/suzanne.obj", "stl/assimp/3DSMaxExport.STL",
])
def test_edge_rays_find_exactly_the_pairs_the_exhaustive_test_finds(corpus, name):
    pytest.importorskip("open3d")
    from meshforge.asset import scene_to_mesh
    from meshforge.io.readers import read
    from meshforge.io.source import read_source
    from meshforge.types import ReadLimits

    mesh = scene_to_mesh(read(read_source(corpus / name, ReadLimits()), ReadLimits()).scene)
    exhaustive, rays = _exhaustive_and_rays(mesh)
    assert len(exhaustive) > 0
    assert np.array_equal(rays, exhaustive)


def test_edge_rays_find_pairs_whose_edges_cross_exactly():
    """Copies of one tessellation shifted along x: edges cross other faces exactly on their shared
    edges, where Embree reports one of the two faces; the faces across the edge are added back."""
    pytest.importorskip("open3d")
    shell = trimesh.creation.icosphere(subdivisions=4, radius=10.0)
    copies = trimesh.util.concatenate([shell.copy().apply_translation((0.3 * i, 0, 0)) for i in range(4)])
    exhaustive, rays = _exhaustive_and_rays(copies)
    assert len(exhaustive) > 0
    assert np.array_equal(rays, exhaustive)


def test_a_hit_on_a_shared_edge_also_pairs_the_face_across_it():
    """Float32 puts a crossing exactly on a shared edge up to ~1e-4 inside one face (barycentric
    coordinate 8e-5 measured on four shifted sphere copies, 327 k faces): the face across must join."""
    from meshforge.ops import intersections

    wid = np.array([[0, 1, 2], [2, 1, 3], [4, 5, 6]])  # faces 0 and 1 share edge 1-2
    sk, start, count, face_of_half, _ = intersections._edge_groups(wid)
    edge = np.array([7])  # some cast edge's id; only passed through
    for w, expected in ((5e-4, {0, 1}), (0.3, {0})):
        u = 0.5
        uv = np.array([[u, 1.0 - u - w]])  # hit on face 0, w from its edge between corners 1 and 2
        _, others = intersections._across_hit_edges(wid, sk, start, count, face_of_half, edge, np.array([0]), uv)
        assert set(others.tolist()) == expected


def test_crowded_meshes_take_the_ray_broad_phase(monkeypatch):
    pytest.importorskip("open3d")
    from meshforge.ops import intersections

    shell = trimesh.creation.icosphere(subdivisions=5, radius=10.0)
    stacked = trimesh.util.concatenate([shell.copy().apply_translation((0.3 * i, 0, 0)) for i in range(4)])
    tri = stacked.triangles
    assert intersections.crowding(tri.min(axis=1), tri.max(axis=1)) > intersections.CROWDED
    assert intersections.crowding(*(lambda t: (t.min(axis=1), t.max(axis=1)))(shell.triangles)) < intersections.CROWDED
    used = []
    original = intersections.intersecting_pairs_by_rays
    monkeypatch.setattr(intersections, "intersecting_pairs_by_rays", lambda *a, **k: used.append(1) or original(*a, **k))
    assert only(run("print.self_intersections", stacked), "print.self_intersections").count > 0
    assert used == [1]


def test_large_mixed_size_meshes_take_the_ray_broad_phase(monkeypatch):
    pytest.importorskip("open3d")
    from meshforge.ops import intersections

    big = trimesh.creation.icosphere(subdivisions=6, radius=10.0)
    small = trimesh.creation.icosphere(subdivisions=6, radius=1.0).apply_translation((10.0, 0, 0))
    mixed = trimesh.util.concatenate([big, small])  # 81,920 faces of two sizes, 10x apart, crossing
    exhaustive, _ = _exhaustive_and_rays(mixed)
    used = []
    original = intersections.intersecting_pairs_by_rays
    monkeypatch.setattr(intersections, "intersecting_pairs_by_rays", lambda *a, **k: used.append(1) or original(*a, **k))
    f = only(run("print.self_intersections", mixed), "print.self_intersections")
    assert used == [1]
    assert (f.measured, f.count) == (len(exhaustive), len(np.unique(exhaustive)))
    # similar sizes stay on the exhaustive path
    used.clear()
    assert run("print.self_intersections", trimesh.creation.icosphere(subdivisions=6, radius=10.0)) == []
    assert used == []


# --- thickness and overhangs ----------------------------------------------------------------


def test_04_mm_plate_has_thin_walls():
    f = only(run("print.wall_thickness", testing.box((40, 40, 0.4))), "print.thin_walls")
    assert (f.severity, f.threshold, f.count) == ("error", 0.8, 4)  # top and bottom, two triangles each
    assert f.measured == pytest.approx(2 * 1600 / (2 * 1600 + 4 * 16), rel=1e-6)  # area fraction
    assert set(f.samples) == {int(i) for i in np.flatnonzero(np.abs(testing.box((40, 40, 0.4)).face_normals[:, 2]) > 0.5)}


def test_a_thin_sliver_of_the_surface_is_a_warning_not_an_error():
    # a 40 mm block with a 0.5 x 2 x 2 mm fin: its thin sides are 0.08 % of the surface
    block = testing.box((40, 40, 40))
    fin = testing.box((0.5, 2, 2)).apply_translation((20.25, 0, 0))
    part = trimesh.util.concatenate([block, fin])
    f = only(run("print.wall_thickness", part), "print.thin_walls")
    assert f.severity == "warning" and f.threshold == 0.8  # fin sides: ~0.1% of the surface
    assert 0 < f.measured <= 0.001
    assert only(run("print.wall_thickness", part, error_min_fraction=0.0), "print.thin_walls").severity == "error"


def test_inverted_plate_still_has_thin_walls():
    f = only(run("print.wall_thickness", testing.inverted(testing.box((40, 40, 0.4)))), "print.thin_walls")
    assert (f.severity, f.count) == ("error", 4)


def test_wall_between_min_and_warn_is_a_warning():
    f = only(run("print.wall_thickness", testing.box((40, 40, 0.9))), "print.thin_walls")
    assert (f.severity, f.threshold) == ("warning", 1.0)
    resin = run("print.wall_thickness", testing.box((40, 40, 0.5)), min_mm=0.4, warn_mm=0.6)
    assert only(resin, "print.thin_walls").severity == "warning"


def test_thickness_samples_large_meshes_and_says_so():
    plate = trimesh.creation.box(extents=(40, 40, 0.4)).subdivide().subdivide()
    f = only(run("print.wall_thickness", plate, max_rays=50), "print.thin_walls")
    assert "sampled" in f.message
    assert 0.8 < f.measured <= 1.0


@pytest.mark.parametrize("backend", ["open3d", "trimesh"])
def test_thickness_backends_agree(backend):
    pytest.importorskip(backend)
    f = only(run("print.wall_thickness", testing.box((40, 40, 0.6)), backend=backend), "print.thin_walls")
    assert f.count == 4


def slotted_block(width: float) -> trimesh.Trimesh:
    """A 20 x 20 x 10 block with a ``width`` mm slot, 7 mm deep, across it (manifold3d difference)."""
    import manifold3d as m3

    block = m3.Manifold.cube((20, 20, 10), center=True)
    slot = m3.Manifold.cube((width, 30, 8), center=True).translate((0, 0, 2))
    mesh = (block - slot).to_mesh()
    return trimesh.Trimesh(np.asarray(mesh.vert_properties)[:, :3], np.asarray(mesh.tri_verts), process=False)


@pytest.mark.parametrize("backend", ["open3d", "trimesh"])
def test_a_slot_narrower_than_the_detail_limit_is_a_narrow_gap(backend):
    pytest.importorskip(backend)
    block = slotted_block(0.5)
    f = only(run("print.narrow_gaps", block, backend=backend), "print.narrow_gaps")
    # the slot's two 7 x 20 mm walls, two triangles each: 280 mm^2 of the surface
    assert (f.severity, f.count, f.threshold) == ("warning", 4, 0.8)
    assert f.measured == pytest.approx(280 / block.area, rel=1e-4)
    assert "narrowest 0.5 mm" in f.message and testing.codes(run("print.narrow_gaps", block)) == ["print.narrow_gaps"]
    walls = block.triangles_center[np.asarray(f.samples)]
    assert np.allclose(np.abs(walls[:, 0]), 0.25)  # the samples are the slot walls at x = +-0.25
    assert run("print.narrow_gaps", slotted_block(1.2), backend=backend) == []
    assert run("print.narrow_gaps", block, min_mm=0.4, backend=backend) == []


def test_parts_closer_than_the_clearance_are_tight_but_overlap_is_not():
    a = testing.box((10, 10, 10))
    near = testing.box((10, 10, 10)).apply_translation((10.2, 0, 0))
    findings = run("print.narrow_gaps", trimesh.util.concatenate([a, near]))
    f = only(findings, "print.tight_clearance")  # between two parts: the clearance limit, not the detail limit
    assert f.count == 4 and f.threshold == 0.3 and "narrowest 0.2 mm" in f.message
    assert testing.codes(findings) == ["print.tight_clearance"]
    apart = testing.box((10, 10, 10)).apply_translation((10.5, 0, 0))  # 0.5 mm: under the 0.8 detail limit, over the clearance
    assert run("print.narrow_gaps", trimesh.util.concatenate([a, apart])) == []
    # a face buried in the other part sees material, not a gap, in front of it
    overlapping = testing.box((10, 10, 10)).apply_translation((5, 0, 0))
    assert run("print.narrow_gaps", trimesh.util.concatenate([a, overlapping])) == []
    assert run("print.narrow_gaps", testing.cube()) == []
    assert run("print.narrow_gaps", trimesh.creation.icosphere(subdivisions=3, radius=10)) == []


def test_a_v_groove_is_not_a_gap_but_a_narrow_one_is():
    """A V groove narrows to nothing at its bottom line: walls 60 deg apart are a notch, not a gap;
    walls 20 deg apart (a knife cut) are a gap over most of their depth."""
    import manifold3d as m3

    def grooved(opening_deg: float) -> trimesh.Trimesh:
        depth = 6.0
        half = depth * np.tan(np.radians(opening_deg / 2))
        v = m3.CrossSection([[(-half, 0.0), (0.0, -depth), (half, 0.0)]]).extrude(30).translate((0, 0, -15))
        v = v.rotate((90, 0, 0)).translate((0, 0, 5.0 + 1e-3))  # groove along y, opening at the top face z = 5
        mesh = (m3.Manifold.cube((20, 20, 10), center=True) - v).to_mesh()
        # small faces down the groove walls, as a sculpted or scanned surface has
        vertices, faces = trimesh.remesh.subdivide_to_size(np.asarray(mesh.vert_properties)[:, :3], np.asarray(mesh.tri_verts), 0.25)
        return trimesh.Trimesh(vertices, faces, process=False)

    assert run("print.narrow_gaps", grooved(60.0)) == []
    assert only(run("print.narrow_gaps", grooved(60.0), max_wall_angle_deg=90.0), "print.narrow_gaps")  # what the rule drops
    f = only(run("print.narrow_gaps", grooved(6.0)), "print.narrow_gaps")  # 0.63 mm wide at the top
    assert f.count >= 2


def test_a_tiny_narrow_area_is_info_not_a_warning():
    block = slotted_block(0.5)
    f = only(run("print.narrow_gaps", block, min_fraction=0.5), "print.narrow_gaps")
    assert f.severity == "info" and "so info" in f.message


def test_an_inverted_part_still_measures_the_gap_outside():
    f = only(run("print.narrow_gaps", testing.inverted(slotted_block(0.5))), "print.narrow_gaps")
    assert f.count == 4


def test_thickness_and_gaps_share_one_ray_caster(monkeypatch):
    from meshforge.ops import thickness

    built = []
    original = thickness.RayCaster.__init__

    def counting(self, *args, **kwargs):
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(thickness.RayCaster, "__init__", counting)
    view = testing.view(slotted_block(0.5))
    assert testing.codes(run("print.wall_thickness", view)) == []
    assert testing.codes(run("print.narrow_gaps", view)) == ["print.narrow_gaps"]
    assert len(built) == 1  # one BVH for both checks on one geometry version


def test_overhanging_cap():
    findings = run("print.overhangs", t_shape())
    f = only(findings, "print.overhangs")
    assert f.severity == "warning"
    assert f.measured[0] == pytest.approx(900.0)  # the cap's underside, mm^2
    assert f.count == 2
    assert run("print.overhangs", t_shape(), severity="info")[0].severity == "info"
    # the column's foot rests on the bed: 100 mm^2 of contact is enough, 200 is not
    assert not [x for x in findings if x.code == "print.small_bed_contact"]
    small = only(run("print.overhangs", t_shape(), min_bed_contact_mm2=200.0), "print.small_bed_contact")
    assert small.measured == pytest.approx(100.0)


def test_faces_on_the_bed_are_not_overhangs():
    assert [f.code for f in run("print.overhangs", testing.cube())] == []


def test_resin_angle_is_more_permissive():
    cone = trimesh.creation.cone(radius=20, height=10)
    flipped = cone.copy()
    flipped.apply_transform(trimesh.transformations.rotation_matrix(np.pi, (1, 0, 0)))  # apex down, base up
    fdm = only(run("print.overhangs", flipped, max_angle_deg=45.0), "print.overhangs")
    assert fdm.count > 0
    # the sides are 26.6 deg from level: past FDM's 45 deg from vertical, self-supporting in resin (>= 19 deg)
    assert [f for f in run("print.overhangs", flipped, max_angle_deg=71.0) if f.code == "print.overhangs"] == []


# --- bad input never crashes ----------------------------------------------------------------


def test_nan_vertex_is_reported_and_no_print_check_crashes():
    c = testing.cube()
    v = c.vertices.copy()
    v[3] = np.nan
    mesh = trimesh.Trimesh(v, c.faces.copy(), process=False)
    f = only(run("geometry.hygiene", mesh), "geometry.non_finite")
    assert (f.severity, f.count, f.samples) == ("error", 1, (3,))
    for name in PRINT_STEPS:
        run(name, mesh)  # must not raise
    # samples stay indices into the model's faces even when faces on the bad vertex are skipped
    plate = testing.box((40, 40, 0.4))
    v = np.vstack([[np.nan, 0, 0], plate.vertices])
    faces = np.vstack([[0, 1, 2], plate.faces + 1])
    f = only(run("print.wall_thickness", trimesh.Trimesh(v, faces, process=False)), "print.thin_walls")
    expected = {int(i) + 1 for i in np.flatnonzero(np.abs(plate.face_normals[:, 2]) > 0.5)}
    assert set(f.samples) == expected


def test_empty_mesh_reports_empty_and_no_print_check_crashes():
    empty = trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), process=False)
    assert [f.code for f in run("geometry.hygiene", empty)] == ["geometry.empty"]
    for name in PRINT_STEPS:
        assert [f for f in run(name, empty) if f.is_error] == [], name


# --- the engine on real files ---------------------------------------------------------------


def validate_only(profile: str = "fdm-print-stl") -> Engine:
    """The profile's own validate chain and parameters, without its repair and export steps."""
    raw, _, _ = load_raw(profile)
    chain = raw["chain"]["validate"]
    data = {k: v for k, v in raw.items() if k not in ("chain", "steps", "extends")}
    data["chain"] = {"generate": ["import"], "validate": chain, "repair": [], "export": []}
    data["steps"] = {k: v for k, v in raw["steps"].items() if k in chain or k == "import"}
    return Engine(data, entry_points=False)


@pytest.fixture(scope="module")
def fdm() -> Engine:
    return validate_only("fdm-print-stl")


def codes_counts(report):
    return {f.code: f.count for f in report.findings if f.is_error}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("stl/trimesh/teapot.stl", {"print.not_watertight": 64}),
        ("stl/assimp/Spider_binary.stl", {"print.not_watertight": 72, "print.inconsistent_winding": 10}),
        ("stl/assimp/sphereWithHole.stl", {"print.not_watertight": 9}),
        ("stl/trimesh/shared.STL", {"print.non_manifold_edges": 1}),
        ("stl/numpy-stl/triamid.stl", {"print.inconsistent_winding": 13}),
        ("stl/trimesh/multibody.stl", {"print.inconsistent_winding": 12}),
        ("stl/trimesh/soup.stl", {"print.not_watertight": 300}),
        ("stl/assimp/3DSMaxExport.STL", {"print.non_manifold_edges": 16}),
    ],
)
def test_topology_errors_on_corpus_match_the_manifest(fdm, corpus, path, expected):
    report = fdm.validate(corpus / path)
    got = codes_counts(report)
    for code, count in expected.items():
        assert got.get(code) == count, report.to_dict()["findings"]
    assert report.status == "fail"


def test_corpus_control_part_passes(fdm, corpus):
    report = fdm.validate(corpus / "stl/trimesh/20mm-xyz-cube.stl")
    assert report.status == "pass", [f.to_dict() for f in report.findings if f.is_error]


def test_corpus_float_cracks_close_after_the_tiny_weld(fdm, corpus):
    report = fdm.validate(corpus / "stl/trimesh/featuretype.STL")
    assert "print.not_watertight" not in codes_counts(report)


def test_corpus_inverted_and_unit_mistakes(fdm, corpus):
    inverted = codes_counts(fdm.validate(corpus / "stl/vtk-data/gebco7510_49cl.stl"))
    assert "print.inverted" in inverted
    metres = fdm.validate(corpus / "stl/trimesh/ADIS16480.STL")
    f = only(metres.findings, "print.suspect_units")
    assert f.measured == pytest.approx(0.047, rel=1e-3)
    assert re.search(r"\bin m\b", f.message)
    large = codes_counts(fdm.validate(corpus / "stl/trimesh/large_block.STL"))
    assert {"print.suspect_units", "print.exceeds_build_volume"} <= set(large)


def test_corpus_non_finite_coordinates_are_an_error_not_a_crash(fdm, corpus):
    report = fdm.validate(corpus / "glb/assimp/BoxWithInfinites.glb")
    assert "geometry.non_finite" in codes_counts(report)
    assert not [f for f in report.findings if f.code.startswith("engine.")]


def test_topology_exact_counts_on_corpus(corpus):
    # the manifest's figures come from an exact weld: compare the ops layer directly
    mesh = trimesh.load(corpus / "stl/trimesh/featuretype.STL", process=False, force="mesh")
    assert len(topology(mesh.vertices, mesh.faces).boundary_edges) == 576


def test_profiles_set_the_gap_limits():
    """A 0.5 mm slot is under FDM's 0.8 mm engrave detail and over resin's 0.4 mm; parts 0.4 mm apart
    clear FDM's 0.3 mm and not resin's 0.5 mm."""
    slot = slotted_block(0.5)
    assert only(validate_only("fdm-print-stl").validate(slot).findings, "print.narrow_gaps").threshold == 0.8
    assert "print.narrow_gaps" not in {f.code for f in validate_only("sla-print-stl").validate(slot).findings}
    pair = trimesh.util.concatenate([testing.box((10, 10, 10)), testing.box((10, 10, 10)).apply_translation((10.4, 0, 0))])
    assert "print.tight_clearance" not in {f.code for f in validate_only("fdm-print-stl").validate(pair).findings}
    assert only(validate_only("sla-print-stl").validate(pair).findings, "print.tight_clearance").threshold == 0.5


def test_profiles_set_the_technology_limits():
    """The same 0.5 mm plate fails FDM (0.8 mm) and only warns for resin (0.4 fail / 0.6 warn)."""
    plate = testing.box((40, 40, 0.5))
    fdm = only(validate_only("fdm-print-stl").validate(plate).findings, "print.thin_walls")
    sla = only(validate_only("sla-print-stl").validate(plate).findings, "print.thin_walls")
    assert (fdm.severity, fdm.threshold) == ("error", 0.8)
    assert (sla.severity, sla.threshold) == ("warning", 0.6)
    # resin overhangs are reported as info (supports always), FDM ones as warnings
    sla_over = only(validate_only("sla-print-stl").validate(t_shape()).findings, "print.overhangs")
    assert sla_over.severity == "info"
    # and the resin bed is smaller: 150 mm fits FDM, not resin
    long_bar = testing.box((150, 20, 20))
    assert "print.exceeds_build_volume" not in {f.code for f in validate_only("fdm-print-stl").validate(long_bar).findings}
    assert "print.exceeds_build_volume" in {f.code for f in validate_only("sla-print-stl").validate(long_bar).findings}


def test_step_contracts():
    # testing.check_plugin registers a module next to the built-ins, which already hold these two
    import dataclasses

    for spec in STEPS.values():
        assert spec.params.__dataclass_params__.frozen, spec.name
        spec.params()  # every parameter defaulted
        assert all(f.metadata.get("help") for f in dataclasses.fields(spec.params)), spec.name
        assert spec.codes and all(c.split(".")[0] in ("print", "geometry") for c in spec.codes), spec.name
        assert spec.requires == ()  # the core print checks need no optional dependency


def test_debris_by_size():
    mesh = trimesh.util.concatenate([testing.cube(20.0), testing.cube(3.0).apply_translation((40, 0, 0))])
    assert [f.code for f in run("print.shells", mesh)] == ["print.multiple_shells"]  # 3 mm cube: 0.34 % of the volume
    f = only(run("print.shells", mesh, debris_min_mm=5.0), "print.debris_shells")
    assert (f.count, f.samples) == (1, (12,))


def test_a_small_part_far_from_the_origin_has_no_false_thin_walls():
    # Embree casts in float32: at x = 110 mm its resolution is coarser than the ray's start offset,
    # so without centring the rays started on their own faces (a 3 mm sphere "had" 6e-6 mm walls).
    sphere = trimesh.creation.icosphere(subdivisions=2, radius=1.5)
    sphere.apply_translation((110.0, 105.0, 1.5))
    assert testing.run_check(STEPS["print.wall_thickness"], sphere, min_mm=0.8, warn_mm=1.0) == []
    plate = testing.box((20.0, 20.0, 0.4))
    plate.apply_translation((110.0, 105.0, 0.2))
    assert testing.codes(testing.run_check(STEPS["print.wall_thickness"], plate, min_mm=0.8, warn_mm=1.0)) == ["print.thin_walls"]


# --- fast paths give the answers of the general ones ----------------------------------------


def test_hash_weld_groups_like_the_lexsort(monkeypatch):
    from meshforge.ops import topology as topo_mod

    rng = np.random.default_rng(1)
    v = np.round(rng.normal(size=(3000, 3)), 1)  # many exact duplicates
    v[::97] *= -0.0  # -0.0 equals 0.0
    v[5] = np.nan
    ids, count = topo_mod.weld(v)
    finite = np.isfinite(v).all(axis=1)
    ref, ref_count = topo_mod.group_rows(v[finite] + 0.0)
    assert count == ref_count and (ids[~finite] == -1).all()
    assert len(set(zip(ids[finite].tolist(), ref.tolist(), strict=True))) == count  # same partition
    # an already welded mesh keeps its numbering
    cube = testing.cube()
    assert topo_mod.weld(cube.vertices) == (pytest.approx(np.arange(len(cube.vertices))), len(cube.vertices))
    # every hash equal (a forced collision): the exact lexsort answers
    monkeypatch.setattr(topo_mod, "_mix", lambda x: np.zeros_like(x))
    again, again_count = topo_mod.weld(v)
    assert again_count == count and len(set(zip(again[finite].tolist(), ref.tolist(), strict=True))) == count


def test_closed_mesh_bowties_match_the_graph_path():
    from meshforge.ops import topology as topo_mod

    cubes = [testing.cube(10.0).apply_translation((10 * k, 10 * k, 10 * k)) for k in range(3)]
    mesh = weld_concat(weld_concat(cubes[0], cubes[1]), cubes[2])
    t = topology(mesh.vertices, mesh.faces)
    assert t.closed and t.edge_manifold and t.winding_conflicts == 0
    assert len(t.nonmanifold_vertices) == 2
    # the general (scipy components) answer on the same mesh
    F = np.asarray(mesh.faces)
    start, end = F.reshape(-1), F[:, [1, 2, 0]].reshape(-1)
    key = np.minimum(start, end) * len(mesh.vertices) + np.maximum(start, end)
    order = np.argsort(key, kind="stable")
    h1, h2 = order[0::2], order[1::2]
    c1e, c2e = 3 * (h1 // 3) + (h1 % 3 + 1) % 3, 3 * (h2 // 3) + (h2 % 3 + 1) % 3
    n, comp = topo_mod._components(len(start), np.concatenate([h1, c1e]), np.concatenate([c2e, h2]))
    fan_vertex = np.zeros(n, dtype=np.int64)
    fan_vertex[comp] = start
    expected = np.flatnonzero(np.bincount(fan_vertex, minlength=len(mesh.vertices)) > 1)
    assert t.nonmanifold_vertices.tolist() == expected.tolist()
    # a sphere has none, whatever its valence
    ball = trimesh.creation.icosphere(subdivisions=3)
    assert len(topology(ball.vertices, ball.faces).nonmanifold_vertices) == 0


@pytest.mark.parametrize("rel", ["stl/numpy-stl/binary/rear_case.stl", "obj/manifold/self_intersectA.obj", "obj/pmp/suzanne.obj"])
def test_triangle_spheres_find_the_pairs_the_grid_finds(corpus, rel, monkeypatch):
    from meshforge.ops import intersections

    tri = trimesh.load(corpus / rel, process=False, force="mesh").triangles
    general = intersections._candidates

    def spheres(lo, hi, eps, t=None, **_):
        centre = t.mean(axis=1)
        radius = np.linalg.norm(t - centre[:, None], axis=2).max(axis=1)
        return intersections._sphere_pairs(lo, hi, eps, centre, radius)

    monkeypatch.setattr(intersections, "_candidates", lambda lo, hi, eps, t=None, **_: intersections._grid_pairs(lo, hi, eps))
    by_grid = intersecting_pairs(tri)
    monkeypatch.setattr(intersections, "_candidates", spheres)
    by_spheres = intersecting_pairs(tri)
    monkeypatch.setattr(intersections, "_candidates", general)
    assert len(by_grid) > 0
    assert by_spheres.tolist() == by_grid.tolist() == intersecting_pairs(tri).tolist()
