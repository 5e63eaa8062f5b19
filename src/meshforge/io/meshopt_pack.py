"""EXT_meshopt_compression for a GLB we wrote: vertex and index bufferViews through meshoptimizer.

Layout (the extension's spec, and what gltfpack writes): the compressed bytes live in buffer 0
(the GLB's BIN chunk, together with every view left as it was); each compressed bufferView keeps
its uncompressed place in buffer 1, a *fallback* buffer that holds no data, and names its
compressed bytes in the extension. Without data behind the fallback the extension is required.

Lossless: no quantization and no filters, so every decoded vertex byte equals what was encoded and
the accessors (counts, min/max) stay true; the index codec may start a triangle at another corner
(same winding). Without quantization (KHR_mesh_quantization, as gltfpack does) the gain is modest:
about 44 % fewer geometry bytes on a 100k-triangle mesh, against about 90 % for Draco. Views used for anything but mesh vertex attributes and
triangle indices (images, animation) are left alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meshforge.io import glb_container
from meshforge.io.gltf import COMPONENTS, TYPE_SIZES

EXTENSION = "EXT_meshopt_compression"
_VERTEX_HEADERS = (0xA0,)
_INDEX_HEADERS = (0xE0, 0xE1)


def _view_roles(tree: dict[str, Any]) -> dict[int, tuple[str, int, int]]:
    """bufferView -> (mode, stride, element count) for views meshopt may compress.

    A view qualifies when every accessor on it is a mesh attribute (stride divisible by 4, at most
    256) or every one is triangle indices (2 or 4 bytes); a view with mixed or other uses is skipped.
    """
    accessors = tree.get("accessors", [])
    views = tree.get("bufferViews", [])
    uses: dict[int, set[tuple[str, int, int]]] = {}
    other: set[int] = set()

    def note(acc_index: Any, mode: str) -> None:
        if not isinstance(acc_index, int) or not 0 <= acc_index < len(accessors):
            return
        acc = accessors[acc_index]
        view = acc.get("bufferView")
        if not isinstance(view, int):
            return
        size = COMPONENTS.get(acc.get("componentType"), (None, 0))[1] * TYPE_SIZES.get(acc.get("type"), 0)
        stride = views[view].get("byteStride", size)
        if acc.get("byteOffset", 0) != 0 or size == 0:
            other.add(view)
            return
        uses.setdefault(view, set()).add((mode, stride, int(acc.get("count", 0))))

    for mesh in tree.get("meshes", []):
        for prim in mesh.get("primitives", []):
            for acc in prim.get("attributes", {}).values():
                note(acc, "ATTRIBUTES")
            if prim.get("mode", 4) == 4:
                note(prim.get("indices"), "TRIANGLES")
            elif "indices" in prim:
                other.add(accessors[prim["indices"]].get("bufferView"))
            for target in prim.get("targets", []):
                for acc in target.values():
                    note(acc, "ATTRIBUTES")
    for index, acc in enumerate(accessors):  # accessors outside meshes (animation, skins) keep their views
        view = acc.get("bufferView")
        if isinstance(view, int) and view not in uses:
            other.add(view)
    out: dict[int, tuple[str, int, int]] = {}
    for view, found in uses.items():
        if view in other or len(found) != 1:
            continue
        mode, stride, count = next(iter(found))
        if mode == "ATTRIBUTES" and (stride % 4 or stride > 256):
            continue
        if mode == "TRIANGLES" and (stride not in (2, 4) or count % 3):
            continue
        if views[view].get("byteLength", 0) != stride * count:
            continue
        out[view] = (mode, stride, count)
    return out


def _encode(payload: bytes, mode: str, stride: int, count: int) -> bytes:
    import meshoptimizer

    if mode == "ATTRIBUTES":
        data = np.frombuffer(payload, dtype=np.uint8).reshape(count, stride)
        encoded = meshoptimizer.encode_vertex_buffer(data, count, stride)
        allowed = _VERTEX_HEADERS
    else:
        indices = np.frombuffer(payload, dtype=np.uint16 if stride == 2 else np.uint32)
        encoded = meshoptimizer.encode_index_buffer(indices, count, int(indices.max()) + 1 if count else 0)
        allowed = _INDEX_HEADERS
    # The codec version is a process-wide setting of the C library; EXT_meshopt_compression readers
    # only know vertex codec 0 and index codecs 0/1, so a newer default must not slip into a file.
    if not encoded or encoded[0] not in allowed:
        raise ValueError(f"meshoptimizer wrote codec header {encoded[:1].hex()}, which {EXTENSION} does not define")
    return encoded


def compress_views(tree: dict[str, Any], binary: bytearray) -> tuple[dict[str, Any], bytearray]:
    """``tree`` and a new BIN chunk with mesh views meshopt-compressed (unchanged when none qualify)."""
    if len(tree.get("buffers", [])) > 1:  # not a layout we wrote; leave it as it is
        return tree, binary
    roles = _view_roles(tree)
    if not roles:
        return tree, binary
    views = tree["bufferViews"]
    packed = bytearray()
    fallback_length = 0
    for index, view in enumerate(views):
        if view.get("buffer", 0) != 0:
            continue
        start = view.get("byteOffset", 0)
        payload = bytes(binary[start:start + view["byteLength"]])
        if index not in roles:
            packed.extend(b"\0" * (-len(packed) % 4))
            view["byteOffset"] = len(packed)
            packed.extend(payload)
            continue
        mode, stride, count = roles[index]
        encoded = _encode(payload, mode, stride, count)
        packed.extend(b"\0" * (-len(packed) % 4))
        ext = {"buffer": 0, "byteOffset": len(packed), "byteLength": len(encoded), "byteStride": stride,
               "mode": mode, "count": count}
        packed.extend(encoded)
        fallback_length += -fallback_length % 4
        view.update(buffer=1, byteOffset=fallback_length)
        if mode == "ATTRIBUTES":
            view["byteStride"] = stride  # vertex views state their stride; index views must not
        view.setdefault("extensions", {})[EXTENSION] = ext
        fallback_length += view["byteLength"]
    buffers = tree.setdefault("buffers", [{}])
    del buffers[1:]
    buffers.append({"byteLength": fallback_length, "extensions": {EXTENSION: {"fallback": True}}})
    glb_container.declare_extension(tree, EXTENSION, required=True)
    return tree, packed
