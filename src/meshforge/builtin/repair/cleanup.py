"""Print repair, part 1: clean, weld, winding, small holes (thin adapters over meshforge.ops)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from meshforge.asset import AssetView
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.ops import holes, repair, scene_ops
from meshforge.params import field
from meshforge.types import NoParams, RepairResult, RepairStep


def _result(new, old, note: str, details: dict) -> RepairResult:
    if new is old:
        return RepairResult(note=f"unchanged: {note}", details=details)
    return RepairResult(scene=new, note=note, details=details)


def _one_plain_mesh(scene: Any) -> bool:
    """True for what ``trimesh.Scene(mesh)`` builds: one geometry drawn once, in place, by a node of
    its own name, no scene metadata. Wrapping the cleaned mesh again gives the same scene back."""
    nodes = scene.graph.nodes_geometry
    if len(scene.geometry) != 1 or len(nodes) != 1 or len(scene.graph.nodes) != 2 or scene.metadata:
        return False
    matrix, name = scene.graph[nodes[0]]
    return nodes[0] == name and np.array_equal(matrix, np.eye(4))


def apply_clean(view: AssetView, params: NoParams, ctx: StepContext) -> RepairResult:
    # Each geometry of the scene is cleaned on its own and put back under its nodes: cleaning the
    # world-space concatenation (view.mesh) would drop the graph, the instancing and every
    # primitive's material and UVs. A geometry drawn N times is cleaned once (stats count it once).
    totals: dict[str, int] = {}

    def fix(name: str, mesh: Any) -> Any | None:
        vertex_index, faces, face_index, stats = repair.clean_plan(mesh.vertices, mesh.faces,
                                                                   split=scene_ops.vertex_keys(mesh))
        for key, value in stats.items():
            totals[key] = totals.get(key, 0) + value
        if stats["faces_removed"] == 0 and len(vertex_index) == len(mesh.vertices):
            return None
        return scene_ops.subset(mesh, vertex_index, faces, face_index)

    scene, names = scene_ops.map_geometry(view.scene, fix)
    totals["geometries_changed"] = len(names)
    note = (f"removed {totals.get('faces_removed', 0)} faces ({totals.get('non_finite_faces', 0)} non-finite, "
            f"{totals.get('degenerate_faces', 0)} degenerate, {totals.get('duplicate_faces', 0)} duplicate, "
            f"{totals.get('zero_area_faces', 0)} zero-area) and {totals.get('unreferenced_vertices', 0)} unreferenced "
            f"vertices in {len(names)} of {len(scene_ops.triangle_meshes(view.scene))} geometries")
    if scene is None:
        return RepairResult(note=f"unchanged: {note}", details=totals)
    if _one_plain_mesh(view.scene):
        # nothing but the name to keep (the engine wraps a mesh in trimesh.Scene, which names the
        # node and geometry after it): callers handing in one mesh get one mesh back
        (mesh,) = scene.geometry.values()
        mesh.metadata["name"] = names[0]
        return RepairResult(scene=mesh, note=note, details=totals)
    return RepairResult(scene=scene, note=note, details=totals)


@dataclass(frozen=True, kw_only=True)
class WeldParams:
    passes: int = field(2, "nearby-weld passes; the tolerance grows each pass (P13: 2, as admesh)")
    growth: float = field(1e-4, "tolerance growth per pass, as a fraction of the bbox diagonal (P13: diameter/10,000)")
    max_tolerance_fraction: float = field(1e-3, "cap on the nearby tolerance, fraction of the bbox diagonal")


def apply_weld(view: AssetView, params: WeldParams, ctx: StepContext) -> RepairResult:
    new, stats = repair.weld(view.mesh, passes=params.passes, growth=params.growth,
                             max_tolerance_fraction=params.max_tolerance_fraction)
    note = (f"merged {stats['exact_merged']} coincident and {stats['nearby_merged']} nearby vertices "
            f"(tolerance {stats['tolerance']:.3g}); open edges {stats['open_edges_before']} -> {stats['open_edges_after']}")
    return _result(new, view.mesh, note, stats)


def apply_fix_winding(view: AssetView, params: NoParams, ctx: StepContext) -> RepairResult:
    new, stats = repair.fix_winding(view.mesh)
    note = (f"reversed {stats['faces_reversed']} faces for consistent winding; "
            f"flipped {stats['shells_inverted']} inside-out shell(s)")
    return _result(new, view.mesh, note, stats)


@dataclass(frozen=True, kw_only=True)
class FillHolesParams:
    max_hole_edges: int = field(64, "fill holes bounded by at most this many edges (P13: small holes only)")
    max_hole_fraction: float = field(0.25, "non-planar holes with a perimeter above this fraction of the bbox diagonal stay open")
    planar_tolerance: float = field(0.01, "a hole within this fraction of its perimeter from a plane is planar and capped at any size")


def apply_fill_holes(view: AssetView, params: FillHolesParams, ctx: StepContext) -> RepairResult:
    new, stats = holes.fill_holes(view.mesh, max_hole_edges=params.max_hole_edges,
                                  max_hole_fraction=params.max_hole_fraction, planar_tolerance=params.planar_tolerance)
    note = (f"filled {stats['holes_filled']} of {stats['holes_found']} holes with {stats['faces_added']} faces"
            + (f"; {stats['holes_left']} too large left open (largest {stats['largest_left_edges']} edges)"
               if stats["holes_left"] else ""))
    return _result(new, view.mesh, note, stats)


@hookimpl
def meshforge_repair_steps() -> list[RepairStep]:
    return [
        RepairStep(name="mesh.clean", summary="drop non-finite, degenerate and duplicate faces and unreferenced vertices",
                   fixes=("geometry.non_finite", "geometry.degenerate_faces", "geometry.duplicate_faces",
                          "geometry.unreferenced_vertices"),
                   apply=apply_clean),
        RepairStep(name="mesh.weld", summary="weld coincident, then nearby open-edge vertices (admesh-style tolerance)",
                   params=WeldParams, fixes=("print.not_watertight", "print.non_manifold_edges"), apply=apply_weld),
        RepairStep(name="mesh.fix_winding", summary="consistent winding per shell; flip inside-out shells",
                   fixes=("print.inconsistent_winding", "print.inverted"), apply=apply_fix_winding),
        RepairStep(name="mesh.fill_holes", summary="cap small (or planar) holes with a fan",
                   params=FillHolesParams, fixes=("print.not_watertight",), apply=apply_fill_holes),
    ]
