"""Amplification in the glTF reader: a few hundred bytes of JSON that claim gigabytes of faces or vertices.

Each hostile file is read in a child process whose address space is capped at 1 GiB (``RLIMIT_AS``):
before the claims were checked, these reads needed 4-20 GB and died with MemoryError; now each must
finish, refused with ``input.too_large`` or read with the structural issue, under the cap.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from meshforge.errors import InputError
from meshforge.io import gltf as gltf_io
from meshforge.io.gltf import read_document, read_glb
from meshforge.types import ReadLimits, SourceFile
from tests.gltf_make import POSITIONS, glb, pad4, triangle_doc

ADDRESS_SPACE = 1 << 30  # the imports take about 400 MB of it

CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from pathlib import Path
from meshforge.errors import InputError
from meshforge.io.gltf import read_document, read_glb
from meshforge.types import ReadLimits, SourceFile

path, scene, limits = Path(sys.argv[1]), sys.argv[2] == "scene", ReadLimits(**json.loads(sys.argv[3]))
source = SourceFile(name=path.name, data=path.read_bytes(), path=path)
out = {{}}
try:
    if scene:
        loaded = read_glb(source, limits)
        doc = loaded.document
        out["vertices"] = sorted(len(g.vertices) for g in loaded.scene.geometry.values())
    else:
        doc = read_document(source, limits)
    out["issues"] = [[i.code, i.pointer] for i in doc.issues]
except InputError as exc:
    out.update(code=exc.code, reason=exc.reason)
print(json.dumps(out))
"""


def with_sparse_views(doc: dict, bin_data: bytes, indices: bytes, values: bytes) -> bytes:
    """Append sparse indices and values as the next two bufferViews of ``doc``; returns the new BIN chunk."""
    doc["bufferViews"] += [{"buffer": 0, "byteOffset": len(bin_data), "byteLength": len(indices)},
                           {"buffer": 0, "byteOffset": len(bin_data) + len(indices), "byteLength": len(values)}]
    bin_data = pad4(bin_data + indices + values)
    doc["buffers"][0]["byteLength"] = len(bin_data)
    return bin_data


