"""Hostile and broken input: a clear error or finding, never a traceback, never a file outside the folder."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import threading
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from conftest import manifest

from meshforge.errors import InputError
from meshforge.io.readers import read
from meshforge.types import ReadLimits, SourceFile

MODEL = {"stl-binary", "stl-ascii", "obj", "ply-ascii", "ply-binary-le", "off", "off-binary", "3mf", "glb", "gltf"}
IMPORT_ONLY = 'schema = 1\nname = "import-only"\nsummary = "read the model, nothing else"\n[chain]\ngenerate = ["import"]\n'


def _bad_rows() -> list[dict[str, str]]:
    """INVALID files and files with no triangles (empty, point cloud, lattice-only)."""
    return [r for r in manifest() if r["format"] in MODEL
            and (r["known_defects"].startswith("INVALID") or r["triangles"] in ("", "0"))]


def _profiles(tmp_path: Path) -> list[str]:
    """The import-only profile, plus the real profiles once their steps are registered."""
    own = tmp_path / "import-only.toml"
    own.write_text(IMPORT_ONLY)
    out = [str(own)]
    from meshforge import Engine
    from meshforge.errors import ProfileError

    for name in ("fdm-print-stl", "ecommerce-glb"):
        try:  # resolves once every step it names is registered (other areas land over time)
            Engine(name, entry_points=False)
        except ProfileError:
            continue
        out.append(name)
    return out


def _cli(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MESHFORGE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    return subprocess.run([sys.executable, "-c", "from meshforge.cli.main import main; main()", *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.mark.timeout(600)
def test_every_bad_corpus_file_through_the_cli(corpus: Path, tmp_path: Path) -> None:
    rows = _bad_rows()
    assert len(rows) >= 30
    files = [str(corpus / r["path"]) for r in rows]
    for profile in _profiles(tmp_path):
        done = _cli("validate", "--profile", profile, "--json", *files)
        assert "Traceback" not in done.stderr, done.stderr[-2000:]
        assert done.returncode in (1, 2), done.stderr[-2000:]
        report = json.loads(done.stdout)
        assert len(report["assets"]) == len(files)  # the batch went on past every bad file
        for asset, row in zip(report["assets"], rows, strict=True):
            assert asset["status"] in ("fail", "unusable"), row["path"]
            errors = [f for f in asset["findings"] if f["severity"] == "error"]
            assert errors and all(f["message"] for f in errors), row["path"]
            assert not any(f["code"] == "engine.step_failed" and "generate" in f["step"] for f in errors)
        for row, asset in zip(rows, report["assets"], strict=True):  # one stderr line per unusable file
            if asset["status"] == "unusable":
                assert Path(row["path"]).name in done.stderr


# --- files outside the model's folder are never opened -------------------------------------------

_OPENED: list[str] = []
_WATCH = threading.local()


def _audit(event: str, args: tuple) -> None:  # type: ignore[type-arg]
    if event == "open" and getattr(_WATCH, "on", False) and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


def _read_watching(path: Path, limits: ReadLimits | None = None) -> tuple[object, list[str]]:
    _OPENED.clear()
    _WATCH.on = True
    try:
        try:
            result: object = read(SourceFile(name=path.name, data=path.read_bytes(), path=path), limits)
        except InputError as exc:
            result = exc
    finally:
        _WATCH.on = False
    return result, [p for p in _OPENED if "canary" in p]


def test_obj_mtllib_outside_the_folder_is_not_read(tmp_path: Path) -> None:
    (tmp_path / "canary.mtl").write_text("newmtl x\nKd 1 0 0\nmap_Kd canary.png\n")
    folder = tmp_path / "model"
    folder.mkdir()
    for i, ref in enumerate(["../canary.mtl", str(tmp_path / "canary.mtl"), "sub/../../canary.mtl"]):
        obj = folder / f"part{i}.obj"
        obj.write_text(f"mtllib {ref}\nusemtl x\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
        loaded, canary_opens = _read_watching(obj)
        assert canary_opens == []
        assert [f.code for f in loaded.findings] == ["input.unsafe_path"]  # type: ignore[attr-defined]


def test_obj_symlink_out_of_the_folder_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "canary.mtl").write_text("newmtl x\n")
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "m.mtl").symlink_to(tmp_path / "canary.mtl")
    obj = folder / "part.obj"
    obj.write_text("mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    loaded, canary_opens = _read_watching(obj)
    assert canary_opens == [] and [f.code for f in loaded.findings] == ["input.unsafe_path"]  # type: ignore[attr-defined]


def _zip(entries: dict[str, bytes | str], rels_target: str = "/3D/3dmodel.model") -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("_rels/.rels", '<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
                   f'openxmlformats.org/package/2006/relationships"><Relationship Target="{rels_target}" Id="r0" '
                   'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>')
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)  # keeps names like '../x' exactly as given
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()


BOX = ('<?xml version="1.0" encoding="UTF-8"?><model unit="millimeter" xmlns="http://schemas.microsoft.com/'
       '3dmanufacturing/core/2015/02"><resources><object id="1"><mesh><vertices><vertex x="0" y="0" z="0"/>'
       '<vertex x="1" y="0" z="0"/><vertex x="0" y="1" z="0"/></vertices><triangles><triangle v1="0" v2="1" v3="2"/>'
       '</triangles></mesh></object></resources><build><item objectid="1"/></build></model>')


def test_3mf_zip_slip_names_are_never_read_or_written(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (tmp_path / "canary.model").write_text(BOX)
    slip = folder / "slip.3mf"
    slip.write_bytes(_zip({"3D/3dmodel.model": BOX, "../canary.model": BOX, "../../etc/evil.sh": "rm -rf /"}))
    loaded, canary_opens = _read_watching(slip)
    assert canary_opens == []
    assert [f.code for f in loaded.findings] == ["input.unsafe_path"]  # type: ignore[attr-defined]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["canary.model", "model", "slip.3mf"]
    # a start part that climbs out of the package is refused, not looked up anywhere
    escape = folder / "escape.3mf"
    escape.write_bytes(_zip({"3D/3dmodel.model": BOX}, rels_target="../../canary.model"))
    err, canary_opens = _read_watching(escape)
    assert canary_opens == [] and isinstance(err, InputError) and err.code == "input.unsafe_path"


def test_3mf_zip_bomb_is_refused_before_inflating(tmp_path: Path) -> None:
    big = BOX.replace("<resources>", "<resources>" + " " * 4_000_000)
    bomb = _zip({"3D/3dmodel.model": big})
    with pytest.raises(InputError) as err:
        read(SourceFile(name="bomb.3mf", data=bomb), ReadLimits(max_file_bytes=1_000_000))
    assert err.value.code in ("input.too_large", "input.zip_bomb")
    # the same bomb with its declared sizes rewritten to look small: the capped stream stops it
    lying = _lie_about_size(bomb, "3D/3dmodel.model", 1000)
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as err:
            read(SourceFile(name="bomb.3mf", data=lying), ReadLimits(max_file_bytes=1_000_000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.code in ("input.zip_bomb", "input.corrupt")
    assert peak < 16_000_000


def _lie_about_size(data: bytes, name: str, size: int) -> bytes:
    """Rewrite the uncompressed size of ``name`` in its local and central headers."""
    buf = bytearray(data)
    enc = name.encode()
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = 0
        while (i := buf.find(sig, start)) >= 0:
            start = i + 4
            name_at = i + (30 if sig == b"PK\x03\x04" else 46)
            if buf[name_at:name_at + len(enc)] == enc:
                buf[i + off:i + off + 4] = size.to_bytes(4, "little")
    return bytes(buf)


def _future_zip_version(data: bytes) -> bytes:
    """Set 'version needed to extract' to 13.7 in every central header (zipfile: NotImplementedError)."""
    buf = bytearray(data)
    start = 0
    while (i := buf.find(b"PK\x01\x02", start)) >= 0:
        buf[i + 6:i + 8] = (137).to_bytes(2, "little")
        start = i + 4
    return bytes(buf)


# --- resource caps --------------------------------------------------------------------------------

def test_ten_million_triangle_claim_in_1kb_is_refused_fast_and_small() -> None:
    data = b"\x00" * 80 + (10_000_000).to_bytes(4, "little") + b"\x01" * 940
    tracemalloc.start()
    try:
        with pytest.raises(InputError) as err:
            read(SourceFile(name="claim.stl", data=data))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.code == "input.truncated"
    assert "10,000,000 facets" in err.value.reason and "1,024 bytes" in err.value.reason
    assert peak < 1_000_000  # nothing sized by the claim was allocated (500 MB for 10M facets)


def test_honest_stl_over_the_triangle_cap_is_refused_from_the_header() -> None:
    data = b"\x00" * 80 + (30).to_bytes(4, "little") + b"\x00" * 50 * 30
    with pytest.raises(InputError) as err:
        read(SourceFile(name="many.stl", data=data), ReadLimits(max_triangles=10))
    assert err.value.code == "input.too_large" and "limits.max_triangles" in err.value.reason


def test_stl_count_that_lies_low_is_corrected_from_the_size() -> None:
    import trimesh

    data = bytearray(trimesh.exchange.stl.export_stl(trimesh.creation.box()))
    data[80:84] = (3).to_bytes(4, "little")  # 12 facets present, 3 declared
    loaded = read(SourceFile(name="lies.stl", data=bytes(data)))
    assert len(loaded.scene.geometry["geometry_0"].faces) == 12
    assert [(f.code, f.measured, f.threshold) for f in loaded.findings] == [("input.stl_size_mismatch", 12, 3)]


def test_off_allocation_bomb_is_refused_from_the_header(corpus: Path) -> None:
    path = corpus / "off/assimp/OutOfMemory.off"
    with pytest.raises(InputError) as err:
        read(SourceFile(name=path.name, data=path.read_bytes()))
    assert err.value.code == "input.truncated" and "353,535,235,358" in err.value.reason


@pytest.mark.parametrize(("name", "data", "code"), [
    ("empty.stl", b"", "input.empty"),
    ("short.stl", b"\x00" * 40, "input.truncated"),
    ("garbage.stl", b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 1 2 zz\nvertex 0 0 0\nvertex 1 1 1\n"
                    b"endloop\nendfacet\nendsolid\n", "input.corrupt"),
    ("nothing.obj", b"# just a comment\n", "input.empty"),
    ("points.obj", b"v 0 0 0\nv 1 1 1\n", "input.empty"),
    ("bad.ply", b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n", "input.truncated"),
    ("lying.ply", b"ply\nformat binary_little_endian 1.0\nelement vertex 99999999\nproperty float x\n"
                  b"element face 1\nproperty list uchar int vertex_indices\nend_header\n" + b"\x00" * 64, "input.truncated"),
    ("neg.off", b"OFF\n-3 1 0\n", "input.corrupt"),
    ("idx.off", b"OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 7\n", "input.bad_index"),
    ("comma.3mf", _zip({"3D/3dmodel.model": BOX.replace('x="1"', 'x="1,5"')}), "input.corrupt"),
    ("notzip.3mf", b"PK\x03\x04" + b"\x00" * 100, "input.corrupt"),
    ("version.3mf", _future_zip_version(_zip({"3D/3dmodel.model": BOX})), "input.corrupt"),  # found by bench/fuzz.py
])
def test_broken_bytes_give_precise_input_errors(name: str, data: bytes, code: str) -> None:
    with pytest.raises(InputError) as err:
        read(SourceFile(name=name, data=data))
    assert err.value.code == code and err.value.reason


def test_wrong_extension_is_read_by_its_bytes(corpus: Path, tmp_path: Path) -> None:
    from meshforge import Engine

    shutil.copy(corpus / "stl/numpy-stl/ascii/HalfDonut.stl", tmp_path / "donut.obj")
    shutil.copy(corpus / "obj/trimesh/box.obj", tmp_path / "box.stl")
    shutil.copy(corpus / "off/trimesh/comments.off", tmp_path / "comments.ply")
    (tmp_path / "page.stl").write_bytes(b"<!DOCTYPE html><html><body>502 Bad Gateway</body></html>")
    engine = Engine({"name": "import-only", "chain": {"generate": ["import"]}}, entry_points=False)
    formats = {p: engine.validate(tmp_path / p).input.get("format") for p in ("donut.obj", "box.stl", "comments.ply")}
    assert formats == {"donut.obj": "stl", "box.stl": "obj", "comments.ply": "off"}
    page = engine.validate(tmp_path / "page.stl")
    assert page.status == "unusable" and page.findings[0].code == "input.unknown_format"


def test_off_vertex_lines_of_two_and_four_numbers_are_not_read_as_two_shifted_vertices(tmp_path):
    """Both lines together hold 6 numbers, which the fast path once took for two 3-number vertices."""
    from meshforge.errors import InputError
    from meshforge.io.readers import read
    from meshforge.io.source import read_source
    from meshforge.types import ReadLimits

    path = tmp_path / "shifted.off"
    path.write_text("OFF\n4 1 0\n0 0\n0 1 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    with pytest.raises(InputError) as err:
        read(read_source(path, ReadLimits()), ReadLimits())
    assert err.value.code == "input.corrupt" and "fewer than 3 numbers" in err.value.reason
    path.write_text("OFF\n4 1 0\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n3 0 1 2\n")
    assert len(read(read_source(path, ReadLimits()), ReadLimits()).scene.geometry) == 1


def test_a_negative_ply_index_is_named_as_it_is(tmp_path):
    from meshforge.errors import InputError
    from meshforge.io.readers import read
    from meshforge.io.source import read_source
    from meshforge.types import ReadLimits

    path = tmp_path / "negative.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\n"
                    "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n3 0 -5 2\n")
    with pytest.raises(InputError) as err:
        read(read_source(path, ReadLimits()), ReadLimits())
    assert err.value.code == "input.bad_index" and "vertex -5" in err.value.reason


@pytest.mark.parametrize("index_type", ["float", "double"])
def test_ply_face_indices_stored_as_floats_are_refused_not_truncated(tmp_path, index_type):
    """`3 0 1.7 2` was read as face (0, 1, 2): a different mesh, without a word."""
    from meshforge.errors import InputError
    from meshforge.io.readers import read
    from meshforge.io.source import read_source
    from meshforge.types import ReadLimits

    path = tmp_path / "float_index.ply"
    header = ("ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
              "element face 1\nproperty list uchar {} vertex_indices\nend_header\n0 0 0\n1 0 0\n0 1 0\n0 0 1\n")
    path.write_text(header.format(index_type) + "3 0 1.7 2\n")
    with pytest.raises(InputError) as err:
        read(read_source(path, ReadLimits()), ReadLimits())
    assert err.value.code == "input.corrupt" and f"face vertex indices are {index_type}" in err.value.reason
    path.write_text(header.format("int") + "3 0 1 2\n")  # the same file with integer indices reads
    assert len(read(read_source(path, ReadLimits()), ReadLimits()).scene.geometry) == 1
