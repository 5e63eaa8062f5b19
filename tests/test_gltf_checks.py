"""The glTF data checks take a fast path when the data is clean (one min/max reduction, no masks, no
copies); these tests pin that the fast and the per-element paths report the same things, and that the
reader decodes accessors as read-only views of the file's bytes without changing any value."""

from __future__ import annotations

import numpy as np
import pytest

from meshforge.io.gltf import read_document, read_glb
from meshforge.ops import gltf_checks as checks
from meshforge.types import ReadLimits, SourceFile
from tests.gltf_make import POSITIONS, glb, triangle_doc


def _codes(issues) -> dict[str, int | None]:
    return {i.code: i.count for i in issues}


def _bounds_acc(values: np.ndarray) -> dict:
    return {"min": values.min(axis=0).tolist(), "max": values.max(axis=0).tolist()}


def test_clean_float_data_has_no_issues_and_exact_bounds_pass():
    values = np.random.default_rng(1).normal(size=(1000, 3)).astype(np.float32)
    assert checks.check_float_values(values, "/accessors/0") == []
    assert checks.check_bounds(values, _bounds_acc(values), "/accessors/0", require=True) == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_counted_and_excluded_from_bounds(bad):
    values = np.random.default_rng(2).normal(size=(200, 3)).astype(np.float32)
    acc = _bounds_acc(values)  # bounds of the finite data
    values[[7, 150], 1] = bad
    (issue,) = checks.check_float_values(values, "/accessors/0")
    assert issue.code == "ACCESSOR_INVALID_FLOAT" and issue.count == 2 and issue.samples == (7, 150)
    assert checks.check_bounds(values, acc, "/accessors/0", require=True) == []


def test_elements_outside_declared_bounds_are_counted_per_element():
    values = np.zeros((100, 3), dtype=np.float32)
    values[[3, 40], 0] = 2.0  # two elements over max x
    values[60, 2] = -1.0  # one element under min z
    values[61, 1] = np.nan  # ignored for bounds
    acc = {"min": [0.0, 0.0, 0.0], "max": [1.0, 1.0, 1.0]}
    found = _codes(checks.check_bounds(values, acc, "/accessors/0", require=True))
    assert found["ACCESSOR_ELEMENT_OUT_OF_MAX_BOUND"] == 2
    assert found["ACCESSOR_ELEMENT_OUT_OF_MIN_BOUND"] == 1
    assert "ACCESSOR_MAX_MISMATCH" in found and "ACCESSOR_MIN_MISMATCH" in found


def test_declared_bounds_wider_than_the_data_mismatch_without_elements_outside():
    values = np.array([[0, 0, 0], [1, 1, 1]], dtype=np.float32)
    found = _codes(checks.check_bounds(values, {"min": [-1, 0, 0], "max": [1, 1, 1]}, "/accessors/0", require=True))
    assert set(found) == {"ACCESSOR_MIN_MISMATCH"}


@pytest.mark.parametrize("dtype,size", [(np.uint8, 1), (np.uint16, 2), (np.uint32, 4)])
def test_index_checks_on_the_files_own_integer_type(dtype, size):
    restart = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}[size]
    clean = np.array([0, 1, 2, 2, 1, 3, 0, 0, 1], dtype=dtype)  # last triangle degenerate
    issues, ok = checks.check_indices(clean, 4, size, "/accessors/1", triangles=True)
    assert _codes(issues) == {"ACCESSOR_INDEX_TRIANGLE_DEGENERATE": 1} and ok.tolist() == [True, True, True]
    bad = np.array([0, 1, 2, 2, 1, 9, 0, restart, 1], dtype=dtype)
    issues, ok = checks.check_indices(bad, 4, size, "/accessors/1", triangles=True)
    assert _codes(issues) == {"ACCESSOR_INDEX_OOB": 1, "ACCESSOR_INDEX_PRIMITIVE_RESTART": 1}
    assert ok.tolist() == [True, False, False]


def test_accessors_are_read_only_views_with_the_files_values():
    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float32)
    doc, bin_data = triangle_doc(positions, np.array([0, 1, 2, 0, 2, 3], dtype=np.uint16))
    data = glb(doc, bin_data)
    d = read_document(SourceFile(name="m.glb", data=data, path=None))
    pos = d.accessor(0)
    assert np.array_equal(pos, positions) and pos.dtype == np.float32
    with pytest.raises(ValueError):
        pos[0, 0] = 5.0  # nobody may write through to the file's bytes
    loaded = read_glb(SourceFile(name="m.glb", data=data, path=None), ReadLimits())
    (mesh,) = loaded.scene.geometry.values()
    assert mesh.faces.tolist() == [[0, 1, 2], [0, 2, 3]] and np.array_equal(mesh.vertices, positions)
    mesh.vertices[0] = [9, 9, 9]  # the scene's arrays are its own: the document's data is unchanged
    assert np.array_equal(d.accessor(0), positions) and np.array_equal(loaded.document.accessor(0), positions)


def test_misaligned_accessor_is_reported_and_still_decoded_exactly():
    pos = POSITIONS.tobytes()
    bin_data = b"\x00\x00" + pos + b"\x00\x00"  # accessor at byteOffset 2: not a multiple of 4
    doc, _ = triangle_doc(indices=None)
    doc["accessors"][0]["byteOffset"] = 2
    doc["bufferViews"][0]["byteLength"] = len(bin_data)
    doc["buffers"][0]["byteLength"] = len(bin_data)
    d = read_document(SourceFile(name="m.glb", data=glb(doc, bin_data), path=None))
    assert "ACCESSOR_OFFSET_ALIGNMENT" in {i.code for i in d.issues}
    assert np.array_equal(d.accessor(0), POSITIONS)


def test_reading_the_document_alone_never_imports_trimesh(tmp_path):
    # structural checks of a glTF are what a validator-only tool needs: they must not pay for the
    # scene library's import (0.4-0.7 s, most of a cold run's budget against the Khronos validator)
    import subprocess
    import sys

    doc, bin_data = triangle_doc()
    path = tmp_path / "m.glb"
    path.write_bytes(glb(doc, bin_data))
    code = ("import sys\nfrom pathlib import Path\nfrom meshforge.io.gltf import read_document\n"
            "from meshforge.types import SourceFile\n"
            f"d = read_document(SourceFile(name='m.glb', data=Path({str(path)!r}).read_bytes(), path=None))\n"
            "print(d.triangles, 'trimesh' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["1", "False"]
