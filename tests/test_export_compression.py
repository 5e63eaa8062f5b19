"""GLB output compression and textures: Draco and meshopt geometry, WebP textures, images embedded as
they were encoded. The Khronos glTF-Validator is the referee for structure; meshforge's own reader
decodes every payload again, so the geometry itself is checked too (the validator cannot decode them)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from referees import gltf_errors, gltf_validator
from test_export_glb import export_corpus_glb, gltf_rows, only_glb

from meshforge import Engine
from meshforge.io.glb_container import join_glb, split_glb
from meshforge.io.gltf import read_document, read_glb
from meshforge.io.source import read_source
from meshforge.report import Status
from meshforge.types import ReadLimits

ROOT = Path(__file__).resolve().parents[1]
TRUCK = "glb/trimesh/CesiumMilkTruck.glb"  # 3,624 triangles, textured, several primitives
SPHERE = "glb/glTF-Transform/DenseSphere.glb"  # Draco input, 30,720 triangles
BOX = "glb/trimesh/BoxTextured.glb"  # one 256 px PNG texture


def engine_for(compression: str, **textures) -> Engine:
    overrides = {"glb.compression": compression}
    overrides.update({f"textures.{k}": v for k, v in textures.items()})
    return Engine("ecommerce-glb", overrides=overrides, entry_points=False)


@pytest.fixture(scope="module")
def engines() -> dict[str, Engine]:
    return {c: engine_for(c) for c in ("none", "draco", "meshopt")}


def export(engine: Engine, src: Path, out: Path) -> Path:
    report = engine.run(src, out_dir=out)
    assert report.status is Status.PASS, [(f.code, f.message) for f in report.findings if f.severity == "error"]
    return only_glb(report)


def read_back(path: Path):
    loaded = read_glb(read_source(path, ReadLimits()), ReadLimits())
    errors = [(i.code, i.message) for i in loaded.document.issues if i.severity == "error"]
    assert errors == []
    return loaded


def meshes(loaded) -> list:
    scene = loaded.scene
    return [scene.geometry[name] for name in sorted(scene.geometry)]


def tree_of(path: Path) -> dict:
    return split_glb(path.read_bytes())[0]


def image_payloads(path: Path) -> list[tuple[str, bytes]]:
    tree, binary = split_glb(path.read_bytes())
    out = []
    for image in tree.get("images", []):
        view = tree["bufferViews"][image["bufferView"]]
        start = view.get("byteOffset", 0)
        out.append((image["mimeType"], bytes(binary[start:start + view["byteLength"]])))
    return out


@pytest.mark.referee
@pytest.mark.parametrize("rel", [TRUCK, SPHERE])
def test_meshopt_output_is_valid_smaller_and_lossless(engines, corpus, tmp_path, rel):
    plain = export(engines["none"], corpus / rel, tmp_path / "none")
    packed = export(engines["meshopt"], corpus / rel, tmp_path / "meshopt")
    assert gltf_errors(gltf_validator(packed)) == []
    tree = tree_of(packed)
    assert "EXT_meshopt_compression" in tree["extensionsRequired"]
    assert tree["buffers"][1]["extensions"]["EXT_meshopt_compression"] == {"fallback": True}
    assert packed.stat().st_size < plain.stat().st_size
    # lossless: the decoded file holds exactly the arrays of the uncompressed one, in the same order
    # (the index codec may start a triangle at another corner; the winding is kept)
    for a, b in zip(meshes(read_back(plain)), meshes(read_back(packed)), strict=True):
        assert np.array_equal(a.vertices, b.vertices)
        assert np.array_equal(getattr(a.visual, "uv", None), getattr(b.visual, "uv", None))
        assert np.array_equal(canonical(a.faces), canonical(b.faces))


def canonical(faces: np.ndarray) -> np.ndarray:
    """Each triangle rotated to start at its smallest index (same winding)."""
    shift = np.argmin(faces, axis=1)
    return faces[np.arange(len(faces))[:, None], (shift[:, None] + np.arange(3)) % 3]


@pytest.mark.referee
@pytest.mark.parametrize("rel", [TRUCK, SPHERE])
def test_draco_output_is_valid_smaller_and_within_quantization(engines, corpus, tmp_path, rel):
    plain = export(engines["none"], corpus / rel, tmp_path / "none")
    packed = export(engines["draco"], corpus / rel, tmp_path / "draco")
    assert gltf_errors(gltf_validator(packed)) == []
    tree = tree_of(packed)
    assert "KHR_draco_mesh_compression" in tree["extensionsRequired"]
    prims = [p for m in tree["meshes"] for p in m["primitives"]]
    assert all("KHR_draco_mesh_compression" in p["extensions"] for p in prims)
    # nothing uncompressed is left behind: every view is the Draco payload or an image
    assert len(tree["bufferViews"]) == len(prims) + len(tree.get("images", []))
    assert packed.stat().st_size < plain.stat().st_size
    for a, b in zip(meshes(read_back(plain)), meshes(read_back(packed)), strict=True):
        assert len(a.faces) == len(b.faces)
        step = a.extents.max() / 2**14  # 14-bit positions
        assert np.allclose(a.bounds, b.bounds, atol=step * 1.01)
        assert np.isclose(a.area, b.area, rtol=1e-3)
        # winding kept: the enclosed volume keeps its sign and size
        assert np.isclose(a.volume, b.volume, rtol=1e-2, atol=1e-9)


def test_draco_cuts_geometry_bytes_by_connectivity_coding(tmp_path):
    # a 20k-triangle textured sphere: trimesh's order-preserving Draco keeps ~40 % of the bytes;
    # with the connectivity coder and quantized normals/UVs it must be well under 20 %
    import trimesh

    from meshforge.io.gltf_write import glb_bytes

    mesh = trimesh.creation.uv_sphere(radius=0.2, count=[100, 100])
    uv = (mesh.vertices[:, :2] - mesh.vertices[:, :2].min(axis=0)) / np.ptp(mesh.vertices[:, :2], axis=0)
    mesh.visual = trimesh.visual.TextureVisuals(uv=uv)
    plain = glb_bytes(trimesh.Scene(mesh))
    packed = glb_bytes(trimesh.Scene(mesh), compression="draco")
    assert len(packed) < 0.2 * len(plain)
    (tmp_path / "s.glb").write_bytes(packed)
    (back,) = meshes(read_back(tmp_path / "s.glb"))
    assert len(back.faces) == len(mesh.faces)


@pytest.mark.referee
def test_gltfpack_meshopt_file_is_decoded_exactly(engines, corpus, tmp_path):
    # a third party's meshopt file (gltfpack, lossless: -noq) reads back as the geometry it was made from
    gltfpack = ROOT / "node_modules" / ".bin" / "gltfpack"
    if not gltfpack.exists():
        pytest.skip("gltfpack is installed by `npm ci` (scripts/setup.sh)")
    plain = export(engines["none"], corpus / TRUCK, tmp_path / "none")
    packed = tmp_path / "gltfpack.glb"
    subprocess.run([str(gltfpack), "-i", str(plain), "-o", str(packed), "-cc", "-noq", "-kn", "-km"],
                   check=True, capture_output=True, timeout=120)
    assert "EXT_meshopt_compression" in tree_of(packed)["extensionsUsed"]

    def triangles(loaded) -> np.ndarray:
        """Every triangle as 9 numbers, started at its lowest corner (either tool may rotate it), sorted."""
        world = loaded.scene.dump()  # instances placed: the tools may instance differently
        corners = np.concatenate([m.vertices[m.faces] for m in world]).round(6)
        rank = np.argsort(np.lexsort(corners.reshape(-1, 3).T[::-1])).reshape(-1, 3)
        start = np.argmin(rank, axis=1)
        rows = corners[np.arange(len(corners))[:, None], (start[:, None] + np.arange(3)) % 3].reshape(-1, 9)
        return rows[np.lexsort(rows.T[::-1])]

    assert np.allclose(triangles(read_back(plain)), triangles(read_back(packed)), atol=1e-6)


def test_meshopt_filter_on_an_impossible_stride_is_an_error_not_a_crash(engines, corpus, tmp_path):
    # the C filters assert (abort the process) on strides they do not define; the reader must refuse first
    packed = export(engines["meshopt"], corpus / BOX, tmp_path / "meshopt")
    tree, binary = split_glb(packed.read_bytes())
    view = next(v for v in tree["bufferViews"] if v.get("extensions", {}).get("EXT_meshopt_compression", {}).get("byteStride") == 12)
    view["extensions"]["EXT_meshopt_compression"]["filter"] = "OCTAHEDRAL"
    hostile = tmp_path / "hostile.glb"
    hostile.write_bytes(join_glb(tree, binary))
    doc = read_document(read_source(hostile, ReadLimits()))
    assert "compressed_geometry" in {i.code for i in doc.issues if i.severity == "error"}


def test_untouched_texture_is_embedded_byte_for_byte(engines, corpus, tmp_path):
    # trimesh would encode every image again (JPEG at quality 75); an image no step changed keeps its bytes
    source = image_payloads(corpus / BOX)
    out = image_payloads(export(engines["none"], corpus / BOX, tmp_path))
    assert out == source


def test_prepared_jpeg_keeps_the_quality_it_was_encoded_with(corpus, tmp_path):
    engine = engine_for("none", always=True, jpeg_quality=95)
    (mime, data), = image_payloads(export(engine, corpus / BOX, tmp_path))
    assert mime == "image/jpeg"
    embedded = Image.open(io.BytesIO(data))
    reference = io.BytesIO()
    embedded.convert("RGB").save(reference, format="JPEG", quality=95)
    assert embedded.quantization == Image.open(reference).quantization  # q95 tables, not Pillow's default q75


def test_an_image_shared_by_two_materials_is_stored_once(tmp_path):
    import trimesh

    from meshforge.io.gltf_write import glb_bytes

    texture = Image.fromarray(np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3))
    parts = []
    for colour in ((1.0, 0.0, 0.0, 1.0), (0.0, 1.0, 0.0, 1.0)):
        box = trimesh.creation.box()
        material = trimesh.visual.material.PBRMaterial(baseColorTexture=texture, baseColorFactor=colour)
        box.visual = trimesh.visual.TextureVisuals(uv=np.random.default_rng(1).random((len(box.vertices), 2)), material=material)
        parts.append(box)
    path = tmp_path / "shared.glb"
    path.write_bytes(glb_bytes(trimesh.Scene(parts)))
    tree = tree_of(path)
    assert len(tree["materials"]) == 2 and len(tree["images"]) == 1 and len(tree["textures"]) == 1
    assert {m["pbrMetallicRoughness"]["baseColorTexture"]["index"] for m in tree["materials"]} == {0}
    assert gltf_errors(gltf_validator(path)) == []


@pytest.mark.referee
def test_web_modelviewer_profile_writes_draco_and_webp_that_validate(corpus, tmp_path):
    engine = Engine("web-modelviewer-glb", entry_points=False)
    glb = export(engine, corpus / TRUCK, tmp_path)
    tree = tree_of(glb)
    assert {"KHR_draco_mesh_compression", "EXT_texture_webp"} <= set(tree["extensionsRequired"])
    assert {mime for mime, _ in image_payloads(glb)} == {"image/webp"}
    assert all("source" not in t and "EXT_texture_webp" in t["extensions"] for t in tree["textures"])
    assert gltf_errors(gltf_validator(glb)) == []
    # meshforge's own validation of what it wrote, with the same profile, from the command line
    done = subprocess.run([sys.executable, "-m", "meshforge", "validate", "--profile", "web-modelviewer-glb", str(glb), "--json"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    (asset,) = json.loads(done.stdout)["assets"]
    assert [f for f in asset["findings"] if f["severity"] == "error"] == []


def test_profile_listing_shows_list_values(tmp_path):
    # rich markup swallowed "[...]" values: the listing must print the allowed formats
    done = subprocess.run([sys.executable, "-m", "meshforge", "profiles", "show", "web-modelviewer-glb"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    assert "image/webp" in done.stdout



@pytest.fixture(scope="module")
def web_engine() -> Engine:
    return Engine("web-modelviewer-glb", overrides={"decimate.target_triangles": 50_000}, entry_points=False)


@pytest.mark.referee
@pytest.mark.parametrize("rel", gltf_rows())
def test_every_corpus_model_exports_as_a_valid_compressed_glb(web_engine, corpus, tmp_path, rel):
    report, glb = export_corpus_glb(web_engine, corpus, rel, tmp_path)
    assert gltf_errors(gltf_validator(glb)) == []
    tree = tree_of(glb)
    assert "KHR_draco_mesh_compression" in tree["extensionsRequired"]
    assert all(mime == "image/webp" for mime, _ in image_payloads(glb))
    loaded = read_back(glb)  # every payload decodes, no structural error
    assert loaded.document.triangles == report.metrics.triangles
