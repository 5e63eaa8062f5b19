"""Hostile glTF/GLB input: lying lengths, escaping and remote URIs, overruns, cycles, bombs. Nothing may crash,
read outside the model's folder, or touch the network."""

from __future__ import annotations

import http.server
import json
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from meshforge.errors import InputError
from meshforge.io import gltf as gltf_io
from meshforge.io.gltf import read_document, read_glb, read_gltf
from meshforge.types import ReadLimits, SourceFile
from tests.gltf_make import INDICES, POSITIONS, data_uri, glb, jpeg, png, png_bomb, triangle_doc, with_image


def codes(doc) -> set[str]:
    return {i.code for i in doc.issues}


def src(data: bytes, path: Path | None = None, name: str = "m.glb") -> SourceFile:
    return SourceFile(name=path.name if path else name, data=data, path=path)


# --- GLB container -------------------------------------------------------------------------------------


def test_bin_chunk_length_that_lies_is_an_error_not_a_crash():
    doc, bin_data = triangle_doc()
    data = glb(doc, bin_data, bin_length=len(bin_data) + 4096)
    d = read_document(src(data))
    assert "GLB_UNEXPECTED_END_OF_CHUNK_DATA" in codes(d)
    assert d.buffers[0] is None or len(d.buffers[0]) <= len(data)


def test_json_chunk_length_that_lies_raises_input_error():
    doc, bin_data = triangle_doc()
    data = bytearray(glb(doc, bin_data))
    data[12:16] = (10**6).to_bytes(4, "little")
    with pytest.raises(InputError) as exc:
        read_glb(src(bytes(data)), ReadLimits())
    assert exc.value.code == "input.corrupt" and "GLB_UNEXPECTED_END_OF_CHUNK_DATA" in exc.value.reason


def test_declared_total_length_mismatch_is_reported():
    doc, bin_data = triangle_doc()
    d = read_document(src(glb(doc, bin_data, total_length=10**7)))
    assert "GLB_LENGTH_MISMATCH" in codes(d)


@pytest.mark.parametrize("data", [b"", b"glTF", b"glTF\x01\x00\x00\x00\x0c\x00\x00\x00", b"NOPE" + b"\x00" * 20])
def test_broken_headers_raise_input_error(data):
    with pytest.raises(InputError):
        read_glb(src(data), ReadLimits())


def test_deeply_nested_json_is_refused_cleanly():
    data = b'{"asset": {"version": "2.0"}, "extras": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    with pytest.raises(InputError):
        read_gltf(src(data, name="m.gltf"), ReadLimits())


# --- accessors and indices --------------------------------------------------------------------------


def test_accessor_count_times_stride_overrunning_its_view():
    doc, bin_data = triangle_doc()
    doc["accessors"][0]["count"] = 1000
    d = read_document(src(glb(doc, bin_data)))
    assert "ACCESSOR_TOO_LONG" in codes(d)


def test_buffer_view_past_its_buffer():
    doc, bin_data = triangle_doc()
    doc["bufferViews"][0]["byteLength"] = 10**6
    d = read_document(src(glb(doc, bin_data)))
    assert "BUFFER_VIEW_TOO_LONG" in codes(d)


def test_out_of_range_indices_are_reported_and_dropped():
    doc, bin_data = triangle_doc(POSITIONS, np.array([0, 1, 2, 0, 1, 70], dtype=np.uint16))
    loaded = read_glb(src(glb(doc, bin_data)), ReadLimits())
    assert "ACCESSOR_INDEX_OOB" in codes(loaded.document)
    (mesh,) = loaded.scene.geometry.values()
    assert len(mesh.faces) == 1 and mesh.faces.max() < 3


def test_sparse_accessor_is_applied():
    doc, bin_data = triangle_doc()
    idx = np.array([2], dtype=np.uint16).tobytes() + b"\x00\x00"
    val = np.array([[0, 5, 0]], dtype=np.float32).tobytes()
    doc["bufferViews"] += [{"buffer": 0, "byteOffset": len(bin_data), "byteLength": 4},
                           {"buffer": 0, "byteOffset": len(bin_data) + 4, "byteLength": 12}]
    bin_data = bin_data + idx + val
    doc["buffers"][0]["byteLength"] = len(bin_data)
    doc["accessors"][0]["sparse"] = {"count": 1, "indices": {"bufferView": 2, "componentType": 5123}, "values": {"bufferView": 3}}
    doc["accessors"][0]["max"] = [1, 5, 0]
    loaded = read_glb(src(glb(doc, bin_data)), ReadLimits())
    (mesh,) = loaded.scene.geometry.values()
    assert mesh.vertices[2].tolist() == [0, 5, 0]
    assert not {c for c in codes(loaded.document) if c.startswith("ACCESSOR")}


