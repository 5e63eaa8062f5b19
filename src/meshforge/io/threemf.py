"""3MF: a ZIP package of XML model parts, read with :mod:`meshforge.io.zipsafe` and lxml (no entities).

Units come from the model's ``unit`` attribute (numbers are kept as written); build items and
components are instances with transforms, kept as scene nodes so nothing is duplicated, after
their triangles *as placed* are counted against the limits (:func:`_check_instancing`).

A model part is parsed a chunk at a time: the children of ``<vertices>``, ``<triangles>`` and the
property groups are pulled out with one XPath per attribute, converted with numpy and deleted from
the tree between chunks, so the tree never holds the mesh (about 1 KB per ``<vertex>``, 35x its
bytes) and the vertex and triangle counts are checked as they grow, not after the whole part.
"""

from __future__ import annotations

import codecs
import functools
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from meshforge.errors import InputError
from meshforge.io.guard import empty, finding, where
from meshforge.io.zipsafe import SafeZip
from meshforge.types import Finding, Loaded, ReadLimits, Severity, SourceFile, Units

MODEL_REL = "http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"
CORE_NS = "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"
PROD_NS = "http://schemas.microsoft.com/3dmanufacturing/production/2015/06"
UNITS = {"micron": "um", "millimeter": "mm", "centimeter": "cm", "inch": "in", "foot": "ft", "meter": "m"}
_TARGET = re.compile(rb"""<Relationship\b[^>]*>""", re.IGNORECASE)
_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding\s*=\s*["']([^"']+)["']""")


CHUNK = 1 << 20  # bytes of XML fed to the parser between two flushes of the mesh data
# Containers whose children are pulled out (or only counted) and deleted while the part is parsed, so
# the tree never holds more than one chunk of them.
GROUPS = ("basematerials", "colorgroup", "texture2dgroup", "compositematerials", "multiproperties")
DROPPED = ("beams", "balls", "polygon", "triangleset")  # beam lattice, slice, triangle set data: never read
_STREAMED = tuple(f"{{*}}{t}" for t in ("vertices", "triangles", *GROUPS, *DROPPED))


def _parser():  # type: ignore[no-untyped-def]
    from lxml import etree

    return etree.XMLPullParser(events=("start", "end"), tag=_STREAMED, resolve_entities=False, no_network=True,
                               load_dtd=False, huge_tree=False, remove_comments=True, remove_pis=True)


@dataclass(eq=False)
class _Bulk:
    """One streamed container: what is kept of the children already flushed out of the tree."""

    kind: str  # "vertex", "triangle", "group" (children counted) or "drop"
    node: Any
    chunks: list[np.ndarray] = field(default_factory=list)
    flushed: int = 0


class _Model:
    """One parsed model part: mesh objects, component objects, property group sizes."""

    def __init__(self, reader: _Reader, part: str) -> None:
        from lxml import etree

        self.reader = reader
        self.part = part
        data = reader.zip.read(part)
        assert data is not None
        body = data.removeprefix(b"\xef\xbb\xbf")
        m = _ENCODING.match(body)
        if (m and m.group(1).lower() not in (b"utf-8", b"utf8")) or body[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in body[:200]:
            raise reader.error(f"model part {part!r} is not UTF-8 encoded XML (3MF requires UTF-8)")
        self.groups: dict[str, int] = {}
        self.meshes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.components: dict[str, list[tuple[str, str, np.ndarray]]] = {}
        self.property_problems = 0
        self.unknown_elements = 0
        self.names: dict[str, str] = {}
        self._bulk: dict[Any, _Bulk] = {}  # container element -> its bulk (the key keeps the proxy alive)
        self._open: list[_Bulk] = []
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # property refs to groups not yet read
        self.ns = {"c": ""}
        root = self._parse(body)
        del data, body, m  # the part's bytes (m holds them too) go before the mesh chunks are joined
        if root is None or etree.QName(root).localname != "model":
            raise reader.error(f"model part {part!r} has no <model> root element")
        if not etree.QName(root).namespace:
            raise reader.error(f"model part {part!r}: the <model> element has no namespace (3MF core is "
                               f"{CORE_NS})")
        self.ns = {"c": etree.QName(root).namespace}
        self.unit = root.get("unit", "millimeter")
        resources = root.find("c:resources", self.ns)
        if resources is None:
            raise reader.error(f"model part {part!r} has no <resources> element")
        self.build = root.find("c:build", self.ns)
        for pids, inverse, idx in self._pending:
            self._count_property_problems(pids, inverse, idx)
        for obj in resources.findall("c:object", self.ns):
            oid = obj.get("id")
            if oid is None:
                raise reader.error("an <object> has no id")
            self.names[oid] = obj.get("name") or f"object_{oid}"
            mesh = obj.find("c:mesh", self.ns)
            comps = obj.find("c:components", self.ns)
            if mesh is not None:
                self.meshes[oid] = self._mesh(oid, mesh)
            elif comps is not None:
                self.components[oid] = [
                    (c.get("objectid") or "", c.get(f"{{{PROD_NS}}}path") or "", _transform(reader, c.get("transform")))
                    for c in comps.findall("c:component", self.ns)
                ]
        self._bulk.clear()

    # streaming --------------------------------------------------------------------------------
    def _parse(self, body: bytes):  # type: ignore[no-untyped-def]
        """Feed the part to the parser a chunk at a time, flushing mesh and property data in between."""
        from lxml import etree

        reader, part = self.reader, self.part
        utf8 = codecs.getincrementaldecoder("utf-8")()  # checked as it goes: no str copy of the whole part
        # What stays in the tree (objects, components, items, metadata, anything unknown) is bounded too:
        # by the elements and attributes the bytes can hold ('<' and '=' counts) minus those flushed.
        budget = max(1_000_000, 20 * reader.limits.max_nodes)
        kept = 0
        parser = _parser()
        try:
            for at in range(0, len(body), CHUNK):
                chunk = body[at:at + CHUNK]
                utf8.decode(chunk)
                parser.feed(chunk)
                kept += chunk.count(b"<") - chunk.count(b"</") + chunk.count(b"=") - self._drain(parser)
                if kept > budget:
                    raise reader.error(f"model part {part!r} holds more than {budget:,} XML elements and attributes "
                                       f"outside mesh and property data, over the limit (20 x limits.max_nodes)",
                                       code="input.too_large")
            utf8.decode(b"", final=True)
            root = parser.close()
        except (UnicodeDecodeError, etree.XMLSyntaxError) as exc:
            raise reader.error(f"model part {part!r} is not well-formed UTF-8 XML ({exc})") from None
        self._drain(parser)
        return root

    def _drain(self, parser) -> int:  # type: ignore[no-untyped-def]
        """Handle the parser's events, flush every open container; returns the tree nodes flushed."""
        flushed = 0
        for event, node in parser.read_events():
            if event == "start":
                bulk = _Bulk(self._kind(node), node)
                self._bulk[node] = bulk
                self._open.append(bulk)
            elif (bulk := self._bulk.get(node)) is not None and bulk in self._open:
                flushed += self._flush(bulk, final=True)
                self._open.remove(bulk)
                if bulk.kind == "group" and node.get("id") is not None:
                    self.groups[node.get("id")] = bulk.flushed
        return flushed + sum(self._flush(bulk, final=False) for bulk in self._open)

    def _kind(self, node) -> str:  # type: ignore[no-untyped-def]
        from lxml import etree

        parent = node.getparent()
        if self.ns["c"] == "" and parent is not None:  # the first container names the core namespace: the root's
            self.ns = {"c": etree.QName(node.getroottree().getroot()).namespace or ""}
        core, tag = self.ns["c"], etree.QName(node)
        if parent is None:
            return "drop"
        if tag.localname in GROUPS:
            return "group" if parent.tag == f"{{{core}}}resources" else "drop"
        if tag.namespace != core or parent.tag != f"{{{core}}}mesh" or tag.localname not in ("vertices", "triangles"):
            return "drop"
        if parent.find(tag.text) is not node:  # a second <vertices> in one mesh is not read (as before streaming)
            return "drop"
        return "vertex" if tag.localname == "vertices" else "triangle"

    def _flush(self, bulk: _Bulk, *, final: bool) -> int:
        """Pull the children out of ``bulk.node`` and delete them; returns the tree nodes deleted.

        Until the container ends, its last child may still be open in the parser (deleting it would
        free a node libxml2 writes to next), so it stays: read now if it is complete, it is trimmed
        from this flush's results and read with the next one. The XPaths run over all children, as a
        ``position() <= $n`` predicate costs 80% more.
        """
        node = bulk.node
        n = len(node) if final else len(node) - 1
        if n <= 0:
            return 0
        last = None if final else node[-1]
        if bulk.kind == "vertex":
            self._vertices(bulk, last)
        elif bulk.kind == "triangle":
            self._triangles(bulk, last)
        bulk.flushed += n
        held = len(last.attrib) if last is not None and isinstance(last.tag, str) else 0
        nodes = n + int(self._xpath("count(*/@*)")(node)) - held
        del node[:n]
        return nodes

    def _vertices(self, bulk: _Bulk, last) -> None:  # type: ignore[no-untyped-def]
        reader, node = self.reader, bulk.node
        n_v = int(self._xpath("count(c:vertex)")(node))
        held = int(last is not None and last.tag == f"{{{self.ns['c']}}}vertex")
        self.unknown_elements += len(node) - n_v - (last is not None) + held
        reader.vertices += n_v - held
        if reader.vertices > reader.limits.max_vertices:  # checked before the chunk becomes an array
            raise self._over("vertices", reader.vertices, reader.limits.max_vertices)
        cols = [self._xpath(f"c:vertex/@{axis}")(node) for axis in "xyz"]
        if any(len(c) != n_v for c in cols):
            raise reader.error(f"object {_oid(node)}: a <vertex> lacks an x, y or z attribute")
        try:
            bulk.chunks.append(np.array(cols, dtype=np.float64).T[: n_v - held])  # parses as float(): 5x astype
        except ValueError:
            bad = next((v for c in cols for v in c if not _is_number(v)), "?")
            raise reader.error(f"object {_oid(node)}: vertex coordinate {bad[:30]!r} is not a number "
                               f"(3MF uses '.' as the decimal separator)") from None

    def _triangles(self, bulk: _Bulk, last) -> None:  # type: ignore[no-untyped-def]
        reader, node = self.reader, bulk.node
        n_t = int(self._xpath("count(c:triangle)")(node))
        held = int(last is not None and last.tag == f"{{{self.ns['c']}}}triangle")
        self.unknown_elements += len(node) - n_t - (last is not None) + held
        reader.triangles += n_t - held
        if reader.triangles > reader.limits.max_triangles:
            raise self._over("triangles", reader.triangles, reader.limits.max_triangles)
        tri = [self._xpath(f"c:triangle/@{k}")(node) for k in ("v1", "v2", "v3")]
        if any(len(t) != n_t for t in tri):
            raise reader.error(f"object {_oid(node)}: a <triangle> lacks v1, v2 or v3")
        try:
            bulk.chunks.append(np.array(tri, dtype=np.int64).T[: n_t - held])
        except (ValueError, OverflowError):
            raise reader.error(f"object {_oid(node)}: a triangle index is not a whole number") from None
        if n_t and self._xpath("boolean(c:triangle/@p1)")(node):
            self._properties(node, last if held else None)

    def _properties(self, node, held) -> None:  # type: ignore[no-untyped-def]
        """Property indices (p1/p2/p3) against their group's size; ``held``: the triangle read next time.

        A triangle's group is its own pid, else its object's: two aligned XPaths each, so the answer
        does not depend on where a chunk ends (a triangle without either has no group to check).
        """
        obj = node.getparent().getparent()
        default_pid = obj.get("pid") if obj is not None else None
        for key in ("p1", "p2", "p3"):
            own = self._xpath(f"c:triangle[@{key}][@pid]/@{key}")(node)
            pids = self._xpath(f"c:triangle[@{key}][@pid]/@pid")(node)
            inherit = self._xpath(f"c:triangle[@{key}][not(@pid)]/@{key}")(node) if default_pid is not None else []
            if held is not None and held.get(key) is not None:  # it came last in document order
                if held.get("pid") is not None:
                    own.pop()
                    pids.pop()
                elif default_pid is not None:
                    inherit.pop()
            vals, pids = own + inherit, pids + [default_pid] * len(inherit)
            if not vals:
                continue
            try:
                idx = np.array(vals, dtype=np.int64)
            except (ValueError, OverflowError):
                self.property_problems += len(vals)
                continue
            names, inverse = np.unique(np.array(pids, dtype=np.str_), return_inverse=True)
            if all(p in self.groups for p in names.tolist()):
                self._count_property_problems(names, inverse, idx)
            else:  # a group defined after the object that uses it: checked once the part is read
                self._pending.append((names, inverse, idx))

    def _count_property_problems(self, names: np.ndarray, inverse: np.ndarray, idx: np.ndarray) -> None:
        sizes = np.array([self.groups.get(p, np.iinfo(np.int64).max) for p in names.tolist()], dtype=np.int64)[inverse]
        self.property_problems += int(((idx < 0) | (idx >= sizes)).sum())

    def _over(self, what: str, count: int, limit: int) -> InputError:
        return self.reader.error(f"model part {self.part!r} holds at least {count:,} {what} (reading stopped there), "
                                 f"over the profile's limit of {limit:,} (limits.max_{what})", code="input.too_large")

    def _xpath(self, expr: str):  # type: ignore[no-untyped-def]
        return _compiled(self.ns["c"], expr)

    # after the parse ----------------------------------------------------------------------------
    def _mesh(self, oid: str, mesh) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
        vertices = self._gathered(mesh.find("c:vertices", self.ns), np.float64)
        faces = self._gathered(mesh.find("c:triangles", self.ns), np.int64)
        if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise self.reader.error(f"object {oid}: a triangle refers to vertex {int(faces.max())}, but the object "
                                    f"has {len(vertices)} vertices", code="input.bad_index")
        return vertices, faces

    def _gathered(self, node, dtype: type) -> np.ndarray:  # type: ignore[no-untyped-def]
        bulk = self._bulk.get(node) if node is not None else None
        if bulk is None or not bulk.chunks:
            return np.zeros((0, 3), dtype=dtype)
        out = np.concatenate(bulk.chunks) if len(bulk.chunks) > 1 else np.ascontiguousarray(bulk.chunks[0])
        bulk.chunks = [out]  # the pieces go now, not when the part is done
        return out


