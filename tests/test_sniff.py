"""The bytes name the format; the extension only breaks ties."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import model_rows

from meshforge.io.sniff import detect

STL_BINARY_SOLID = b"solid exported by a CAD tool" + b"\x00" * 52 + (1).to_bytes(4, "little") + b"\x00" * 50


@pytest.mark.parametrize(("head", "name", "expected"), [
    (b"glTF\x02\x00\x00\x00", "model.stl", "glb"),  # a GLB renamed .stl
    (b"solid x\n  facet normal 0 0 1\n", "part.obj", "stl"),  # ASCII STL renamed .obj
    (b"# Blender\nv 0 0 0\nv 1 0 0\nf 1 2 3\n", "part.stl", "obj"),  # OBJ renamed .stl
    (STL_BINARY_SOLID, "part.stl", "stl"),  # binary header that starts with 'solid'
    (STL_BINARY_SOLID, None, "stl"),
    ("v 0 0 0\nf 1 1 1\n".encode("utf-16"), "box.obj", "obj"),  # UTF-16 with BOM
    (b"OFF BINARY\n\x00\x00", "x.dat", "off"),
    (b"ply\nformat ascii 1.0\n", None, "ply"),
    (b"PK\x03\x04....3D/3dmodel.model", "upload.zip", "3mf"),
    (b"<!DOCTYPE html><html>502</html>", "model.glb", "html"),
    (b"\x89PNG\r\n\x1a\n", "model.obj", "png"),
    (b'{"asset": {"version": "2.0"}}', None, "gltf"),
    (b"\x00\x01\x02" * 100, "buffer.bin", "bin"),  # a glTF buffer is not a binary STL
])
def test_detect(head: bytes, name: str | None, expected: str) -> None:
    assert detect(head, name) == expected


def test_every_corpus_model_sniffs_to_its_manifest_format(corpus: Path) -> None:
    wrong = []
    for row in model_rows():
        path = corpus / row["path"]
        with path.open("rb") as fh:
            found = detect(fh.read(4096), path.name)
        if row["bytes"] != "0" and found != row["format"].split("-")[0]:
            wrong.append((row["path"], row["format"], found))
    assert wrong == []


def test_bytes_beat_the_extension_for_every_corpus_model(corpus: Path) -> None:
    for row in model_rows():
        path = corpus / row["path"]
        if row["bytes"] == "0" or row["format"].startswith("stl-binary") or row["known_defects"].startswith("INVALID"):
            continue  # binary STL has no magic (its name is the only hint), broken magic is broken
        with path.open("rb") as fh:
            assert detect(fh.read(4096), "upload.dat") == row["format"].split("-")[0], row["path"]
