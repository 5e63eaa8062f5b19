"""Every readable corpus model loads with the MANIFEST's triangle count; readers keep units and transforms."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import model_rows

from meshforge.asset import scene_to_mesh
from meshforge.errors import InputError
from meshforge.io.readers import read
from meshforge.types import ReadLimits, SourceFile, Units

MINE = {"stl-binary", "stl-ascii", "obj", "ply-ascii", "ply-binary-le", "off", "off-binary", "3mf"}
# 48 <triangle> elements plus one <UNKNOWN v1= v2= v3=> the MANIFEST counted; ignored with input.unknown_element
COUNT_EXCEPTIONS = {"3mf/lib3mf/MustWarnOrFail.3mf": 48}


def _source(corpus: Path, rel: str) -> SourceFile:
    path = corpus / rel
    return SourceFile(name=path.name, data=path.read_bytes(), path=path)


def _rows(pred):  # type: ignore[no-untyped-def]
    return [pytest.param(r, id=r["path"]) for r in model_rows() if pred(r)]


def _invalid(row: dict[str, str]) -> bool:
    return row["known_defects"].startswith("INVALID")


@pytest.mark.parametrize("row", _rows(lambda r: r["format"] in MINE and not _invalid(r)))
def test_corpus_model_loads_with_manifest_count(corpus: Path, row: dict[str, str]) -> None:
    source = _source(corpus, row["path"])
    expected = COUNT_EXCEPTIONS.get(row["path"], int(row["triangles"] or 0))
    if expected == 0:  # empty files, point clouds, beam-lattice-only 3MF
        with pytest.raises(InputError) as err:
            read(source)
        assert err.value.code == "input.empty"
        return
    loaded = read(source)
    if row["format"] == "3mf":  # MANIFEST: sum over mesh objects, build items not expanded
        count = sum(len(g.faces) for g in loaded.scene.geometry.values())
    else:
        count = len(scene_to_mesh(loaded.scene).faces)
    assert count == expected


@pytest.mark.parametrize("row", _rows(lambda r: r["format"] in MINE and _invalid(r)))
def test_invalid_corpus_model_gives_input_error_or_error_finding(corpus: Path, row: dict[str, str]) -> None:
    try:
        loaded = read(_source(corpus, row["path"]))
    except InputError as exc:
        assert exc.code.startswith("input.") and exc.reason
        return
    assert any(f.is_error for f in loaded.findings), "an INVALID file must not load silently"


def test_binary_stl_with_solid_header_and_trailing_byte(corpus: Path) -> None:
    loaded = read(_source(corpus, "stl/numpy-stl/binary/HalfDonut.stl"))
    assert len(scene_to_mesh(loaded.scene).faces) == 288
    assert [f.code for f in loaded.findings] == ["input.stl_size_mismatch"]
    assert loaded.units == Units(None, "+Z")


def test_multi_solid_ascii_stl_keeps_bodies(corpus: Path) -> None:
    loaded = read(_source(corpus, "stl/trimesh/multibody.stl"))
    assert len(loaded.scene.geometry) == 2


def test_3mf_units_are_kept_as_written(corpus: Path) -> None:
    inch = read(_source(corpus, "3mf/trimesh/featuretype.3MF"))
    metre = read(_source(corpus, "3mf/lib3mf/WithSomeResources.3mf"))
    assert inch.units == Units("in", "+Z") and metre.units == Units("m", "+Z")
    assert np.ptp(scene_to_mesh(inch.scene).vertices[:, 0]) == pytest.approx(5.0, abs=0.1)  # inches, not mm


def test_3mf_unknown_mesh_element_is_ignored_with_a_warning(corpus: Path) -> None:
    loaded = read(_source(corpus, "3mf/lib3mf/MustWarnOrFail.3mf"))
    assert [(f.code, f.count) for f in loaded.findings] == [("input.unknown_element", 1)]


def test_3mf_build_item_transforms_are_applied(corpus: Path) -> None:
    loaded = read(_source(corpus, "3mf/3mf-samples/MUSTPASS/MUSTPASS_Chapter3.2c_MultipleItemsTransform.3mf"))
    assert len(loaded.scene.geometry) == 1 and len(loaded.scene.graph.nodes_geometry) == 2  # one mesh, two items
    assert len(scene_to_mesh(loaded.scene).faces) == 60
    assert np.allclose(loaded.scene.bounds, [[0, 0, 0], [70, 60, 30]], atol=1e-4)


def _package(model: str, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("_rels/.rels", '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
                   'openxmlformats.org/package/2006/relationships"><Relationship Target="/3D/3dmodel.model" Id="r0" '
                   'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>')
        z.writestr("3D/3dmodel.model", model)
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return buf.getvalue()


TETRA = ('<mesh><vertices><vertex x="0" y="0" z="0"/><vertex x="1" y="0" z="0"/><vertex x="0" y="1" z="0"/>'
         '<vertex x="0" y="0" z="1"/></vertices><triangles><triangle v1="0" v2="2" v3="1"/><triangle v1="0" v2="1" '
         'v3="3"/><triangle v1="1" v2="2" v3="3"/><triangle v1="0" v2="3" v3="2"/></triangles></mesh>')
NS = 'xmlns="http://schemas.microsoft.com/3dmanufacturing/core/2015/02"'


def test_3mf_components_are_expanded_with_their_transforms() -> None:
    model = (f'<?xml version="1.0" encoding="UTF-8"?><model unit="centimeter" {NS}><resources>'
             f'<object id="1">{TETRA}</object><object id="2"><components>'
             '<component objectid="1"/><component objectid="1" transform="1 0 0 0 1 0 0 0 1 10 0 0"/>'
             '</components></object></resources><build><item objectid="2" transform="2 0 0 0 2 0 0 0 2 0 0 5"/></build></model>')
    loaded = read(SourceFile(name="c.3mf", data=_package(model)))
    assert loaded.units == Units("cm", "+Z")
    assert len(scene_to_mesh(loaded.scene).faces) == 8
    assert np.allclose(loaded.scene.bounds, [[0, 0, 5], [22, 2, 7]])


def test_3mf_cyclic_components_are_refused() -> None:
    model = (f'<?xml version="1.0" encoding="UTF-8"?><model {NS}><resources><object id="1"><components>'
             '<component objectid="2"/></components></object><object id="2"><components><component objectid="1"/>'
             '</components></object></resources><build><item objectid="1"/></build></model>')
    with pytest.raises(InputError, match="cycle"):
        read(SourceFile(name="c.3mf", data=_package(model)))


def test_concave_obj_polygons_are_triangulated_inside() -> None:
    # quad whose corner 1 is reflex: a fan from corner 0 would cover area outside the polygon
    obj = b"v 2 0 0\nv 0.5 0.5 0\nv 0 2 0\nv 0 0 0\nf 1 2 3 4\n"
    mesh = scene_to_mesh(read(SourceFile(name="q.obj", data=obj)).scene)
    assert len(mesh.faces) == 2
    assert mesh.area == pytest.approx(1.0)  # shoelace area of the polygon; the fan gives 3.0


def test_concave_corpus_ngons_keep_orientation(corpus: Path) -> None:
    mesh = scene_to_mesh(read(_source(corpus, "obj/assimp/concave_polygon.obj")).scene)
    normals = mesh.triangles_cross
    total = normals.sum(axis=0)  # planar polygons: every triangle must face the same way as their sum
    assert (normals @ total > -1e-9).all()


def test_obj_negative_indices_and_utf16(corpus: Path) -> None:
    neg = scene_to_mesh(read(_source(corpus, "obj/trimesh/negative_indices.obj")).scene)
    utf16 = read(_source(corpus, "obj/assimp/box_UTF16BE.obj"))
    welded = neg.copy()
    welded.merge_vertices(merge_tex=True, merge_norm=True)  # OBJ vertices are split by normal; weld to check topology
    assert welded.is_watertight and len(scene_to_mesh(utf16.scene).faces) == 12
    assert utf16.units == Units(None, "+Y")


def test_obj_msvc_nan_is_kept_for_the_checks(corpus: Path) -> None:
    loaded = read(_source(corpus, "obj/tinyobjloader/test-nan.obj"))
    mesh = scene_to_mesh(loaded.scene)
    assert (~np.isfinite(mesh.vertices)).any(axis=1).sum() == 4
    assert [f.code for f in loaded.findings] == ["input.missing_material"]


def test_binary_off_little_endian(corpus: Path) -> None:
    mesh = scene_to_mesh(read(_source(corpus, "off/pmp/beetle.off")).scene)
    assert len(mesh.faces) == 9664 and len(mesh.vertices) == 5105


def test_obj_texture_loads_from_its_folder(corpus: Path) -> None:
    loaded = read(_source(corpus, "obj/trimesh/fuze.obj"))
    assert loaded.findings == ()
    (mesh,) = loaded.scene.geometry.values()
    assert mesh.visual.material.image is not None  # 'fuze uv.jpg', a name with a space


def test_ply_over_vertex_limit_is_refused_from_the_header(corpus: Path) -> None:
    with pytest.raises(InputError) as err:
        read(_source(corpus, "ply/trimesh/bunny.ply"), ReadLimits(max_vertices=1000))
    assert err.value.code == "input.too_large"
