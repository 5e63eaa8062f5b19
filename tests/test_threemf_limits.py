"""3MF amplification: build items and components that multiply a mesh, and parts too big to parse at once.

The hostile reads run in a child whose address space is capped at 1.5 GiB (``RLIMIT_AS``). Before
the fix, 300 items x 300 components of a 20,000-triangle mesh (133 KB) loaded as 1.8 billion
triangles that the engine then flattened (11.8 GB), and a part of 10 million ``<vertex>`` elements
(640 KB zipped) became a 9 GB lxml tree before any count was checked. Now the first is refused from
its counts, and the second is parsed a chunk at a time with the mesh pulled out of the tree as it
grows, so it loads in a few hundred MB or is refused as soon as a count passes the limit.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from meshforge.errors import InputError
from meshforge.io import threemf
from meshforge.io.readers import read
from meshforge.types import ReadLimits, SourceFile

ADDRESS_SPACE = 3 << 29  # 1.5 GiB; the imports take about 400 MB of it

CHILD = """
import json, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from pathlib import Path
from meshforge.errors import InputError
from meshforge.io.readers import read
from meshforge.types import ReadLimits, SourceFile

path, limits = Path(sys.argv[1]), ReadLimits(**json.loads(sys.argv[2]))
out = {{}}
try:
    loaded = read(SourceFile(name=path.name, data=path.read_bytes(), path=path), limits)
    scene = loaded.scene
    placed = [scene.graph[n][1] for n in scene.graph.nodes_geometry]
    out.update(instances=len(placed), placed=sum(len(scene.geometry[g].faces) for g in placed),
               vertices=sum(len(g.vertices) for g in scene.geometry.values()))
except InputError as exc:
    out.update(code=exc.code, reason=exc.reason)
except MemoryError:
    out.update(code="MemoryError")
