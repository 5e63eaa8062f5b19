"""Storefront repairs: metres and +Y up, normals, textures, deduplication, origin at bottom centre.

Each step copies what it changes (geometry, materials, images) and shares the rest; the scene it
was handed is never edited. Defaults: ../shared/REQUIREMENTS.md Part 4a (C6-C8, C16, C17).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from meshforge.asset import AssetView
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.ops import scene_ops
from meshforge.ops import textures as tex
from meshforge.ops import units as units_ops
from meshforge.params import field
from meshforge.types import NoParams, RepairResult, RepairStep, Units

GLTF_UNITS = Units("m", "+Y")


# --- commerce.to_metres ------------------------------------------------------------------------


def to_metres(view: AssetView, params: NoParams, ctx: StepContext) -> RepairResult:
    """Convert to metres and +Y up in the unit commerce.scale reported (the same decision, made from
    the same extents, stated unit and product dimensions); stamp metres on a unit-less asset even
    when the numbers stay, so no later step has a unit to assume."""
    units = view.units
    # no unit or window of its own: commerce.scale's window (ctx.params_of), so both take one decision
    decision = units_ops.decide_for(view, units_ops.window_of(ctx))
    if decision is None:
        return RepairResult.unchanged("no finite geometry to convert")
    unit = decision.unit
    factor = units_ops.scale_factor(unit, "m")
    scene, changed = scene_ops.to_metres_y_up(view.scene, factor, units.up)
    details = {"scale": factor, "from_unit": unit, "guessed": decision.guessed, "unit_source": decision.source,
               "rotated": changed and units.up.upper() in ("+Z", "Z")}
    if not changed:
        if units != GLTF_UNITS:
            return RepairResult(units=GLTF_UNITS, note=f"already metres, +Y up; metres recorded ({decision.reason})", details=details)
        return RepairResult.unchanged("already metres, +Y up")
    note = f"scaled x{factor:g} ({unit} -> m)"
    if decision.guessed:
        note += f": {unit} is {decision.reason}" if decision.source == "size" else f" ({decision.reason})"
    if details["rotated"]:
        note += ", rotated +Z up -> +Y up"
    return RepairResult(scene=scene, units=GLTF_UNITS, note=note, details=details)


# --- commerce.normals --------------------------------------------------------------------------


def add_normals(view: AssetView, params: NoParams, ctx: StepContext) -> RepairResult:
    added = 0

    def fix(name: str, mesh: Any) -> Any | None:
        nonlocal added
        given = scene_ops.loaded_normals(mesh)
        if given is not None:
            length = np.linalg.norm(given, axis=1)
            if np.all(np.isfinite(length)) and np.all(np.abs(length - 1.0) < 1e-3):
                return None
        new = scene_ops.copy_geometry(mesh)
        new.vertex_normals = scene_ops.unit_normals(mesh, given)
        added += 1
        return new

    scene, names = scene_ops.map_geometry(view.scene, fix)
    if scene is None:
        return RepairResult.unchanged("every primitive has unit normals")
    return RepairResult(scene=scene, note=f"normals added or fixed on {added} primitive(s)", details={"primitives": added})


# --- commerce.textures -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TexturesParams:
    max_px: int = field(2048, "largest texture side, rounded down to a power of two (C6: Khronos 2K, Quick Look)")
    jpeg_quality: int = field(90, "JPEG (or lossy WebP) quality for colour textures")
    webp: bool = field(False, "encode every texture as WebP (EXT_texture_webp, required: no PNG/JPEG fallback); "
                              "only for viewers that decode it (model-viewer, three.js; not AR Quick Look)")


def _materials(scene: Any) -> list[tuple[str, Any]]:
    from trimesh.visual import TextureVisuals

    return [(n, g.visual.material) for n, g in scene_ops.triangle_meshes(scene).items()
            if isinstance(g.visual, TextureVisuals) and g.visual.material is not None]


def _as_pbr(material: Any) -> Any:
    from trimesh.visual.material import PBRMaterial

    return material if isinstance(material, PBRMaterial) else material.to_pbr()


def prepare_textures(view: AssetView, params: TexturesParams, ctx: StepContext) -> RepairResult:
    from trimesh.visual import TextureVisuals

    done: dict[tuple[int, str, bool], tex.Prepared] = {}  # a texture shared by materials is processed once
    changed_materials: dict[int, Any] = {}
    resized = reencoded = 0
    for _, material in _materials(view.scene):
        if id(material) in changed_materials:
            continue
        pbr = _as_pbr(material)
        opaque = str(getattr(pbr, "alphaMode", None) or "OPAQUE").upper() == "OPAQUE"
        updates = {}
        for role in tex.ROLES:
            img = getattr(pbr, role, None)
            if img is None or not hasattr(img, "size"):
                continue
            key = (id(img), role, opaque)
            if key not in done:
                done[key] = tex.prepare_texture(img, role, max_px=params.max_px, opaque_material=opaque,
                                                jpeg_quality=params.jpeg_quality, webp=params.webp)
                if done[key].changed:
                    resized += done[key].before != done[key].after
                    reencoded += 1
            if done[key].changed:
                updates[role] = done[key].image
        if updates or pbr is not material:
            new = pbr.copy() if pbr is material else pbr
            for role, img in updates.items():
                setattr(new, role, img)
            changed_materials[id(material)] = new

    if not changed_materials:
        codecs = "WebP" if params.webp else "PNG/JPEG by role"
        return RepairResult.unchanged(f"textures are power-of-two, <= {params.max_px} px, {codecs}")

    def swap(name: str, mesh: Any) -> Any | None:
        if not isinstance(mesh.visual, TextureVisuals) or id(mesh.visual.material) not in changed_materials:
            return None
        new = mesh.copy(include_cache=True)
        new.visual = TextureVisuals(uv=mesh.visual.uv, material=changed_materials[id(mesh.visual.material)])
        normals = scene_ops.loaded_normals(mesh)
        if normals is not None:
            new.vertex_normals = normals
        return new

    scene, names = scene_ops.map_geometry(view.scene, swap)
    sizes = sorted({f"{p.before[0]}x{p.before[1]}->{p.after[0]}x{p.after[1]} {p.codec}" for p in done.values() if p.changed})
    return RepairResult(scene=scene, note=f"{reencoded} texture(s) rewritten ({resized} resized): {', '.join(sizes[:6])}",
                        details={"textures_rewritten": reencoded, "textures_resized": resized, "max_px": params.max_px})


# --- commerce.dedupe ---------------------------------------------------------------------------


def _material_key(material: Any, digests: dict[int, str]) -> tuple[Any, ...]:
    pbr = _as_pbr(material)
    parts: list[Any] = [type(pbr).__name__]
    for attr in ("baseColorFactor", "metallicFactor", "roughnessFactor", "emissiveFactor", "alphaMode",
                 "alphaCutoff", "doubleSided"):
        value = getattr(pbr, attr, None)
        if value is None or isinstance(value, (str, bool)):
            parts.append(value)
        else:
            parts.append(tuple(np.round(np.atleast_1d(np.asarray(value, dtype=np.float64)), 6).tolist()))
    for role in tex.ROLES:
        img = getattr(pbr, role, None)
        if img is None or not hasattr(img, "size"):
            parts.append(None)
            continue
        if id(img) not in digests:
            digests[id(img)] = tex.image_digest(img)
        parts.append(digests[id(img)])
    return tuple(parts)


def dedupe(view: AssetView, params: NoParams, ctx: StepContext) -> RepairResult:
    from trimesh.visual import TextureVisuals

    scene = view.scene
    used_nodes = scene.graph.geometry_nodes
    unused = [n for n in scene.geometry if not used_nodes.get(n)]
    digests: dict[int, str] = {}
    canonical: dict[tuple[Any, ...], Any] = {}
    remap: dict[int, Any] = {}
    materials = _materials(scene)
    for _, material in materials:
        if id(material) in remap:
            continue
        key = _material_key(material, digests)
        remap[id(material)] = canonical.setdefault(key, material)
    before = len({id(m) for _, m in materials})
    after = len({id(m) for m in remap.values()})

    def swap(name: str, mesh: Any) -> Any | None:
        if not isinstance(mesh.visual, TextureVisuals) or mesh.visual.material is None:
            return None
        target = remap.get(id(mesh.visual.material))
        if target is None or target is mesh.visual.material:
            return None
        new = mesh.copy(include_cache=True)
        new.visual = TextureVisuals(uv=mesh.visual.uv, material=target)
        normals = scene_ops.loaded_normals(mesh)
        if normals is not None:
            new.vertex_normals = normals
        return new

    new_scene, names = scene_ops.map_geometry(scene, swap)
    if new_scene is None and not unused:
        return RepairResult.unchanged(f"{before} distinct material(s), no unused geometry")
    new_scene = new_scene if new_scene is not None else scene_ops.with_geometry(scene, {})
    for name in unused:
        new_scene.delete_geometry(name)
    images = len(set(digests.values()))
    return RepairResult(
        scene=new_scene,
        note=f"materials {before} -> {after}; {len(unused)} unused geometr{'y' if len(unused) == 1 else 'ies'} dropped",
        details={"materials_before": before, "materials_after": after, "unused_geometry_dropped": len(unused),
                 "distinct_images": images},
    )


# --- commerce.place_origin ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PlaceOriginParams:
    tolerance_m: float = field(1e-6, "leave the scene alone when base and centre are already this close (m)")


def place_origin(view: AssetView, params: PlaceOriginParams, ctx: StepContext) -> RepairResult:
    scene, cleaned = scene_ops.clean_roots(view.scene)
    bounds = scene_ops.world_bounds(scene)
    if bounds is None:
        return RepairResult.unchanged("no finite geometry to place")
    centre = (bounds[0] + bounds[1]) / 2.0
    up = 2 if view.units.up.upper() in ("+Z", "Z") else 1
    offset = -centre
    offset[up] = -bounds[0][up]
    moved = not np.all(np.abs(offset) <= params.tolerance_m)
    if not moved and not cleaned:
        return RepairResult.unchanged("base already at 0, centred, clean root")
    if moved:
        matrix = np.eye(4)
        matrix[:3, 3] = offset
        scene = scene_ops.transform_scene(scene, matrix)
    notes = []
    if cleaned:
        notes.append(f"{cleaned} root transform(s) pushed down (root now T=0, R=I, S=1)")
    if moved:
        notes.append(f"moved by {np.round(offset, 6).tolist()}: base at 0, centred on the origin")
    return RepairResult(scene=scene, note="; ".join(notes),
                        details={"offset": [float(v) for v in offset] if moved else [0.0, 0.0, 0.0], "roots_cleaned": cleaned})


@hookimpl
def meshforge_repair_steps() -> list[RepairStep]:
    return [
        RepairStep(name="commerce.to_metres", summary="scale to metres in the unit commerce.scale decided (stated, product "
                   "dimensions or plausible size) and rotate +Z up to +Y up",
                   fixes=("commerce.implausible_size", "commerce.unit_assumed", "commerce.up_axis"), apply=to_metres),
        RepairStep(name="commerce.normals", summary="add unit vertex normals where missing or broken",
                   fixes=("gltf.missing_normals",), apply=add_normals),
        RepairStep(name="commerce.textures", summary="textures to power-of-two <= max_px; JPEG opaque colour, PNG alpha and data maps",
                   params=TexturesParams,
                   fixes=("commerce.texture_too_large", "commerce.texture_not_power_of_two", "commerce.texture_format"),
                   apply=prepare_textures),
        RepairStep(name="commerce.dedupe", summary="merge identical materials and textures, drop unused geometry",
                   fixes=("commerce.too_many_materials",), apply=dedupe),
        RepairStep(name="commerce.place_origin", summary="base at the floor (min up = 0), centred on the origin",
                   params=PlaceOriginParams, fixes=("commerce.origin_not_bottom_center", "commerce.root_transform"), apply=place_origin),
    ]
