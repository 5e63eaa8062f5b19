"""Normalized integer attributes (KHR_mesh_quantization) read as the floats they stand for.

glTF 2.0 3.11: a ``normalized`` accessor's integers map to [-1, 1] (signed: ``max(c / 127, -1)``,
``max(c / 32767, -1)``) or [0, 1] (unsigned: ``c / 255``, ``c / 65535``), and its min/max stay in the
stored integers. Draco decodes to those stored integers, so a Draco primitive needs the same mapping
as plain data: DenseSphere (glTF-Transform, int16 positions) used to come out 32767 times too big.
"""

from __future__ import annotations

import json
import struct
import warnings
from typing import Any

import numpy as np
import pytest

from meshforge.io.gltf import read_document, read_glb
from meshforge.io.source import read_source
from meshforge.types import ReadLimits, SourceFile
from tests.gltf_make import glb, pad4


def _errors(issues) -> list[tuple[str, str]]:
    return [(i.code, i.message) for i in issues if i.severity == "error"]


def _glb_json(data: bytes) -> dict[str, Any]:
    (length,) = struct.unpack_from("<I", data, 12)
    return json.loads(data[20:20 + length])


# --- the corpus file ---------------------------------------------------------------------------


def test_dense_sphere_is_a_unit_sphere_scaled_by_its_node(corpus):
    pytest.importorskip("DracoPy")
    path = corpus / "glb/glTF-Transform/DenseSphere.glb"
    tree = _glb_json(path.read_bytes())
    acc = tree["accessors"][1]
    assert (acc["componentType"], acc["normalized"]) == (5122, True)  # int16, normalized
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = read_glb(read_source(path, ReadLimits()), ReadLimits())
    assert not _errors(loaded.document.issues)

    # the accessor: its declared (stored-integer) min/max over 32767, exactly as float32 arithmetic gives
    positions = loaded.document.accessor(1)
    assert positions.dtype == np.float32 and positions.shape == (15362, 3)
    np.testing.assert_array_equal(positions.min(axis=0), np.float32(acc["min"]) / np.float32(32767))
    np.testing.assert_array_equal(positions.max(axis=0), np.float32(acc["max"]) / np.float32(32767))

    # the mesh: an icosphere of radius ~1 (it was ~32767 before)
    (mesh,) = loaded.scene.geometry.values()
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert 0.99 < radii.min() and radii.max() < 1.001
    # the scene: the node scales it by 0.9303 -> 1.861 m across in Y, not 60,966
    scale = tree["nodes"][0]["scale"][0]
    expected = np.array([np.float32(acc["min"]), np.float32(acc["max"])], dtype=np.float64) / 32767 * scale
    np.testing.assert_allclose(loaded.scene.bounds, expected, rtol=1e-6)
    assert loaded.scene.extents[1] == pytest.approx(2 * scale, rel=1e-6)


# --- synthetic Draco primitives ----------------------------------------------------------------

# int16 POSITION (with -32768, which clamps to -1), uint16 TEXCOORD_0, uint8 TEXCOORD_1, uint8 COLOR_0
POSITIONS = np.array([[0, 0, 0], [32767, 0, 0], [0, -32768, 16384], [100, -200, 300]], dtype=np.int16)
UV16 = np.array([[0, 0], [65535, 0], [0, 65535], [1000, 32768]], dtype=np.uint16)
UV8 = np.array([[0, 0], [255, 0], [0, 255], [17, 128]], dtype=np.uint8)
COLORS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]], dtype=np.uint8)
FACES = np.array([[0, 1, 2], [0, 2, 3]], dtype=np.uint32)


def _draco_glb(*, normalized: bool = True) -> bytes:
    """One Draco primitive whose attributes are the stored integers above (as glTF-Transform writes them)."""
    import DracoPy

    payload = DracoPy.encode(POSITIONS, FACES, preserve_order=True, colors=COLORS,
                             generic_attributes={10: UV16, 11: UV8})
    decoded = DracoPy.decode(payload)
    by_type = {a["attribute_type"]: a["unique_id"] for a in decoded.attributes}  # 0 position, 2 color
    ids = {"POSITION": by_type[0], "COLOR_0": by_type[2], "TEXCOORD_0": 10, "TEXCOORD_1": 11}
    np.testing.assert_array_equal(np.asarray(decoded.faces).reshape(-1, 3), FACES)  # order kept: rows line up

    def accessor(ctype: int, kind: str, **kw: Any) -> dict[str, Any]:
        return {"componentType": ctype, "type": kind, "count": 4, **({"normalized": True} if normalized else {}), **kw}

    accessors = [
        accessor(5122, "VEC3", min=POSITIONS.min(axis=0).tolist(), max=POSITIONS.max(axis=0).tolist()),
        accessor(5123, "VEC2"),
        accessor(5121, "VEC2"),
        accessor(5121, "VEC3"),
        {"componentType": 5125, "type": "SCALAR", "count": FACES.size},
    ]
    attributes = {"POSITION": 0, "TEXCOORD_0": 1, "TEXCOORD_1": 2, "COLOR_0": 3}
    body = pad4(payload)
    doc = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": attributes, "indices": 4,
                                    "extensions": {"KHR_draco_mesh_compression": {"bufferView": 0, "attributes": ids}}}]}],
        "accessors": accessors,
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": len(payload)}],
        "buffers": [{"byteLength": len(body)}],
        "extensionsUsed": ["KHR_draco_mesh_compression", "KHR_mesh_quantization"],
        "extensionsRequired": ["KHR_draco_mesh_compression", "KHR_mesh_quantization"],
    }
    return glb(doc, body)


