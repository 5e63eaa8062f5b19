"""commerce.content (extension allow-list, scene content, names) and commerce.base_color_range, on
constructed GLBs read by meshforge's own reader, and through the storefront profiles."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh
from PIL import Image
from trimesh.visual import TextureVisuals
from trimesh.visual.material import PBRMaterial

from meshforge import Engine, testing
from meshforge.builtin.validate import content
from meshforge.io.gltf import read_glb
from meshforge.types import ReadLimits, SourceFile, Units
from tests.gltf_make import glb, triangle_doc

CONTENT, BASE_COLOR = content.meshforge_validate_steps()
M = Units("m", "+Y")


def glb_view(**extra):
    doc, bin_data = triangle_doc(**extra)
    loaded = read_glb(SourceFile(name="m.glb", data=glb(doc, bin_data)), ReadLimits())
    return testing.view(loaded.scene, units=loaded.units, document=loaded.document, source_format="glb")


def by_code(findings):
    out: dict[str, list] = {}
    for f in findings:
        out.setdefault(f.code, []).append(f)
    return out


def test_a_plain_glb_has_nothing_to_say():
    assert (CONTENT.name, BASE_COLOR.name) == ("commerce.content", "commerce.base_color_range")
    assert testing.run_check(CONTENT, glb_view()) == []


def test_required_extension_off_the_list_is_an_error_optional_a_warning():
    view = glb_view(extensionsUsed=["KHR_materials_sheen", "EXT_foo_bar", "KHR_texture_basisu"],
                    extensionsRequired=["KHR_texture_basisu"])
    found = by_code(testing.run_check(CONTENT, view))["commerce.extension_not_allowed"]
    assert [(f.severity, f.measured) for f in found] == [("error", ["KHR_texture_basisu"]), ("warning", ["EXT_foo_bar"])]
    # the web profile's list allows KTX2; "*" allows anything
    web = list(content.STOREFRONT_EXTENSIONS) + ["KHR_texture_basisu"]
    found = by_code(testing.run_check(CONTENT, view, allowed_extensions=web))["commerce.extension_not_allowed"]
    assert [(f.severity, f.measured) for f in found] == [("warning", ["EXT_foo_bar"])]
    assert testing.run_check(CONTENT, view, allowed_extensions=["*"]) == []


def test_cameras_lights_animations_are_counted_at_the_profile_severity():
    view = glb_view(cameras=[{"type": "perspective", "perspective": {"yfov": 1.0, "znear": 0.1}}] * 2,
                    extensions={"KHR_lights_punctual": {"lights": [{"type": "point"}]}},
                    extensionsUsed=["KHR_lights_punctual"])
    (f,) = by_code(testing.run_check(CONTENT, view, allowed_extensions=["*"]))["commerce.scene_content"]
    assert (f.severity, f.count, f.measured) == ("warning", 3, ["2 cameras", "1 lights"])
    (f,) = by_code(testing.run_check(CONTENT, view, allowed_extensions=["*"], scene_content="error"))["commerce.scene_content"]
    assert f.severity == "error"
    assert testing.run_check(CONTENT, view, allowed_extensions=["*"], scene_content="off") == []


def test_names_outside_the_convention_are_info():
    view = glb_view(nodes=[{"mesh": 0, "name": "Chair Leg"}], materials=[{"name": "oak_wood"}, {"name": "2nd"}])
    (f,) = by_code(testing.run_check(CONTENT, view))["commerce.naming"]
    assert (f.severity, f.count) == ("info", 2)
    assert "/nodes/0 'Chair Leg'" in f.message and "/materials/1 '2nd'" in f.message and "oak_wood" not in f.message
    assert testing.run_check(CONTENT, view, check_names=False) == []


def test_content_is_not_judged_on_a_scene_without_its_document():
    assert testing.run_check(CONTENT, testing.cube(), units=M) == []


def textured(color=None, size=(64, 64), pixels=None, mode="RGB"):
    mesh = trimesh.creation.box(extents=(0.5, 0.5, 0.5))
    img = Image.new(mode, size, color) if pixels is None else Image.fromarray(pixels)
    mesh.visual = TextureVisuals(uv=np.zeros((len(mesh.vertices), 2)), material=PBRMaterial(name="m", baseColorTexture=img))
    return mesh


def test_base_color_outside_plausible_albedo_warns():
    assert testing.run_check(BASE_COLOR, textured((128, 100, 90)), units=M) == []
    (f,) = testing.run_check(BASE_COLOR, textured((0, 0, 0)), units=M)
    assert (f.code, f.severity, f.measured, f.count) == ("commerce.base_color_range", "warning", 1.0, 1)
    (f,) = testing.run_check(BASE_COLOR, textured((255, 255, 255)), units=M)
    assert f.measured == 1.0
    # 2 % of the texels pure black: over the 1 % allowance; 0.5 % is not
    pixels = np.full((100, 100, 3), 128, dtype=np.uint8)
    pixels[:2] = 0
    (f,) = testing.run_check(BASE_COLOR, textured(pixels=pixels), units=M)
    assert f.measured == pytest.approx(0.02)
    pixels[1:2] = 128
    pixels[0, 50:] = 128
    assert testing.run_check(BASE_COLOR, textured(pixels=pixels), units=M) == []


def test_transparent_texels_do_not_count_and_big_textures_are_sampled():
    pixels = np.zeros((64, 64, 4), dtype=np.uint8)
    pixels[:, :, :3] = 128
    pixels[:32, :, 3] = 255  # half opaque grey, half fully transparent black
    assert testing.run_check(BASE_COLOR, textured(pixels=pixels), units=M) == []
    big = np.full((2048, 2048, 3), 128, dtype=np.uint8)
    big[:, :1024] = 250  # too bright on the left half
    (f,) = testing.run_check(BASE_COLOR, textured(pixels=big), units=M, max_pixels=4096)
    assert f.measured == pytest.approx(0.5)


def _glb_bytes(mesh) -> bytes:
    return trimesh.Scene(mesh).export(file_type="glb")


def test_storefront_profile_rejects_a_draco_file_that_the_web_profile_accepts(tmp_path):
    dracopy = pytest.importorskip("DracoPy")  # noqa: F841
    src = tmp_path / "chair.glb"
    src.write_bytes(_glb_bytes(textured((128, 100, 90))))
    out = tmp_path / "web"
    report = Engine("web-modelviewer-glb").run(src, out_dir=out)
    draco = next(out.glob("*.glb"))
    assert b"KHR_draco_mesh_compression" in draco.read_bytes()[:4096]
    web = Engine("web-modelviewer-glb").validate(draco)
    assert "commerce.extension_not_allowed" not in {f.code for f in web.findings}
    store = Engine("ecommerce-glb").validate(draco)
    (f,) = [f for f in store.findings if f.code == "commerce.extension_not_allowed"]
    assert (f.severity, f.measured) == ("error", ["EXT_texture_webp", "KHR_draco_mesh_compression"])
    assert report.status.value == "pass"


def test_storefront_run_on_a_draco_file_writes_an_accepted_glb(tmp_path):
    pytest.importorskip("DracoPy")
    src = tmp_path / "chair.glb"
    src.write_bytes(_glb_bytes(textured((128, 100, 90))))
    Engine("web-modelviewer-glb").run(src, out_dir=tmp_path / "web")
    draco = next((tmp_path / "web").glob("*.glb"))
    report = Engine("ecommerce-glb").run(draco, out_dir=tmp_path / "store")
    plain = next((tmp_path / "store").glob("*.glb"))
    head = plain.read_bytes()[:4096]
    assert b"KHR_draco_mesh_compression" not in head and b"EXT_texture_webp" not in head
    again = Engine("ecommerce-glb").validate(plain)
    assert "commerce.extension_not_allowed" not in {f.code for f in again.findings}
    assert report.status.value == "pass", [f.to_dict() for f in report.findings if f.is_error]



def test_conventional_names():
    from meshforge.ops.naming import conventional, is_conventional

    assert conventional("Chair Leg.001", "node") == "chair_leg_001"
    assert conventional("2nd", "material") == "material_2nd"
    assert conventional("geometry_0/geometry_0", "node") == "geometry_0_geometry_0"
    assert conventional("  ", "mesh") == "mesh"
    assert all(is_conventional(conventional(n, "node")) for n in ("Ä Ö", "__x", "-1", "ok-name_2"))


def test_our_glb_writer_writes_conventional_names(tmp_path):
    scene = trimesh.Scene()
    mesh = textured((128, 100, 90))
    mesh.visual.material.name = "Oak Wood"
    scene.add_geometry(mesh, geom_name="Chair Leg", node_name="Chair Leg.001")
    src = tmp_path / "chair.glb"
    src.write_bytes(scene.export(file_type="glb"))
    assert "commerce.naming" in {f.code for f in Engine("ecommerce-glb").validate(src).findings}
    Engine("ecommerce-glb").run(src, out_dir=tmp_path / "out")
    out = next((tmp_path / "out").glob("*.glb"))
    report = Engine("ecommerce-glb").validate(out)
    assert "commerce.naming" not in {f.code for f in report.findings}
    loaded = read_glb(SourceFile(name=out.name, data=out.read_bytes()), ReadLimits())
    names = [m.get("name") for m in loaded.document.json["materials"]] + [n.get("name") for n in loaded.document.json["nodes"]]
    assert "oak_wood" in names and any(n and n.startswith("chair_leg") for n in names)


@pytest.mark.parametrize("extra", [
    {"extensionsUsed": {"KHR_x": 1}, "extensionsRequired": "KHR_y"},
    {"extensionsUsed": [1, None, "EXT_ok"], "extensionsRequired": [["nested"]]},
    {"cameras": {"not": "a list"}, "animations": "many", "skins": [None]},
    {"extensions": {"KHR_lights_punctual": "lights"}},
    {"extensions": {"KHR_lights_punctual": {"lights": {"a": 1}}}},
    {"extensions": ["not a dict"]},
    {"materials": [{"name": 7}, {"name": None}]},
    {"scenes": [{"nodes": [0], "name": 5}], "images": "x"},
    {"skins": {"a": 1}, "animations": [None, 3]},
])
def test_hostile_document_values_are_reported_not_raised(extra):
    """Malformed values the reader tolerated must not crash the content step (what they are is the
    structure check's business)."""
    findings = testing.run_check(CONTENT, glb_view(**extra))  # the reader accepts each of these
    assert all(f.code.startswith("commerce.") for f in findings)
