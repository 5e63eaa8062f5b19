"""OBJ inputs that trimesh mishandles: too many materials (quadratic load) and vertices without x y z."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from meshforge.errors import InputError
from meshforge.io.readers import read
from meshforge.types import ReadLimits, SourceFile

V4 = "v 0 0 0\nv 1 0 0\nv 0 1 0\nv 0 0 1\n"
CAP = "the OBJ reader's cap: trimesh slows down quadratically with more"


def _src(text: str, name: str = "m.obj") -> SourceFile:
    return SourceFile(name=name, data=text.encode())


def _usemtl(n: int, names: int | None = None) -> str:
    """n faces, each after a usemtl line; ``names`` distinct material names (default: all distinct)."""
    return V4 + "".join(f"usemtl m{i % (names or n)}\nf 1 2 3\n" for i in range(n))


class TrimeshCalled(BaseException):
    """A BaseException, so the reader's ``except Exception`` cannot turn it into an InputError."""


@pytest.fixture
def no_trimesh(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if the reader hands the text to trimesh: the refusals must come before it."""
    import trimesh

    def refuse(*args: object, **kwargs: object) -> None:
        raise TrimeshCalled("trimesh.load_scene was called")

    monkeypatch.setattr(trimesh, "load_scene", refuse)


# --- material sections ---------------------------------------------------------------------------

def test_usemtl_bomb_is_refused_before_trimesh(no_trimesh: None) -> None:
    with pytest.raises(InputError) as err:
        read(_src(_usemtl(30_000), "usemtl_many.obj"))
    assert err.value.code == "input.too_complex"
    assert str(err.value) == ("usemtl_many.obj: OBJ file uses 30,000 materials (distinct usemtl names), "
                              f"over the limit of 4,096 ({CAP})")


def test_one_material_over_the_cap_is_refused(no_trimesh: None) -> None:
    with pytest.raises(InputError) as err:
        read(_src(_usemtl(4_097)))
    assert err.value.code == "input.too_complex"
    assert "uses 4,097 materials (distinct usemtl names), over the limit of 4,096" in err.value.reason


def test_material_limit_follows_a_lower_max_primitives() -> None:
    limits = ReadLimits(max_primitives=100)
    assert len(read(_src(_usemtl(100)), limits).scene.geometry) == 100
    with pytest.raises(InputError) as err:
        read(_src(_usemtl(101)), limits)
    assert err.value.code == "input.too_complex"
    assert err.value.reason == ("OBJ file uses 101 materials (distinct usemtl names), over the limit of 100 "
                                "(limits.max_primitives)")


def test_repeated_material_names_count_once() -> None:
    """30,000 material switches between two materials (trailing blanks ignored, as trimesh does) are fine."""
    text = V4 + "".join(f"usemtl m{i % 2}{' ' * (i % 3)}\nf 1 2 3\n" for i in range(30_000))
    loaded = read(_src(text))
    assert len(loaded.scene.geometry) == 2
    assert sum(len(g.faces) for g in loaded.scene.geometry.values()) == 30_000


def test_object_and_group_lines_are_not_limited() -> None:
    """trimesh (as called) does not split at 'o' or 'g', so 30,000 of them cost nothing and are kept."""
    loaded = read(_src(V4 + "".join(f"o part{i}\ng grp{i}\nf 1 2 3\n" for i in range(30_000))))
    (mesh,) = loaded.scene.geometry.values()
    assert len(mesh.faces) == 30_000


def test_legit_2000_materials_load_with_all_materials(tmp_path: Path) -> None:
    n = 2_000
    mtl = "".join(f"newmtl mat{i}\nKd {i % 10 / 10} 0.5 0.5\n" for i in range(n))
    verts = "".join(f"v {i % 50} {i // 50} 0\nv {i % 50 + 1} {i // 50} 0\nv {i % 50} {i // 50 + 1} 0\n"
                    for i in range(n))
    faces = "".join(f"usemtl mat{i}\nf {3 * i + 1} {3 * i + 2} {3 * i + 3}\n" for i in range(n))
    (tmp_path / "mats.mtl").write_text(mtl)
    obj = tmp_path / "mats.obj"
    obj.write_text(f"mtllib mats.mtl\n{verts}{faces}")
    loaded = read(SourceFile(name=obj.name, data=obj.read_bytes(), path=obj))
    assert loaded.findings == ()
    geometry = loaded.scene.geometry.values()
    assert len(geometry) == n
    assert {g.visual.material.name for g in geometry} == {f"mat{i}" for i in range(n)}
    assert all(len(g.faces) == 1 for g in geometry)


# --- vertex lines --------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "line", "n", "shown"), [
    ("v 0 0\nv 1 0\nv 0 1\nf 1 2 3\n", 1, "2 coordinates", "'v 0 0'"),
    ("v 0 0 0\nv 1 0\nv 0 1 0\nf 1 2 3\n", 2, "2 coordinates", "'v 1 0'"),
    ("v 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n", 1, "1 coordinate", "'v 0'"),
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nv\nf 1 2 3\n", 4, "0 coordinates", "'v'"),
    ("v 0 0 0\r\n  v 1 0\r\nv 0 1 0\r\nf 1 2 3\r\n", 2, "2 coordinates", "'v 1 0'"),  # CRLF, indented
    ("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\nv 5 5", 5, "2 coordinates", "'v 5 5'"),  # unused, no final newline
    ("v 0 0 0\nv 2 0\nv 0.5 0.5 0\nv 0 2 0\nf 1 2 3 4\n", 2, "2 coordinates", "'v 2 0'"),  # concave quad path
], ids=["all-2d", "one-2d", "1d", "bare-v", "crlf-indented", "last-unused", "quad"])
def test_vertex_line_with_fewer_than_3_coordinates_is_refused(no_trimesh: None, text: str, line: int, n: str,
                                                              shown: str) -> None:
    with pytest.raises(InputError) as err:
        read(_src(text, "flat.obj"))
    assert err.value.code == "input.corrupt"
    assert str(err.value) == (f"flat.obj: OBJ vertex on line {line} has {n} ({shown}); "
                              "a vertex needs x y z (v x y z [w])")


@pytest.mark.parametrize("text", [
    "v 0 0 0 1\nv 1 0 0 1\nv 0 1 0 1\nf 1 2 3\n",  # v x y z w
    "v 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 0 1 0 0 0 1\nf 1 2 3\n",  # v x y z r g b (common extension)
    "v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nf 1/1 2/2 3/3\n",  # 2-D texture coordinates are fine
], ids=["w", "rgb", "vt"])
def test_vertex_lines_with_3_or_more_coordinates_load(text: str) -> None:
    (mesh,) = read(_src(text)).scene.geometry.values()
    assert mesh.vertices.tolist() == [[0, 0, 0], [1, 0, 0], [0, 1, 0]]


def test_cli_reports_both_as_unusable_input(tmp_path: Path) -> None:
    bomb = tmp_path / "usemtl_many.obj"
    bomb.write_text(_usemtl(30_000))
    flat = tmp_path / "flat.obj"
    flat.write_text("v 0 0\nv 1 0\nv 0 1\nf 1 2 3\n")
    env = {**os.environ, "MESHFORGE_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run([sys.executable, "-c", "from meshforge.cli.main import main; main()", "validate",
                           "--profile", "fdm-print-stl", str(bomb), str(flat)],
                          capture_output=True, text=True, timeout=240, env=env)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.returncode == 2, done.stderr[-2000:]
    assert ("usemtl_many.obj: OBJ file uses 30,000 materials (distinct usemtl names), over the limit of 4,096"
            in done.stderr)
    assert "flat.obj: OBJ vertex on line 1 has 2 coordinates" in done.stderr
