"""Photo -> lithophane/relief: closed solids by construction, and sliceable STL end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from meshforge import Engine, testing
from meshforge.asset import Inputs
from meshforge.builtin.generate import relief
from meshforge.errors import InputError
from meshforge.ops.relief import boundary_ring, heightmap_solid

STEP = relief.meshforge_generate_steps()[0]
PHOTO = "obj/trimesh/fuze uv.jpg"


def generate(inputs, **params):
    p = testing.params_for(STEP, params)
    return STEP.generate(inputs, p, testing.step_context(STEP, p))


@pytest.mark.parametrize("shape", [(2, 2), (3, 7), (40, 25)])
def test_heightmap_solid_is_closed_outward_and_has_the_exact_volume(shape):
    rng = np.random.default_rng(1)
    h = 0.8 + 2.0 * rng.random(shape)
    v, f = heightmap_solid(h, 0.5)
    mesh = trimesh.Trimesh(v, f, process=False)
    assert mesh.is_watertight and mesh.is_winding_consistent and mesh.volume > 0
    # volume of the piecewise-linear surface over the grid: mean of each triangle's three heights x its area
    rows, cols = shape
    cell = 0.25 / 2
    tri = lambda a, b, c: (a + b + c) / 3 * cell  # noqa: E731
    expected = (tri(h[1:, :-1], h[1:, 1:], h[:-1, 1:]) + tri(h[1:, :-1], h[:-1, 1:], h[:-1, :-1])).sum()
    assert mesh.volume == pytest.approx(expected, rel=1e-9)
    assert len(f) == 2 * (rows - 1) * (cols - 1) + 3 * len(boundary_ring(rows, cols))


def test_heightmap_solid_refuses_flat_or_broken_heights():
    for bad in (np.zeros((3, 3)), np.full((3, 3), np.nan), np.ones(5)):
        with pytest.raises(ValueError):
            heightmap_solid(bad, 1.0)


def test_photo_becomes_a_lithophane_in_mm_with_dark_areas_thick(corpus):
    out = generate(Inputs(id="p", images=(corpus / PHOTO,)), width_mm=50.0, border_mm=0.0, resolution_mm=1.0, smooth_px=0.0)
    mesh = testing.view(out.scene).mesh
    assert out.units.length == "mm" and mesh.is_watertight and mesh.is_volume
    assert mesh.bounds[0].tolist() == [0.0, 0.0, 0.0]
    assert mesh.bounds[1][0] == pytest.approx(50.0) and 0.8 <= mesh.vertices[:, 2][mesh.vertices[:, 2] > 0].min()
    assert mesh.bounds[1][2] <= 3.0 + 1e-9
    inverted = testing.view(generate(Inputs(id="p", images=(corpus / PHOTO,)), width_mm=50.0, border_mm=0.0,
                                     resolution_mm=1.0, smooth_px=0.0, invert=True).scene).mesh
    top = mesh.vertices[:, 2] > 0
    # invert swaps thick and thin: heights mirror around the middle of the range
    assert np.allclose(mesh.vertices[top, 2] + inverted.vertices[top, 2], 0.8 + 3.0)
    assert out.provenance["generator"] == "relief" and out.provenance["cost"]["amount"] == 0


def test_border_frames_the_picture_at_full_thickness(corpus):
    out = generate(Inputs(id="p", images=(corpus / PHOTO,)), width_mm=40.0, border_mm=4.0, resolution_mm=1.0)
    mesh = testing.view(out.scene).mesh
    edge = np.isclose(mesh.vertices[:, 0], 0.0) & (mesh.vertices[:, 2] > 0)
    assert np.allclose(mesh.vertices[edge, 2], 3.0)
    assert mesh.bounds[1][0] == pytest.approx(48.0)


def test_relief_answers_only_for_images_and_refuses_bad_ones(corpus, tmp_path):
    assert generate(Inputs(id="m", model=Path("x.stl"))) is None
    assert generate(Inputs(id="nothing")) is None
    with pytest.raises(InputError) as err:
        generate(Inputs(id="p", images=(corpus / "gltf/glTF-Validator/image/png_eos.png",)))
    assert err.value.code == "input.corrupt_image"
    with pytest.raises(InputError) as err:
        generate(Inputs(id="p", images=(corpus / PHOTO,)), min_thickness_mm=2.0, max_thickness_mm=1.0)
    assert err.value.code == "relief.bad_parameters"


@pytest.mark.referee
def test_photo_runs_through_fdm_print_stl_and_prusaslicer_slices_it(corpus, tmp_path):
    from referees import prusa_info, prusa_slice

    small = ["relief.width_mm=40", "relief.resolution_mm=0.8"]  # ~5k triangles: the full chain stays quick
    with Engine("fdm-print-stl", overrides=small) as engine:
        report = engine.run(corpus / PHOTO, out_dir=tmp_path)
    assert str(report.status) == "pass", [f.to_dict() for f in report.findings]
    stl = next(Path(o.path) for o in report.outputs if o.format == "stl")
    info = prusa_info(stl)
    assert info["manifold"] is True and info.get("open_edges", 0) == 0
    sliced = prusa_slice(stl, tmp_path / "relief.gcode")
    assert sliced.returncode == 0 and (tmp_path / "relief.gcode").stat().st_size > 0
    assert report.attempts[0]["provenance"]["generator"] == "relief"


def test_photo_relief_profile_normalizes_then_generates(corpus, tmp_path):
    with Engine("photo-relief-stl", overrides=["relief.width_mm=40", "relief.resolution_mm=0.8"]) as engine:
        report = engine.validate(corpus / PHOTO)
    steps = {s.step_id: s.outcome for s in report.steps}
    assert steps["image"] == "ok" and steps["relief"] == "ok" and steps["import"] == "skipped"
    assert str(report.status) == "pass", [f.to_dict() for f in report.findings]


def test_bytes_that_are_no_image_are_named_by_their_first_bytes_not_a_python_object(tmp_path):
    fake = tmp_path / "photo.png"
    fake.write_bytes(b"<html>not a photo</html>")
    with pytest.raises(InputError) as err:
        generate(Inputs(id="p", images=(fake,)))
    assert err.value.code == "input.corrupt_image"
    assert "object at 0x" not in err.value.reason and "<html>" in err.value.reason