class _Reader:
    def __init__(self, source: SourceFile, limits: ReadLimits) -> None:
        self.source = source
        self.limits = limits
        self.zip = SafeZip.open(source, limits)
        self.models: dict[str, _Model] = {}
        self.triangles = 0
        self.vertices = 0

    def error(self, reason: str, code: str = "input.corrupt") -> InputError:
        return InputError(where(self.source), f"3MF: {reason}", code=code)

    def model(self, part: str) -> _Model:
        key = "/" + part.lstrip("/")
        if key not in self.models:
            if len(self.models) > 64:
                raise self.error("references more than 64 model parts", code="input.too_large")
            self.models[key] = _Model(self, key)
        return self.models[key]

    def start_part(self) -> str:
        rels = self.zip.read("_rels/.rels", missing_ok=True)
        if rels:
            for tag in _TARGET.findall(rels):
                if MODEL_REL.encode() in tag:
                    m = re.search(rb"""Target\s*=\s*["']([^"']+)["']""", tag)
                    if m:
                        return m.group(1).decode("utf-8", "replace")
        names = self.zip.names()
        if "3d/3dmodel.model" in names:
            return "/3D/3dmodel.model"
        models = [n for n in names.values() if n.lower().endswith(".model")]
        if not models:
            raise self.error("package has no 3D model part (no 3dmodel relationship, no .model file)")
        return "/" + models[0]


