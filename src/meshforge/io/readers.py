"""Format readers. Each raises InputError naming the file and the problem, never anything else on purpose.

STL, OBJ, PLY, OFF and 3MF live in their own modules (counts checked against the profile's limits
before allocating; referenced files read only from the model's folder). GLB/glTF belong to
:mod:`meshforge.io.gltf`; until that module exists they fall back to trimesh, with external files
served from the model's folder only.
"""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable

from meshforge.errors import InputError
from meshforge.io.guard import FolderResolver, empty, where
from meshforge.types import Loaded, Reader, ReadLimits, SourceFile, Units

ReadFn = Callable[[SourceFile, ReadLimits], Loaded]


def _lazy(module: str, attr: str) -> ReadFn:
    """Import the parser module on first use (startup stays fast)."""

    def read(source: SourceFile, limits: ReadLimits) -> Loaded:
        fn = getattr(importlib.import_module(module), attr)
        return fn(source, limits)

    read.__name__ = attr
    return read


def _gltf(kind: str) -> ReadFn:
    def read(source: SourceFile, limits: ReadLimits) -> Loaded:
        try:
            gltf = importlib.import_module("meshforge.io.gltf")
        except ModuleNotFoundError as exc:
            if exc.name != "meshforge.io.gltf":
                raise
            return _gltf_with_trimesh(kind, source, limits)
        return getattr(gltf, f"read_{kind}")(source, limits)

    read.__name__ = f"read_{kind}"
    return read


def _gltf_with_trimesh(kind: str, source: SourceFile, limits: ReadLimits) -> Loaded:
    import trimesh

    resolver = FolderResolver(source.folder, limits)
    try:
        scene = trimesh.load_scene(io.BytesIO(source.data), file_type=kind, resolver=resolver)
    except MemoryError:
        raise
    except Exception as exc:
        raise InputError(where(source), f"corrupt {kind} file ({type(exc).__name__}: {exc})", code="input.corrupt") from None
    if not any(len(getattr(g, "faces", ())) for g in scene.geometry.values()):
        raise empty(source, kind)
    return Loaded(scene=scene, format=kind, units=Units("m", "+Y"), findings=tuple(resolver.findings("file")))


READERS: tuple[tuple[str, tuple[str, ...], ReadFn], ...] = (
    ("stl", (".stl",), _lazy("meshforge.io.stl", "read_stl")),
    ("obj", (".obj",), _lazy("meshforge.io.obj", "read_obj")),
    ("ply", (".ply",), _lazy("meshforge.io.ply", "read_ply")),
    ("off", (".off",), _lazy("meshforge.io.off", "read_off")),
    ("3mf", (".3mf",), _lazy("meshforge.io.threemf", "read_3mf")),
    ("glb", (".glb",), _gltf("glb")),
    ("gltf", (".gltf",), _gltf("gltf")),
)


def all_readers() -> list[Reader]:
    return [Reader(format=fmt, suffixes=suffixes, read=read) for fmt, suffixes, read in READERS]


def read(source: SourceFile, limits: ReadLimits | None = None, fmt: str | None = None) -> Loaded:
    """Sniff and read one source in-process (tests, fuzzing, embedding) with the built-in readers."""
    from meshforge.io import sniff

    limits = limits or ReadLimits()
    if len(source.data) > limits.max_file_bytes:
        raise InputError(where(source), "over the profile's file size limit (limits.max_file_bytes)", code="input.too_large")
    if not source.data:
        raise InputError(where(source), "file is empty", code="input.empty")
    fmt = fmt or sniff.detect(source.data[: sniff.HEAD_BYTES], source.name)
    table = {f: r for f, _, r in READERS}
    if fmt not in table:
        raise InputError(where(source), f"not a 3D model format meshforge reads ({fmt or 'unknown'})",
                         code="input.unknown_format")
    try:
        return table[fmt](source, limits)
    except InputError:
        raise
    except MemoryError:
        raise InputError(where(source), f"{fmt} file needs more memory than is available", code="input.too_large") from None
