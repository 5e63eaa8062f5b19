"""Print export: binary STL and 3MF in millimetres that PrusaSlicer slices and admesh finds closed."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import pytest
import trimesh

from meshforge import testing as t
from meshforge.builtin.export import writers
from meshforge.types import Units
from referees import admesh, admesh_open_edges, prusa_info, prusa_slice

STEPS = {s.name: s for s in writers.meshforge_export_steps()}


def write(name, mesh, out_dir, units=Units("mm", "+Z")):
    spec = STEPS[name]
    return spec.write(t.view(mesh, units=units), t.params_for(spec), t.step_context(spec, out_dir=out_dir))[0]


def placed(mesh):
    mesh = mesh.copy()
    mesh.apply_translation([110, 105, 0] - mesh.bounds.mean(axis=0) * [1, 1, 0] - [0, 0, mesh.bounds[0][2]])
    return mesh


def test_stl_is_binary_and_closed_per_admesh(tmp_path):
    path = write("stl", placed(trimesh.creation.icosphere(radius=10.0)), tmp_path)
    data = path.read_bytes()
    (count,) = struct.unpack("<I", data[80:84])
    assert len(data) == 84 + 50 * count and count == 1280
    stats = admesh(path)
    assert admesh_open_edges(stats) == 0 and stats["number_of_parts"] == 1


def test_3mf_is_a_valid_millimetre_package(tmp_path):
    path = write("threemf", placed(t.cube()), tmp_path)
    package = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    assert {"[Content_Types].xml", "_rels/.rels", "3D/3dmodel.model"} <= set(package.namelist())
    assert b'unit="millimeter"' in package.read("3D/3dmodel.model")
    assert writers.check_3mf(path.read_bytes()) == []
    info = prusa_info(path)
    assert info["manifold"] is True and info["size_x"] == pytest.approx(20.0)


def test_check_3mf_names_what_is_wrong():
    assert writers.check_3mf(b"not a zip") and "not a zip" in writers.check_3mf(b"not a zip")[0]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("3D/3dmodel.model", '<model xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" unit="meter"/>')
    assert any("[Content_Types].xml" in p for p in writers.check_3mf(buf.getvalue()))


def test_writers_scale_a_scene_still_in_metres(tmp_path):
    path = write("stl", t.box((0.02, 0.02, 0.01)), tmp_path, units=Units("m", "+Z"))
    assert trimesh.load(path, force="mesh").extents == pytest.approx([20.0, 20.0, 10.0], rel=1e-5)


@pytest.mark.parametrize("name", ["stl", "threemf"])
def test_exported_print_files_slice_in_prusaslicer(tmp_path, name):
    path = write(name, placed(trimesh.creation.icosphere(radius=10.0)), tmp_path)
    gcode = tmp_path / "out.gcode"
    proc = prusa_slice(path, gcode)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert gcode.stat().st_size > 1000 and "G1" in gcode.read_text()


def test_repaired_corpus_file_exports_and_slices(corpus, tmp_path):
    from meshforge import Engine
    from test_repair_print import repair_profile

    report = Engine(repair_profile(export=("stl", "3mf")), entry_points=False).run(
        corpus / "stl/assimp/sphereWithHole.stl", out_dir=tmp_path / "out")
    paths = {p.suffix: p for p in (Path(o.path) for o in report.outputs)}
    assert {".stl", ".3mf"} <= set(paths)
    assert admesh_open_edges(admesh(paths[".stl"])) == 0
    assert prusa_info(paths[".3mf"])["manifold"] is True
    proc = prusa_slice(paths[".stl"], tmp_path / "sphere.gcode")
    assert proc.returncode == 0, proc.stderr[-2000:]
