"""``glb`` export: every GLB/glTF of the corpus that loads, through the commerce repairs, comes out as one
self-contained GLB the Khronos glTF-Validator accepts with zero errors, within the triangle and texture budgets."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pygltflib
import pytest
from conftest import manifest
from referees import gltf_errors, gltf_validator

from meshforge import Engine
from meshforge.errors import ProfileError
from meshforge.io.images import image_info
from meshforge.ops.decimate import have_meshoptimizer
from meshforge.ops.textures import is_pot
from meshforge.report import Status

MAX_PX = 1024  # below the profile's 2048 so the corpus's 2K maps get resized too
TARGET = 100_000
REPAIRS = ("commerce.to_metres", "commerce.normals", "commerce.decimate", "commerce.textures", "commerce.dedupe",
           "commerce.place_origin")


def commerce_profile() -> dict:
    steps = {name.replace(".", "_"): {"uses": name, "always": True} for name in REPAIRS}
    steps["commerce_decimate"]["target_triangles"] = TARGET
    steps["commerce_textures"]["max_px"] = MAX_PX
    return {"name": "test-commerce", "chain": {"generate": ["import"], "repair": list(steps), "export": ["glb"]},
            "steps": steps}


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine(commerce_profile(), entry_points=False)


def gltf_rows() -> list[str]:
    return [r["path"] for r in manifest()
            if r["format"] in ("glb", "gltf") and r["triangles"] not in ("", "0") and not r["known_defects"].startswith("INVALID")
            and "inf/NaN" not in r["known_defects"]]


def read_glb(path: Path) -> tuple[pygltflib.GLTF2, bytes]:
    gltf = pygltflib.GLTF2().load_binary(str(path))
    return gltf, gltf.binary_blob() or b""


def only_glb(report) -> Path:
    """The one GLB a run wrote (the steps in the assertion message when it is not exactly one)."""
    glbs = [Path(o.path) for o in report.outputs if o.format == "glb"]
    assert len(glbs) == 1, [(s.name, s.outcome, s.note) for s in report.steps]
    return glbs[0]


def export_corpus_glb(engine, corpus: Path, rel: str, out: Path):
    """(report, the one GLB written) for a corpus file; skips a file that does not load here."""
    report = engine.run(corpus / rel, out_dir=out)
    if report.status is Status.UNUSABLE:
        pytest.skip(f"{rel} does not load here: {report.findings[-1].message}")
    return report, only_glb(report)


def check_glb(path: Path) -> dict:
    """Our own assertions on a written GLB; returns the validator report."""
    data = path.read_bytes()
    assert data[:4] == b"glTF" and struct.unpack("<I", data[4:8])[0] == 2
    gltf, blob = read_glb(path)
    assert all(b.uri is None for b in gltf.buffers), "a GLB's buffer must be the BIN chunk"
    assert gltf.asset.version == "2.0"
    for image in gltf.images:
        assert image.uri is None and image.bufferView is not None, "textures must be embedded bufferViews"
        view = gltf.bufferViews[image.bufferView]
        info = image_info(blob[view.byteOffset or 0:(view.byteOffset or 0) + view.byteLength], "texture")
        assert info.format in ("PNG", "JPEG")
        assert is_pot(info.width) and is_pot(info.height) and max(info.width, info.height) <= MAX_PX, (info.width, info.height)
    for mesh in gltf.meshes:
        for prim in mesh.primitives:
            position = gltf.accessors[prim.attributes.POSITION]
            assert position.min is not None and position.max is not None
            assert prim.attributes.NORMAL is not None, "normals present"
    for material in gltf.materials:
        assert material.pbrMetallicRoughness is not None
    report = gltf_validator(path)
    assert gltf_errors(report) == [], report["issues"]["messages"][:5]
    return report


@pytest.mark.referee
@pytest.mark.parametrize("rel", gltf_rows())
def test_corpus_gltf_exports_valid_glb(engine, corpus, tmp_path, rel):
    report, glb = export_corpus_glb(engine, corpus, rel, tmp_path)
    validator = check_glb(glb)
    assert validator["info"]["totalTriangleCount"] <= TARGET
    gltf, _ = read_glb(glb)
    # origin at bottom centre, in metres: min Y = 0 within 1 cm (C17)
    assert report.metrics is not None and abs(report.metrics.bounds[0][1]) < 0.01


def test_nothing_finite_is_not_exported(engine, corpus, tmp_path):
    # every vertex of BoxWithInfinites has an infinite x: no valid GLB can hold it, so none is written
    report = engine.run(corpus / "glb/assimp/BoxWithInfinites.glb", out_dir=tmp_path)
    assert report.outputs == ()
    (record,) = [s for s in report.steps if s.name == "glb"]
    assert record.outcome == "failed" and "nothing drawable" in record.note
    assert "engine.step_failed" in [f.code for f in report.findings]


@pytest.mark.referee
def test_large_scene_is_decimated_to_budget(engine, corpus, tmp_path):
    report = engine.run(corpus / "glb/assimp/2CylinderEngine.glb", out_dir=tmp_path)
    (glb,) = [Path(o.path) for o in report.outputs]
    validator = check_glb(glb)
    assert 50_000 < validator["info"]["totalTriangleCount"] <= TARGET  # 121,496 drawn before
    (record,) = [s for s in report.steps if s.name == "commerce.decimate"]
    # meshoptimizer measured 1e-3 here; the fast_simplification fallback 1.6e-2
    limit = 0.01 if have_meshoptimizer() else 0.05
    assert record.details["hausdorff_fraction"] < limit


@pytest.mark.referee
@pytest.mark.parametrize("rel", ["stl/trimesh/20mm-xyz-cube.stl", "obj/trimesh/fuze.obj", "3mf/3mf-samples/sphere_logo.3mf"])
def test_other_formats_export_as_metres_y_up(engine, corpus, tmp_path, rel):
    report = engine.run(corpus / rel, out_dir=tmp_path)
    (glb,) = [Path(o.path) for o in report.outputs]
    check_glb(glb)
    gltf, blob = read_glb(glb)
    lo = np.min([gltf.accessors[p.attributes.POSITION].min for m in gltf.meshes for p in m.primitives], axis=0)
    hi = np.max([gltf.accessors[p.attributes.POSITION].max for m in gltf.meshes for p in m.primitives], axis=0)
    assert 0.005 < np.max(hi - lo) < 1.0  # millimetre parts became metres


def test_stl_z_height_becomes_y_height(engine, tmp_path):
    import trimesh

    tall = trimesh.creation.box(extents=(10.0, 20.0, 50.0))  # mm, 50 mm along +Z
    src = tmp_path / "tall.stl"
    src.write_bytes(tall.export(file_type="stl"))
    report = engine.run(src, out_dir=tmp_path / "out")
    (glb,) = [Path(o.path) for o in report.outputs]
    scene = trimesh.load_scene(glb)
    assert scene.extents == pytest.approx([0.010, 0.050, 0.020], abs=1e-6)
    assert scene.bounds[0][1] == pytest.approx(0.0, abs=1e-6)


def test_glb_step_converts_when_no_repair_ran(tmp_path):
    import trimesh

    engine = Engine({"name": "bare", "chain": {"generate": ["import"], "export": ["glb"]}}, entry_points=False)
    src = tmp_path / "box.stl"
    src.write_bytes(trimesh.creation.box(extents=(10.0, 20.0, 50.0)).export(file_type="stl"))
    report = engine.run(src, out_dir=tmp_path / "out")
    (glb,) = [Path(o.path) for o in report.outputs]
    assert trimesh.load_scene(glb).extents == pytest.approx([0.010, 0.050, 0.020], abs=1e-6)


@pytest.mark.referee
def test_ecommerce_profile_writes_a_valid_glb(corpus, tmp_path):
    try:
        engine = Engine("ecommerce-glb", entry_points=False)
    except ProfileError as exc:  # the profile's validate steps belong to other modules
        pytest.skip(f"ecommerce-glb does not resolve yet: {exc}")
    report = engine.run(corpus / "glb/glTF-Transform/DamagedHelmet.glb", out_dir=tmp_path)
    glbs = [Path(o.path) for o in report.outputs]
    assert glbs, [(s.name, s.outcome, s.note) for s in report.steps]
    assert gltf_errors(gltf_validator(glbs[0])) == []


def test_coordinates_glb_cannot_hold_are_named_not_a_json_error():
    import trimesh

    from meshforge.io.gltf_write import glb_bytes

    # finite as float64, inf as float32 (non-finite vertices are dropped earlier, as not drawable)
    mesh = trimesh.Trimesh(vertices=[[0, 0, 0], [1e39, 0, 0], [0, 1, 0]], faces=[[0, 1, 2]], process=False)
    with pytest.raises(ValueError) as err:
        glb_bytes(trimesh.Scene({"part": mesh}))
    assert "'part'" in str(err.value) and "32-bit floats glTF stores" in str(err.value)
    assert "JSON" not in str(err.value)
