"""gltf.structure: Khronos-named findings with Khronos severities, container rules, and its documentation."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from meshforge import testing
from meshforge.builtin.validate import gltf as step_module
from meshforge.io.gltf import read_glb, read_gltf
from meshforge.io.source import read_source
from meshforge.types import ReadLimits, SourceFile, Units
from tests.gltf_make import data_uri, glb, png, triangle_doc, with_image

STEP = step_module.meshforge_validate_steps()[0]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "findings" / "gltf.md"


def view_of(loaded, source=None):
    return testing.view(loaded.scene, units=loaded.units, document=loaded.document, source=source, source_format=loaded.format)


def run(loaded, **params):
    return testing.run_check(STEP, view_of(loaded), **params)


def load_corpus(corpus, rel):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = corpus / rel
        return (read_glb if rel.endswith(".glb") else read_gltf)(read_source(path, ReadLimits()), ReadLimits())


def test_bad_normals_and_bounds_are_khronos_errors(corpus):
    findings = run(load_corpus(corpus, "glb/assimp/BoxBadNormals.glb"))
    by_code = {f.code: f for f in findings}
    assert {"gltf.accessor_vector3_non_unit", "gltf.accessor_min_mismatch", "gltf.accessor_max_mismatch"} <= set(by_code)
    normals = by_code["gltf.accessor_vector3_non_unit"]
    assert normals.severity == "error" and normals.count == 8 and "/accessors/" in normals.message


def test_non_finite_positions(corpus):
    codes = {f.code: f.severity for f in run(load_corpus(corpus, "glb/assimp/BoxWithInfinites.glb"))}
    assert codes["gltf.accessor_invalid_float"] == "error"
    assert codes["gltf.mesh_primitive_position_accessor_without_bounds"] == "error"


def test_clean_control_has_no_errors(corpus):
    assert not [f for f in run(load_corpus(corpus, "glb/trimesh/BoxTextured.glb")) if f.is_error]


def test_external_files_are_an_error_unless_allowed(corpus):
    loaded = load_corpus(corpus, "gltf/glTF-Transform/BoxTextured_glTF/BoxTextured.gltf")
    assert "gltf.external_uri" in testing.codes(run(loaded))
    assert not [f for f in run(loaded, allow_external_files=True) if f.is_error]


def test_degenerate_triangles_are_info(corpus):
    findings = run(load_corpus(corpus, "glb/assimp/2CylinderEngine.glb"))
    (f,) = [f for f in findings if f.code == "gltf.accessor_index_triangle_degenerate"]
    assert f.severity == "info" and f.count > 1000
    assert not [f for f in run(load_corpus(corpus, "glb/assimp/2CylinderEngine.glb"), include_info=False) if f.severity == "info"]


def test_missing_normals_is_a_warning(corpus):
    findings = run(load_corpus(corpus, "glb/manifold/boxNotManifold.glb"))
    assert [f.severity for f in findings if f.code == "gltf.missing_normals"] == ["warning"]


def test_data_uri_image_is_a_warning():
    doc, bin_data = triangle_doc()
    doc, bin_data = with_image(doc, bin_data, png(4, 4))
    doc["images"] = [{"uri": data_uri(png(4, 4), "image/png")}]
    loaded = read_glb(SourceFile(name="m.glb", data=glb(doc, bin_data)), ReadLimits())
    codes = {f.code: f.severity for f in run(loaded)}
    assert codes["gltf.data_uri_image"] == "warning" and codes["gltf.data_uri_glb"] == "warning"


def test_after_a_repair_replaced_the_scene_only_the_scene_is_judged(corpus):
    import numpy as np
    import trimesh

    loaded = load_corpus(corpus, "glb/assimp/BoxBadNormals.glb")
    repaired = trimesh.Scene(trimesh.creation.box())
    v = testing.view(repaired, units=Units("m", "+Y"), document=loaded.document)
    assert testing.run_check(STEP, v) == []
    bad = trimesh.Trimesh(np.array([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]]), [[0, 1, 2]], process=False)
    assert testing.codes(testing.run_check(STEP, testing.view(bad))) == ["gltf.non_finite"]


def test_every_declared_code_is_documented():
    text = DOCS.read_text()
    documented = set(re.findall(r"`(gltf\.[a-z0-9_]+)`", text))
    assert set(STEP.codes) <= documented, sorted(set(STEP.codes) - documented)


def test_every_issue_code_the_reader_can_emit_is_declared():
    import meshforge.io.gltf as reader
    import meshforge.ops.gltf_checks as checks

    source = Path(reader.__file__).read_text() + Path(checks.__file__).read_text()
    emitted = set(re.findall(r'(?:doc\.add\(|code=)"([A-Za-z0-9_]+)"', source))
    emitted |= set(re.findall(r'"([A-Z][A-Z0-9_]+)" if', source)) | set(re.findall(r'else "([A-Za-z_]+)"', source))
    declared = {c.removeprefix("gltf.") for c in STEP.codes}
    missing = {c for c in emitted if "_" in c and c.lower() not in declared}
    assert not missing, sorted(missing)


def test_the_step_is_registered_under_the_name_the_profile_uses():
    assert STEP.name == "gltf.structure"
