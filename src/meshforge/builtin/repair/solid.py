"""Print repair, part 2: one solid (manifold3d union of shells) and debris removal."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from meshforge.asset import AssetView
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.ops import repair
from meshforge.params import field
from meshforge.types import RepairResult, RepairStep


@dataclass(frozen=True, kw_only=True)
class SolidifyParams:
    max_drift_fraction: float = field(0.01, "refuse a result farther than this fraction of the bbox diagonal from the input")
    drop_fraction: float = field(0.001, "open patches manifold3d refuses are dropped only below this fraction of the surface area")


def drift_of(before, after) -> float:
    """How far the result strays from the input, as a fraction of the input's bbox diagonal:
    the farthest output point from the input surface (a union removes inner walls, which is no
    drift), or the largest move of a bounding-box corner (catches lost shells)."""
    from meshforge.ops.solid import distances_to, surface_points

    diag = repair.diagonal(before)
    if diag <= 0:
        return 0.0
    outward = float(distances_to(before, surface_points(after, 20000)).max())
    corners = float(np.abs(np.asarray(after.bounds) - np.asarray(before.bounds)).max())
    return max(outward, corners) / diag


def apply_solidify(view: AssetView, params: SolidifyParams, ctx: StepContext) -> RepairResult:
    from meshforge.ops.solid import solidify

    mesh = view.mesh
    new, stats = solidify(mesh, drop_fraction=params.drop_fraction)
    if new is None:
        return RepairResult(note=f"unchanged: {stats['reason']}", details={**stats, "path": "none"})
    stats["drift_fraction"] = drift_of(mesh, new)
    if stats["drift_fraction"] > params.max_drift_fraction:
        return RepairResult(note=f"unchanged: the manifold3d result drifts {stats['drift_fraction']:.2%} of the bbox "
                                 f"diagonal (limit {params.max_drift_fraction:.2%})", details={**stats, "path": "refused"})
    return RepairResult(scene=new, details=stats,
                        note=f"unioned {stats['solids_unioned']} closed patch(es) into one solid with manifold3d "
                             f"(drift {stats['drift_fraction']:.3%} of bbox diagonal)")


@dataclass(frozen=True, kw_only=True)
class DebrisParams:
    max_fraction: float = field(0.001, "shells under this fraction of the largest shell's volume (area if open) are debris (P7)")


def apply_remove_debris(view: AssetView, params: DebrisParams, ctx: StepContext) -> RepairResult:
    new, stats = repair.remove_debris(view.mesh, max_fraction=params.max_fraction)
    if new is view.mesh:
        return RepairResult(note=f"unchanged: no shell under {params.max_fraction:g} of the largest", details=stats)
    return RepairResult(scene=new, details=stats,
                        note=f"removed {stats['shells_removed']} debris shell(s), {stats['faces_removed']} faces")


@hookimpl
def meshforge_repair_steps() -> list[RepairStep]:
    return [
        RepairStep(name="mesh.solidify", summary="union overlapping / non-manifold shells into one solid (manifold3d)",
                   params=SolidifyParams, requires=("manifold3d",),
                   fixes=("print.non_manifold_edges", "print.non_manifold_vertices", "print.self_intersections"),
                   apply=apply_solidify),
        RepairStep(name="mesh.remove_debris", summary="drop tiny floating shells", params=DebrisParams,
                   fixes=("print.debris_shells",), apply=apply_remove_debris),
    ]
