"""Name a file's real format from its first bytes; the extension is only a tie-breaker.

A provider that returns HTML instead of a GLB, a PNG renamed ``.stl`` or a GLB renamed ``.obj`` is
normal input: the bytes decide.
"""

from __future__ import annotations

import re

HEAD_BYTES = 4096

_EXTENSIONS = {
    ".stl": "stl",
    ".obj": "obj",
    ".ply": "ply",
    ".off": "off",
    ".glb": "glb",
    ".gltf": "gltf",
    ".3mf": "3mf",
    ".png": "png",
    ".jpg": "jpeg",
    ".jpeg": "jpeg",
    ".webp": "webp",
    ".bin": "bin",
    ".mtl": "mtl",
}

_OFF_HEADER = re.compile(rb"^\s*(ST)?(C)?(N)?(4)?(n)?OFF(\s+BINARY)?\s", re.IGNORECASE)
_OBJ_LINE = re.compile(rb"^\s*(v|vt|vn|f|o|g|s|mtllib|usemtl|l|p)\s", re.MULTILINE)


def _text(head: bytes) -> bytes:
    """Head as ASCII-ish bytes, decoding UTF-16 (with BOM) and dropping a UTF-8 BOM."""
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return head.decode("utf-16", errors="ignore").encode("ascii", errors="ignore")
        except UnicodeDecodeError:
            return b""
    return head.removeprefix(b"\xef\xbb\xbf")


def detect(head: bytes, filename: str | None = None) -> str | None:
    """Format name from magic bytes, else from a text signature, else from the extension."""
    ext = _EXTENSIONS.get(_suffix(filename))
    if head.startswith(b"glTF"):
        return "glb"
    if head.startswith(b"PK\x03\x04"):
        return "3mf" if ext in (None, "3mf") or b"3D/" in head or b"[Content_Types]" in head else "zip"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith((b"II*\x00", b"MM\x00*")):
        return "tiff"
    if head.startswith(b"BM") and ext is None:
        return "bmp"
    text = _text(head)
    stripped = text.lstrip()
    lowered = stripped[:512].lower()
    if lowered.startswith((b"<!doctype html", b"<html")) or b"<html" in lowered[:256]:
        return "html"
    if text.startswith(b"ply") and text[3:4] in (b"\n", b"\r", b" "):
        return "ply"
    if _OFF_HEADER.match(text):
        return "off"
    if stripped.startswith(b"{"):
        gltf_keys = (b'"asset"', b'"accessors"', b'"bufferViews"', b'"meshes"', b'"scenes"', b'"buffers"')
        return "gltf" if (ext == "gltf" or any(k in text for k in gltf_keys)) else ("json" if ext is None else ext)
    binary = b"\x00" in text
    if stripped[:5].lower() == b"solid" and not binary and (b"facet" in lowered or b"endsolid" in lowered):
        return "stl"  # ASCII STL, whatever the name says
    if not binary and _OBJ_LINE.search(text) and stripped[:5].lower() != b"solid":
        return "obj"  # OBJ text, also when misnamed .stl
    if ext == "stl" or (binary and ext in (None, "obj", "ply", "off") and len(head) >= 84):
        # binary STL has no magic (its 80-byte header may even start with 'solid'); the reader
        # checks the facet count against the file size and says so when it does not fit
        return "stl"
    if stripped[:5].lower() == b"solid" and ext is None:
        return "stl"
    return ext


def _suffix(filename: str | None) -> str:
    if not filename:
        return ""
    dot = filename.rfind(".")
    return filename[dot:].lower() if dot >= 0 else ""
