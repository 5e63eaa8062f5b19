"""One unit per asset: what commerce.scale reports is what commerce.to_metres converts and the GLB holds.

The bug this guards: for a unit-less OBJ the scale check read metres, commerce.to_metres (when it ran)
assumed millimetres, and the GLB writer assumed millimetres too, so fuze.obj passed as a 0.215 m bottle
and was written 0.215 mm tall. And a 95 mm mug exported in millimetres came out 0.95 m (centimetres won
a tie between plausible units).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pygltflib
import pytest
import trimesh
from PIL import Image

from meshforge import Engine, testing
from meshforge.asset import Inputs
from meshforge.builtin.repair import commerce as repair_commerce
from meshforge.builtin.validate import commerce as validate_commerce
from meshforge.types import Units

ROOT = Path(__file__).resolve().parents[1]
MUG = ROOT / "samples" / "mug-mm.glb"
SCALE = {s.name: s for s in validate_commerce.meshforge_validate_steps()}["commerce.scale"]
TO_METRES = {s.name: s for s in repair_commerce.meshforge_repair_steps()}["commerce.to_metres"]
UNITLESS = Units(None, "+Y")  # what the OBJ reader stamps

# corpus OBJs (no unit in the format) and their largest extent in the file's numbers
OBJS = {"trimesh/fuze.obj": 0.215128, "trimesh/box.obj": 2.0, "trimesh/capsule.obj": 3.0, "pmp/suzanne.obj": 2.734375,
        "trimesh/chair_model.obj": 0.663756}
PROFILES = ("ecommerce-glb", "web-modelviewer-glb", "arkit-usdz")


@pytest.fixture(scope="module")
def engines() -> dict[str, Engine]:
    return {name: Engine(name, entry_points=False) for name in PROFILES}


def glb_extents(path: Path) -> np.ndarray:
    """POSITION accessor min/max over every primitive: the numbers a viewer reads (Draco files keep them too)."""
    gltf = pygltflib.GLTF2().load_binary(str(path))
    accessors = [gltf.accessors[p.attributes.POSITION] for m in gltf.meshes for p in m.primitives]
    return np.max([a.max for a in accessors], axis=0) - np.min([a.min for a in accessors], axis=0)


def report_extents(report) -> np.ndarray:
    lo, hi = report.metrics.bounds
    return np.subtract(hi, lo)


def usdz_extents(path: Path) -> np.ndarray:
    pxr = pytest.importorskip("pxr")
    stage = pxr.Usd.Stage.Open(str(path))
    cache = pxr.UsdGeom.BBoxCache(pxr.Usd.TimeCode.Default(), [pxr.UsdGeom.Tokens.default_])
    size = cache.ComputeWorldBound(stage.GetPseudoRoot()).ComputeAlignedRange().GetSize()
    return np.array(size) * pxr.UsdGeom.GetStageMetersPerUnit(stage)


@pytest.mark.parametrize("profile", PROFILES)
@pytest.mark.parametrize("rel", sorted(OBJS))
def test_corpus_obj_glb_holds_the_reported_size(engines, corpus, tmp_path, profile, rel):
    report = engines[profile].run(corpus / "obj" / rel, out_dir=tmp_path)
    (glb,) = [Path(o.path) for o in report.outputs if o.format == "glb"]
    reported = report_extents(report)
    assert reported.max() == pytest.approx(OBJS[rel], rel=1e-5)  # read as metres: plausible (1 cm..10 m), m comes first
    # Draco (web-modelviewer-glb) quantises positions to 14 bits of the extent
    tolerance = reported.max() * 2.0**-13 if profile == "web-modelviewer-glb" else 1e-6
    assert glb_extents(glb) == pytest.approx(reported, abs=tolerance)
    if profile == "arkit-usdz":
        (usdz,) = [Path(o.path) for o in report.outputs if o.format == "usdz"]
        assert usdz_extents(usdz) == pytest.approx(reported, abs=1e-6)
    # the decision was reported, and the report's figures are in metres, not in "no unit"
    (assumed,) = [f for f in report.initial_findings if f.code == "commerce.unit_assumed"]
    assert assumed.measured == "m" and "states no unit" in assumed.message
    assert report.metrics.units == "m"


def test_glb_writer_without_to_metres_decides_the_same_unit(corpus, tmp_path):
    # a chain with no scale check and no repair: the writer alone still reads fuze.obj as metres
    engine = Engine({"name": "bare", "chain": {"generate": ["import"], "export": ["glb"]}}, entry_points=False)
    report = engine.run(corpus / "obj/trimesh/fuze.obj", out_dir=tmp_path)
    (glb,) = [Path(o.path) for o in report.outputs]
    assert glb_extents(glb) == pytest.approx([0.072612, 0.073514, 0.215128], abs=1e-6)


@pytest.mark.parametrize(("largest", "unit"), [(0.047, "m"), (2.0, "m"), (10.0, "m"), (15.0, "mm"), (95.0, "mm"), (4572.0, "mm")])
def test_scale_finding_and_to_metres_agree(largest, unit):
    box = testing.box((largest, largest / 2, largest / 3))
    found = {f.code: f for f in testing.run_check(SCALE, box, units=UNITLESS)}
    assert found["commerce.unit_assumed"].measured == unit and "commerce.implausible_size" not in found
    result = testing.run_repair(TO_METRES, box, units=UNITLESS)
    assert result.details["from_unit"] == unit and result.units == Units("m", "+Y")
    converted = result.scene.extents if result.scene is not None else box.extents
    assert float(np.max(converted)) == pytest.approx(largest * {"m": 1.0, "mm": 0.001}[unit])


def test_readme_mug_is_95_mm_tall_and_stands_on_the_floor(engines, tmp_path):
    report = engines["ecommerce-glb"].run(MUG, out_dir=tmp_path)
    (glb,) = [Path(o.path) for o in report.outputs if o.format == "glb"]
    (size,) = [f for f in report.initial_findings if f.code == "commerce.implausible_size"]
    assert size.measured == pytest.approx(95.0) and "likely unit mm" in size.message
    bounds = trimesh.load_scene(glb).bounds
    assert bounds.ravel() == pytest.approx([-0.040, 0.0, -0.040, 0.040, 0.095, 0.040], abs=1e-6)
    assert glb_extents(glb) == pytest.approx(report_extents(report), abs=1e-6)


def test_storefront_tie_goes_to_millimetres_print_rule_unchanged():
    from meshforge.ops.units import STOREFRONT_PREFERENCE, decide_unit, likely_unit

    # 95 units read as metres: mm (95 mm), cm (0.95 m) and in (2.4 m) all fit 1 cm..10 m
    assert likely_unit(95.0, "m", (10.0, 10_000.0), prefer=STOREFRONT_PREFERENCE) == "mm"
    assert likely_unit(95.0, "m", (10.0, 10_000.0)) == "cm"  # the print checks' geometric-middle rule, kept
    decision = decide_unit([80.0, 95.0, 80.0], "m")
    assert (decision.unit, decision.source) == ("mm", "size")


def maya_figure() -> trimesh.Trimesh:
    """A 180-unit-tall figure from a centimetre tool: by size alone it reads as a 180 mm figurine."""
    figure = testing.box((40.0, 180.0, 30.0))
    figure.apply_translation([0, 90.0, 0])
    return figure


def test_product_dimensions_decide_the_unit(tmp_path):
    src = tmp_path / "figure.obj"
    src.write_text(maya_figure().export(file_type="obj"))
    engine = Engine("ecommerce-glb", entry_points=False)
    plain = engine.run(src, out_dir=tmp_path / "plain")
    assert glb_extents(Path(plain.outputs[0].path)).max() == pytest.approx(0.180, abs=1e-6)
    sku = engine.run(src, out_dir=tmp_path / "sku", metadata={"height_m": 1.8})
    (glb,) = [Path(o.path) for o in sku.outputs if o.format == "glb"]
    assert glb_extents(glb) == pytest.approx([0.40, 1.80, 0.30], abs=1e-6)
    assert "commerce.dimensions_mismatch" not in [f.code for f in sku.findings]
    (assumed,) = [f for f in sku.initial_findings if f.code == "commerce.unit_assumed"]
    assert (assumed.measured, assumed.severity) == ("cm", "info") and "product's dimensions" in assumed.message


def z_up_mug() -> trimesh.Trimesh:
    """The old README sample: 95 mm along z, which a glTF reader takes for depth (lying on its side)."""
    mug = trimesh.creation.cylinder(radius=40.0, height=95.0, sections=64)
    mug.apply_translation((0, 0, 47.5))
    return mug


def test_z_up_glb_is_only_seen_through_the_product_height():
    metres = Units("m", "+Y")  # a GLB states metres and +Y up whatever the exporter did
    without = {f.code for f in testing.run_check(SCALE, z_up_mug(), units=metres)}
    assert "commerce.up_axis" not in without and "commerce.dimensions_mismatch" not in without  # nothing to see
    view = testing.view(z_up_mug(), units=metres, inputs=Inputs(id="mug", metadata={"dimensions_mm": [80, 95, 80]}))
    found = {f.code: f for f in testing.run_check(SCALE, view)}
    # the dimensions pick millimetres (the unit), then show height and depth traded places
    assert "likely unit mm" in found["commerce.implausible_size"].message
    mismatch = found["commerce.dimensions_mismatch"]
    assert "height and depth are swapped" in mismatch.message
    assert mismatch.measured == pytest.approx([0.080, 0.080, 0.095], abs=1e-6)


def test_shipped_mug_sample_is_y_up():
    # the shipped mug is what samples/make_samples.py writes: +Y up, 95 units tall, 300x200 texture
    gltf = pygltflib.GLTF2().load_binary(str(MUG))
    (prim,) = [p for m in gltf.meshes for p in m.primitives]
    accessor = gltf.accessors[prim.attributes.POSITION]
    assert np.subtract(accessor.max, accessor.min) == pytest.approx([80.0, 95.0, 80.0])
    (image,) = gltf.images
    view = gltf.bufferViews[image.bufferView]
    data = gltf.binary_blob()[view.byteOffset or 0:(view.byteOffset or 0) + view.byteLength]
    assert Image.open(io.BytesIO(data)).size == (300, 200)


def test_a_widened_size_window_is_the_one_every_step_reads(tmp_path):
    """--set scale.max_size_m=50: the scale check read a 20-unit box as 20 m while to_metres kept
    its own 10 m window, guessed mm and shipped a 2 cm box."""
    import pygltflib

    from meshforge import Engine, testing

    src = tmp_path / "box20.stl"
    src.write_bytes(testing.cube(20.0).export(file_type="stl"))
    report = Engine("ecommerce-glb", overrides=["scale.max_size_m=50"], entry_points=False).run(src, out_dir=tmp_path / "out")
    assumed = next(f for f in report.findings + report.initial_findings if f.code == "commerce.unit_assumed")
    assert assumed.measured == "m"
    lo, hi = report.metrics.bounds
    assert max(h - l for l, h in zip(lo, hi)) == pytest.approx(20.0)
    gltf = pygltflib.GLTF2().load_binary(str(tmp_path / "out" / "box20.glb"))
    position = gltf.accessors[gltf.meshes[0].primitives[0].attributes.POSITION]
    assert max(h - l for l, h in zip(position.min, position.max)) == pytest.approx(20.0, rel=1e-5)


def test_the_size_budget_measures_the_glb_with_the_export_s_compression(tmp_path):
    """web-modelviewer-glb writes Draco: measuring an uncompressed GLB warned 6.9 MB for a 0.18 MB file."""
    import trimesh

    from meshforge import Engine

    sphere = trimesh.creation.icosphere(subdivisions=6, radius=0.2)
    src = tmp_path / "ball.obj"
    src.write_text(trimesh.exchange.obj.export_obj(sphere, include_normals=False))
    report = Engine("web-modelviewer-glb", overrides=["budgets.warn_file_mb=0.001"], entry_points=False).run(src, out_dir=tmp_path / "out")
    (finding,) = [f for f in report.findings if f.code == "commerce.file_too_large"]
    written = (tmp_path / "out" / "ball.glb").stat().st_size
    assert finding.measured == round(written / 1e6, 3)
