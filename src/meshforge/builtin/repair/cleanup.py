"""Print repair, part 1: clean, weld, winding, small holes (thin adapters over meshforge.ops)."""

from __future__ import annotations

from dataclasses import dataclass

from meshforge.asset import AssetView
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.ops import holes, repair
from meshforge.params import field
from meshforge.types import NoParams, RepairResult, RepairStep


def _result(new, old, note: str, details: dict) -> RepairResult:
    if new is old:
        return RepairResult(note=f"unchanged: {note}", details=details)
    return RepairResult(scene=new, note=note, details=details)


def apply_clean(view: AssetView, params: NoParams, ctx: StepContext) -> RepairResult:
    new, stats = repair.clean(view.mesh)
    note = (f"removed {stats['faces_removed']} faces ({stats['non_finite_faces']} non-finite, "
            f"{stats['degenerate_faces']} degenerate, {stats['duplicate_faces']} duplicate, "
            f"{stats['zero_area_faces']} zero-area) and {stats['unreferenced_vertices']} unreferenced vertices")
    return _result(new, view.mesh, note, stats)


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
