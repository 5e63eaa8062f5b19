"""Triangle budgets: ``mesh.decimate`` (print ceiling) and ``commerce.decimate`` (storefront target).

Thin adapters over :mod:`meshforge.ops.decimate`. Both keep the shape and report the symmetric
Hausdorff distance to the input as a fraction of the bounding-box diagonal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from meshforge.asset import AssetView
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.ops import decimate as dec
from meshforge.ops import scene_ops
from meshforge.params import field
from meshforge.types import RepairResult, RepairStep


@dataclass(frozen=True, kw_only=True)
class PrintDecimateParams:
    max_triangles: int = field(1_000_000, "triangle ceiling of the print service (Shapeways 1,000,000)")
    backend: Literal["auto", "meshoptimizer", "fast_simplification"] = field(
        "auto", "simplifier: meshoptimizer when installed (measured best), else fast_simplification")


@dataclass(frozen=True, kw_only=True)
class CommerceDecimateParams:
    target_triangles: int = field(100_000, "triangles after instancing (Khronos, Apple Quick Look: 100k)")
    uv_weight: float = field(1.0, "weight of UV error against position error (keeps texture mapping)")
    normal_weight: float = field(0.5, "weight of normal error against position error (keeps shading)")
    lock_material_borders: bool = field(True, "vertices shared by two primitives never move (no cracks between materials)")
    measure_error: bool = field(True, "report the Hausdorff distance to the input (costs a BVH query)")
    backend: Literal["auto", "meshoptimizer", "fast_simplification"] = field(
        "auto", "simplifier: meshoptimizer when installed (measured best), else fast_simplification")


def _error_details(before_v: np.ndarray, before_f: np.ndarray, after_v: np.ndarray, after_f: np.ndarray) -> dict[str, float]:
    if len(before_f) == 0 or len(after_f) == 0:
        return {}
    diag = float(np.linalg.norm(np.ptp(before_v, axis=0)))
    hmax, hmean = dec.hausdorff(before_v, before_f, after_v, after_f)
    return {
        "hausdorff": hmax,
        "hausdorff_fraction": hmax / diag if diag > 0 else 0.0,
        "mean_distance_fraction": hmean / diag if diag > 0 else 0.0,
    }


def decimate_print(view: AssetView, params: PrintDecimateParams, ctx: StepContext) -> RepairResult:
    mesh = view.mesh
    before = len(mesh.faces)
    if before <= params.max_triangles:
        return RepairResult.unchanged(f"{before} triangles, at or under {params.max_triangles}")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    out = dec.simplify(vertices, faces, params.max_triangles, backend=params.backend)
    import trimesh

    new = trimesh.Trimesh(out.vertices, out.faces, process=False)
    details = {"triangles_before": before, "triangles_after": len(out.faces), "backend": out.backend,
               **_error_details(vertices, faces, out.vertices, out.faces)}
    note = f"{before} -> {len(out.faces)} triangles ({out.backend})"
    if "hausdorff_fraction" in details:
        note += f", Hausdorff {details['hausdorff_fraction']:.2e} of the bbox diagonal"
    return RepairResult(scene=new, note=note, details=details)


def decimate_commerce(view: AssetView, params: CommerceDecimateParams, ctx: StepContext) -> RepairResult:
    scene = view.scene
    meshes = scene_ops.triangle_meshes(scene)
    counts = scene_ops.instance_counts(scene)
    total = sum(len(m.faces) * max(counts.get(n, 1), 1) for n, m in meshes.items())
    if total <= params.target_triangles:
        return RepairResult.unchanged(f"{total} triangles after instancing, at or under {params.target_triangles}")
    names = list(meshes)
    locks = (scene_ops_locks(meshes, names) if params.lock_material_borders
             else {n: None for n in names})
    weights = {"uv": params.uv_weight, "normal": params.normal_weight}
    inst = {n: max(counts.get(n, 1), 1) for n in names}
    replaced: dict[str, object] = {}
    stuck: dict[str, int] = {}  # primitives that stopped above their share (tiny parts): their final count
    for _ in range(3):
        # One budget for the scene, shared in proportion to what each primitive costs (slack for rounding).
        fixed = sum(stuck[n] * inst[n] for n in stuck)
        rest = [n for n in names if n not in stuck]
        rest_total = sum(len(meshes[n].faces) * inst[n] for n in rest)
        if not rest or rest_total == 0:
            break
        ratio = max(params.target_triangles * 0.995 - fixed, 0) / rest_total
        grew = False
        for name in rest:
            mesh = meshes[name]
            target = max(int(len(mesh.faces) * ratio), 1)
            if target >= len(mesh.faces):
                replaced.pop(name, None)
                continue
            out = dec.simplify(mesh.vertices, mesh.faces, target, attributes=scene_ops.vertex_attributes(mesh),
                               weights=weights, locked=locks[name], backend=params.backend)
            if len(out.faces) == 0 or len(out.faces) >= len(mesh.faces):
                stuck[name] = len(mesh.faces)
                replaced.pop(name, None)
                grew = True
                continue
            replaced[name] = scene_ops.rebuild(mesh, out.vertices, out.faces, out.attributes)
            if not out.reached:
                stuck[name] = len(out.faces)
                grew = True
        if not grew:
            break
    new_scene = scene_ops.with_geometry(scene, replaced)
    after = sum(len(g.faces) * max(counts.get(n, 1), 1) for n, g in scene_ops.triangle_meshes(new_scene).items())
    details: dict[str, object] = {"triangles_before": total, "triangles_after": after, "primitives": len(replaced),
                                  "budget_met": after <= params.target_triangles, "stopped_above_share": len(stuck),
                                  "backend": "meshoptimizer" if params.backend == "auto" and dec.have_meshoptimizer() else params.backend}
    if params.measure_error:
        from meshforge.asset import scene_to_mesh

        a, b = view.mesh, scene_to_mesh(new_scene)
        details.update(_error_details(np.asarray(a.vertices), np.asarray(a.faces), np.asarray(b.vertices), np.asarray(b.faces)))
    note = f"{total} -> {after} triangles over {len(replaced)} primitive(s), UVs and material borders kept"
    return RepairResult(scene=new_scene, note=note, details=details)


def scene_ops_locks(meshes: dict, names: list[str]) -> dict[str, np.ndarray | None]:
    masks = dec.shared_position_mask([np.asarray(meshes[n].vertices) for n in names])
    return {n: (m if m.any() else None) for n, m in zip(names, masks, strict=True)}


@hookimpl
def meshforge_repair_steps() -> list[RepairStep]:
    return [
        RepairStep(
            name="mesh.decimate",
            summary="reduce triangles under the print service's ceiling, keeping the shape (reports Hausdorff/bbox)",
            params=PrintDecimateParams,
            fixes=("print.too_many_triangles",),
            apply=decimate_print,
        ),
        RepairStep(
            name="commerce.decimate",
            summary="reduce to the storefront triangle target per primitive, keeping UV seams, normals and material borders",
            params=CommerceDecimateParams,
            fixes=("commerce.too_many_triangles",),
            apply=decimate_commerce,
        ),
    ]
