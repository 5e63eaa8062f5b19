"""PLY: the header is parsed and its counts checked here, then trimesh's vectorized loader reads the body.

The header names every element with its count and property types, so the smallest body a file can
have is known before reading it: a claim the bytes cannot hold, or one over the profile's limits,
is refused before trimesh allocates anything.
"""

from __future__ import annotations

import io

from meshforge.errors import InputError
from meshforge.io.guard import check_counts, empty, where
from meshforge.types import Loaded, ReadLimits, SourceFile, Units

_SIZES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
          "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}
_FLOATS = frozenset({"float", "float32", "double", "float64"})
_FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")
MAX_HEADER = 64 * 1024


def parse_header(source: SourceFile) -> tuple[str, list[tuple[str, int, int]], int]:
    """(format, [(element, count, min_bytes_per_item)], body_offset); InputError for a bad header."""
    data = source.data
    end = data.find(b"end_header", 0, MAX_HEADER)
    if not data.startswith(b"ply") or end < 0:
        raise InputError(where(source), "PLY header is missing 'ply' or 'end_header'", code="input.corrupt")
    nl = data.find(b"\n", end)
    body = len(data) if nl < 0 else nl + 1
    try:
        text = data[:end].decode("ascii")
    except UnicodeDecodeError:
        raise InputError(where(source), "PLY header is not ASCII text (garbage header)", code="input.corrupt") from None
    fmt = None
    elements: list[list] = []
    for raw in text.splitlines()[1:]:
        parts = raw.split()
        if not parts or parts[0] in ("comment", "obj_info"):
            continue
        try:
            if parts[0] == "format":
                fmt = parts[1]
                if fmt not in _FORMATS:
                    raise ValueError(f"unknown format {fmt!r}")
            elif parts[0] == "element":
                count = int(parts[2])
                if count < 0:
                    raise ValueError("negative element count")
                elements.append([parts[1], count, 0])
            elif parts[0] == "property":
                if not elements:
                    raise ValueError("property before any element")
                if parts[1] == "list":
                    if parts[2] not in _SIZES or parts[3] not in _SIZES:
                        raise ValueError(f"unknown list type in {raw!r}")
                    if parts[4] in ("vertex_indices", "vertex_index") and parts[3] in _FLOATS:
                        # trimesh would truncate 2.7 to vertex 2: a different mesh, read without a word
                        raise ValueError(f"face vertex indices are {parts[3]}, not integers ({raw.strip()!r})")
                    elements[-1][2] += _SIZES[parts[2]]
                else:
                    if parts[1] not in _SIZES:
                        raise ValueError(f"unknown property type {parts[1]!r}")
                    elements[-1][2] += _SIZES[parts[1]]
            else:
                raise ValueError(f"unknown header line {raw[:40]!r}")
        except (IndexError, ValueError) as exc:
            raise InputError(where(source), f"PLY header is malformed ({exc})", code="input.corrupt") from None
    if fmt is None:
        raise InputError(where(source), "PLY header has no 'format' line", code="input.corrupt")
    return fmt, [(e[0], e[1], e[2]) for e in elements], body


def read_ply(source: SourceFile, limits: ReadLimits) -> Loaded:
    import trimesh

    fmt, elements, body = parse_header(source)
    counts = {name: count for name, count, _ in elements}
    nv, nf = counts.get("vertex", 0), counts.get("face", 0)
    room = len(source.data) - body
    # ASCII needs >= 2 bytes per value ("0 "); binary needs the property sizes exactly
    need = sum(count * (size if fmt != "ascii" else 2) for _, count, size in elements)
    if need > room:
        raise InputError(where(source), f"PLY header declares {nv:,} vertices and {nf:,} faces, which need at least "
                         f"{need:,} bytes, but only {room:,} follow the header", code="input.truncated")
    check_counts(source, limits, triangles=nf, vertices=nv, fmt="PLY")
    if nf == 0:
        raise empty(source, "PLY", f"{nv:,} vertices and no faces: a point cloud" if nv else "the header declares no faces")
    try:
        scene = trimesh.load_scene(io.BytesIO(source.data), file_type="ply", process=False)
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(where(source), f"corrupt PLY body ({type(exc).__name__}: {exc})", code="input.corrupt") from None
    meshes = [g for g in scene.geometry.values() if isinstance(g, trimesh.Trimesh) and len(g.faces)]
    if not meshes:
        raise empty(source, "PLY")
    for mesh in meshes:
        f = mesh.faces
        bad = f[(f < 0) | (f >= len(mesh.vertices))] if len(f) else f
        if len(bad):  # name the index that is wrong (a negative one was reported as the largest)
            raise InputError(where(source), f"PLY face refers to vertex {int(bad[0])}, but the file has "
                             f"{len(mesh.vertices)} vertices (0..{len(mesh.vertices) - 1})", code="input.bad_index")
    return Loaded(scene=scene, format="ply", units=Units(None, "+Z"))
