"""OFF (text and 'OFF BINARY'), with counts checked against the bytes present before allocating.

An OFF header states vertex and face counts; assimp's OutOfMemory.off claims 353,535,235,358
vertices in 309 bytes. Every vertex needs at least three numbers (6 bytes of text, 12 binary), so a
claim the file cannot hold is refused from the header alone.
"""

from __future__ import annotations

import re

import numpy as np

from meshforge.errors import InputError
from meshforge.io.guard import check_counts, empty, where
from meshforge.io.polygons import triangulate
from meshforge.types import Finding, Loaded, ReadLimits, SourceFile, Units

_HEADER = re.compile(rb"^\s*(ST)?(C)?(N)?(4)?(n)?OFF(\s+BINARY)?", re.IGNORECASE)
_COMMENT = re.compile(rb"#[^\n]*")


def read_off(source: SourceFile, limits: ReadLimits) -> Loaded:
    import trimesh

    data = source.data
    m = _HEADER.match(data)
    if not m:
        raise InputError(where(source), "is not an OFF file (no 'OFF' header)", code="input.corrupt")
    if m.group(4) or m.group(5):
        raise InputError(where(source), "4OFF/nOFF (non-3D) variants are not supported", code="input.unsupported")
    if m.group(6):
        vertices, faces, findings = _binary(source, limits, m.end())
    else:
        vertices, faces, findings = _text(source, limits, m)
    if not len(faces):
        raise empty(source, "OFF", "0 faces")
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
    return Loaded(scene=trimesh.Scene(mesh), format="off", units=Units(None, "+Z"), findings=tuple(findings))


def _claim(source: SourceFile, limits: ReadLimits, nv: int, nf: int, room: int, per_vertex: int, per_face: int) -> None:
    if nv < 0 or nf < 0:
        raise InputError(where(source), f"OFF header has negative counts ({nv} vertices, {nf} faces)", code="input.corrupt")
    need = nv * per_vertex + nf * per_face
    if need > room:
        raise InputError(where(source), f"OFF header claims {nv:,} vertices and {nf:,} faces, which need at least "
                         f"{need:,} bytes, but only {room:,} follow the header", code="input.truncated")
    check_counts(source, limits, triangles=nf, vertices=nv, fmt="OFF")


def _text(source: SourceFile, limits: ReadLimits, m: re.Match[bytes]) -> tuple[np.ndarray, np.ndarray, list[Finding]]:
    body = _COMMENT.sub(b"", source.data[m.end():])
    lines = [ln for ln in body.splitlines() if ln.strip()]
    if not lines:
        raise InputError(where(source), "OFF header has no vertex/face counts", code="input.truncated")
    head = lines[0].split()
    try:
        nv, nf = int(head[0]), int(head[1])
    except (ValueError, IndexError):
        raise InputError(where(source), f"OFF counts line is not numbers: {lines[0][:60]!r}", code="input.corrupt") from None
    _claim(source, limits, nv, nf, len(body), per_vertex=6, per_face=6)
    if len(lines) < 1 + nv + nf:
        raise InputError(where(source), f"OFF is truncated: header declares {nv:,} vertices and {nf:,} faces but the "
                         f"file has {len(lines) - 1:,} data lines", code="input.truncated")
    fast = _text_fast(lines, nv, nf)
    if fast is not None:
        vertices, group = fast
        check_counts(source, limits, triangles=nf * (group.shape[1] - 2), fmt="OFF")
        return vertices, _faces(source, vertices, [group]), []
    try:
        vtok = [ln.split() for ln in lines[1:1 + nv]]
        widths = {len(t) for t in vtok}
        if min(widths, default=3) < 3:
            raise ValueError("a vertex line has fewer than 3 numbers")
        vertices = np.array([t[:3] for t in vtok], dtype=np.bytes_).astype(np.float64).reshape(-1, 3)
        ftok = [ln.split() for ln in lines[1 + nv:1 + nv + nf]]
        counts = np.array([int(t[0]) for t in ftok], dtype=np.int64)
    except ValueError as exc:
        raise InputError(where(source), f"OFF data is not numbers ({exc})", code="input.corrupt") from None
    if nf and ((counts < 0).any() or any(len(t) < c + 1 for t, c in zip(ftok, counts, strict=True))):
        raise InputError(where(source), "an OFF face lists fewer indices than its count says", code="input.corrupt")
    check_counts(source, limits, triangles=int(np.clip(counts - 2, 0, None).sum()), fmt="OFF")
    groups = []
    for k in np.unique(counts):
        sel = [t[1:1 + k] for t, c in zip(ftok, counts, strict=True) if c == k]
        try:
            groups.append(np.array(sel, dtype=np.bytes_).astype(np.int64).reshape(-1, int(k)))
        except ValueError:
            raise InputError(where(source), "OFF face indices are not whole numbers", code="input.corrupt") from None
    return vertices, _faces(source, vertices, groups), []


