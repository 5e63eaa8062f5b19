"""PyMeshLab-backed validate steps (GPL-3.0: this distribution only; the core never imports pymeshlab).

``meshlab.self_intersections`` selects self-intersecting faces with MeshLab's per-face test and
emits the core's ``print.self_intersections`` code, so a profile can name either step. MeshLab
needs an indexed mesh: the faces are welded first (exact positions plus the same tiny relative
tolerance as the core print checks), otherwise every pair of STL neighbours would "intersect".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

import meshforge
from meshforge.params import field
from meshforge.types import ValidateStep


@dataclass(frozen=True, kw_only=True)
class SelfIntersectionsParams:
    severity: Literal["error", "warning", "info"] = field(
        "warning", "severity of a self-intersection (P6: warn for FDM, fail for powder services)"
    )
    weld_tolerance: float = field(1e-6, "weld vertices closer than this fraction of the bounding-box diagonal first")


def self_intersecting_faces(vertices: np.ndarray, faces: np.ndarray, weld_tolerance: float = 1e-6) -> np.ndarray:
    """Indices of ``faces`` that MeshLab selects as self-intersecting (faces with bad vertices skipped)."""
    import pymeshlab

    from meshforge.ops.topology import weld

    v = np.asarray(vertices, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    finite = np.isfinite(v).all(axis=1)
    diag = float(np.linalg.norm(np.ptp(v[finite], axis=0))) if finite.any() else 0.0
    ids, count = weld(v, weld_tolerance * diag)
    wf = ids[f]
    keep = np.flatnonzero((wf >= 0).all(axis=1) & (wf[:, 0] != wf[:, 1]) & (wf[:, 1] != wf[:, 2]) & (wf[:, 2] != wf[:, 0]))
    if len(keep) < 2:
        return np.zeros(0, dtype=np.int64)
    welded = np.zeros((count, 3))
    welded[ids[finite]] = v[finite]
    ms = pymeshlab.MeshSet()
    ms.add_mesh(pymeshlab.Mesh(vertex_matrix=welded, face_matrix=wf[keep].astype(np.int32)))
    ms.compute_selection_by_self_intersections_per_face()
    return keep[np.flatnonzero(ms.current_mesh().face_selection_array())]


def check_self_intersections(view, params: SelfIntersectionsParams, ctx):
    mesh = view.mesh
    if len(mesh.faces) == 0:
        return
    faces = view.derived.get(
        f"meshlab.self_intersections:{params.weld_tolerance!r}",
        lambda: self_intersecting_faces(mesh.vertices, mesh.faces, params.weld_tolerance),
    )
    if len(faces):
        yield ctx.finding(
            "print.self_intersections",
            params.severity,
            f"{len(faces)} faces intersect other faces (MeshLab per-face test)",
            measured=len(faces),
            threshold=0,
            count=len(faces),
            samples=faces[:10],
        )


@meshforge.hookimpl
def meshforge_validate_steps() -> list[ValidateStep]:
    return [
        ValidateStep(name="meshlab.self_intersections", summary="self-intersecting faces (PyMeshLab, GPL)",
                     params=SelfIntersectionsParams, requires=("pymeshlab",), codes=("print.self_intersections",),
                     check=check_self_intersections),
    ]