def test_sparse_index_out_of_range():
    doc, bin_data = triangle_doc()
    doc["bufferViews"] += [{"buffer": 0, "byteOffset": len(bin_data), "byteLength": 4},
                           {"buffer": 0, "byteOffset": len(bin_data) + 4, "byteLength": 12}]
    bin_data = bin_data + np.array([9, 0], dtype=np.uint16).tobytes() + np.zeros(3, np.float32).tobytes()
    doc["buffers"][0]["byteLength"] = len(bin_data)
    doc["accessors"][0]["sparse"] = {"count": 1, "indices": {"bufferView": 2, "componentType": 5123}, "values": {"bufferView": 3}}
    assert "ACCESSOR_SPARSE_INDEX_OOB" in codes(read_document(src(glb(doc, bin_data))))


# --- node graphs and primitive counts ------------------------------------------------------------------


def test_cyclic_node_graph_terminates_and_is_reported():
    doc, bin_data = triangle_doc()
    doc["nodes"] = [{"mesh": 0, "children": [1]}, {"children": [2]}, {"children": [1]}]
    d = read_document(src(glb(doc, bin_data)))
    assert "NODE_LOOP" in codes(d)


def test_very_deep_node_graph_is_cut_without_recursion_error():
    doc, bin_data = triangle_doc()
    depth = 5000
    doc["nodes"] = [{"children": [i + 1]} for i in range(depth)] + [{"mesh": 0}]
    d = read_document(src(glb(doc, bin_data)), ReadLimits(max_depth=256))
    assert "node_depth" in codes(d)


def test_thousands_of_tiny_primitives_over_the_limit_are_refused():
    doc, bin_data = triangle_doc()
    doc["meshes"][0]["primitives"] = doc["meshes"][0]["primitives"] * 5000
    with pytest.raises(InputError) as exc:
        read_glb(src(glb(doc, bin_data)), ReadLimits(max_primitives=1000))
    assert exc.value.code == "input.too_complex"


def test_instanced_triangles_over_the_limit_are_refused_before_building():
    doc, bin_data = triangle_doc()
    doc["nodes"] = [{"mesh": 0} for _ in range(50)]
    doc["scenes"] = [{"nodes": list(range(50))}]
    with pytest.raises(InputError) as exc:
        read_glb(src(glb(doc, bin_data)), ReadLimits(max_triangles=10))
    assert exc.value.code == "input.too_large"


def test_unknown_required_extension_is_reported():
    doc, bin_data = triangle_doc(extensionsUsed=["ACME_magic"], extensionsRequired=["ACME_magic"])
    assert "unsupported_required_extension" in codes(read_document(src(glb(doc, bin_data))))


# --- URIs: never outside the folder, never the network --------------------------------------------------


@pytest.fixture
def canary(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    canary = tmp_path / "canary.bin"
    canary.write_bytes(POSITIONS.tobytes() + INDICES.tobytes() + b"\x00\x00")
    (model_dir / "link.bin").symlink_to(canary)
    return model_dir, canary


_OPENED: list[str] = []
_WATCH: dict[str, bool] = {"on": False}


def _audit(event, args):
    if _WATCH["on"] and event == "open" and args and isinstance(args[0], (str, bytes, Path)):
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)


@pytest.mark.parametrize("uri", ["../canary.bin", "%2E%2E/canary.bin", "sub/../../canary.bin", "link.bin", "ABSOLUTE", "FILEURL"])
def test_no_file_outside_the_model_folder_is_read(canary, uri):
    model_dir, canary_path = canary
    uri = {"ABSOLUTE": str(canary_path), "FILEURL": canary_path.as_uri()}.get(uri, uri)
    doc, _ = triangle_doc()
    doc["buffers"] = [{"uri": uri, "byteLength": 38}]
    path = model_dir / "m.gltf"
    path.write_text(json.dumps(doc))
    _OPENED.clear()
    _WATCH["on"] = True
    try:
        with pytest.raises(InputError):  # no buffer -> no triangles
            read_gltf(src(path.read_bytes(), path), ReadLimits())
        d = read_document(src(path.read_bytes(), path))
    finally:
        _WATCH["on"] = False
    assert not any("canary" in p for p in _OPENED), _OPENED
    assert "uri_outside_folder" in codes(d)


def test_file_inside_the_folder_is_read_and_flagged_external(tmp_path):
    doc, bin_data = triangle_doc()
    (tmp_path / "b.bin").write_bytes(bin_data)
    doc["buffers"][0]["uri"] = "b.bin"
    path = tmp_path / "m.gltf"
    path.write_text(json.dumps(doc))
    loaded = read_gltf(src(path.read_bytes(), path), ReadLimits())
    assert len(loaded.scene.geometry) == 1
    assert "external_uri" in codes(loaded.document)


def test_no_http_request_leaves_for_a_uri_inside_a_model(tmp_path):
    hits = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"\x00" * 64)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        doc, bin_data = triangle_doc()
        doc["buffers"].append({"uri": f"{base}/buffer.bin", "byteLength": 64})
        doc["images"] = [{"uri": f"{base}/tex.png"}, {"uri": f"//127.0.0.1:{server.server_port}/x.png"}]
        loaded = read_glb(src(glb(doc, bin_data)), ReadLimits())
        assert "remote_uri" in codes(loaded.document)
    finally:
        server.shutdown()
        server.server_close()
    assert hits == []


