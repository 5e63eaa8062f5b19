"""Wavefront OBJ: sanitized and triangulated here, then parsed by trimesh's vectorized OBJ loader.

trimesh's loader is fast and handles materials, UVs and groups, but on hostile or odd input it is
wrong: index 0 silently becomes the last vertex, an out-of-range index raises IndexError, MSVC's
``1.#IND`` aborts it, concave quads and n-gons are fanned (triangles outside the polygon), and
``mtllib ../x.mtl`` is read from wherever it points. So before handing the text over we decode it
(UTF-8/UTF-16 with BOM), map ``1.#IND``/``1.#INF`` to nan/inf, check every face index (0 and out of
range -> InputError) and the counts against the limits, and rewrite polygons as triangles that
stay inside them. Referenced files are served only from the model's folder (FolderResolver).

Two more things trimesh does not check. A vertex line with fewer than 3 coordinates (``v 0 0``;
the spec is ``v x y z [w]``) makes it return 2-column (or 1-column) vertices for the whole file,
which fails later far from the cause, so such a line is an InputError here. And trimesh makes one
mesh per material (``usemtl`` name; ``o`` and ``g`` do not split as we call it) and names them in
time quadratic in their count when the names collide (materials missing), so a 600 KB file of
30,000 ``usemtl`` lines took minutes: the number of distinct materials is capped before loading.
"""

from __future__ import annotations

import io
import re

import numpy as np

from meshforge.errors import InputError
from meshforge.io.guard import FolderResolver, check_counts, empty, where
from meshforge.io.polygons import triangulate
from meshforge.types import Loaded, ReadLimits, SourceFile, Units

_MSVC_NAN = re.compile(r"(-?)1\.#(?:IND|QNAN|SNAN)\d*", re.IGNORECASE)
_MSVC_INF = re.compile(r"(-?)1\.#INF\d*", re.IGNORECASE)
_V = re.compile(r"^v[ \t]+(\S+)[ \t]+(\S+)[ \t]+(\S+)", re.MULTILINE)


def decode(data: bytes) -> str:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


_FLINE = re.compile(r"^f[ \t]+([^\n]*)", re.MULTILINE)
_KIND = re.compile(r"^([vf])[ \t]", re.MULTILINE)
_AFTER_SLASH = re.compile(r"/\S*")
_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)
# a vertex line ("v" then a blank or the line's end) without 3 coordinates; "\n" first keeps the scan fast
_SHORT_V = re.compile(r"\nv(?![ \t]+\S+[ \t]+\S+[ \t]+\S)(?=[ \t\n]|\Z)")
_BLANKS = re.compile(r"[ \t]+")
# trimesh starts a new mesh at every "usemtl " (anywhere, as here) and keys it by the rest of the line
_USEMTL = re.compile(r"usemtl ([^\n]*)")
# trimesh's OBJ loader names the meshes in O(materials^2) (util.unique_name, when the names collide:
# no .mtl) and allocates O(vertices) per material: ~0.5 s at 2,048, ~2 s at 4,096, ~25 s at 10,000.
# limits.max_primitives (20,000 by default) suits the glTF reader, which has neither cost.
MAX_MATERIALS = 4_096


def read_obj(source: SourceFile, limits: ReadLimits) -> Loaded:
    import trimesh

    text = decode(source.data).replace("\r\n", "\n").replace("\r", "\n").replace("\\\n", " ")
    if "\x00" in text[:4096]:
        raise InputError(where(source), "OBJ file contains binary data (NUL bytes)", code="input.corrupt")
    if "1.#" in text:  # MSVC's printf of nan/inf: 1.#IND, -1.#INF, 1.#QNAN
        text = _MSVC_INF.sub(r"\1inf", _MSVC_NAN.sub("nan", text))
    if _INDENT.search(text):
        text = _INDENT.sub("", text)
    n_v = text.count("\nv ") + text.count("\nv\t") + int(text.startswith(("v ", "v\t")))
    bodies = _FLINE.findall(text)
    if not bodies:
        raise empty(source, "OBJ", f"{n_v:,} vertices and no faces" if n_v else "no vertices and no faces")
    check_counts(source, limits, vertices=n_v, fmt="OBJ")
    _check_vertex_lines(source, text)
    _check_materials(source, text, limits)
    counts = np.fromiter(map(len, map(str.split, bodies)), dtype=np.int64, count=len(bodies))
    check_counts(source, limits, triangles=int(np.clip(counts - 2, 0, None).sum()), fmt="OBJ")
    if (counts < 3).any():
        raise InputError(where(source), f"{int((counts < 3).sum())} OBJ face(s) have fewer than 3 corners",
                         code="input.corrupt")
    joined = "\n".join(bodies)
    found = (_AFTER_SLASH.sub("", joined) if "/" in joined else joined).split()
    if len(found) != int(counts.sum()):
        raise InputError(where(source), "an OBJ face ('f') has a vertex reference that is not a whole number",
                         code="input.corrupt")
    try:
        index = np.array(found, dtype=np.str_).astype(np.int64)
    except (ValueError, OverflowError):
        raise InputError(where(source), "an OBJ face ('f') has a vertex reference that is not a whole number",
                         code="input.corrupt") from None
    if (index < 0).any():  # relative indices count back from the vertices defined so far
        kinds = np.array(_KIND.findall(text), dtype="U1")
        v_before = np.cumsum(kinds == "v")[kinds == "f"]
        absolute = np.where(index < 0, index + np.repeat(v_before, counts), index - 1)
    else:
        absolute = index - 1
    bad = (index == 0) | (absolute < 0) | (absolute >= n_v)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        face = int(np.searchsorted(np.cumsum(counts), first, side="right"))
        raise InputError(where(source), f"{int(bad.sum())} OBJ face reference(s) are invalid, e.g. vertex index "
                         f"{int(index[first])} in face {face + 1} (OBJ indices start at 1; the file has {n_v} vertices)",
                         code="input.bad_index")
    if (counts > 3).any():
        text = _fix_concave(source, text, bodies, counts, absolute)
    resolver = FolderResolver(source.folder, limits)
    try:
        scene = trimesh.load_scene(io.BytesIO(text.encode("utf-8")), file_type="obj", resolver=resolver,
                                   process=False)
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(where(source), f"corrupt OBJ ({type(exc).__name__}: {exc})", code="input.corrupt") from None
    if not any(len(getattr(g, "faces", ())) for g in scene.geometry.values()):
        raise empty(source, "OBJ")
    findings = resolver.findings("material library or texture", missing_code="input.missing_material")
    return Loaded(scene=scene, format="obj", units=Units(None, "+Y"), findings=tuple(findings))


