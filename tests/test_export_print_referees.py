"""Print exports as PrusaSlicer and admesh see them: nothing for either to reject or "fix".

The writers get corpus models as the loader hands them over (unwelded seams, slivers, metres) and
must write files the referees accept unchanged: a 3MF whose triangles connect by index, an STL
whose normals match its float32 corners, and no file at all rather than an empty or NaN one.
"""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import trimesh
from lxml import etree

from meshforge import Engine
from meshforge import testing as t
from meshforge.builtin.export import writers
from meshforge.io.readers import read
from meshforge.io.source import read_source
from meshforge.types import ReadLimits, Units
from referees import admesh, admesh_open_edges, prusa_info

pytestmark = pytest.mark.referee

STEPS = {s.name: s for s in writers.meshforge_export_steps()}
CORE_NS = {"c": "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"}
FACET = np.dtype([("normal", "<f4", (3,)), ("corners", "<f4", (3, 3)), ("attribute", "<u2")])  # binary STL record


def write(name: str, view, out_dir: Path) -> Path:
    spec = STEPS[name]
    return spec.write(view, t.params_for(spec), t.step_context(spec, out_dir=out_dir))[0]


def corpus_view(path: Path):
    """The corpus file as the engine's import step loads it (the writer merges the scene itself)."""
    loaded = read(read_source(path, ReadLimits()))
    return t.view(loaded.scene, units=loaded.units)


def model_arrays(path: Path) -> tuple[np.ndarray, np.ndarray]:
    model = etree.fromstring(zipfile.ZipFile(path).read("3D/3dmodel.model"))
    vertices = np.array([[float(v.get(k)) for k in "xyz"] for v in model.iterfind(".//c:vertex", CORE_NS)])
    faces = np.array([[int(f.get(k)) for k in ("v1", "v2", "v3")] for f in model.iterfind(".//c:triangle", CORE_NS)])
    return vertices, faces


def engine(export: tuple[str, ...] = ("stl", "3mf")) -> Engine:
    """Import then export, nothing in between: what the writers get is what the loader made."""
    steps = {"import": {}, "stl": {}, "3mf": {"uses": "threemf"}}
    return Engine({"schema": 1, "name": "export-referees", "summary": "test",
                   "chain": {"generate": ["import"], "validate": [], "repair": [], "export": list(export)},
                   "steps": {k: v for k, v in steps.items() if k == "import" or k in export},
                   "run": {"assume_units": "mm", "export_rejected": True}}, entry_points=False)


# --- 3MF: connectivity is by index -----------------------------------------------------------------

@pytest.mark.parametrize("rel", ["obj/trimesh/box.obj", "ply/o3dv/cube_rgb_binary.ply"])
def test_3mf_of_a_cube_with_split_seams_is_one_manifold_part_in_prusaslicer(corpus, tmp_path, rel):
    report = engine(("3mf",)).run(corpus / rel, out_dir=tmp_path)
    (path,) = [Path(o.path) for o in report.outputs if str(o.path).endswith(".3mf")]
    info = prusa_info(path)
    assert info["manifold"] is True and info["number_of_parts"] == 1 and info["number_of_facets"] == 12, info
    vertices, faces = model_arrays(path)
    assert len(vertices) == 8 and len(faces) == 12


def test_3mf_merges_only_exactly_coincident_vertices_and_drops_triangles_that_collapse(tmp_path):
    cube = t.cube(20.0)
    cube.apply_translation(-cube.bounds[0])  # corners on x = 0
    corners = cube.vertices[cube.faces].reshape(-1, 3)  # every corner its own vertex, as a per-face loader leaves it
    at_zero = np.flatnonzero(corners[:, 0] == 0.0)
    corners[at_zero[1], 0] = -0.0  # the same place, other bytes: must merge
    far = np.flatnonzero(corners[:, 0] == 20.0)[0]
    corners[far, 0] += 1e-9  # 1 nm off: not coincident, must stay its own vertex (no tolerance weld)
    faces = np.arange(len(corners)).reshape(-1, 3)
    sliver = [[0, 1, 1]]  # repeats a vertex: 3MF forbids it
    mesh = trimesh.Trimesh(np.vstack([corners, cube.vertices[:2]]), np.vstack([faces, np.add(sliver, len(corners))]),
                           process=False)
    path = write("threemf", t.view(mesh), tmp_path)
    vertices, faces = model_arrays(path)
    assert len(vertices) == 9 and len(faces) == 12
    assert writers.check_3mf(path.read_bytes()) == []
    assert prusa_info(path)["number_of_facets"] == 12


def test_check_3mf_flags_a_triangle_that_repeats_a_vertex():
    model = ('<model xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02" unit="millimeter"><resources>'
             '<object id="1" type="model"><mesh><vertices><vertex x="0" y="0" z="0"/><vertex x="1" y="0" z="0"/>'
             '</vertices><triangles><triangle v1="0" v2="1" v3="1"/></triangles></mesh></object></resources>'
             '<build><item objectid="1"/></build></model>')
    data = trimesh.exchange.threemf.export_3MF(t.cube())  # borrow a valid package, swap its model part
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as src, zipfile.ZipFile(buf, "w") as dst:
        for item in src.infolist():
            dst.writestr(item, model if item.filename == "3D/3dmodel.model" else src.read(item))
    assert any("repeats a vertex" in p for p in writers.check_3mf(buf.getvalue()))