def test_draco_normalized_attributes_are_scaled_per_component_type():
    pytest.importorskip("DracoPy")
    doc = read_document(SourceFile(name="q.glb", data=_draco_glb(), path=None))
    expected_pos = np.array([[0, 0, 0], [1, 0, 0], [0, -1, 16384 / 32767], [100 / 32767, -200 / 32767, 300 / 32767]])
    np.testing.assert_allclose(doc.accessor(0), expected_pos, rtol=0, atol=1e-7)
    np.testing.assert_allclose(doc.accessor(1), UV16 / 65535.0, rtol=0, atol=1e-7)
    np.testing.assert_allclose(doc.accessor(2), UV8 / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_allclose(doc.accessor(3), COLORS / 255.0, rtol=0, atol=1e-7)
    assert doc.accessor(2)[3, 1] == np.float32(128) / np.float32(255)
    # in range, so neither the colour check (ACCESSOR_NON_CLAMPED) nor the bounds check fires
    assert not _errors(doc.issues)


def test_draco_normalized_mesh_in_the_scene():
    pytest.importorskip("DracoPy")
    loaded = read_glb(SourceFile(name="q.glb", data=_draco_glb(), path=None), ReadLimits())
    (mesh,) = loaded.scene.geometry.values()
    np.testing.assert_allclose(mesh.bounds, [[0, -1, 0], [1, 0, 16384 / 32767]], atol=1e-7)
    np.testing.assert_array_equal(mesh.visual.vertex_colors[:, :3], COLORS)


def test_draco_integers_without_normalized_stay_integers():
    # KHR_mesh_quantization also allows plain integer positions (a node scale does the rest)
    pytest.importorskip("DracoPy")
    doc = read_document(SourceFile(name="q.glb", data=_draco_glb(normalized=False), path=None))
    np.testing.assert_array_equal(doc.accessor(0), POSITIONS.astype(np.float32))
    np.testing.assert_array_equal(doc.accessor(1), UV16.astype(np.float32))


# --- plain (uncompressed) quantized data: bounds are the stored integers -----------------------


def _quantized_glb(values: np.ndarray, ctype: int, semantic: str = "POSITION", **bounds: Any) -> bytes:
    """A triangle with float positions plus one normalized integer VEC3 attribute (rows padded to 4 bytes)."""
    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
    stride = -(-values.dtype.itemsize * 3 // 4) * 4
    rows = np.zeros((3, stride), dtype=np.uint8)
    rows[:, :values.dtype.itemsize * 3] = np.ascontiguousarray(values).view(np.uint8).reshape(3, -1)
    quant, pos = rows.tobytes(), positions.tobytes()
    body = pad4(quant + pos)
    target = {"bufferView": 0, "componentType": ctype, "normalized": True, "count": 3, "type": "VEC3", **bounds}
    plain = {"bufferView": 1, "componentType": 5126, "count": 3, "type": "VEC3",
             "min": positions.min(axis=0).tolist(), "max": positions.max(axis=0).tolist()}
    attributes = {"POSITION": 0} if semantic == "POSITION" else {"POSITION": 1, semantic: 0}
    doc = {
        "asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [{"attributes": attributes}]}],
        "accessors": [target, plain],
        "bufferViews": [{"buffer": 0, "byteOffset": 0, "byteLength": len(quant), "byteStride": stride},
                        {"buffer": 0, "byteOffset": len(quant), "byteLength": len(pos)}],
        "buffers": [{"byteLength": len(body)}],
        "extensionsUsed": ["KHR_mesh_quantization"], "extensionsRequired": ["KHR_mesh_quantization"],
    }
    return glb(doc, body)


def test_plain_normalized_positions_match_their_integer_bounds():
    values = np.array([[0, 0, 0], [32767, 0, 0], [0, -32767, 16384]], dtype=np.int16)
    data = _quantized_glb(values, 5122, min=values.min(axis=0).tolist(), max=values.max(axis=0).tolist())
    doc = read_document(SourceFile(name="q.glb", data=data, path=None))
    np.testing.assert_allclose(doc.accessor(0), [[0, 0, 0], [1, 0, 0], [0, -1, 16384 / 32767]], atol=1e-7)
    assert not _errors(doc.issues)


def test_plain_normalized_bounds_that_lie_are_still_reported():
    values = np.array([[0, 0, 0], [32767, 0, 0], [0, -32767, 16384]], dtype=np.int16)
    data = _quantized_glb(values, 5122, min=values.min(axis=0).tolist(), max=[32767, 0, 16000])
    doc = read_document(SourceFile(name="q.glb", data=data, path=None))
    codes = {code for code, _ in _errors(doc.issues)}
    assert {"ACCESSOR_MAX_MISMATCH", "ACCESSOR_ELEMENT_OUT_OF_MAX_BOUND"} <= codes
    assert "ACCESSOR_MIN_MISMATCH" not in codes


def test_plain_normalized_signed_byte_normals_clamp_minus_128():
    values = np.array([[127, 0, 0], [0, -128, 0], [0, 0, -127]], dtype=np.int8)
    data = _quantized_glb(values, 5120, semantic="NORMAL", min=values.min(axis=0).tolist(), max=values.max(axis=0).tolist())
    doc = read_document(SourceFile(name="q.glb", data=data, path=None))
    np.testing.assert_array_equal(doc.accessor(0), [[1, 0, 0], [0, -1, 0], [0, 0, -1]])
    assert not _errors(doc.issues)