def test_huge_data_uri_is_refused_before_decoding(monkeypatch):
    monkeypatch.setattr(gltf_io, "MAX_DATA_URI_BYTES", 1024)
    doc, bin_data = triangle_doc()
    doc["buffers"] = [{"uri": data_uri(bin_data + b"\x00" * 4096), "byteLength": len(bin_data) + 4096}]
    d = read_document(src(json.dumps(doc).encode(), name="m.gltf"))
    assert "data_uri_too_large" in codes(d)


def test_small_data_uri_buffer_is_read():
    doc, bin_data = triangle_doc()
    doc["buffers"] = [{"uri": data_uri(bin_data), "byteLength": len(bin_data)}]
    loaded = read_gltf(src(json.dumps(doc).encode(), name="m.gltf"), ReadLimits())
    assert len(next(iter(loaded.scene.geometry.values())).faces) == 1


# --- images ---------------------------------------------------------------------------------------------


def _with(image: bytes, mime: str = "image/png"):
    doc, bin_data = with_image(*triangle_doc(), image, mime)
    return read_glb(src(glb(doc, bin_data)), ReadLimits(max_image_pixels=64 * 1024 * 1024))


def test_decompression_bomb_is_refused_before_decoding():
    loaded = _with(png_bomb())
    assert "image_too_large" in codes(loaded.document)
    assert loaded.document.images[0].image is None


def test_truncated_image():
    assert "IMAGE_UNEXPECTED_EOS" in codes(_with(png(64, 64)[:40]).document)


def test_mislabeled_image():
    loaded = _with(jpeg(), "image/png")
    assert "IMAGE_MIME_TYPE_INVALID" in codes(loaded.document)


@pytest.mark.parametrize("image", [png(4, 4, "I;16"), jpeg(4, 4, "CMYK")], ids=["16-bit", "cmyk"])
def test_16bit_and_cmyk_images_are_flagged_and_still_usable(image):
    loaded = _with(image, "image/png" if image.startswith(b"\x89PNG") else "image/jpeg")
    assert "image_unsupported_mode" in codes(loaded.document)
    assert loaded.document.images[0].image.mode in ("RGB", "RGBA", "L", "LA")


def test_an_attribute_of_the_wrong_accessor_type_is_the_validator_s_error_and_left_out():
    """A SCALAR COLOR_0 (glTF: VEC3/VEC4) passed ecommerce-glb with exit 0, trimesh printing
    'unable to convert colors!' as it dropped it."""
    doc, bin_data = triangle_doc()
    colours = np.full(3, 0.5, dtype=np.float32).tobytes()
    doc["bufferViews"].append({"buffer": 0, "byteOffset": len(bin_data), "byteLength": len(colours)})
    doc["accessors"].append({"bufferView": 2, "componentType": 5126, "count": 3, "type": "SCALAR"})
    doc["meshes"][0]["primitives"][0]["attributes"]["COLOR_0"] = 2
    bin_data += colours
    doc["buffers"][0]["byteLength"] = len(bin_data)
    d = read_document(src(glb(doc, bin_data)))
    (issue,) = [i for i in d.issues if i.code == "MESH_PRIMITIVE_ATTRIBUTES_ACCESSOR_INVALID_FORMAT"]
    assert issue.severity == "error" and issue.pointer == "/meshes/0/primitives/0/attributes/COLOR_0"
    scene = read_glb(src(glb(doc, bin_data)), ReadLimits()).scene
    (mesh,) = scene.geometry.values()
    assert len(mesh.faces) == 1  # the triangle itself is still read


def test_extensions_used_that_is_not_an_array_of_strings_is_a_type_mismatch():
    doc, bin_data = triangle_doc(extensionsUsed="KHR_materials_unlit")
    d = read_document(src(glb(doc, bin_data)))
    assert any(i.code == "TYPE_MISMATCH" and i.pointer == "/extensionsUsed" for i in d.issues)


@pytest.mark.parametrize(("key", "value"), [("bufferView", [0]), ("componentType", [5126]), ("type", ["VEC3"]), ("count", "3")])
def test_a_list_or_string_where_an_accessor_wants_a_number_is_a_structural_issue_not_a_python_error(key, value):
    """Each once escaped as 'corrupt glb file (TypeError: unhashable type: 'list')'."""
    doc, bin_data = triangle_doc()
    doc["accessors"][0][key] = value
    d = read_document(src(glb(doc, bin_data)))
    assert {i.code for i in d.issues} & {"TYPE_MISMATCH", "VALUE_NOT_IN_LIST"}
    with pytest.raises(InputError) as err:
        read_glb(src(glb(doc, bin_data)), ReadLimits())
    assert err.value.code == "input.empty" and "Error:" not in err.value.reason
