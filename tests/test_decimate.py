"""Decimation: budgets met, UVs carried through, seams and material borders uncracked, error reported."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image
from trimesh.visual import TextureVisuals
from trimesh.visual.material import PBRMaterial

from meshforge import testing
from meshforge.builtin.repair import decimate as plugin
from meshforge.ops import decimate as ops

STEPS = {s.name: s for s in plugin.meshforge_repair_steps()}
PRINT = STEPS["mesh.decimate"]
COMMERCE = STEPS["commerce.decimate"]


def torus_arrays(n_u: int = 120, n_v: int = 60):
    """A bumpy torus whose UV grid wraps: the u=1/v=1 vertices duplicate u=0/v=0 ones (real UV seams)."""
    u, v = np.linspace(0, 1, n_u + 1), np.linspace(0, 1, n_v + 1)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    a, b = 2 * np.pi * uu, 2 * np.pi * vv
    r = 0.3 + 0.03 * np.sin(7 * a) * np.cos(5 * b)
    xyz = np.stack([(1 + r * np.cos(b)) * np.cos(a), r * np.sin(b), (1 + r * np.cos(b)) * np.sin(a)], -1).reshape(-1, 3)
    uv = np.stack([uu, vv], -1).reshape(-1, 2)
    i, j = np.meshgrid(np.arange(n_u), np.arange(n_v), indexing="ij")
    p = (i * (n_v + 1) + j).ravel()
    q = p + n_v + 1
    faces = np.concatenate([np.stack([p, p + 1, q], 1), np.stack([q, p + 1, q + 1], 1)])
    return xyz, faces, uv


def textured_torus(n_u: int = 120, n_v: int = 60) -> trimesh.Trimesh:
    xyz, faces, uv = torus_arrays(n_u, n_v)
    material = PBRMaterial(baseColorTexture=Image.new("RGB", (32, 32), (180, 40, 40)))
    return trimesh.Trimesh(xyz, faces, visual=TextureVisuals(uv=uv, material=material), process=False)


def needs_meshoptimizer():
    """Seam-exact, vertex-keeping decimation is meshoptimizer's; the fast_simplification fallback moves vertices."""
    pytest.importorskip("meshoptimizer", reason="meshoptimizer (PyPI) not installed: decimation falls back to fast_simplification")


def only_mesh(scene) -> trimesh.Trimesh:
    meshes = list(scene.geometry.values()) if isinstance(scene, trimesh.Scene) else [scene]
    assert len(meshes) == 1
    return meshes[0]


def test_commerce_decimate_meets_the_budget_and_keeps_uvs():
    needs_meshoptimizer()
    mesh = textured_torus()  # 14,400 triangles
    result = testing.run_repair(COMMERCE, mesh, target_triangles=2000)
    out = only_mesh(result.scene)
    assert len(out.faces) <= 2000
    assert len(out.faces) > 1000  # reduced to the budget, not to nothing
    assert isinstance(out.visual, TextureVisuals) and out.visual.uv.shape == (len(out.vertices), 2)
    assert out.visual.material.baseColorTexture is not None
    # every (position, uv) pair of the output is one of the input's: UVs travelled with their vertices
    before = {tuple(np.round(np.r_[p, t], 9)) for p, t in zip(mesh.vertices, mesh.visual.uv, strict=True)}
    after = {tuple(np.round(np.r_[p, t], 9)) for p, t in zip(out.vertices, out.visual.uv, strict=True)}
    assert after <= before
    assert result.details["triangles_after"] <= 2000
    assert 0 < result.details["hausdorff_fraction"] < 0.02


def test_uv_seams_do_not_crack():
    needs_meshoptimizer()
    mesh = textured_torus()
    assert trimesh.Trimesh(mesh.vertices, mesh.faces).is_watertight  # closed once welded by position
    out = only_mesh(testing.run_repair(COMMERCE, mesh, target_triangles=1500).scene)
    welded = trimesh.Trimesh(out.vertices, out.faces)  # process=True merges equal positions
    assert welded.is_watertight, "a UV seam opened into a crack"
    # and the seam is still a seam: some positions still carry two different UVs
    _, inverse, counts = np.unique(np.round(out.vertices, 9), axis=0, return_inverse=True, return_counts=True)
    assert (counts > 1).any()


