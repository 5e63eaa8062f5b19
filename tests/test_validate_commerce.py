"""commerce.materials / budgets / scale on small constructed scenes and real files."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image
from trimesh.visual import TextureVisuals
from trimesh.visual.material import PBRMaterial

from meshforge import testing
from meshforge.asset import Inputs
from meshforge.builtin.validate import commerce
from meshforge.io.gltf import read_glb
from meshforge.io.source import read_source
from meshforge.ops import commerce_checks as cc
from meshforge.types import ReadLimits, SourceFile, Units
from tests.gltf_make import glb, triangle_doc

MATERIALS, BUDGETS, SCALE = commerce.meshforge_validate_steps()
M = Units("m", "+Y")


def textured_box(size=(1024, 1024), uv=True, normal=False, alpha_mode=None, mode="RGB", extents=(0.5, 0.5, 0.5)):
    mesh = trimesh.creation.box(extents=extents)
    mesh.apply_translation([0, extents[1] / 2, 0])
    img = Image.new(mode, size)
    mat = PBRMaterial(name="m", baseColorTexture=img, normalTexture=Image.new("RGB", size) if normal else None, alphaMode=alpha_mode)
    mesh.visual = TextureVisuals(uv=np.zeros((len(mesh.vertices), 2)) if uv else None, material=mat)
    return mesh


def codes(findings, severity=None):
    return {f.code for f in findings if severity is None or f.severity == severity}


def test_textured_mesh_without_uvs_is_an_error():
    assert "commerce.missing_uvs" in codes(testing.run_check(MATERIALS, textured_box(uv=False), units=M), "error")


def test_normal_map_without_tangents_and_opaque_blend():
    found = codes(testing.run_check(MATERIALS, textured_box(normal=True, alpha_mode="BLEND"), units=M), "warning")
    assert {"commerce.normal_map_without_tangents", "commerce.alpha_mode"} <= found


def test_blend_with_real_transparency_is_fine():
    mesh = textured_box(alpha_mode="BLEND", mode="RGBA")
    mesh.visual.material.baseColorTexture.putpixel((0, 0), (0, 0, 0, 10))
    assert "commerce.alpha_mode" not in codes(testing.run_check(MATERIALS, mesh, units=M))


def test_base_color_texture_required_only_when_asked():
    mesh = trimesh.creation.box()
    mesh.visual = TextureVisuals(material=PBRMaterial(name="plain", baseColorFactor=[1, 0, 0, 1]))
    assert "commerce.missing_base_color_texture" not in codes(testing.run_check(MATERIALS, mesh, units=M))
    found = testing.run_check(MATERIALS, mesh, units=M, require_base_color_texture=True)
    assert [f.severity for f in found if f.code == "commerce.missing_base_color_texture"] == ["error"]


def _glb_view(materials, extensions=()):
    doc, bin_data = triangle_doc()
    doc["materials"] = materials
    doc["meshes"][0]["primitives"][0]["material"] = 0
    if extensions:
        doc["extensionsUsed"] = list(extensions)
    loaded = read_glb(SourceFile(name="m.glb", data=glb(doc, bin_data)), ReadLimits())
    return testing.view(loaded.scene, units=loaded.units, document=loaded.document, source_format="glb")


def test_spec_gloss_unlit_and_factors_from_the_gltf_json():
    view = _glb_view([{"pbrMetallicRoughness": {"metallicFactor": 2.0, "baseColorFactor": [1, 1, 1, -1]},
                       "extensions": {"KHR_materials_pbrSpecularGlossiness": {}, "KHR_materials_unlit": {}},
                       "alphaCutoff": 0.5}],
                     extensions=("KHR_materials_pbrSpecularGlossiness", "KHR_materials_unlit"))
    found = {f.code: f for f in testing.run_check(MATERIALS, view)}
    assert found["commerce.spec_gloss_material"].severity == "error"
    assert found["commerce.unlit_material"].severity == "warning"
    assert found["commerce.factor_out_of_range"].severity == "error" and found["commerce.factor_out_of_range"].count == 2
    assert found["commerce.alpha_mode"].severity == "warning"


@pytest.mark.parametrize("size,expected", [
    ((1024, 1024), set()),
    ((3000, 3000), {("commerce.texture_too_large", "warning"), ("commerce.texture_not_power_of_two", "error")}),
    ((8192, 8192), {("commerce.texture_too_large", "error")}),
    ((256, 256), {("commerce.texture_too_small", "warning")}),
])
def test_texture_budgets(size, expected):
    found = testing.run_check(BUDGETS, textured_box(size=size), units=M)
    assert {(f.code, str(f.severity)) for f in found if f.code.startswith("commerce.texture")} == expected


def test_triangle_and_draw_call_budgets():
    sphere = trimesh.creation.icosphere(subdivisions=6)  # 81920 triangles
    scene = trimesh.Scene()
    for i in range(3):
        scene.add_geometry(sphere, node_name=f"s{i}", geom_name="sphere", transform=trimesh.transformations.translation_matrix([i, 0, 0]))
    found = {f.code: f for f in testing.run_check(BUDGETS, scene, units=M, warn_draw_calls=2)}
    assert found["commerce.too_many_triangles"].severity == "error" and found["commerce.too_many_triangles"].measured == 3 * 81920
    assert found["commerce.too_many_draw_calls"].severity == "warning"


def test_file_size_and_texture_format_from_a_real_glb(corpus):
    path = corpus / "glb/glTF-Transform/DamagedHelmet.glb"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        source = read_source(path, ReadLimits())
        loaded = read_glb(source, ReadLimits())
    view = testing.view(loaded.scene, units=loaded.units, document=loaded.document, source=source, source_format="glb")
    found = {f.code: f for f in testing.run_check(BUDGETS, view, max_file_mb=3.0, image_formats=["image/png"])}
    assert found["commerce.file_too_large"].severity == "error" and found["commerce.file_too_large"].measured == pytest.approx(3.77, abs=0.01)
    assert found["commerce.texture_format"].severity == "error"  # DamagedHelmet's textures are JPEG


def test_300m_sofa_names_the_likely_unit():
    sofa = testing.box((2100.0, 850.0, 950.0))  # a sofa exported in millimetres, read as metres
    sofa.apply_translation([0, 425.0, 0])
    (f,) = [f for f in testing.run_check(SCALE, sofa, units=M) if f.code == "commerce.implausible_size"]
    assert f.severity == "error" and "likely unit mm" in f.message and f.measured == pytest.approx(2100.0)


def test_unitless_stl_in_millimetres(corpus):
    from meshforge.io.readers import all_readers

    reader = {r.format: r for r in all_readers()}["stl"]
    loaded = reader.read(read_source(corpus / "stl/trimesh/large_block.STL", ReadLimits()), ReadLimits())
    found = {f.code: f for f in testing.run_check(SCALE, loaded.scene, units=loaded.units)}
    # 4572 units long: 4.6 km as metres, so millimetres (4.572 m) are decided, said once, and not an error
    assumed = found["commerce.unit_assumed"]
    assert (assumed.severity, assumed.measured) == ("warning", "mm") and "states no unit" in assumed.message and "4.572 m" in assumed.message
    assert "commerce.implausible_size" not in found
    assert found["commerce.up_axis"].severity == "warning"


def test_dimensions_from_metadata():
    chair = testing.box((0.5, 0.9, 0.5))
    chair.apply_translation([0, 0.45, 0])
    ok = Inputs(id="sku", metadata={"width_m": 0.5, "height_m": 0.9, "depth_m": 0.5})
    assert "commerce.dimensions_mismatch" not in codes(testing.run_check(SCALE, testing.view(chair, units=M, inputs=ok)))
    wrong = Inputs(id="sku", metadata={"dimensions_mm": [0.5, 0.9, 0.5]})
    (f,) = [f for f in testing.run_check(SCALE, testing.view(chair, units=M, inputs=wrong)) if f.code == "commerce.dimensions_mismatch"]
    assert f.severity == "error" and "unit mm" in f.message


def test_origin_bottom_centre_and_root_transform():
    placed = testing.box((0.4, 0.4, 0.4))
    placed.apply_translation([0, 0.2, 0])
    assert not codes(testing.run_check(SCALE, placed, units=M))
    floating = testing.box((0.4, 0.4, 0.4))
    scene = trimesh.Scene()
    scene.add_geometry(floating, node_name="root", transform=trimesh.transformations.translation_matrix([0, 1.0, 0]))
    found = {f.code: f.severity for f in testing.run_check(SCALE, scene, units=M)}
    assert found == {"commerce.origin_not_bottom_center": "warning", "commerce.root_transform": "info"}


def test_a_part_placed_near_the_float64_limit_is_off_origin():
    """x = 1e308 + 0.4: the footprint centre must not overflow to inf (which read as "no finding")."""
    far = testing.box((0.4, 0.4, 0.4))
    far.apply_translation([1e308, 0.2, 0])
    (f,) = [f for f in testing.run_check(SCALE, far, units=M) if f.code == "commerce.origin_not_bottom_center"]
    assert f.measured[0] == pytest.approx(1e308)


def test_size_and_placement_ignore_non_finite_vertices():
    placed = testing.box((0.4, 0.4, 0.4))
    placed.apply_translation([0, 0.2, 0])
    vertices = np.vstack([placed.vertices, [[np.nan, 0, 0], [0, np.inf, 0], [0, 0, -np.inf]]])
    broken = trimesh.Trimesh(vertices=vertices, faces=placed.faces, process=False)
    assert not codes(testing.run_check(SCALE, broken, units=M))  # size 0.4 m, base centred at y = 0
    lo, hi = cc.finite_bounds(vertices)
    assert lo.tolist() == pytest.approx([-0.2, 0, -0.2]) and hi.tolist() == pytest.approx([0.2, 0.4, 0.2])
    assert cc.finite_bounds(np.full((2, 3), np.nan)) == (None, None)


def test_every_declared_code_is_documented():
    text = (Path(__file__).resolve().parents[1] / "docs" / "findings" / "commerce.md").read_text()
    documented = set(re.findall(r"`(commerce\.[a-z0-9_]+)`", text))
    declared = set(MATERIALS.codes) | set(BUDGETS.codes) | set(SCALE.codes)
    assert declared <= documented, sorted(declared - documented)


def test_the_steps_are_registered_under_the_names_the_profile_uses():
    assert [s.name for s in (MATERIALS, BUDGETS, SCALE)] == ["commerce.materials", "commerce.budgets", "commerce.scale"]


def test_a_repaired_asset_s_size_budget_is_judged_on_the_glb_it_is_written_as(tmp_path):
    """After a repair the input file says nothing about what the storefront receives: the budget
    measures the GLB the scene is written as, and the writer writes those very bytes."""
    from meshforge import Engine

    noise = np.random.default_rng(7).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)  # not POT: textures repairs
    mesh = textured_box()
    mesh.visual.material.baseColorTexture = Image.fromarray(noise)
    src = tmp_path / "noisy.glb"
    src.write_bytes(trimesh.Scene(mesh).export(file_type="glb"))
    engine = Engine("ecommerce-glb", overrides=["budgets.warn_file_mb=0.2"], entry_points=False)
    report = engine.run(src, out_dir=tmp_path / "out")
    assert next(s for s in report.steps if s.step_id == "textures").outcome == "ok"
    (finding,) = [f for f in report.findings if f.code == "commerce.file_too_large"]
    written = (tmp_path / "out" / "noisy.glb").stat().st_size
    assert finding.measured == round(written / 1e6, 3) and "GLB size" in finding.message
    assert finding.measured != round(src.stat().st_size / 1e6, 3)
