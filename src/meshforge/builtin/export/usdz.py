"""``usdz``: one package for Apple AR Quick Look; ``usdz.compat``: what of the model such a package loses.

The export writes metres, +Y up (converted here when the chain did not, as the GLB export does),
UsdPreviewSurface materials and PNG/JPEG textures, through :mod:`meshforge.io.usdz_write`. It needs
usd-core (``pip install 'meshforge[usdz]'``): without it the step is listed as unavailable and a
profile naming it stops before any file is touched, saying so.

AR Quick Look's budget (100k polygons, 2048 px textures) is the storefront budget the
``arkit-usdz`` profile inherits from ``ecommerce-glb`` (``commerce.budgets``); the export logs a
warning when what it wrote is over it anyway (a profile that turned those checks off).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from meshforge.asset import AssetView
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.ops import scene_ops
from meshforge.types import ExportStep, Finding, NoParams, Severity, ValidateStep

# Apple: "100K polygons, one set of 2048x2048 textures" for AR Quick Look (REQUIREMENTS.md 1b).
QUICK_LOOK_POLYGONS = 100_000
QUICK_LOOK_TEXTURE_PX = 2048


def write_usdz(view: AssetView, params: NoParams, ctx: StepContext) -> list[Path]:
    from meshforge.io import usdz_write
    from meshforge.ops import units as units_ops

    assert ctx.out_dir is not None, "export steps run with an output folder"
    units = view.units
    unit = units_ops.length_of(view, window=units_ops.window_of(ctx))  # the decision commerce.scale reported
    scene, changed = scene_ops.to_metres_y_up(view.scene, units_ops.scale_factor(unit, "m"), units.up)
    if changed:
        ctx.log.info("converted %s/%s to metres/+Y up on export", unit, units.up)
    path = ctx.out_dir / f"{view.out_name}.usdz"
    summary = usdz_write.write_usdz(scene, path, name=view.out_name)
    if summary.triangles > QUICK_LOOK_POLYGONS:
        ctx.log.warning("%s: %d triangles, over AR Quick Look's %d", path.name, summary.triangles, QUICK_LOOK_POLYGONS)
    if summary.largest_texture_px > QUICK_LOOK_TEXTURE_PX:
        ctx.log.warning("%s: a %d px texture, over AR Quick Look's %d", path.name, summary.largest_texture_px, QUICK_LOOK_TEXTURE_PX)
    if summary.dropped:
        ctx.log.warning("%s: USDZ does not carry %s", path.name, ", ".join(summary.dropped))
    for note in summary.notes:
        ctx.log.info("usd packager: %s", note)
    return [path]


# --- what a USDZ drops -------------------------------------------------------------------------------

COMPAT_CODES = ("usdz.dropped_feature",)

# glTF extensions whose effect a UsdPreviewSurface package cannot hold (REQUIREMENTS.md 1a, glTF vs USDZ parity)
DROPPED_EXTENSIONS = {
    "KHR_texture_transform": "texture transforms (KHR_texture_transform)",
    "KHR_materials_unlit": "unlit materials (KHR_materials_unlit)",
    "KHR_draco_mesh_compression": "Draco mesh compression (written uncompressed)",
    "EXT_meshopt_compression": "meshopt compression (written uncompressed)",
    "KHR_meshopt_compression": "meshopt compression (written uncompressed)",
}


def dropped_features(scene: Any, gltf_json: dict[str, Any] | None) -> dict[str, int]:
    """Feature -> how many primitives/materials use it, for what a USDZ export cannot carry."""
    import numpy as np
    from trimesh.visual import ColorVisuals

    found: dict[str, int] = {}

    def add(feature: str, n: int = 1) -> None:
        found[feature] = found.get(feature, 0) + n

    masked: set[int] = set()
    for geom in scene.geometry.values():
        visual = getattr(geom, "visual", None)
        if isinstance(visual, ColorVisuals) and visual.kind in ("vertex", "face"):
            colors = visual.vertex_colors if visual.kind == "vertex" else visual.face_colors
            if len(np.unique(np.asarray(colors), axis=0)) > 1:
                add("vertex colors")
        material = getattr(visual, "material", None)
        if str(getattr(material, "alphaMode", "") or "").upper() == "MASK" and id(material) not in masked:
            masked.add(id(material))
            add("alpha MASK (cutout)")
    if gltf_json:
        color_prims = morph_prims = 0
        for mesh in gltf_json.get("meshes", []) or []:
            for prim in (mesh.get("primitives", []) if isinstance(mesh, dict) else []) or []:
                if not isinstance(prim, dict):
                    continue
                if "COLOR_0" in (prim.get("attributes") or {}):
                    color_prims += 1
                if prim.get("targets"):
                    morph_prims += 1
        if color_prims and "vertex colors" not in found:
            add("vertex colors", color_prims)
        if morph_prims:
            add("morph targets", morph_prims)
        used = {e for e in gltf_json.get("extensionsUsed", []) or [] if isinstance(e, str)}
        for ext, feature in DROPPED_EXTENSIONS.items():
            if ext in used:
                add(feature)
    return found


def check_compat(view: AssetView, params: NoParams, ctx: StepContext) -> Iterator[Finding]:
    from meshforge.io.gltf import GltfDocument

    # The source's JSON even after repairs: what it had and the scene no longer shows is lost too.
    doc = view.document if isinstance(view.document, GltfDocument) else None
    for feature, count in sorted(dropped_features(view.scene, doc.json if doc else None).items()):
        yield ctx.finding("usdz.dropped_feature", Severity.WARNING,
                          f"the USDZ for AR Quick Look will not carry {feature}", measured=feature, count=count)


@hookimpl
def meshforge_export_steps() -> list[ExportStep]:
    return [
        ExportStep(
            name="usdz",
            summary="one .usdz for Apple AR Quick Look (UsdPreviewSurface, PNG/JPEG textures, metres, +Y up)",
            formats=("usdz",),
            write=write_usdz,
            requires=("pxr.Usd",),  # usd-core; importing it also proves its shared libraries load
        ),
    ]


@hookimpl
def meshforge_validate_steps() -> list[ValidateStep]:
    return [
        ValidateStep(
            name="usdz.compat",
            summary="model features a USDZ for AR Quick Look drops (vertex colours, cutout alpha, morph targets...)",
            codes=COMPAT_CODES,
            check=check_compat,
        ),
    ]
