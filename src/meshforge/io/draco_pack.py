"""KHR_draco_mesh_compression for a GLB we wrote: each triangle primitive through DracoPy.

Why not trimesh's own Draco export: it keeps the vertex order (``preserve_order``), which turns off
Draco's connectivity coder, and stores normals and UVs as raw floats; on a 100k-triangle textured
mesh that gives 1.8 MB of geometry where this gives 0.3 MB. Draco may then reorder and duplicate
vertices, which the extension allows as long as the accessors describe the decoded data
(REQUIREMENTS.md Part 5): so every primitive is decoded again here, its accessors are written from
what the decoder returns, and a primitive whose round trip moves a vertex further than the
quantization step (or changes the triangle count) is left uncompressed.

Primitives with attributes Draco does not carry here (a second UV set, custom attributes, morph
targets) stay uncompressed: their other arrays would no longer line up with the reordered vertices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from meshforge.io import glb_container
from meshforge.io.gltf import COMPONENTS, DRACO, TYPE_SIZES

EXTENSION = DRACO
# glTF semantic -> (DracoPy.encode keyword, Draco GeometryAttribute type id)
_ATTRIBUTES = {"POSITION": ("points", 0), "NORMAL": ("normals", 1), "COLOR_0": ("colors", 2), "TEXCOORD_0": ("tex_coord", 3)}
# what each attribute must be stored as to reach DracoPy unconverted (normalized integers would not)
_COMPONENT_TYPE = {"POSITION": 5126, "NORMAL": 5126, "TEXCOORD_0": 5126, "COLOR_0": 5121}


@dataclass(frozen=True)
class DracoBits:
    """Quantization bits per attribute; defaults are glTF-Transform's ``draco()`` defaults."""

    position: int = 14
    normal: int = 10
    texcoord: int = 12
    level: int = 7  # encoder speed/size trade-off 0..10 (lossless: only time changes)


def _read(tree: dict[str, Any], binary: bytes, index: int) -> np.ndarray | None:
    acc = tree["accessors"][index]
    view_index = acc.get("bufferView")
    if view_index is None or acc.get("componentType") not in COMPONENTS or acc.get("type") not in TYPE_SIZES or acc.get("sparse"):
        return None
    dtype, size = COMPONENTS[acc["componentType"]]
    width = TYPE_SIZES[acc["type"]]
    view = tree["bufferViews"][view_index]
    if view.get("buffer", 0) != 0 or view.get("byteStride", size * width) != size * width:
        return None
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    return np.frombuffer(binary, dtype=dtype, count=acc["count"] * width, offset=start).reshape(acc["count"], width)


def _centroids(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    return points[faces].mean(axis=1)


def _area_vectors(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    corners = points[faces]
    return np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])


def _close(a: np.ndarray, b: np.ndarray, tolerance: float) -> bool:
    """Equal as multisets per coordinate, within ``tolerance`` (sorting is 1-Lipschitz in max norm)."""
    return bool(np.abs(np.sort(a, axis=0) - np.sort(b, axis=0)).max() <= tolerance * 1.01 + 1e-12)