def test_material_borders_stay_stitched():
    needs_meshoptimizer()
    # one bumpy sheet split into two primitives with different materials along x = 0
    n = 60
    xs = np.linspace(-1, 1, n + 1)
    gx, gy = np.meshgrid(xs, xs, indexing="ij")
    z = 0.1 * np.sin(3 * gx) * np.cos(4 * gy)
    parts = {}
    for name, cols, colour in (("left", slice(0, n // 2 + 1), (255, 0, 0)), ("right", slice(n // 2, n + 1), (0, 0, 255))):
        px, py, pz = gx[cols].T.T, gy[cols], z[cols]
        rows, colsn = px.shape
        verts = np.stack([px, py, pz], -1).reshape(-1, 3)
        i, j = np.meshgrid(np.arange(rows - 1), np.arange(colsn - 1), indexing="ij")
        p = (i * colsn + j).ravel()
        q = p + colsn
        faces = np.concatenate([np.stack([p, q, p + 1], 1), np.stack([q, q + 1, p + 1], 1)])
        uv = np.stack([(px + 1) / 2, (py + 1) / 2], -1).reshape(-1, 2)
        mat = PBRMaterial(baseColorTexture=Image.new("RGB", (8, 8), colour))
        parts[name] = trimesh.Trimesh(verts, faces, visual=TextureVisuals(uv=uv, material=mat), process=False)
    scene = trimesh.Scene()
    for name, m in parts.items():
        scene.add_geometry(m, geom_name=name)
    border = np.isclose(parts["left"].vertices[:, 0], 0.0)
    assert border.sum() == n + 1
    result = testing.run_repair(COMMERCE, scene, target_triangles=800)
    assert result.details["triangles_after"] <= 800
    left, right = result.scene.geometry["left"], result.scene.geometry["right"]
    left_border = {tuple(np.round(v, 9)) for v in left.vertices if abs(v[0]) < 1e-9}
    right_border = {tuple(np.round(v, 9)) for v in right.vertices if abs(v[0]) < 1e-9}
    assert len(left_border) == n + 1 and left_border == right_border  # locked: no T-junctions, no gap


def test_budget_counts_instances():
    mesh = textured_torus(60, 30)  # 3,600 triangles
    scene = trimesh.Scene()
    scene.add_geometry(mesh, geom_name="torus", node_name="n0")
    for k in (1, 2):
        scene.graph.update(frame_to=f"n{k}", geometry="torus", matrix=trimesh.transformations.translation_matrix((3.0 * k, 0, 0)))
    assert len(scene.geometry) == 1
    result = testing.run_repair(COMMERCE, scene, target_triangles=6000)  # 10,800 drawn
    assert result.details["triangles_before"] == 10_800
    assert result.details["triangles_after"] <= 6000
    assert len(result.scene.graph.nodes_geometry) == 3  # still instanced


def test_under_budget_is_unchanged():
    result = testing.run_repair(COMMERCE, textured_torus(20, 10), target_triangles=1000)
    assert result.scene is None


@pytest.mark.parametrize("backend", ["fast_simplification", "auto"])
def test_print_decimate_reports_hausdorff(backend):
    xyz, faces, _ = torus_arrays(100, 50)
    mesh = trimesh.Trimesh(xyz * 40, faces)  # welded: 10,000 triangles, ~90 mm
    result = testing.run_repair(PRINT, mesh, max_triangles=2500, backend=backend)
    out = only_mesh(result.scene)
    assert len(out.faces) <= 2500
    assert out.is_watertight
    assert result.details["hausdorff_fraction"] == pytest.approx(result.details["hausdorff"] / np.linalg.norm(np.ptp(mesh.vertices, axis=0)))
    assert 0 < result.details["hausdorff_fraction"] < 0.01


def test_print_decimate_leaves_small_meshes_alone():
    assert testing.run_repair(PRINT, testing.cube(), max_triangles=1000).scene is None


def test_hausdorff_measures_a_known_offset():
    box = trimesh.creation.box(extents=(1, 1, 1))
    moved = box.copy()
    moved.apply_translation((0, 0, 0.1))
    hmax, _ = ops.hausdorff(box.vertices, box.faces, moved.vertices, moved.faces, samples=2000)
    assert hmax == pytest.approx(0.1, abs=0.02)


def test_real_textured_asset_decimates_with_uvs(corpus):
    needs_meshoptimizer()
    scene = trimesh.load_scene(corpus / "glb/glTF-Transform/DamagedHelmet.glb")
    result = testing.run_repair(COMMERCE, scene, target_triangles=5000)
    out = only_mesh(result.scene)
    assert len(out.faces) <= 5000
    assert out.visual.uv.shape == (len(out.vertices), 2)
    assert out.visual.material.normalTexture is not None  # material (with all its maps) kept
    assert result.details["hausdorff_fraction"] < 0.05


def test_input_scene_is_not_mutated():
    mesh = textured_torus()
    before = mesh.vertices.copy(), mesh.faces.copy()
    testing.run_repair(COMMERCE, mesh, target_triangles=1000)
    assert np.array_equal(mesh.vertices, before[0]) and np.array_equal(mesh.faces, before[1])


def test_fallback_backend_meets_budget_and_carries_uvs():
    mesh = textured_torus()
    result = testing.run_repair(COMMERCE, mesh, target_triangles=2000, backend="fast_simplification")
    out = only_mesh(result.scene)
    assert len(out.faces) <= 2000
    assert out.visual.uv.shape == (len(out.vertices), 2)
    assert np.all((out.visual.uv >= 0) & (out.visual.uv <= 1))  # averaged from the input's UVs, in range
    assert result.details["hausdorff_fraction"] < 0.02
