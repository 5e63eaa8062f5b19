"""The data that flows through the chain.

``Inputs`` is what the user gave (frozen; preprocess steps return a new one). ``AssetView`` is the
read-only window a validate, repair or export step gets: the current scene, its units, the
source bytes, the findings so far, and ``Derived`` — a per-geometry cache so that two checks
needing the same welded mesh or BVH compute it once. A repair that returns a new scene gets a new
``Derived``; nothing else invalidates it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from meshforge.types import Finding, SourceFile, Units

if TYPE_CHECKING:
    import trimesh

    from meshforge.ops.topology import FaceGeometry

T = TypeVar("T")


def _frozen_mapping(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True, kw_only=True)
class Inputs:
    """What the user gave for one job: a model, images, a prompt, free metadata."""

    id: str
    model: Path | bytes | None = None  # a str is taken as a path
    filename: str | None = None  # display name / sniffing hint for bytes
    scene: Any = None  # an in-memory trimesh.Scene or Trimesh handed over by an embedding program
    images: tuple[Path, ...] = ()
    prompt: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # Preprocess steps put their products here (normalized image paths, a filled prompt, a fingerprint)
    prepared: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metadata", _frozen_mapping(self.metadata))
        object.__setattr__(self, "prepared", _frozen_mapping(self.prepared))
        object.__setattr__(self, "images", tuple(Path(p) for p in self.images))
        if isinstance(self.model, str):  # a path given as text, like images: never the bytes of a model
            object.__setattr__(self, "model", Path(self.model))

    @property
    def display_name(self) -> str:
        if isinstance(self.model, Path):
            return str(self.model)
        return self.filename or self.id


class Derived:
    """Values computed from one geometry version, at most once each (thread-safe)."""

    def __init__(self, scene: trimesh.Scene) -> None:
        self._scene = scene
        self._values: dict[str, Any] = {}
        self._lock = threading.RLock()

    def get(self, key: str, compute: Callable[[], T]) -> T:
        """Return the cached value for ``key``, computing it with ``compute()`` the first time.

        Keys are namespaced by the computing module (``"print.welded"``) so plugins don't collide.
        """
        try:
            return self._values[key]
        except KeyError:
            pass
        with self._lock:
            if key not in self._values:
                self._values[key] = compute()
            return self._values[key]

    @property
    def mesh(self) -> trimesh.Trimesh:
        """All geometry of the scene as one mesh in world coordinates (instances expanded)."""
        return self.get("core.mesh", lambda: scene_to_mesh(self._scene))

    @property
    def face_geometry(self) -> FaceGeometry:
        """Cross products, areas and tetra volumes of every face of :attr:`mesh`: the engine's
        volume figure and the hygiene, topology, thickness and overhang checks share one pass."""
        from meshforge.ops.topology import face_geometry

        return self.get("geometry.face_geometry", lambda: face_geometry(self.mesh.vertices, self.mesh.faces))


def scene_to_mesh(scene: Any) -> trimesh.Trimesh:
    import numpy as np
    import trimesh

    if isinstance(scene, trimesh.Trimesh):
        return scene
    nodes = scene.graph.nodes_geometry
    if len(nodes) == 1:
        # One geometry drawn once in place (an STL, most generated GLBs): dump() would copy every
        # array only to apply an identity matrix. Steps never edit view.mesh in place.
        matrix, name = scene.graph[nodes[0]]
        geometry = scene.geometry.get(name)
        if isinstance(geometry, trimesh.Trimesh) and np.array_equal(matrix, np.eye(4)):
            return geometry
    meshes = [g for g in scene.dump(concatenate=False) if isinstance(g, trimesh.Trimesh)]
    if not meshes:
        return trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=np.int64), process=False)
    if len(meshes) == 1:
        return meshes[0]
    return trimesh.util.concatenate(meshes)


@dataclass(frozen=True, kw_only=True)
class AssetView:
    """The read-only window a step gets. Built by the engine per call: references, not copies."""

    id: str
    inputs: Inputs
    scene: trimesh.Scene
    units: Units
    source_format: str
    source: SourceFile | None
    document: Any  # format-level document from the reader (the glTF JSON for GLB/glTF), or None
    findings: tuple[Finding, ...]
    derived: Derived
    out_name: str  # base file name for exports ("chair" for chair.glb)

    @property
    def mesh(self) -> trimesh.Trimesh:
        return self.derived.mesh

    def has(self, *codes: str) -> bool:
        """True when a finding with one of ``codes`` is present."""
        return any(f.code in codes for f in self.findings)
