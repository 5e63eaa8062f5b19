"""Wavefront OBJ: sanitized and triangulated here, then parsed by trimesh's vectorized OBJ loader.

trimesh's loader is fast and handles materials, UVs and groups, but on hostile or odd input it is
wrong: index 0 silently becomes the last vertex, an out-of-range index raises IndexError, MSVC's
``1.#IND`` aborts it, concave quads and n-gons are fanned (triangles outside the polygon), and
``mtllib ../x.mtl`` is read from wherever it points. So before handing the text over we decode it
(UTF-8/UTF-16 with BOM), map ``1.#IND``/``1.#INF`` to nan/inf, check every face index (0 and out of
range -> InputError) and the counts against the limits, and rewrite polygons as triangles that
stay inside them. Referenced files are served only from the model's folder (FolderResolver).
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


def read_obj(source: SourceFile, limits: ReadLimits) -> Loaded:
    import trimesh

    text = decode(source.data).replace("\\\r\n", " ").replace("\\\n", " ")
    if "\x00" in text[:4096]:
        raise InputError(where(source), "OBJ file contains binary data (NUL bytes)", code="input.corrupt")
    text = _MSVC_INF.sub(r"\1inf", _MSVC_NAN.sub("nan", text))
    lines = [ln.strip() for ln in text.splitlines()]
    kinds = np.array([ln[:2] for ln in lines], dtype="U2")
    is_v = (kinds == "v ") | (kinds == "v\t")
    is_f = (kinds == "f ") | (kinds == "f\t")
    f_rows = np.flatnonzero(is_f)
    n_v = int(is_v.sum())
    if not len(f_rows):
        raise empty(source, "OBJ", f"{n_v:,} vertices and no faces" if n_v else "no vertices and no faces")
    check_counts(source, limits, vertices=n_v, fmt="OBJ")
    vertices = _vertices(source, "\n".join(np.asarray(lines, dtype=object)[is_v]), n_v)
    refs_per_line = [lines[i].split()[1:] for i in f_rows]
    counts = np.fromiter((len(r) for r in refs_per_line), dtype=np.int64, count=len(f_rows))
    check_counts(source, limits, triangles=int(np.clip(counts - 2, 0, None).sum()), fmt="OBJ")
    flat = np.array([t for r in refs_per_line for t in r], dtype=np.str_)
    try:
        index = np.char.partition(flat, "/")[:, 0].astype(np.int64)
    except (ValueError, OverflowError):
        raise InputError(where(source), "an OBJ face ('f') has a vertex reference that is not a whole number",
                         code="input.corrupt") from None
    # relative (negative) indices count back from the vertices defined so far
    v_before = np.cumsum(is_v)[f_rows]
    line_of_ref = np.repeat(np.arange(len(f_rows)), counts)
    absolute = np.where(index < 0, index + np.repeat(v_before, counts), index - 1)
    bad = (index == 0) | (absolute < 0) | (absolute >= n_v)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise InputError(where(source), f"{int(bad.sum())} OBJ face reference(s) are invalid, e.g. vertex index "
                         f"{int(index[first])} on line {int(f_rows[line_of_ref[first]]) + 1} (OBJ indices start at 1; "
                         f"the file has {n_v} vertices)", code="input.bad_index")
    if (counts < 3).any():
        raise InputError(where(source), f"{int((counts < 3).sum())} OBJ face(s) have fewer than 3 corners",
                         code="input.corrupt")
    if (counts > 3).any():
        lines = _rewrite_polygons(lines, f_rows, counts, flat, absolute, vertices)
    resolver = FolderResolver(source.folder, limits)
    clean = "\n".join(lines)
    try:
        scene = trimesh.load_scene(io.BytesIO(clean.encode("utf-8")), file_type="obj", resolver=resolver,
                                   process=False)
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(where(source), f"corrupt OBJ ({type(exc).__name__}: {exc})", code="input.corrupt") from None
    if not any(len(getattr(g, "faces", ())) for g in scene.geometry.values()):
        raise empty(source, "OBJ")
    findings = resolver.findings("material library or texture", missing_code="input.missing_material")
    return Loaded(scene=scene, format="obj", units=Units(None, "+Y"), findings=tuple(findings))


def _vertices(source: SourceFile, text: str, n_v: int) -> np.ndarray:
    found = _V.findall(text)
    if len(found) != n_v:
        raise InputError(where(source), f"{n_v - len(found)} OBJ vertex line(s) have fewer than 3 coordinates",
                         code="input.corrupt")
    try:
        return np.array(found, dtype=np.str_).astype(np.float64).reshape(-1, 3)
    except ValueError:
        bad = next((t for row in found for t in row if not _is_float(t)), "?")
        raise InputError(where(source), f"OBJ vertex coordinate {bad[:30]!r} is not a number", code="input.corrupt") from None


def _rewrite_polygons(lines: list[str], f_rows: np.ndarray, counts: np.ndarray, flat: np.ndarray,
                      absolute: np.ndarray, vertices: np.ndarray) -> list[str]:
    """Replace each polygon 'f' line by its triangles (n - 2 of them), chosen inside the polygon."""
    out = np.asarray(lines, dtype=object)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for k in np.unique(counts[counts > 3]):
        k = int(k)
        sel = np.flatnonzero(counts == k)
        cols = starts[sel][:, None] + np.arange(k)  # (m, k) positions in the flat reference arrays
        pseudo = vertices[absolute[cols]].reshape(-1, 3)
        local = np.arange(len(sel) * k).reshape(-1, k)
        tris = triangulate(pseudo, local)  # indices into the (m*k) corners
        order = np.argsort(tris[:, 0] // k, kind="stable")
        tris = tris[order].reshape(len(sel), k - 2, 3)
        refs = flat[cols].reshape(-1)
        words = refs[tris]  # (m, k-2, 3) reference strings
        tri_lines = np.char.add(np.char.add(np.char.add("f ", words[..., 0]), np.char.add(" ", words[..., 1])),
                                np.char.add(" ", words[..., 2]))
        joined = tri_lines[:, 0]
        for j in range(1, k - 2):  # k - 2 columns, not a loop over faces
            joined = np.char.add(np.char.add(joined, "\n"), tri_lines[:, j])
        out[f_rows[sel]] = joined.astype(object)
    return list(out)


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
