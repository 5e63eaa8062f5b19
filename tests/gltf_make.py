"""Tiny glTF/GLB builders for the glTF tests: one triangle (or a few), assembled byte by byte."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import numpy as np

POSITIONS = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], dtype=np.float32)
INDICES = np.array([0, 1, 2], dtype=np.uint16)


def pad4(data: bytes, fill: bytes = b"\x00") -> bytes:
    return data + fill * (-len(data) % 4)


def triangle_doc(positions: np.ndarray = POSITIONS, indices: np.ndarray | None = INDICES, **extra: Any) -> tuple[dict[str, Any], bytes]:
    """(glTF JSON, BIN bytes) for one indexed triangle primitive with correct bounds."""
    pos = np.ascontiguousarray(positions, dtype=np.float32).tobytes()
    bin_data = pad4(pos)
    views = [{"buffer": 0, "byteOffset": 0, "byteLength": len(pos)}]
    accessors = [{"bufferView": 0, "componentType": 5126, "count": len(positions), "type": "VEC3",
                  "min": positions.min(axis=0).tolist(), "max": positions.max(axis=0).tolist()}]
    prim: dict[str, Any] = {"attributes": {"POSITION": 0}}
    if indices is not None:
        idx = np.ascontiguousarray(indices, dtype=np.uint16).tobytes()
        views.append({"buffer": 0, "byteOffset": len(bin_data), "byteLength": len(idx)})
        bin_data = pad4(bin_data + idx)
        accessors.append({"bufferView": 1, "componentType": 5123, "count": len(indices), "type": "SCALAR"})
        prim["indices"] = 1
    doc = {
        "asset": {"version": "2.0"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"mesh": 0}],
        "meshes": [{"primitives": [prim]}],
        "accessors": accessors,
        "bufferViews": views,
        "buffers": [{"byteLength": len(bin_data)}],
    }
    doc.update(extra)
    return doc, bin_data


def glb(doc: dict[str, Any], bin_data: bytes | None, *, bin_length: int | None = None, total_length: int | None = None) -> bytes:
    """A GLB; ``bin_length``/``total_length`` override the declared lengths (to make them lie)."""
    js = pad4(json.dumps(doc).encode(), b" ")
    chunks = struct.pack("<II", len(js), 0x4E4F534A) + js
    if bin_data is not None:
        body = pad4(bin_data)
        chunks += struct.pack("<II", bin_length if bin_length is not None else len(body), 0x004E4942) + body
    total = 12 + len(chunks)
    return struct.pack("<4sII", b"glTF", 2, total_length if total_length is not None else total) + chunks


def data_uri(data: bytes, mime: str = "application/octet-stream") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def png(width: int = 4, height: int = 4, mode: str = "RGBA") -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(width: int = 4, height: int = 4, mode: str = "RGB") -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, format="JPEG")
    return buf.getvalue()


def png_bomb(width: int = 60000, height: int = 60000) -> bytes:
    """A PNG whose header claims a gigantic image (a few bytes of pixel data follow)."""
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def with_image(doc: dict[str, Any], bin_data: bytes, image: bytes, mime: str = "image/png", *, uv: bool = True) -> tuple[dict[str, Any], bytes]:
    """Add a base-colour textured material (image in the BIN chunk) and TEXCOORD_0 to the triangle."""
    doc = json.loads(json.dumps(doc))
    if uv:
        uvs = np.array([[0, 0], [1, 0], [0, 1]], dtype=np.float32).tobytes()
        doc["bufferViews"].append({"buffer": 0, "byteOffset": len(bin_data), "byteLength": len(uvs)})
        bin_data = pad4(bin_data + uvs)
        doc["accessors"].append({"bufferView": len(doc["bufferViews"]) - 1, "componentType": 5126, "count": 3, "type": "VEC2"})
        doc["meshes"][0]["primitives"][0]["attributes"]["TEXCOORD_0"] = len(doc["accessors"]) - 1
    doc["bufferViews"].append({"buffer": 0, "byteOffset": len(bin_data), "byteLength": len(image)})
    bin_data = pad4(bin_data + image)
    doc["images"] = [{"bufferView": len(doc["bufferViews"]) - 1, "mimeType": mime}]
    doc["textures"] = [{"source": 0}]
    doc["materials"] = [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}]
    doc["meshes"][0]["primitives"][0]["material"] = 0
    doc["buffers"][0]["byteLength"] = len(bin_data)
    return doc, bin_data