def read_3mf(source: SourceFile, limits: ReadLimits) -> Loaded:
    import trimesh

    reader = _Reader(source, limits)
    start = reader.start_part()
    root = reader.model(start)
    if root.build is None:
        raise reader.error("the root model part has no <build> element")
    unit = UNITS.get(root.unit)
    if unit is None:
        raise reader.error(f"unknown unit {root.unit!r} (valid: {', '.join(UNITS)})")
    items: list[tuple[str, str, np.ndarray]] = []
    for item in root.build.findall("c:item", root.ns):
        oid = item.get("objectid")
        if oid is None:
            raise reader.error("a build <item> has no objectid")
        items.append((item.get(f"{{{PROD_NS}}}path") or root.part, oid, _transform(reader, item.get("transform"))))
    _check_instancing(reader, [(part, oid) for part, oid, _ in items])
    scene = trimesh.Scene()
    added: dict[tuple[str, str], str] = {}
    instances = 0

    def place(part: str, oid: str, matrix: np.ndarray) -> None:  # the graph was checked: no cycle, bounded
        nonlocal instances
        model = reader.model(part)
        key = (model.part, oid)
        if oid in model.meshes:
            instances += 1
            if key not in added:
                vertices, faces = model.meshes[oid]
                mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
                added[key] = scene.add_geometry(mesh, geom_name=model.names[oid], transform=matrix)
            else:  # another instance of the same mesh: a new node, not a copy of the geometry
                scene.graph.update(frame_to=f"{added[key]}_{instances}", frame_from=scene.graph.base_frame,
                                   geometry=added[key], matrix=matrix)
            return
        for child, path, local in model.components[oid]:
            place(path or model.part, child, matrix @ local)

    for part, oid, matrix in items:
        place(part, oid, matrix)
    findings: list[Finding] = []
    if reader.zip.unsafe:
        findings.append(finding("input.unsafe_path", Severity.ERROR,
                                f"3MF package has {len(reader.zip.unsafe)} part name(s) that point outside the package "
                                f"(zip-slip); they were not read: {', '.join(repr(n) for n in reader.zip.unsafe[:5])}",
                                measured=reader.zip.unsafe[:10], count=len(reader.zip.unsafe)))
    unknown = sum(m.unknown_elements for m in reader.models.values())
    if unknown:
        findings.append(finding("input.unknown_element", Severity.WARNING,
                                f"3MF mesh has {unknown} element(s) other than <vertex>/<triangle> inside "
                                f"<vertices>/<triangles>; they were ignored", count=unknown))
    bad_props = sum(m.property_problems for m in reader.models.values())
    if bad_props:
        findings.append(finding("input.bad_property_index", Severity.ERROR,
                                f"3MF has {bad_props} triangle property reference(s) (p1/p2/p3) outside their "
                                f"property group", count=bad_props))
    if not scene.geometry or not any(len(g.faces) for g in scene.geometry.values()):
        raise empty(source, "3MF", "no mesh object with triangles is built (beam lattices and slices are not read)")
    return Loaded(scene=scene, format="3mf", units=Units(unit, "+Z"), findings=tuple(findings))