def _check_vertex_lines(source: SourceFile, text: str) -> None:
    """A ``v`` line needs x, y and z (``v x y z [w]``); trimesh would silently make every vertex 2-D."""
    if text.startswith("v") and _SHORT_V.match("\n" + _line(text, 0)):
        at = 0
    elif found := _SHORT_V.search(text):
        at = found.start() + 1
    else:
        return
    line = _line(text, at)
    n = len(_BLANKS.split(line.strip(" \t"))) - 1
    raise InputError(where(source), f"OBJ vertex on line {text.count(chr(10), 0, at) + 1:,} has {n} coordinate"
                     f"{'' if n == 1 else 's'} ({line[:40]!r}); a vertex needs x y z (v x y z [w])",
                     code="input.corrupt")


def _line(text: str, at: int) -> str:
    end = text.find("\n", at)
    return text[at:end if end >= 0 else len(text)]


def _check_materials(source: SourceFile, text: str, limits: ReadLimits) -> None:
    """Refuse more distinct ``usemtl`` names (meshes trimesh would make) than the limit, before loading."""
    cap = min(limits.max_primitives, MAX_MATERIALS)
    if text.count("usemtl ") <= cap:
        return
    names: set[str] = set()
    start, window = 0, 1 << 23  # 8 MB at a time: a hostile file may name millions of materials
    while start < len(text) and len(names) <= cap:
        end = text.find("\n", start + window)
        end = len(text) if end < 0 else end
        names.update(map(str.strip, _USEMTL.findall(text, start, end)))
        start = end
    if len(names) <= cap:
        return
    why = ("limits.max_primitives" if cap == limits.max_primitives else
           "the OBJ reader's cap: trimesh slows down quadratically with more")
    raise InputError(where(source), f"OBJ file uses {'at least ' if start < len(text) else ''}{len(names):,} "
                     f"materials (distinct usemtl names), over the limit of {cap:,} ({why})",
                     code="input.too_complex")


def _fix_concave(source: SourceFile, text: str, bodies: list[str], counts: np.ndarray, absolute: np.ndarray) -> str:
    """trimesh fans polygons, which is right for convex ones; rewrite only the concave ones (rare)."""
    vertices = _vertices(source, text)  # one row per "v" line: _check_vertex_lines refused short ones
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    replace: dict[int, str] = {}
    for k in np.unique(counts[counts > 3]):
        k = int(k)
        sel = np.flatnonzero(counts == k)
        cols = starts[sel][:, None] + np.arange(k)
        with np.errstate(all="ignore"):
            pts = vertices[absolute[cols]]
            normal = _newell(pts)
            turn = np.einsum("mkj,mj->mk", np.cross(pts - np.roll(pts, 1, axis=1), np.roll(pts, -1, axis=1) - pts), normal)
        concave = sel[(turn < 0).any(axis=1)]
        if not len(concave):
            continue
        ccols = starts[concave][:, None] + np.arange(k)
        tris = triangulate(vertices[absolute[ccols]].reshape(-1, 3), np.arange(len(concave) * k).reshape(-1, k))
        tris = tris[np.argsort(tris[:, 0] // k, kind="stable")].reshape(len(concave), k - 2, 3) % k
        for row, face in enumerate(concave):  # concave polygons only
            refs = bodies[face].split()
            replace[int(face)] = "\n".join("f " + " ".join(refs[c] for c in tri) for tri in tris[row])
    if not replace:
        return text
    ordinal = iter(range(len(bodies)))

    def swap(m: re.Match[str]) -> str:
        i = next(ordinal)
        return replace.get(i, m.group(0))

    return _FLINE.sub(swap, text)


def _newell(pts: np.ndarray) -> np.ndarray:
    nxt = np.roll(pts, -1, axis=1)
    return np.stack([((pts[..., 1] - nxt[..., 1]) * (pts[..., 2] + nxt[..., 2])).sum(axis=1),
                     ((pts[..., 2] - nxt[..., 2]) * (pts[..., 0] + nxt[..., 0])).sum(axis=1),
                     ((pts[..., 0] - nxt[..., 0]) * (pts[..., 1] + nxt[..., 1])).sum(axis=1)], axis=1)


def _vertices(source: SourceFile, text: str) -> np.ndarray:
    found = _V.findall(text)
    try:
        return np.array(found, dtype=np.str_).astype(np.float64).reshape(-1, 3)
    except ValueError:
        bad = next((t for row in found for t in row if not _is_float(t)), "?")
        raise InputError(where(source), f"OBJ vertex coordinate {bad[:30]!r} is not a number", code="input.corrupt") from None


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
