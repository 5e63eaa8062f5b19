"""PyMeshLab-backed repair steps (GPL-3.0: this distribution only; the core never imports pymeshlab).

``meshlab.fill_holes`` closes holes with MeshLab's ear-cutting hole filler (which avoids creating
self-intersections), refines the patch to the surrounding edge length and fairs it with Laplacian
smoothing restricted to the new faces, so the cap is a smooth membrane of edge-sized triangles (no slivers) instead of a fan.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import meshforge
from meshforge.params import field
from meshforge.types import RepairResult, RepairStep


@dataclass(frozen=True, kw_only=True)
class FillHolesParams:
    max_hole_edges: int = field(64, "fill holes bounded by at most this many edges (P13: small holes only)")
    max_hole_fraction: float = field(0.25, "holes MeshLab leaves open go to mesh.fill_holes' rule with this limit")
    planar_tolerance: float = field(0.01, "holes MeshLab leaves open: planar ones are fan-capped at any size (mesh.fill_holes)")
    refine: bool = field(True, "refine the cap to the surrounding edge length")
    fair_iterations: int = field(3, "Laplacian smoothing steps on the new faces only (0: no fairing)")


def fill_holes(vertices: np.ndarray, faces: np.ndarray, params: FillHolesParams) -> tuple[np.ndarray, np.ndarray, dict]:
    import pymeshlab

    ms = pymeshlab.MeshSet()
    ms.add_mesh(pymeshlab.Mesh(vertex_matrix=np.asarray(vertices, dtype=np.float64),
                               face_matrix=np.asarray(faces, dtype=np.int32)))
    before = ms.current_mesh().face_number()
    ms.meshing_close_holes(maxholesize=int(params.max_hole_edges), newfaceselected=True, selfintersection=True,
                           refinehole=bool(params.refine))
    added = ms.current_mesh().face_number() - before
    if added > 0 and params.fair_iterations > 0:
        ms.apply_coord_laplacian_smoothing(stepsmoothnum=int(params.fair_iterations), selected=True)
    mesh = ms.current_mesh()
    return mesh.vertex_matrix().copy(), mesh.face_matrix().astype(np.int64), {"faces_added": int(added)}


def apply_fill_holes(view, params: FillHolesParams, ctx) -> RepairResult:
    from meshforge.ops.repair import boundary_edges, make

    mesh = view.mesh
    open_before = len(boundary_edges(np.asarray(mesh.faces)))
    if open_before == 0:
        return RepairResult(note="unchanged: no open edges", details={"open_edges_before": 0})
    from meshforge.ops import holes

    vertices, faces, stats = fill_holes(mesh.vertices, mesh.faces, params)
    # what MeshLab leaves open (over max_hole_edges, e.g. a hemisphere's 120-edge planar rim) gets the
    # core's rule: planar star-shaped loops are capped exactly by a fan at any size
    rest, core = holes.fill_holes(make(vertices, faces), max_hole_edges=params.max_hole_edges,
                                  max_hole_fraction=params.max_hole_fraction, planar_tolerance=params.planar_tolerance)
    stats["core_faces_added"] = core["faces_added"]
    stats["faces_added"] += core["faces_added"]
    vertices, faces = np.asarray(rest.vertices), np.asarray(rest.faces, dtype=np.int64)
    stats["open_edges_before"] = open_before
    stats["open_edges_after"] = len(boundary_edges(faces))
    if stats["faces_added"] <= 0:
        return RepairResult(note=f"unchanged: no hole within {params.max_hole_edges} edges", details=stats)
    return RepairResult(scene=make(vertices, faces), details=stats,
                        note=f"PyMeshLab closed holes with {stats['faces_added']} refined, faired faces; open edges "
                             f"{open_before} -> {stats['open_edges_after']}")


@meshforge.hookimpl
def meshforge_repair_steps() -> list:
    return [
        RepairStep(name="meshlab.fill_holes", summary="close holes with MeshLab (ear cutting, refine, fairing)",
                   params=FillHolesParams, requires=("pymeshlab",), fixes=("print.not_watertight",),
                   apply=apply_fill_holes),
    ]