def _check_instancing(reader: _Reader, items: list[tuple[str, str]]) -> None:
    """Refuse a build whose instances, placed, would exceed the limits: counted, nothing expanded.

    Each object's totals (triangles placed, object instances, nesting height) are computed once and
    reused wherever the object is placed, so 300 items of 300 components of one 20k-triangle mesh
    cost 601 visits here, not the 1.8 billion triangles a flattened scene would hold.
    """
    limits = reader.limits
    memo: dict[tuple[str, str], tuple[int, int, int]] = {}  # (triangles, instances, height)

    def visit(part: str, oid: str, depth: int, trail: tuple[tuple[str, str], ...]) -> tuple[int, int, int]:
        model = reader.model(part)
        key = (model.part, oid)
        if key in trail:
            raise reader.error(f"object {oid} contains itself through its components (a cycle)")
        if key not in memo:
            if depth > limits.max_depth:  # checked on the way down too: a chain is never recursed past it
                raise reader.error(f"components nest deeper than {limits.max_depth} levels", code="input.too_large")
            if oid in model.meshes:
                memo[key] = (len(model.meshes[oid][1]), 1, 0)
            elif oid in model.components:
                triangles, instances, height = 0, 1, 0
                for child, path, _ in model.components[oid]:
                    t, n, h = visit(path or model.part, child, depth + 1, (*trail, key))
                    triangles, instances, height = triangles + t, instances + n, max(height, h + 1)
                memo[key] = (triangles, instances, height)
            else:
                raise reader.error(f"a build item or component refers to object id {oid!r}, which {model.part} "
                                   f"does not define")
        if depth + memo[key][2] > limits.max_depth:
            raise reader.error(f"components nest deeper than {limits.max_depth} levels", code="input.too_large")
        return memo[key]

    totals = [visit(part, oid, 0, ()) for part, oid in items]
    triangles, instances = sum(t for t, _, _ in totals), sum(n for _, n, _ in totals)
    if triangles > limits.max_triangles:
        raise reader.error(f"{triangles:,} triangles after instancing, over the limit of {limits.max_triangles:,} "
                           f"(limits.max_triangles)", code="input.too_large")
    if instances > limits.max_nodes:  # components count: a fan of empty ones would be walked all the same
        raise reader.error(f"build expands to {instances:,} object instances (components included), over the limit "
                           f"of {limits.max_nodes:,} (limits.max_nodes)", code="input.too_large")


@functools.cache
def _compiled(namespace: str, expr: str):  # type: ignore[no-untyped-def]
    """A compiled XPath returning plain strings (lxml's default "smart strings" cost 2-3x here)."""
    from lxml import etree

    return etree.XPath(expr, namespaces={"c": namespace} if namespace else None, smart_strings=False)


def _oid(container) -> str:  # type: ignore[no-untyped-def]
    """The id of the object whose mesh holds ``container`` (for messages)."""
    obj = container.getparent().getparent()
    return (obj.get("id") if obj is not None else None) or "?"


def _transform(reader: _Reader, text: str | None) -> np.ndarray:
    """3MF's 12 numbers (row-vector convention) -> a 4x4 column-vector matrix."""
    if not text:
        return np.eye(4)
    try:
        values = np.array(text.split(), dtype=np.float64)
    except ValueError:
        raise reader.error(f"transform {text[:60]!r} is not 12 numbers") from None
    if values.shape != (12,) or not np.isfinite(values).all():
        raise reader.error(f"transform {text[:60]!r} is not 12 finite numbers")
    m = np.eye(4)
    m[:3, :3] = values[:9].reshape(3, 3).T
    m[:3, 3] = values[9:]
    return m


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