print(json.dumps(out))
"""

CORE = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
CT = ('<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
      '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
      '<Default Extension="model" ContentType="application/vnd.ms-package.3dmanufacturing-3dmodel+xml"/></Types>')
RELS = ('<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.openxmlformats.org/package/2006/'
        'relationships"><Relationship Target="/3D/3dmodel.model" Id="rel0" '
        'Type="http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"/></Relationships>')


def package(model: bytes | str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", CT)
        z.writestr("_rels/.rels", RELS)
        z.writestr("3D/3dmodel.model", model)
    return buf.getvalue()


def model(resources: str, build: str) -> str:
    return (f'<?xml version="1.0" encoding="UTF-8"?><model unit="millimeter" xmlns="{CORE}"><resources>{resources}'
            f'</resources><build>{build}</build></model>')


def grid(g: int) -> str:
    """A flat g x g grid: (g+1)^2 vertices, 2 g^2 triangles."""
    vs = "".join(f'<vertex x="{i}" y="{j}" z="0"/>' for i in range(g + 1) for j in range(g + 1))
    p = (np.arange(g)[:, None] * (g + 1) + np.arange(g)).ravel()
    tris = np.concatenate([np.stack([p, p + 1, p + g + 2], 1), np.stack([p, p + g + 2, p + g + 1], 1)])
    ts = "".join(f'<triangle v1="{a}" v2="{b}" v3="{c}"/>' for a, b, c in tris.tolist())
    return f"<mesh><vertices>{vs}</vertices><triangles>{ts}</triangles></mesh>"


def instanced(items: int, components: int) -> str:
    """``items`` build items, each of an object of ``components`` components, each the 20,000-triangle grid."""
    comps = "".join(f'<component objectid="1" transform="1 0 0 0 1 0 0 0 1 {i * 0.001} 0 0"/>' for i in range(components))
    build = "".join(f'<item objectid="2" transform="1 0 0 0 1 0 0 0 1 0 {i * 0.001} 0"/>' for i in range(items))
    return model(f'<object id="1" type="model">{grid(100)}</object>'
                 f'<object id="2" type="model"><components>{comps}</components></object>', build)


def flat_part(vertices: int, triangles: int) -> bytes:
    """One object with ``vertices`` identical <vertex> and ``triangles`` identical <triangle> (zips ~400:1)."""
    return (f'<?xml version="1.0" encoding="UTF-8"?><model unit="millimeter" xmlns="{CORE}"><resources>'
            '<object id="1" type="model"><mesh><vertices>'.encode()
            + b'<vertex x="0" y="0" z="0"/>' * max(vertices, 3)
            + b"</vertices><triangles>" + b'<triangle v1="0" v2="1" v3="2"/>' * max(triangles, 1)
            + b'</triangles></mesh></object></resources><build><item objectid="1"/></build></model>')


def read_capped(path: Path, **limits: int) -> dict[str, Any]:
    """Read ``path`` in a child limited to 1.5 GiB of address space: its InputError code, or what it loaded."""
    proc = subprocess.run([sys.executable, "-c", CHILD.format(cap=ADDRESS_SPACE), str(path), json.dumps(limits)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"the read did not finish under {ADDRESS_SPACE >> 20} MiB:\n{proc.stderr[-1500:]}"
    return json.loads(proc.stdout.splitlines()[-1])


def counted(reason: str, what: str) -> int:
    """The count a "holds at least N <what>" refusal names."""
    m = re.search(rf"holds at least ([\d,]+) {what}", reason)
    assert m, reason
    return int(m.group(1).replace(",", ""))


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("threemf_limits")
    made = {
        "instances": package(instanced(300, 300)),  # 133 KB: 90,000 instances, 1.8 billion triangles placed
        "instances_30": package(instanced(30, 30)),  # 900 instances, 18 million triangles: under the limit
        "vertices_3m": package(flat_part(3_000_000, 1)),  # a 78 MB part: ~2.7 GB as an lxml tree
        "triangles_3m": package(flat_part(3, 3_000_000)),
        "metadata_3m": package(model(f'<object id="1">{grid(2)}</object>', '<item objectid="1"/>').replace(
            "<resources>", '<metadata name="a">x</metadata>' * 3_000_000 + "<resources>", 1)),
    }
    for name, data in made.items():
        (folder / f"{name}.3mf").write_bytes(data)
    return {name: folder / f"{name}.3mf" for name in made}


# --- bug 1: instancing multiplies triangles --------------------------------------------------------

def test_instanced_triangles_over_the_limit_are_refused_from_the_counts(files: dict[str, Path]) -> None:
    assert files["instances"].stat().st_size < 200_000
    out = read_capped(files["instances"])
    assert out.get("code") == "input.too_large", out
    assert out["reason"] == ("3MF: 1,800,000,000 triangles after instancing, over the limit of 20,000,000 "
                             "(limits.max_triangles)")


def test_instanced_triangles_under_the_limit_still_load(files: dict[str, Path]) -> None:
    out = read_capped(files["instances_30"])
    assert out == {"instances": 900, "placed": 18_000_000, "vertices": 101 * 101}  # one geometry, 900 nodes


def test_the_limit_counts_triangles_as_placed_not_as_defined(files: dict[str, Path]) -> None:
    source = SourceFile(name="i.3mf", data=files["instances_30"].read_bytes())
    loaded = read(source, ReadLimits(max_triangles=18_000_000))  # exactly at the limit: read
    assert len(loaded.scene.graph.nodes_geometry) == 900
    with pytest.raises(InputError) as err:
        read(source, ReadLimits(max_triangles=17_999_999))  # every definition is far under it: 20,000
    assert err.value.code == "input.too_large"
    assert err.value.reason == ("3MF: 18,000,000 triangles after instancing, over the limit of 17,999,999 "
                                "(limits.max_triangles)")


def test_a_fan_of_empty_components_is_refused_before_it_is_walked() -> None:
    # 100 items x 100 x 100 components ending in an object with no components: no mesh is ever
    # placed, so nothing counted them before; the walk took a million steps to find an empty scene
    fan = "".join('<component objectid="2"/>' for _ in range(100))
    leaf = "".join('<component objectid="3"/>' for _ in range(100))
    resources = (f'<object id="9">{grid(1)}</object><object id="1"><components>{fan}</components></object>'
                 f'<object id="2"><components>{leaf}</components></object><object id="3"><components/></object>')
    source = SourceFile(name="fan.3mf", data=package(model(resources, '<item objectid="1"/>' * 100)))
    with pytest.raises(InputError) as err:
        read(source)
    assert err.value.code == "input.too_large"
    assert err.value.reason == ("3MF: build expands to 1,010,100 object instances (components included), over the "
                                "limit of 100,000 (limits.max_nodes)")


def test_shared_components_are_counted_once_per_placement() -> None:
    # a diamond: 2 items of A, A = 2 x B, B = 3 x C, C = the 2-triangle grid -> 2 * 2 * 3 * 2 = 24 placed
    resources = (f'<object id="4">{grid(1)}</object><object id="3"><components><component objectid="4"/>'
                 '</components></object><object id="2"><components>' + '<component objectid="3"/>' * 3
                 + '</components></object><object id="1"><components>' + '<component objectid="2"/>' * 2
                 + "</components></object>")
    source = SourceFile(name="d.3mf", data=package(model(resources, '<item objectid="1"/>' * 2)))
    loaded = read(source)
    assert len(loaded.scene.graph.nodes_geometry) == 12
    with pytest.raises(InputError, match="24 triangles after instancing, over the limit of 23"):
        read(source, ReadLimits(max_triangles=23))


# --- bug 2: the part is parsed a chunk at a time ------------------------------------------------------

def test_a_part_of_millions_of_vertices_loads_without_its_tree(files: dict[str, Path]) -> None:
    assert files["vertices_3m"].stat().st_size < 400_000
    assert read_capped(files["vertices_3m"]) == {"instances": 1, "placed": 1, "vertices": 3_000_000}


def test_vertices_over_the_limit_stop_the_parse(files: dict[str, Path]) -> None:
    out = read_capped(files["vertices_3m"], max_vertices=1_000_000)
    assert out.get("code") == "input.too_large", out
    assert "vertices (reading stopped there), over the profile's limit of 1,000,000 (limits.max_vertices)" in out["reason"]
    assert 1_000_000 < counted(out["reason"], "vertices") <= 1_000_000 + threemf.CHUNK // 26  # within one chunk


def test_triangles_over_the_limit_stop_the_parse(files: dict[str, Path]) -> None:
    out = read_capped(files["triangles_3m"], max_triangles=1_000_000)
    assert out.get("code") == "input.too_large", out
    assert "triangles (reading stopped there), over the profile's limit of 1,000,000 (limits.max_triangles)" in out["reason"]
    assert 1_000_000 < counted(out["reason"], "triangles") <= 1_000_000 + threemf.CHUNK // 33


def test_millions_of_other_elements_are_refused_while_parsing(files: dict[str, Path]) -> None:
    out = read_capped(files["metadata_3m"])
    assert out.get("code") == "input.too_large", out
    assert out["reason"] == ("3MF: model part '/3D/3dmodel.model' holds more than 2,000,000 XML elements and "
                             "attributes outside mesh and property data, over the limit (20 x limits.max_nodes)")


# --- what streaming must not change -------------------------------------------------------------------

MATERIAL = "http://schemas.microsoft.com/3dmanufacturing/material/2015/02"
GROUPS = ('<basematerials id="5"><base name="a" displaycolor="#FF0000"/><base name="b" displaycolor="#00FF00"/>'
          f'</basematerials><m:colorgroup id="6" xmlns:m="{MATERIAL}">' + '<m:color color="#FF0000"/>' * 3
          + "</m:colorgroup>")
ODD_MESH = (  # non-empty elements, unknown elements, per-triangle and inherited property groups
    '<mesh><vertices><vertex x="0" y="0" z="0"></vertex><foo a="1"/><vertex x="1.5" y="0" z="0">  <ext b="2"/>'
    '</vertex><vertex x="0" y="1" z="0"/><vertex x="0" y="0" z="1e1"/></vertices><triangles>'
    '<triangle v1="0" v2="2" v3="1" p1="1"/><triangle v1="0" v2="1" v3="3" pid="6" p1="2" p2="3"></triangle><bar/>'
    '<triangle v1="1" v2="2" v3="3" p1="2"/><triangle v1="0" v2="3" v3="2" pid="5" p1="0" p2="1" p3="-1"/></triangles>'
    "</mesh>")
# out of range: the inherited p1="2" (group 5 has 2), p2="3" (group 6 has 3) and p3="-1"


@pytest.mark.parametrize("groups_first", [True, False], ids=["groups-first", "groups-last"])
def test_any_chunk_size_reads_the_same(monkeypatch: pytest.MonkeyPatch, groups_first: bool) -> None:
    objects = f'<object id="1" pid="5" pindex="0">{ODD_MESH}</object>'
    data = package(model(GROUPS + objects if groups_first else objects + GROUPS, '<item objectid="1"/>'))
    results = []
    for chunk in (1, 2, 3, 7, 64, 1 << 20):  # 1 byte: every element is the open last one at some point
        monkeypatch.setattr(threemf, "CHUNK", chunk)
        loaded = read(SourceFile(name="odd.3mf", data=data))
        (mesh,) = loaded.scene.geometry.values()
        results.append((mesh.vertices.tolist(), mesh.faces.tolist(), sorted((f.code, f.count) for f in loaded.findings)))
    assert results[0] == ([[0, 0, 0], [1.5, 0, 0], [0, 1, 0], [0, 0, 10]], [[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]],
                          [("input.bad_property_index", 3), ("input.unknown_element", 2)])
    assert all(r == results[0] for r in results)


def test_vertex_limit_counts_every_mesh_of_the_part() -> None:
    two = model(f'<object id="1">{grid(2)}</object><object id="2">{grid(2)}</object>',
                '<item objectid="1"/><item objectid="2"/>')  # 9 vertices each
    read(SourceFile(name="t.3mf", data=package(two)), ReadLimits(max_vertices=18))
    with pytest.raises(InputError, match=r"holds at least 18 vertices .* over the profile's limit of 17"):
        read(SourceFile(name="t.3mf", data=package(two)), ReadLimits(max_vertices=17))