def read_capped(tmp_path: Path, data: bytes, *, scene: bool = False, **limits: int) -> dict[str, Any]:
    """Read ``data`` in a child limited to 1 GiB of address space: its InputError, or its issues."""
    path = tmp_path / "hostile.glb"
    path.write_bytes(data)
    proc = subprocess.run([sys.executable, "-c", CHILD.format(cap=ADDRESS_SPACE), str(path), "scene" if scene else "doc",
                           json.dumps(limits)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"the read did not finish under {ADDRESS_SPACE >> 20} MiB:\n{proc.stderr[-1500:]}"
    return json.loads(proc.stdout.splitlines()[-1])


def no_bufferview_doc(count: int, primitives: list[dict[str, Any]]) -> tuple[dict[str, Any], bytes]:
    """A file whose POSITION accessor has no bufferView (zeros by the spec) and claims ``count`` elements."""
    doc, bin_data = triangle_doc(indices=None)
    del doc["accessors"][0]["bufferView"]
    doc["accessors"][0]["count"] = count
    doc["meshes"][0]["primitives"] = primitives
    return doc, bin_data


def shared_index_doc(primitives: int, indices: int = 300_000) -> tuple[dict[str, Any], bytes]:
    """One uint8 index accessor of ``indices`` elements, shared by ``primitives`` primitives."""
    doc, bin_data = triangle_doc(indices=None)
    idx = (np.arange(indices) % 3).astype(np.uint8).tobytes()
    doc["bufferViews"].append({"buffer": 0, "byteOffset": len(bin_data), "byteLength": len(idx)})
    bin_data = pad4(bin_data + idx)
    doc["buffers"][0]["byteLength"] = len(bin_data)
    doc["accessors"].append({"bufferView": 1, "componentType": 5121, "count": indices, "type": "SCALAR"})
    doc["meshes"][0]["primitives"] = [{"attributes": {"POSITION": 0}, "indices": 1}] * primitives
    return doc, bin_data


def src(data: bytes) -> SourceFile:
    return SourceFile(name="m.glb", data=data)


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any accessor is decoded: the refusal must come from the declared counts alone."""
    def refuse(self, index):
        raise AssertionError(f"accessor {index} decoded before the triangle limit was checked")

    monkeypatch.setattr(gltf_io.GltfDocument, "_decode_accessor", refuse)


# --- triangles claimed before anything is allocated -----------------------------------------------------


@pytest.mark.parametrize("mode, primitives, triangles", [(5, 1, 119_999_997), (6, 1, 119_999_997), (4, 4, 4 * 39_999_999)])
def test_accessor_without_bufferview_drawn_as_many_triangles_is_refused_under_1gib(tmp_path, mode, primitives, triangles):
    # 444 bytes: before, 6.5 GB of int64 faces (38 s) were built before the late check refused them
    doc, bin_data = no_bufferview_doc(119_999_999, [{"attributes": {"POSITION": 0}, "mode": mode}] * primitives)
    out = read_capped(tmp_path, glb(doc, bin_data), scene=True)
    assert out["code"] == "input.too_large"
    assert f"{triangles} triangles after instancing, over the limit of 20000000 (limits.max_triangles)" in out["reason"]


def test_index_accessor_shared_by_thousands_of_primitives_is_refused_under_1gib(tmp_path):
    # 390 KB: 2,000 primitives x one 300k-index accessor = 200M triangles, 4.6 GB of faces before
    doc, bin_data = shared_index_doc(2_000)
    out = read_capped(tmp_path, glb(doc, bin_data), scene=True)
    assert out["code"] == "input.too_large"
    assert "200000000 triangles after instancing, over the limit of 20000000" in out["reason"]


def test_mesh_no_node_draws_still_counts_toward_the_limit(tmp_path):
    # every mesh is decoded (the validator checks unused data too), so an undrawn one can amplify as well
    doc, bin_data = shared_index_doc(2_000)
    doc["meshes"].append({"primitives": [{"attributes": {"POSITION": 0}}]})
    doc["nodes"] = [{"mesh": 1}]
    out = read_capped(tmp_path, glb(doc, bin_data), scene=True)
    assert out["code"] == "input.too_large"
    assert "200000001 triangles in the file's meshes (drawn or not), over the limit of 20000000" in out["reason"]


def test_instances_are_counted_before_any_accessor_is_decoded(no_decoding):
    doc, bin_data = triangle_doc()
    doc["nodes"] = [{"mesh": 0}] * 11
    doc["scenes"] = [{"nodes": list(range(11))}]
    with pytest.raises(InputError) as exc:
        read_document(src(glb(doc, bin_data)), ReadLimits(max_triangles=10))
    assert exc.value.code == "input.too_large"
    assert "11 triangles after instancing, over the limit of 10 (limits.max_triangles)" in exc.value.reason


@pytest.mark.parametrize("mode, count, claimed", [(4, 15, 5), (4, 17, 5), (5, 7, 5), (6, 7, 5)])
def test_triangles_per_mode_are_claimed_from_the_counts(no_decoding, mode, count, claimed):
    doc, bin_data = no_bufferview_doc(count, [{"attributes": {"POSITION": 0}, "mode": mode}])
    with pytest.raises(InputError) as exc:
        read_document(src(glb(doc, bin_data)), ReadLimits(max_triangles=claimed - 1))
    assert f"{claimed} triangles after instancing" in exc.value.reason


@pytest.mark.parametrize("mode, count", [(4, 12), (5, 6), (6, 6)])
def test_a_file_exactly_at_the_limit_is_read(mode, count):
    doc, bin_data = no_bufferview_doc(count, [{"attributes": {"POSITION": 0}, "mode": mode}])
    d = read_document(src(glb(doc, bin_data)), ReadLimits(max_triangles=4))
    assert d.triangles == 4


def test_points_and_lines_claim_no_triangles():
    doc, bin_data = no_bufferview_doc(1_000, [{"attributes": {"POSITION": 0}, "mode": m} for m in (0, 1, 2, 3)])
    d = read_document(src(glb(doc, bin_data)), ReadLimits(max_triangles=1))
    assert d.triangles == 0


# --- accessors without a bufferView --------------------------------------------------------------------


def test_accessor_without_bufferview_is_capped_at_max_vertices():
    doc, bin_data = triangle_doc()
    doc["accessors"].append({"componentType": 5126, "count": 1_001, "type": "VEC3"})
    doc["meshes"][0]["primitives"][0]["attributes"]["NORMAL"] = 2
    d = read_document(src(glb(doc, bin_data)), ReadLimits(max_vertices=1_000))
    (issue,) = [i for i in d.issues if i.pointer == "/accessors/2"]
    assert issue.code == "ACCESSOR_TOO_LONG" and issue.measured == 1_001 and issue.threshold == 1_000


def test_many_long_zero_filled_attributes_allocate_nothing(tmp_path):
    # 50 normalized VEC4 accessors of 29M zeros on a 3-vertex primitive: 9.5 GB of float32 before
    doc, bin_data = triangle_doc()
    long = {"componentType": 5121, "normalized": True, "count": 29_000_000, "type": "VEC4"}
    doc["accessors"] += [dict(long) for _ in range(50)]
    doc["meshes"][0]["primitives"][0]["attributes"].update({f"_X{i}": 2 + i for i in range(50)})
    out = read_capped(tmp_path, glb(doc, bin_data))
    codes = [code for code, p in out["issues"] if p.startswith("/accessors/") or "/attributes/_X" in p]
    # zero views allocate nothing (read under the 1 GiB cap): each is compared with POSITION and found too long
    assert codes.count("MESH_PRIMITIVE_UNEQUAL_ACCESSOR_COUNT") == 50 and "ACCESSOR_TOO_LONG" not in codes


def test_zero_filled_accessor_reads_as_zeros():
    doc, bin_data = triangle_doc()
    doc["accessors"].append({"componentType": 5121, "normalized": True, "count": 3, "type": "VEC4"})
    doc["meshes"][0]["primitives"][0]["attributes"]["COLOR_0"] = 2
    d = read_document(src(glb(doc, bin_data)))
    colors = d.accessor(2)
    assert colors.shape == (3, 4) and colors.dtype == np.float32 and not colors.any()


def test_sparse_accessors_without_bufferview_share_one_budget(tmp_path):
    # 200 unused sparse accessors of 10M zero VEC3 (one value each): 24 GB declared, 9.6 GB kept before
    doc, bin_data = triangle_doc(indices=None)
    bin_data = with_sparse_views(doc, bin_data, np.array([0], np.uint32).tobytes(), np.ones(3, np.float32).tobytes())
    sparse = {"componentType": 5126, "count": 10_000_000, "type": "VEC3",
              "sparse": {"count": 1, "indices": {"bufferView": 1, "componentType": 5125}, "values": {"bufferView": 2}}}
    doc["accessors"] += [dict(sparse) for _ in range(200)]
    out = read_capped(tmp_path, glb(doc, bin_data))
    unchecked = {p for code, p in out["issues"] if code == "accessor_not_checked"}
    # 12 bytes x max_vertices (360 MB) check three of them, one at a time; the rest are left
    # unchecked (info: unused and valid by the spec), not allocated
    assert unchecked == {f"/accessors/{i}" for i in range(4, 201)}
    assert not [p for code, p in out["issues"] if code == "ACCESSOR_TOO_LONG"]


def test_sparse_accessor_without_bufferview_is_still_applied():
    doc, bin_data = triangle_doc(indices=None)
    bin_data = with_sparse_views(doc, bin_data, np.array([1], np.uint32).tobytes(), np.array([1, 2, 3], np.float32).tobytes())
    doc["accessors"].append({"componentType": 5126, "count": 3, "type": "VEC3",
                             "sparse": {"count": 1, "indices": {"bufferView": 1, "componentType": 5125}, "values": {"bufferView": 2}}})
    doc["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_5"] = 1
    d = read_document(src(glb(doc, bin_data)))
    assert d.accessor(1).tolist() == [[0, 0, 0], [1, 2, 3], [0, 0, 0]]


# --- one POSITION accessor shared by many primitives ---------------------------------------------------


def shared_positions_doc(primitives: int, vertices: int, *, nan: bool = False) -> tuple[dict[str, Any], bytes]:
    """``vertices`` positions shared by ``primitives`` primitives, primitive k drawing vertices k, k+1, k+2;
    with ``nan`` the last vertex is NaN (bounds declared from the others, as the validator computes them)."""
    pos = np.random.default_rng(0).random((vertices, 3), dtype=np.float32)
    idx = (np.arange(primitives)[:, None] + np.arange(3)).astype(np.uint32)
    doc, bin_data = triangle_doc(positions=pos, indices=None)
    if nan:
        pos[-1] = np.nan
    bin_data = pos.tobytes() + idx.tobytes()
    doc["buffers"][0]["byteLength"] = len(bin_data)
    doc["bufferViews"] = [{"buffer": 0, "byteOffset": 0, "byteLength": pos.nbytes}] + [
        {"buffer": 0, "byteOffset": pos.nbytes + 12 * k, "byteLength": 12} for k in range(primitives)]
    doc["accessors"] += [{"bufferView": 1 + k, "componentType": 5125, "count": 3, "type": "SCALAR"} for k in range(primitives)]
    doc["meshes"][0]["primitives"] = [{"attributes": {"POSITION": 0}, "indices": 1 + k} for k in range(primitives)]
    return doc, bin_data


def test_primitives_sharing_a_big_position_accessor_keep_only_their_vertices(tmp_path):
    # 2,000 one-triangle primitives over 200k vertices: 2,000 float64 copies (9.6 GB) before
    doc, bin_data = shared_positions_doc(2_000, 200_000, nan=True)
    out = read_capped(tmp_path, glb(doc, bin_data), scene=True)
    assert out["vertices"] == [3] * 2_000
    # the shared accessor is checked, and its NaN reported, once (not once per primitive)
    assert [i for i in out["issues"] if i[1] == "/accessors/0"] == [["ACCESSOR_INVALID_FLOAT", "/accessors/0"]]


def test_compacted_primitives_draw_the_same_triangles():
    doc, bin_data = shared_positions_doc(4, 10)
    positions = np.frombuffer(bin_data, np.float32, count=30).reshape(10, 3)
    scene = read_glb(src(glb(doc, bin_data)), ReadLimits()).scene
    for k, mesh in enumerate(scene.geometry.values()):
        np.testing.assert_array_equal(mesh.vertices[mesh.faces], positions[np.arange(k, k + 3)][None].astype(np.float64))


def test_a_position_accessor_used_once_is_not_compacted():
    doc, bin_data = triangle_doc(positions=np.vstack([POSITIONS, [[5, 5, 5]]]))
    scene = read_glb(src(glb(doc, bin_data)), ReadLimits()).scene
    assert len(next(iter(scene.geometry.values())).vertices) == 4


# --- strips and fans ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode, faces", [
    (5, [[0, 1, 2], [2, 1, 3], [2, 3, 4], [4, 3, 5]]),  # every other triangle flipped to keep the winding
    (6, [[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 5]]),
])
def test_strip_and_fan_faces(mode, faces):
    positions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 2, 0], [1, 2, 0]], np.float32)
    doc, bin_data = triangle_doc(positions=positions, indices=None)
    doc["meshes"][0]["primitives"][0]["mode"] = mode
    mesh = next(iter(read_glb(src(glb(doc, bin_data)), ReadLimits()).scene.geometry.values()))
    assert mesh.faces.tolist() == faces


# --- meshopt views naming one payload ------------------------------------------------------------------


def test_meshopt_views_share_one_decoding_budget(tmp_path):
    meshoptimizer = pytest.importorskip("meshoptimizer")
    # one 48 MB zero stream, encoded to ~0.75 MB, named by 40 views: 1.9 GB decoded (and kept) before
    n, stride = 3_000_000, 16
    payload = meshoptimizer.encode_vertex_buffer(np.zeros((n, 4), np.float32), n, stride)
    doc, bin_data = triangle_doc(indices=None, extensionsUsed=["EXT_meshopt_compression"])
    offset = len(bin_data)
    bin_data = pad4(bin_data + payload)
    ext = {"buffer": 0, "byteOffset": offset, "byteLength": len(payload), "byteStride": stride, "count": n, "mode": "ATTRIBUTES"}
    doc["buffers"] = [{"byteLength": len(bin_data)}, {"byteLength": n * stride, "extensions": {"EXT_meshopt_compression": {"fallback": True}}}]
    doc["bufferViews"] += [{"buffer": 1, "byteLength": n * stride, "byteStride": stride, "extensions": {"EXT_meshopt_compression": ext}}] * 40
    doc["accessors"] += [{"bufferView": 1 + k, "componentType": 5126, "count": 3, "type": "VEC4"} for k in range(40)]
    doc["meshes"][0]["primitives"][0]["attributes"].update({f"_X{k}": 1 + k for k in range(40)})
    out = read_capped(tmp_path, glb(doc, bin_data), max_vertices=n)
    refused = [p for code, p in out["issues"] if code == "compressed_geometry"]
    # 4 x max_vertices x 16 bytes (192 MB) decode four of the views; the other 36 are refused
    assert refused == [f"/bufferViews/{k}/extensions" for k in range(5, 41)]


def test_valid_sparse_morph_targets_are_never_an_error_however_many(tmp_path):
    """32 sparse morph targets without bufferView on a 999-vertex mesh, under a 1,000-vertex limit:
    charged all at once, the 3rd and later were ACCESSOR_TOO_LONG errors on a valid file."""
    from meshforge.types import ReadLimits

    n = 999
    positions = np.random.default_rng(1).random((n, 3)).astype(np.float32)
    doc, bin_data = triangle_doc(positions=positions, indices=None)
    bin_data = with_sparse_views(doc, bin_data, np.array([0, 1, 2, 3], np.uint32).tobytes(), np.ones(12, np.float32).tobytes())
    target = {"componentType": 5126, "count": n, "type": "VEC3",
              "sparse": {"count": 4, "indices": {"bufferView": 1, "componentType": 5125}, "values": {"bufferView": 2}}}
    doc["accessors"] += [dict(target) for _ in range(32)]
    doc["meshes"][0]["primitives"][0]["targets"] = [{"POSITION": 1 + i} for i in range(32)]
    d = read_document(src(glb(doc, bin_data)), ReadLimits(max_vertices=1000))
    assert not [i for i in d.issues if i.severity == "error"], [(i.code, i.pointer) for i in d.issues]
    assert {i.code for i in d.issues} <= {"accessor_not_checked", "missing_normals"}


def test_a_sparse_byte_offset_that_is_not_a_number_is_an_issue():
    doc, bin_data = triangle_doc(indices=None)
    bin_data = with_sparse_views(doc, bin_data, np.array([1], np.uint32).tobytes(), np.array([1, 2, 3], np.float32).tobytes())
    doc["accessors"].append({"componentType": 5126, "count": 3, "type": "VEC3",
                             "sparse": {"count": 1, "indices": {"bufferView": 1, "componentType": 5125, "byteOffset": "x"},
                                        "values": {"bufferView": 2}}})
    doc["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_5"] = 1
    d = read_document(src(glb(doc, bin_data)))
    assert any(i.code == "VALUE_NOT_IN_RANGE" and "sparse byteOffset" in i.message for i in d.issues)
