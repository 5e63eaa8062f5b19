"""The GLB container of a file we wrote ourselves: JSON tree and BIN chunk, apart and together.

Post-export passes (embedding images, meshopt compression) edit the tree and append to the binary
chunk. Input files never come through here: they go through the defensive reader in ``io.gltf``.
"""

from __future__ import annotations

import json
import struct
from typing import Any

MAGIC = 0x46546C67  # "glTF"
JSON_CHUNK = 0x4E4F534A
BIN_CHUNK = 0x004E4942


def split_glb(data: bytes) -> tuple[dict[str, Any], bytearray]:
    """The JSON tree and a mutable copy of the BIN chunk (empty when there is none)."""
    magic, version, length = struct.unpack_from("<III", data, 0)
    if magic != MAGIC or version != 2 or length != len(data):
        raise ValueError("not a GLB 2.0 container of the declared length")
    json_len, json_type = struct.unpack_from("<II", data, 12)
    if json_type != JSON_CHUNK:
        raise ValueError("first GLB chunk is not JSON")
    tree = json.loads(data[20:20 + json_len])
    offset = 20 + json_len
    binary = bytearray()
    if offset + 8 <= len(data):
        bin_len, bin_type = struct.unpack_from("<II", data, offset)
        if bin_type == BIN_CHUNK:
            binary = bytearray(data[offset + 8:offset + 8 + bin_len])
    return tree, binary


def join_glb(tree: dict[str, Any], binary: bytes | bytearray) -> bytes:
    """A GLB of ``tree`` and ``binary``: chunks padded to 4 bytes (JSON with spaces, BIN with zeros)."""
    binary = bytes(binary)
    if binary:
        tree.setdefault("buffers", [{}])
        tree["buffers"][0]["byteLength"] = len(binary)
        tree["buffers"][0].pop("uri", None)
    content = json.dumps(tree, separators=(",", ":"), allow_nan=False).encode("utf-8")
    content += b" " * (-len(content) % 4)
    chunks = [struct.pack("<II", len(content), JSON_CHUNK), content]
    if binary:
        binary += b"\0" * (-len(binary) % 4)
        chunks += [struct.pack("<II", len(binary), BIN_CHUNK), binary]
    body = b"".join(chunks)
    return struct.pack("<III", MAGIC, 2, 12 + len(body)) + body


def append_view(tree: dict[str, Any], binary: bytearray, payload: bytes, *, align: int = 4,
                **view: Any) -> int:
    """Append ``payload`` to the BIN chunk as a new bufferView of buffer 0; returns its index."""
    binary.extend(b"\0" * (-len(binary) % align))
    offset = len(binary)
    binary.extend(payload)
    views = tree.setdefault("bufferViews", [])
    views.append({"buffer": 0, "byteOffset": offset, "byteLength": len(payload), **view})
    tree.setdefault("buffers", [{"byteLength": 0}])
    return len(views) - 1


def declare_extension(tree: dict[str, Any], name: str, *, required: bool) -> None:
    used = tree.setdefault("extensionsUsed", [])
    if name not in used:
        used.append(name)
    if required:
        req = tree.setdefault("extensionsRequired", [])
        if name not in req:
            req.append(name)


def compact(tree: dict[str, Any], binary: bytes | bytearray) -> tuple[dict[str, Any], bytearray]:
    """Drop the bufferViews nothing refers to any more and repack buffer 0 without their bytes."""
    views = tree.get("bufferViews", [])
    used: set[int] = set()
    for acc in tree.get("accessors", []):
        if isinstance(acc.get("bufferView"), int):
            used.add(acc["bufferView"])
        for part in ("indices", "values"):
            sparse = acc.get("sparse", {}).get(part, {})
            if isinstance(sparse.get("bufferView"), int):
                used.add(sparse["bufferView"])
    for image in tree.get("images", []):
        if isinstance(image.get("bufferView"), int):
            used.add(image["bufferView"])
    for mesh in tree.get("meshes", []):
        for prim in mesh.get("primitives", []):
            for ext in prim.get("extensions", {}).values():
                if isinstance(ext, dict) and isinstance(ext.get("bufferView"), int):
                    used.add(ext["bufferView"])
    if len(used) == len(views):
        return tree, bytearray(binary)
    remap: dict[int, int] = {}
    packed = bytearray()
    kept = []
    for index, view in enumerate(views):
        if index not in used:
            continue
        if view.get("buffer", 0) == 0:
            start = view.get("byteOffset", 0)
            payload = binary[start:start + view["byteLength"]]
            packed.extend(b"\0" * (-len(packed) % 4))
            view["byteOffset"] = len(packed)
            packed.extend(payload)
        remap[index] = len(kept)
        kept.append(view)
    tree["bufferViews"] = kept

    def fix(holder: dict[str, Any]) -> None:
        if isinstance(holder.get("bufferView"), int):
            holder["bufferView"] = remap[holder["bufferView"]]

    for acc in tree.get("accessors", []):
        fix(acc)
        for part in ("indices", "values"):
            fix(acc.get("sparse", {}).get(part, {}))
    for image in tree.get("images", []):
        fix(image)
    for mesh in tree.get("meshes", []):
        for prim in mesh.get("primitives", []):
            for ext in prim.get("extensions", {}).values():
                if isinstance(ext, dict):
                    fix(ext)
    return tree, packed


def drop_unused_accessors(tree: dict[str, Any]) -> None:
    """Remove accessors no primitive, animation or skin refers to, renumbering the references."""
    accessors = tree.get("accessors", [])
    holders: list[tuple[dict[str, Any], str]] = []
    for mesh in tree.get("meshes", []):
        for prim in mesh.get("primitives", []):
            attrs = prim.get("attributes", {})
            holders += [(attrs, k) for k in attrs]
            if "indices" in prim:
                holders.append((prim, "indices"))
            for target in prim.get("targets", []):
                holders += [(target, k) for k in target]
    for anim in tree.get("animations", []):
        for sampler in anim.get("samplers", []):
            holders += [(sampler, k) for k in ("input", "output") if k in sampler]
    for skin in tree.get("skins", []):
        if "inverseBindMatrices" in skin:
            holders.append((skin, "inverseBindMatrices"))
    used = sorted({h[k] for h, k in holders if isinstance(h[k], int)})
    if len(used) == len(accessors):
        return
    remap = {old: new for new, old in enumerate(used)}
    tree["accessors"] = [accessors[i] for i in used]
    for holder, key in holders:
        if isinstance(holder[key], int):
            holder[key] = remap[holder[key]]
