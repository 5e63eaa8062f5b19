"""3MF: a ZIP package of XML model parts, read with :mod:`meshforge.io.zipsafe` and lxml (no entities).

Units come from the model's ``unit`` attribute (numbers are kept as written); build items and
components are instances with transforms, kept as scene nodes so nothing is duplicated. Vertex and
triangle attributes are pulled out with one XPath each and converted with numpy.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from meshforge.errors import InputError
from meshforge.io.guard import check_counts, empty, finding, where
from meshforge.io.zipsafe import SafeZip
from meshforge.types import Finding, Loaded, ReadLimits, Severity, SourceFile, Units

MODEL_REL = "http://schemas.microsoft.com/3dmanufacturing/2013/01/3dmodel"
PROD_NS = "http://schemas.microsoft.com/3dmanufacturing/production/2015/06"
UNITS = {"micron": "um", "millimeter": "mm", "centimeter": "cm", "inch": "in", "foot": "ft", "meter": "m"}
_TARGET = re.compile(rb"""<Relationship\b[^>]*>""", re.IGNORECASE)
_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding\s*=\s*["']([^"']+)["']""")


def _parser():  # type: ignore[no-untyped-def]
    from lxml import etree

    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False,
                           remove_comments=True, remove_pis=True)


class _Model:
    """One parsed model part: mesh objects, component objects, property group sizes."""

    def __init__(self, reader: _Reader, part: str) -> None:
        from lxml import etree

        self.part = part
        data = reader.zip.read(part)
        assert data is not None
        body = data.removeprefix(b"\xef\xbb\xbf")
        m = _ENCODING.match(body)
        if (m and m.group(1).lower() not in (b"utf-8", b"utf8")) or body[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in body[:200]:
            raise reader.error(f"model part {part!r} is not UTF-8 encoded XML (3MF requires UTF-8)")
        try:
            body.decode("utf-8")
            root = etree.fromstring(body, _parser())
        except (UnicodeDecodeError, etree.XMLSyntaxError, ValueError) as exc:
            raise reader.error(f"model part {part!r} is not well-formed UTF-8 XML ({exc})") from None
        if root is None or etree.QName(root).localname != "model":
            raise reader.error(f"model part {part!r} has no <model> root element")
        self.ns = {"c": etree.QName(root).namespace or ""}
        self.unit = root.get("unit", "millimeter")
        resources = root.find("c:resources", self.ns)
        if resources is None:
            raise reader.error(f"model part {part!r} has no <resources> element")
        self.build = root.find("c:build", self.ns)
        self.groups = {g.get("id"): len(g) for g in resources if g.get("id") is not None and etree.QName(g).localname
                       in ("basematerials", "colorgroup", "texture2dgroup", "compositematerials", "multiproperties")}
        self.meshes: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.components: dict[str, list[tuple[str, str, np.ndarray]]] = {}
        self.property_problems = 0
        self.unknown_elements = 0
        self.names: dict[str, str] = {}
        objects = resources.findall("c:object", self.ns)
        for obj in objects:
            oid = obj.get("id")
            if oid is None:
                raise reader.error("an <object> has no id")
            self.names[oid] = obj.get("name") or f"object_{oid}"
            mesh = obj.find("c:mesh", self.ns)
            comps = obj.find("c:components", self.ns)
            if mesh is not None:
                self.meshes[oid] = self._mesh(reader, oid, obj, mesh)
            elif comps is not None:
                self.components[oid] = [
                    (c.get("objectid") or "", c.get(f"{{{PROD_NS}}}path") or "", _transform(reader, c.get("transform")))
                    for c in comps.findall("c:component", self.ns)
                ]

    def _mesh(self, reader: _Reader, oid: str, obj, mesh) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
        ns = self.ns
        vnode = mesh.find("c:vertices", ns)
        tnode = mesh.find("c:triangles", ns)
        n_v = int(vnode.xpath("count(c:vertex)", namespaces=ns)) if vnode is not None else 0
        n_t = int(tnode.xpath("count(c:triangle)", namespaces=ns)) if tnode is not None else 0
        others = (len(vnode) - n_v if vnode is not None else 0) + (len(tnode) - n_t if tnode is not None else 0)
        if others:
            self.unknown_elements += others
        # the DOM is bounded by the inflated part size; the arrays are checked before numpy builds them
        check_counts(reader.source, reader.limits, triangles=reader.triangles + n_t, vertices=reader.vertices + n_v,
                     fmt="3MF")
        reader.triangles += n_t
        reader.vertices += n_v
        cols = [_attr(ns["c"], "vertex", axis)(vnode) if n_v else [] for axis in "xyz"]
        if any(len(c) != n_v for c in cols):
            raise reader.error(f"object {oid}: a <vertex> lacks an x, y or z attribute")
        tri = [_attr(ns["c"], "triangle", k)(tnode) if n_t else [] for k in ("v1", "v2", "v3")]
        if any(len(t) != n_t for t in tri):
            raise reader.error(f"object {oid}: a <triangle> lacks v1, v2 or v3")
        try:
            vertices = np.array(cols, dtype=np.str_).astype(np.float64).T.reshape(-1, 3)
        except ValueError:
            bad = next((v for c in cols for v in c if not _is_number(v)), "?")
            raise reader.error(f"object {oid}: vertex coordinate {bad[:30]!r} is not a number "
                               f"(3MF uses '.' as the decimal separator)") from None
        try:
            faces = np.array(tri, dtype=np.str_).astype(np.int64).T.reshape(-1, 3)
        except (ValueError, OverflowError):
            raise reader.error(f"object {oid}: a triangle index is not a whole number") from None
        if len(faces) and (faces.min() < 0 or faces.max() >= len(vertices)):
            raise reader.error(f"object {oid}: a triangle refers to vertex {int(faces.max())}, but the object has "
                               f"{len(vertices)} vertices", code="input.bad_index")
        if n_t and tnode.xpath("boolean(c:triangle/@p1)", namespaces=ns):
            self._check_properties(obj, mesh)
        return vertices, faces

    def _check_properties(self, obj, mesh) -> None:  # type: ignore[no-untyped-def]
        default_pid = obj.get("pid")
        for key in ("p1", "p2", "p3"):
            pids = mesh.xpath("c:triangles/c:triangle[@" + key + "]/@pid", namespaces=self.ns)
            vals = mesh.xpath("c:triangles/c:triangle[@" + key + "]/@" + key, namespaces=self.ns)
            if not vals:
                continue
            if len(pids) != len(vals):  # triangles that rely on the object's default pid
                pids = [default_pid] * len(vals) if default_pid is not None else pids
            try:
                idx = np.array(vals, dtype=np.str_).astype(np.int64)
            except (ValueError, OverflowError):
                self.property_problems += len(vals)
                continue
            sizes = np.array([self.groups.get(p, np.iinfo(np.int64).max) for p in pids][: len(idx)], dtype=np.int64)
            if len(sizes) == len(idx):
                self.property_problems += int(((idx < 0) | (idx >= sizes)).sum())


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
    scene = trimesh.Scene()
    added: dict[tuple[str, str], str] = {}
    instances = 0

    def place(part: str, oid: str, matrix: np.ndarray, depth: int, trail: tuple[tuple[str, str], ...]) -> None:
        nonlocal instances
        model = reader.model(part)
        key = (model.part, oid)
        if key in trail:
            raise reader.error(f"object {oid} contains itself through its components (a cycle)")
        if depth > limits.max_depth:
            raise reader.error(f"components nest deeper than {limits.max_depth} levels", code="input.too_large")
        if oid in model.meshes:
            instances += 1
            if instances > limits.max_nodes:
                raise reader.error(f"build expands to more than {limits.max_nodes:,} instances (limits.max_nodes)",
                                   code="input.too_large")
            if key not in added:
                vertices, faces = model.meshes[oid]
                mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
                added[key] = scene.add_geometry(mesh, geom_name=model.names[oid], transform=matrix)
            else:  # another instance of the same mesh: a new node, not a copy of the geometry
                scene.graph.update(frame_to=f"{added[key]}_{instances}", frame_from=scene.graph.base_frame,
                                   geometry=added[key], matrix=matrix)
            return
        if oid in model.components:
            for child, path, local in model.components[oid]:
                place(path or model.part, child, matrix @ local, depth + 1, (*trail, key))
            return
        raise reader.error(f"a build item or component refers to object id {oid!r}, which {model.part} does not define")

    for item in root.build.findall("c:item", root.ns):
        oid = item.get("objectid")
        if oid is None:
            raise reader.error("a build <item> has no objectid")
        place(item.get(f"{{{PROD_NS}}}path") or root.part, oid, _transform(reader, item.get("transform")), 0, ())
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


@functools.cache
def _attr(namespace: str, element: str, name: str):  # type: ignore[no-untyped-def]
    """A compiled XPath returning plain strings (lxml's default "smart strings" cost 2-3x here)."""
    from lxml import etree

    return etree.XPath(f"c:{element}/@{name}", namespaces={"c": namespace}, smart_strings=False)


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