def _text_fast(lines: list[bytes], nv: int, nf: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The common case without a Python loop per line: 3 numbers per vertex, one polygon size."""
    # a ";" after every vertex line keeps the lines apart: by the total alone, a 2-number line
    # followed by a 4-number one read as two shifted vertices without a word
    vt = (b" ; ".join(lines[1:1 + nv]) + b" ;").split()
    ft = b" ".join(lines[1 + nv:1 + nv + nf]).split()
    if len(vt) != 4 * nv or not nf or not ft:
        return None
    try:
        k = int(ft[0])
        if k < 3 or len(ft) != nf * (k + 1):
            return None
        faces = np.array(ft, dtype=np.bytes_).astype(np.int64).reshape(nf, k + 1)
        if not (faces[:, 0] == k).all():
            return None
        rows = np.array(vt, dtype=np.bytes_).reshape(nv, 4)
        if not (rows[:, 3] == b";").all():
            return None  # a line with other than 3 numbers: the line-by-line reader says which
        vertices = rows[:, :3].astype(np.float64)
    except ValueError:
        return None
    return vertices, faces[:, 1:]


def _binary(source: SourceFile, limits: ReadLimits, start: int) -> tuple[np.ndarray, np.ndarray, list[Finding]]:
    data = source.data
    # header text ends at the newline; counts follow as three int32 (Geomview says big-endian; pmp writes little)
    nl = data.find(b"\n", start)
    if nl < 0:
        raise InputError(where(source), "binary OFF is truncated after its header", code="input.truncated")
    off = nl + 1
    if len(data) < off + 12:
        raise InputError(where(source), "binary OFF is truncated before its counts", code="input.truncated")
    room = len(data) - off - 12
    findings: list[Finding] = []
    chosen = None
    for order in (">", "<"):
        nv, nf, _ne = (int(x) for x in np.frombuffer(data, dtype=f"{order}i4", count=3, offset=off))
        if 0 <= nv and 0 <= nf and nv * 12 + nf * 16 <= room:
            chosen = order, nv, nf
            break
    if chosen is None:
        nv, nf, _ = (int(x) for x in np.frombuffer(data, dtype=">i4", count=3, offset=off))
        _claim(source, limits, nv, nf, room, per_vertex=12, per_face=16)
        raise InputError(where(source), "binary OFF counts do not fit the file", code="input.corrupt")
    order, nv, nf = chosen
    _claim(source, limits, nv, nf, room, per_vertex=12, per_face=16)
    pos = off + 12
    vertices = np.frombuffer(data, dtype=f"{order}f4", count=nv * 3, offset=pos).reshape(-1, 3).astype(np.float64)
    pos += nv * 12
    ints = np.frombuffer(data, dtype=f"{order}i4", count=(len(data) - pos) // 4, offset=pos)
    # every face has the same corner count k; records are k+2 ints (Geomview: trailing colour count 0)
    # or k+1 ints (pmp writes no colour count)
    if nf and len(ints) >= 1:
        k = int(ints[0])
        for width in (k + 2, k + 1):
            if 3 <= k <= 64 and len(ints) >= nf * width:
                rec = ints[: nf * width].reshape(nf, width)
                if (rec[:, 0] == k).all() and (width == k + 1 or (rec[:, -1] == 0).all()):
                    return vertices, _faces(source, vertices, [rec[:, 1:1 + k].astype(np.int64)]), findings
    raise InputError(where(source), "binary OFF with mixed polygon sizes or per-face colours is not supported",
                     code="input.unsupported")


def _faces(source: SourceFile, vertices: np.ndarray, groups: list[np.ndarray]) -> np.ndarray:
    nv = len(vertices)
    for g in groups:
        if len(g) and (g.min() < 0 or g.max() >= nv):
            bad = int(g.max()) if g.max() >= nv else int(g.min())
            raise InputError(where(source), f"OFF face refers to vertex {bad}, but the file has {nv} vertices (0-based)",
                             code="input.bad_index")
    return triangulate(vertices, groups)

