"""Format readers (adapters over trimesh). Each raises InputError naming the file and the problem."""

from __future__ import annotations

import io

from meshforge.errors import InputError
from meshforge.types import Loaded, Reader, ReadLimits, SourceFile, Units

_UNITS = {"stl": Units(None, "+Z"), "obj": Units(None, "+Y"), "ply": Units(None, "+Z"), "off": Units(None, "+Z"),
          "glb": Units("m", "+Y"), "gltf": Units("m", "+Y"), "3mf": Units("mm", "+Z")}


def _read_with_trimesh(fmt: str):
    def read(source: SourceFile, limits: ReadLimits) -> Loaded:
        import trimesh

        file_type = {"glb": "glb", "gltf": "gltf"}.get(fmt, fmt)
        scene = trimesh.load_scene(io.BytesIO(source.data), file_type=file_type)
        if not scene.geometry:
            raise InputError(source.path or source.name, f"{fmt} file holds no triangles", code="input.empty")
        return Loaded(scene=scene, format=fmt, units=_UNITS[fmt])

    return read


def all_readers() -> list[Reader]:
    return [Reader(format=fmt, suffixes=(f".{fmt}",), read=_read_with_trimesh(fmt)) for fmt in _UNITS]