# --- STL: normals and corners as written -----------------------------------------------------------

@pytest.mark.parametrize("rel", ["3mf/3mf-samples/cube_gears.3mf", "glb/o3dv/car.glb", "glb/trimesh/boolean.glb"])
def test_admesh_fixes_nothing_in_an_exported_stl(corpus, tmp_path, rel):
    view = corpus_view(corpus / rel)
    path = write("stl", view, tmp_path)
    data = path.read_bytes()
    (count,) = struct.unpack("<I", data[80:84])
    assert len(data) == 84 + 50 * count and not data.startswith(b"solid")
    stats = admesh(path)
    assert stats["normals_fixed"] == 0, stats
    assert stats["degenerate_facets"] == 0 and stats["edges_fixed"] == 0, stats
    assert stats["number_of_facets_original"] == stats["number_of_facets_final"] == count
    info = prusa_info(path)
    assert info["returncode"] == 0 and info["number_of_facets"] == count and "facets_removed" not in info, info


def test_stl_normals_are_those_of_the_float32_corners(tmp_path):
    # a sliver 1e-6 mm off its base line, 200 mm from the origin where float32 steps are ~1.5e-5 mm:
    # the written corners are collinear, so the written normal must be zero, not the float64 +Z
    sliver = trimesh.Trimesh([[200.0, 100.0, 0.0], [202.0, 101.0, 0.0], [200.5, 100.25 + 1e-6, 0.0]], [[0, 1, 2]],
                             process=False)
    path = write("stl", t.view(trimesh.util.concatenate([sliver, t.cube()])), tmp_path)  # admesh needs > 2 facets
    record = np.frombuffer(path.read_bytes(), dtype=FACET, offset=84)[0]
    c = record["corners"].astype(np.float64)
    assert np.cross(c[1] - c[0], c[2] - c[0]) == pytest.approx(0.0, abs=0.0)
    assert record["normal"].tolist() == [0.0, 0.0, 0.0]
    assert admesh(path, "--normal-values")["normals_fixed"] == 0  # only the normal check: no hole filling


def test_stl_writes_zero_not_minus_zero_so_admesh_matches_edges_exactly(tmp_path):
    cube = t.box((20.0, 20.0, 20.0))
    cube.apply_translation(-cube.bounds[0])  # corners on x = 0 ...
    split = cube.vertices[cube.faces].reshape(-1, 3)
    split[(split[:, 0] == 0.0) & (np.arange(len(split)) % 2 == 0), 0] = -0.0  # ... half of them written as -0.0
    mesh = trimesh.Trimesh(split, np.arange(len(split)).reshape(-1, 3), process=False)
    stats = admesh(write("stl", t.view(mesh), tmp_path))
    assert admesh_open_edges(stats) == 0 and stats["edges_fixed"] == 0, stats


# --- nothing printable: no file, and the report says why -------------------------------------------

def test_stl_writer_refuses_a_mesh_without_triangles(tmp_path):
    # what the clean repair leaves of BoxWithInfinites; PrusaSlicer calls a 0-facet STL "an empty file"
    with pytest.raises(ValueError, match="no triangles"):
        write("stl", t.view(trimesh.Trimesh(np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64))), tmp_path)
    assert list(tmp_path.iterdir()) == []  # the 3MF writer already refused (check_3mf: "model holds no triangles")


@pytest.mark.parametrize("name", ["stl", "threemf"])
def test_writer_refuses_triangles_with_nan_or_inf_instead_of_writing_part_of_the_model(tmp_path, name):
    mesh = t.cube(20.0)
    vertices = mesh.vertices.copy()
    vertices[0] = [np.nan, 0.0, np.inf]
    with pytest.raises(ValueError, match=r"\d+ of 12 triangles have a NaN or infinite coordinate"):
        write(name, t.view(trimesh.Trimesh(vertices, mesh.faces, process=False)), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_box_with_infinites_exports_no_file_and_reports_why(corpus, tmp_path):
    report = engine().run(corpus / "glb/assimp/BoxWithInfinites.glb", out_dir=tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.suffix in (".stl", ".3mf")], report.outputs
    failed = [f for f in report.findings if f.code == "engine.step_failed"]
    assert {f.step for f in failed} == {"stl", "3mf"} and all("NaN or infinite" in f.message for f in failed), failed


def test_the_same_part_gives_the_same_3mf_bytes(tmp_path):
    """trimesh writes random p:UUIDs: a resumed batch's 3MFs differed from an uninterrupted run's."""
    import re
    import zipfile

    from meshforge import Engine, testing

    part = tmp_path / "cube.stl"
    part.write_bytes(testing.cube(20.0).export(file_type="stl"))
    engine = Engine("fdm-print-stl", entry_points=False)
    first, second = (engine.run(part, out_dir=tmp_path / name) for name in ("a", "b"))
    a, b = (tmp_path / name / "cube.3mf" for name in ("a", "b"))
    assert first.status == second.status and a.read_bytes() == b.read_bytes()
    uuids = re.findall(rb'UUID="([^"]+)"', zipfile.ZipFile(a).read("3D/3dmodel.model"))
    assert len(uuids) >= 2 and len(set(uuids)) == len(uuids)
