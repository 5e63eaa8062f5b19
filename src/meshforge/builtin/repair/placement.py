"""Print repair, part 3: millimetres and +Z up, target size, orientation, bed placement."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from meshforge.asset import AssetView
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.ops import orient, placement, units
from meshforge.params import field
from meshforge.types import NoParams, RepairResult, RepairStep, Units


def _transformed(view: AssetView, matrix: np.ndarray):
    mesh = view.mesh.copy()
    mesh.apply_transform(matrix)
    return mesh


def _to_mm(view: AssetView) -> float:
    """Factor from the scene's length unit to millimetres (mm assumed when the format has none)."""
    return units.scale_factor(view.units.length or "mm", "mm")


@dataclass(frozen=True, kw_only=True)
class ToMillimetresParams:
    min_size_mm: float = field(1.0, "a part whose largest extent is under this (in mm) was likely modelled in m/in/cm (P1)")
    max_size_mm: float = field(2000.0, "a part over this (in mm) is implausible; only scaled up units are guessed")


def apply_to_millimetres(view: AssetView, params: ToMillimetresParams, ctx: StepContext) -> RepairResult:
    mesh = view.mesh
    declared = view.units.length or "mm"
    extent = float(np.max(mesh.extents)) if len(mesh.vertices) else 0.0
    factor = units.scale_factor(declared, "mm")
    unit, why = declared, f"declared {declared}" if view.units.length else "no unit in the file; mm assumed"
    guess = units.likely_unit(extent, assumed=declared, plausible_mm=(params.min_size_mm, params.max_size_mm))
    if guess is not None and units.scale_factor(guess, "mm") >= 1.0:  # never guess micrometres: a huge part stays huge
        unit, factor, why = guess, units.scale_factor(guess, "mm"), f"largest extent {extent:.4g} {declared} is implausible; read as {guess}"
    rotate = placement.up_to_z(view.units.up)
    if factor == 1.0 and view.units.up.upper() == "+Z":
        return RepairResult(units=None if view.units.length == "mm" else Units("mm", "+Z"),
                            note=f"unchanged: already millimetres, +Z up ({why})", details={"factor": 1.0, "unit": unit})
    matrix = placement.scale(factor) @ rotate
    return RepairResult(scene=_transformed(view, matrix), units=Units("mm", "+Z"),
                        note=f"converted {unit} -> mm (x{factor:g}), {view.units.up} up -> +Z up; {why}",
                        details={"factor": factor, "unit": unit, "up_before": view.units.up,
                                 "max_extent_mm": extent * factor})


def apply_scale_to_target(view: AssetView, params: NoParams, ctx: StepContext) -> RepairResult:
    mesh = view.mesh
    if len(mesh.vertices) == 0:
        return RepairResult.unchanged("no geometry")
    to_mm = _to_mm(view)
    factor, why = placement.target_scale(np.asarray(mesh.extents) * to_mm, view.inputs.metadata)
    if factor is None:
        return RepairResult.unchanged(why)
    if abs(factor - 1.0) < 1e-9:
        return RepairResult.unchanged(f"already at the target size ({why})")
    new = _transformed(view, placement.scale(factor))
    return RepairResult(scene=new, note=f"scaled x{factor:.4g} to {why}",
                        details={"factor": factor, "extents_mm": (np.asarray(new.extents) * to_mm).tolist()})


@dataclass(frozen=True, kw_only=True)
class OrientParams:
    max_angle_deg: float = field(45.0, "faces overhanging more than this from vertical need support (P11)")
    contact_bonus: float = field(0.5, "cost credit per unit of flat bed-contact area (stability), relative to support area")
    min_improvement: float = field(0.1, "rotate only when the cost drops by this fraction of the current support area")
    candidates: int = field(128, "orientations sampled on a sphere, besides the axes and the largest flat faces")
    min_bed_contact_mm2: float = field(25.0, "a stable base: orientations resting on less flat area than this are "
                                             "rejected when any candidate rests on more (print.small_bed_contact)")


def apply_orient(view: AssetView, params: OrientParams, ctx: StepContext) -> RepairResult:
    mesh = view.mesh
    if len(mesh.faces) == 0:
        return RepairResult.unchanged("no geometry")
    area_unit = _to_mm(view) ** 2
    best = orient.best_orientation(mesh, max_angle_deg=params.max_angle_deg, contact_bonus=params.contact_bonus,
                                   min_improvement=params.min_improvement, sphere=params.candidates,
                                   min_contact=params.min_bed_contact_mm2 / area_unit)
    details = {k: (v * area_unit if k.endswith(("_before", "_after")) or k == "surface_area" else v)
               for k, v in best.items() if k != "matrix"}
    summary = (f"support area {details['support_area_before']:.1f} -> {details['support_area_after']:.1f} mm^2 "
               f"over {best['candidates']} orientations")
    if not best["rotated"]:
        return RepairResult(note=f"unchanged: current orientation is best or close ({summary})", details=details)
    return RepairResult(scene=_transformed(view, best["matrix"]), note=f"rotated up={np.round(best['up'], 3).tolist()}: {summary}",
                        details=details)


@dataclass(frozen=True, kw_only=True)
class PlaceOnBedParams:
    centre: Literal["bed", "origin"] = field("bed", "centre XY on the bed centre (3MF origin is bottom-front-left) or on 0,0")
    bed_mm: tuple[float, float] = field((220.0, 210.0), "bed size in mm (P8 default 220 x 210)")


def apply_place_on_bed(view: AssetView, params: PlaceOnBedParams, ctx: StepContext) -> RepairResult:
    mesh = view.mesh
    if len(mesh.vertices) == 0:
        return RepairResult.unchanged("no geometry")
    per_mm = 1.0 / _to_mm(view)
    centre = (0.0, 0.0) if params.centre == "origin" else (params.bed_mm[0] / 2 * per_mm, params.bed_mm[1] / 2 * per_mm)
    matrix = placement.on_bed(mesh.bounds, centre=centre)
    shift = matrix[:3, 3]
    if np.allclose(shift, 0.0, atol=1e-9 * max(1.0, float(np.max(np.abs(mesh.bounds))))):
        return RepairResult.unchanged("already on the bed and centred")
    return RepairResult(scene=_transformed(view, matrix), note=f"moved by {np.round(shift, 3).tolist()}: min z = 0, centred",
                        details={"translation": shift.tolist()})


@hookimpl
def meshforge_repair_steps() -> list[RepairStep]:
    return [
        RepairStep(name="print.to_millimetres", summary="convert metres/inches to millimetres and +Y up to +Z up",
                   params=ToMillimetresParams, fixes=("print.suspect_units",), apply=apply_to_millimetres),
        RepairStep(name="print.scale_to_target", summary="scale to the job's height_mm / max_size_mm / size_mm",
                   fixes=(), apply=apply_scale_to_target),
        RepairStep(name="print.orient", summary="rotate to minimise support area with a flat base (Tweaker-style search)",
                   params=OrientParams, fixes=(), apply=apply_orient),
        RepairStep(name="print.place_on_bed", summary="min z = 0, centred on the bed", params=PlaceOnBedParams,
                   fixes=(), apply=apply_place_on_bed),
    ]