def _compress_primitive(tree: dict[str, Any], binary: bytearray, source: bytes, prim: dict[str, Any],
                        bits: DracoBits) -> bool:
    import DracoPy

    attributes = prim.get("attributes", {})
    if prim.get("mode", 4) != 4 or "indices" not in prim or "POSITION" not in attributes or prim.get("targets"):
        return False
    if set(attributes) - set(_ATTRIBUTES) or EXTENSION in prim.get("extensions", {}):
        return False
    if any(tree["accessors"][acc].get("componentType") != _COMPONENT_TYPE[name] for name, acc in attributes.items()):
        return False
    if tree["accessors"][prim["indices"]].get("componentType") not in (5121, 5123, 5125):
        return False
    arrays = {name: _read(tree, source, acc) for name, acc in attributes.items()}
    faces = _read(tree, source, prim["indices"])
    if faces is None or any(a is None for a in arrays.values()) or len(faces) % 3:
        return False
    positions = arrays["POSITION"].astype(np.float64)
    faces = faces.reshape(-1, 3)
    extra: dict[str, Any] = {}
    if "NORMAL" in arrays:
        extra.update(normals=arrays["NORMAL"].astype(np.float64), normal_quantization_bits=bits.normal)
    if "TEXCOORD_0" in arrays:
        extra.update(tex_coord=arrays["TEXCOORD_0"].astype(np.float64), tex_coord_quantization_bits=bits.texcoord)
    if "COLOR_0" in arrays:
        extra["colors"] = np.ascontiguousarray(arrays["COLOR_0"])
    encoded = DracoPy.encode(positions, faces, quantization_bits=bits.position, compression_level=bits.level, **extra)
    decoded = DracoPy.decode(encoded)
    by_type = {attr["attribute_type"]: attr for attr in decoded.attributes}
    got_faces = np.asarray(decoded.faces).reshape(-1, 3)
    got_points = np.asarray(decoded.points, dtype=np.float64).reshape(-1, 3)
    extent = float(np.ptp(positions, axis=0).max()) if len(positions) else 0.0
    step = extent / (1 << bits.position) if extent > 0 else 0.0
    # the same triangles, each corner within one quantization step of where it was
    if len(got_faces) != len(faces) or len(got_points) == 0:
        return False
    # Draco may start a triangle at another corner, so compare what does not depend on it: the
    # centroids, and the triangles' area vectors (a flipped winding negates them)
    if not (_close(_centroids(positions, faces), _centroids(got_points, got_faces), step)
            and _close(_area_vectors(positions, faces), _area_vectors(got_points, got_faces), 4 * step * extent)):
        return False
    ids: dict[str, int] = {}
    for name in attributes:
        attr = by_type.get(_ATTRIBUTES[name][1])
        if attr is None:
            return False
        data = np.asarray(attr["data"]).reshape(len(got_points), -1)
        old = tree["accessors"][attributes[name]]
        new: dict[str, Any] = {"componentType": old["componentType"], "type": old["type"], "count": len(data)}
        if old.get("normalized"):
            new["normalized"] = True
        if name == "POSITION":
            new["min"] = data.min(axis=0).astype(np.float32).tolist()
            new["max"] = data.max(axis=0).astype(np.float32).tolist()
        tree["accessors"].append(new)
        attributes[name] = len(tree["accessors"]) - 1
        ids[name] = int(attr["unique_id"])
    index_type = 5123 if len(got_points) <= 0xFFFF else 5125
    tree["accessors"].append({"componentType": index_type, "type": "SCALAR", "count": int(got_faces.size)})
    prim["indices"] = len(tree["accessors"]) - 1
    view = glb_container.append_view(tree, binary, encoded)
    prim.setdefault("extensions", {})[EXTENSION] = {"bufferView": view, "attributes": ids}
    return True


def compress_primitives(tree: dict[str, Any], binary: bytearray, bits: DracoBits = DracoBits()) -> tuple[dict[str, Any], bytearray, int]:
    """``tree`` and BIN with every eligible primitive Draco-compressed; also how many were."""
    if len(tree.get("buffers", [])) > 1:
        return tree, binary, 0
    compressed = 0
    source = bytes(binary)  # arrays are read from this snapshot while ``binary`` grows
    for mesh in tree.get("meshes", []):
        for prim in mesh.get("primitives", []):
            compressed += _compress_primitive(tree, binary, source, prim, bits)
    if not compressed:
        return tree, binary, 0
    # no uncompressed fallback is written, so a loader without Draco must refuse the file
    glb_container.declare_extension(tree, EXTENSION, required=True)
    glb_container.drop_unused_accessors(tree)
    tree, binary = glb_container.compact(tree, binary)
    return tree, binary, compressed
