"""Storefront checks (profile ``ecommerce-glb``): PBR materials, budgets, real-world scale and placement.

Each check reads the *scene* (so it stays right after a repair replaced textures or geometry) and,
when the scene is still the one read from a glTF, the glTF JSON for what trimesh cannot hold
(spec-gloss and unlit extensions, raw factor values, image MIME types, the source file size).
Defaults and their sources: ../shared/REQUIREMENTS.md Part 4a (C3-C18), cited beside each field.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from meshforge.asset import AssetView
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.ops import commerce_checks as cc
from meshforge.ops import units as units_ops
from meshforge.ops.units import STOREFRONT_SIZE_M
from meshforge.params import field
from meshforge.types import Finding, Severity, ValidateStep

E, W, I = Severity.ERROR, Severity.WARNING, Severity.INFO


def _gltf_doc(view: AssetView) -> Any:
    """The glTF document when the scene is still the one it was read into, else None."""
    from meshforge.io.gltf import GltfDocument

    doc = view.document
    return doc if isinstance(doc, GltfDocument) and doc.built(view.scene) else None


# --- materials ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MaterialsParams:
    require_base_color_texture: bool = field(False, "every material must have a base colour texture (Amazon: maps required, 1b)")
    warn_textured_without_base_color: bool = field(True, "warn when a material has other maps but no base colour map (C12)")


MATERIAL_CODES = (
    "commerce.spec_gloss_material", "commerce.factor_out_of_range", "commerce.missing_base_color_texture",
    "commerce.missing_uvs", "commerce.alpha_mode", "commerce.normal_map_without_tangents", "commerce.unlit_material",
)


def check_materials(view: AssetView, params: MaterialsParams, ctx: StepContext) -> Iterator[Finding]:
    doc = _gltf_doc(view)
    if doc is not None:
        yield from _json_materials(doc, ctx)
    materials_missing_base: list[str] = []
    for material in cc.unique_materials(view.scene):
        name = str(getattr(material, "name", "") or "material")
        textures = dict(cc.textures_of(material))
        if "baseColorTexture" not in textures and hasattr(material, "baseColorTexture"):
            if params.require_base_color_texture or (params.warn_textured_without_base_color and textures):
                materials_missing_base.append(name)
        mode = getattr(material, "alphaMode", None)
        if mode in ("BLEND", "MASK"):
            factor = getattr(material, "baseColorFactor", None)
            alpha_factor = 255 if factor is None else int(np.asarray(factor).reshape(-1)[3]) if np.asarray(factor).size == 4 else 255
            transparent = cc.image_has_transparency(textures.get("baseColorTexture"))
            if alpha_factor >= 255 and not transparent:
                yield ctx.finding("commerce.alpha_mode", W,
                                  f"material '{name}' uses alphaMode {mode} but is fully opaque (costs sorting/overdraw for nothing; use OPAQUE)",
                                  measured=mode, threshold="OPAQUE")
    if materials_missing_base:
        severity = E if params.require_base_color_texture else W
        yield ctx.finding("commerce.missing_base_color_texture", severity,
                          f"{len(materials_missing_base)} material(s) without a base colour texture: {', '.join(materials_missing_base[:5])}",
                          count=len(materials_missing_base))
    no_uv, no_tangent = [], []
    for gname, geom in cc.geometries(view.scene):
        material = cc.material_of(geom)
        if material is None:
            continue
        textures = dict(cc.textures_of(material))
        if textures and getattr(geom.visual, "uv", None) is None:
            no_uv.append(gname)
        if "normalTexture" in textures and "tangent" not in getattr(geom, "vertex_attributes", {}):
            no_tangent.append(gname)
    if no_uv:
        yield ctx.finding("commerce.missing_uvs", E, f"{len(no_uv)} textured mesh(es) have no UV coordinates: {', '.join(no_uv[:5])}",
                          count=len(no_uv))
    if no_tangent:
        yield ctx.finding("commerce.normal_map_without_tangents", W,
                          f"{len(no_tangent)} normal-mapped mesh(es) have no tangents (viewers generate them; shading can differ): "
                          f"{', '.join(no_tangent[:5])}", count=len(no_tangent))


def _json_materials(doc: Any, ctx: StepContext) -> Iterator[Finding]:
    for i, mat in enumerate(doc.items("materials")):
        name = mat.get("name") or f"materials/{i}"
        ext = mat.get("extensions") if isinstance(mat.get("extensions"), dict) else {}
        if "KHR_materials_pbrSpecularGlossiness" in ext:
            yield ctx.finding("commerce.spec_gloss_material", E,
                              f"material '{name}' uses the archived specular-glossiness workflow; storefronts need metallic-roughness",
                              samples=[i])
        if "KHR_materials_unlit" in ext:
            yield ctx.finding("commerce.unlit_material", W, f"material '{name}' is unlit (no PBR shading in AR/3D viewers)", samples=[i])
        pbr = mat.get("pbrMetallicRoughness") if isinstance(mat.get("pbrMetallicRoughness"), dict) else {}
        bad = []
        for key, value, size in (("baseColorFactor", pbr.get("baseColorFactor"), 4), ("metallicFactor", pbr.get("metallicFactor"), 1),
                                 ("roughnessFactor", pbr.get("roughnessFactor"), 1), ("emissiveFactor", mat.get("emissiveFactor"), 3),
                                 ("occlusionTexture.strength", (mat.get("occlusionTexture") or {}).get("strength")
                                  if isinstance(mat.get("occlusionTexture"), dict) else None, 1)):
            if value is None:
                continue
            try:
                arr = np.asarray(value, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                bad.append(f"{key}={value!r}")
                continue
            if arr.size != size or not np.isfinite(arr).all() or (arr < 0).any() or (arr > 1).any():
                bad.append(f"{key}={arr.tolist()}")
        cutoff = mat.get("alphaCutoff")
        if cutoff is not None and (not isinstance(cutoff, (int, float)) or cutoff < 0):
            bad.append(f"alphaCutoff={cutoff!r}")
        if bad:
            yield ctx.finding("commerce.factor_out_of_range", E, f"material '{name}': {', '.join(bad)} outside 0..1",
                              measured=bad[0], threshold="0..1", count=len(bad), samples=[i])
        if cutoff is not None and mat.get("alphaMode", "OPAQUE") != "MASK":
            yield ctx.finding("commerce.alpha_mode", W, f"material '{name}' sets alphaCutoff without alphaMode MASK (ignored by viewers)",
                              samples=[i])


# --- budgets -----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BudgetsParams:
    max_file_mb: float = field(15.0, "fail above this file size, MB (Google Merchant hard limit; C3)")
    warn_file_mb: float = field(5.0, "warn above this file size, MB (Khronos summary, auditor 5120 KB; C3)")
    max_triangles: int = field(200_000, "fail above this many triangles after instancing (Amazon 200K; C4)")
    warn_triangles: int = field(100_000, "warn above this many triangles (Khronos, auditor, Quick Look 100k; C4)")
    max_vertices: int = field(0, "fail above this many vertices after instancing; 0 = off (no primary source)")
    warn_vertices: int = field(0, "warn above this many vertices; 0 = off (Scene Viewer 30k is [unconfirmed], 1b)")
    max_draw_calls: int = field(500, "fail above this many draw calls = primitives x instances (Khronos max 500; C5)")
    warn_draw_calls: int = field(20, "warn above this many draw calls (Khronos '< 20'; C5)")
    max_materials: int = field(0, "fail above this many materials; 0 = off")
    warn_materials: int = field(5, "warn above this many materials (glTF asset auditor default 5; C5)")
    max_textures: int = field(0, "fail above this many distinct textures; 0 = off")
    warn_textures: int = field(20, "warn above this many distinct textures (5 materials x 4 maps: auditor + Shopify texture set; C5/C12)")
    max_texture_px: int = field(4096, "fail when a texture side exceeds this (Amazon, Google, Facebook; C6)")
    warn_texture_px: int = field(2048, "warn when a texture side exceeds this (Khronos 2K, auditor, Quick Look; C6)")
    min_texture_px: int = field(512, "warn when a texture side is below this (auditor min 512; C6)")
    require_power_of_two: bool = field(True, "fail textures whose sides are not powers of two (auditor, Amazon, Facebook; C7)")
    image_formats: tuple[str, ...] = field(("image/png", "image/jpeg"), "allowed texture MIME types (glTF core, Amazon; C8)")


BUDGET_CODES = (
    "commerce.file_too_large", "commerce.too_many_triangles", "commerce.too_many_vertices", "commerce.too_many_draw_calls",
    "commerce.too_many_materials", "commerce.texture_too_large", "commerce.texture_too_small",
    "commerce.texture_not_power_of_two", "commerce.texture_format", "commerce.too_many_textures",
)


def _over(ctx: StepContext, code: str, what: str, value: float, hard: float, soft: float, unit: str = "") -> Iterator[Finding]:
    if hard and value > hard:
        yield ctx.finding(code, E, f"{what} {value:g}{unit} is over the limit of {hard:g}{unit}", measured=value, threshold=hard)
    elif soft and value > soft:
        yield ctx.finding(code, W, f"{what} {value:g}{unit} is over the recommended {soft:g}{unit}", measured=value, threshold=soft)


def check_budgets(view: AssetView, params: BudgetsParams, ctx: StepContext) -> Iterator[Finding]:
    doc = _gltf_doc(view)
    if doc is not None and view.source is not None:
        size_mb = round((len(view.source.data) + _external_bytes(view, doc)) / 1e6, 3)
        what = "file size"
    else:
        # repaired, or not a glTF: the storefront gets the GLB this scene is written as, with the glb
        # step's own compression (the writer reuses these bytes), not the input file. Judging the
        # input let a repaired DamagedHelmet go out at 8.3 MB with no finding.
        from meshforge.io.gltf_write import asset_glb

        glb = ctx.params_of("glb")
        try:
            data = asset_glb(view, compression=glb.compression if glb else "none", jpeg_quality=glb.jpeg_quality if glb else 90,
                             window=units_ops.window_of(ctx))
        except ValueError as exc:  # nothing writable (no finite triangles): the geometry checks say why
            ctx.log.info("GLB size not measured: %s", exc)
            data = None
        size_mb = None if data is None else round(len(data) / 1e6, 3)
        what = "GLB size"
    if size_mb is not None:
        yield from _over(ctx, "commerce.file_too_large", what, size_mb, params.max_file_mb, params.warn_file_mb, " MB")
    mesh = view.mesh
    yield from _over(ctx, "commerce.too_many_triangles", "triangle count", len(mesh.faces), params.max_triangles, params.warn_triangles)
    yield from _over(ctx, "commerce.too_many_vertices", "vertex count", len(mesh.vertices), params.max_vertices, params.warn_vertices)
    yield from _over(ctx, "commerce.too_many_draw_calls", "draw calls (primitives x instances)", cc.draw_calls(view.scene),
                     params.max_draw_calls, params.warn_draw_calls)
    yield from _over(ctx, "commerce.too_many_materials", "material count", len(cc.unique_materials(view.scene)),
                     params.max_materials, params.warn_materials)
    textures = cc.unique_textures(view.scene)
    yield from _over(ctx, "commerce.too_many_textures", "distinct textures", len(textures), params.max_textures, params.warn_textures)
    big_e, big_w, small, npot, fmt = [], [], [], [], []
    mimes = _image_mimes(doc)
    for tex in textures:
        w, h = tex.size
        label = f"{tex.material}.{tex.slot} {w}x{h}"
        side = max(w, h)
        if params.max_texture_px and side > params.max_texture_px:
            big_e.append(label)
        elif params.warn_texture_px and side > params.warn_texture_px:
            big_w.append(label)
        if params.min_texture_px and min(w, h) < params.min_texture_px:
            small.append(label)
        if params.require_power_of_two and not (cc.is_power_of_two(w) and cc.is_power_of_two(h)):
            npot.append(label)
        mime = mimes.get(id(tex.image)) or {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}.get(
            str(getattr(tex.image, "format", "") or ""), None)
        if mime is not None and mime not in params.image_formats:
            fmt.append(f"{label} ({mime})")
    if big_e:
        yield ctx.finding("commerce.texture_too_large", E, f"{len(big_e)} texture(s) larger than {params.max_texture_px} px: {', '.join(big_e[:5])}",
                          count=len(big_e), threshold=params.max_texture_px)
    elif big_w:
        yield ctx.finding("commerce.texture_too_large", W, f"{len(big_w)} texture(s) larger than {params.warn_texture_px} px: {', '.join(big_w[:5])}",
                          count=len(big_w), threshold=params.warn_texture_px)
    if small:
        yield ctx.finding("commerce.texture_too_small", W, f"{len(small)} texture(s) smaller than {params.min_texture_px} px: {', '.join(small[:5])}",
                          count=len(small), threshold=params.min_texture_px)
    if npot:
        yield ctx.finding("commerce.texture_not_power_of_two", E, f"{len(npot)} texture(s) with sides that are not powers of two: {', '.join(npot[:5])}",
                          count=len(npot))
    if fmt:
        yield ctx.finding("commerce.texture_format", E,
                          f"{len(fmt)} texture(s) in formats outside {', '.join(params.image_formats)}: {', '.join(fmt[:5])}", count=len(fmt))


def _external_bytes(view: AssetView, doc: Any) -> int:
    folder = view.source.folder if view.source is not None else None
    total = 0
    if folder is None:
        return 0
    for uri in doc.external_files:
        from urllib.parse import unquote

        try:
            total += (folder / unquote(uri)).stat().st_size
        except OSError:
            continue
    return total


def _image_mimes(doc: Any) -> dict[int, str]:
    if doc is None:
        return {}
    return {id(ref.image): ref.mime for ref in doc.images if ref.image is not None and ref.mime}


# --- scale and placement -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ScaleParams:
    min_size_m: float = field(STOREFRONT_SIZE_M[0], "smallest plausible product, largest dimension in metres (C16 heuristic)")
    max_size_m: float = field(STOREFRONT_SIZE_M[1], "largest plausible product, largest dimension in metres (C16 heuristic: no 300 m sofa)")
    origin_tolerance_m: float = field(0.01, "base at y = 0 and centred in x/z within this (C17, modelready floor_alignment 0.01)")
    dimensions_tolerance: float = field(0.05, "relative tolerance for metadata dimensions (auditor percentTolerance)")


SCALE_CODES = ("commerce.implausible_size", "commerce.unit_assumed", "commerce.dimensions_mismatch",
               "commerce.origin_not_bottom_center", "commerce.root_transform", "commerce.up_axis")


def check_scale(view: AssetView, params: ScaleParams, ctx: StepContext) -> Iterator[Finding]:
    window = (params.min_size_m, params.max_size_m)
    decision = units_ops.decide_for(view, window)
    if decision is None:
        return
    lo, hi = cc.finite_bounds(np.asarray(view.mesh.vertices))
    names = units_ops.NAMES
    # Every size below is read in the decided unit: what commerce.to_metres converts and the GLB holds.
    bounds = cc.to_y_up(np.array([lo, hi]), view.units.up) * units_ops.METRES[decision.unit]
    extents = bounds[1] - bounds[0]
    largest = float(extents.max())
    stated = view.units.length
    if stated is None:
        severity = I if decision.source == "dimensions" else W
        yield ctx.finding("commerce.unit_assumed", severity,
                          f"the file states no unit; read as {names[decision.unit]}, {largest:.4g} m: {decision.reason}",
                          measured=decision.unit, threshold=list(window))
    if stated is not None and decision.unit != units_ops.normalize(stated):
        as_stated = largest * units_ops.scale_factor(stated, decision.unit)
        yield ctx.finding("commerce.implausible_size", E,
                          f"largest dimension is {as_stated:.4g} m as the file states ({names.get(stated, stated)}), outside the plausible "
                          f"{params.min_size_m:g}-{params.max_size_m:g} m; plausible if the numbers are {names[decision.unit]} "
                          f"({largest:.4g} m): likely unit {decision.unit}, {decision.reason}",
                          measured=round(as_stated, 6), threshold=list(window))
    elif not (params.min_size_m <= largest <= params.max_size_m) and decision.source != "dimensions":
        how = "" if stated else f" (the file states no unit; read as {names[decision.unit]})"
        yield ctx.finding("commerce.implausible_size", E,
                          f"largest dimension is {largest:.4g} m, outside the plausible {params.min_size_m:g}-{params.max_size_m:g} m"
                          f"{how}; no unit makes it plausible", measured=round(largest, 6), threshold=list(window))
    yield from _dimensions(units_ops.expected_dimensions_m(view.inputs.metadata), extents, params, ctx)
    if view.units.up not in ("+Y", "Y"):
        yield ctx.finding("commerce.up_axis", W, f"model is {view.units.up} up; glTF and storefront viewers are +Y up",
                          measured=view.units.up, threshold="+Y")
    tol = params.origin_tolerance_m
    base_y = float(bounds[0][1])
    centre_x = float(bounds[0][0] / 2 + bounds[1][0] / 2)  # halves first: (lo + hi) overflows near 1.8e308
    centre_z = float(bounds[0][2] / 2 + bounds[1][2] / 2)
    offset = max(abs(base_y), abs(centre_x), abs(centre_z))
    if math.isfinite(offset) and offset > tol:
        yield ctx.finding("commerce.origin_not_bottom_center", W,
                          f"origin is not at the bottom centre: base at y = {base_y:.4g} m, footprint centre at x = {centre_x:.4g}, "
                          f"z = {centre_z:.4g} m (tolerance {tol:g} m)",
                          measured=[round(centre_x, 6), round(base_y, 6), round(centre_z, 6)], threshold=tol)
    yield from _root_transforms(view, ctx)


def _dimensions(expected: tuple[float | None, ...], extents: np.ndarray, params: ScaleParams, ctx: StepContext) -> Iterator[Finding]:
    if all(v is None for v in expected):
        return
    off = []
    ratios = []
    for axis, (want, have) in enumerate(zip(expected, extents, strict=True)):
        if want is None or want <= 0:
            continue
        if abs(have - want) > params.dimensions_tolerance * want:
            off.append(f"{('width', 'height', 'depth')[axis]} {have:.4g} m vs {want:.4g} m")
            ratios.append(have / want if want else float("inf"))
    if not off:
        return
    hint = ""
    if ratios and all(r > 0 and math.isfinite(r) for r in ratios):
        ratio = float(np.median(ratios))
        for unit, factor in (("mm", 1000.0), ("cm", 100.0), ("in", 1 / 0.0254)):
            if abs(ratio / factor - 1) < 0.1:
                hint = f"; the model is {ratio:.4g}x too large: likely exported in {units_ops.NAMES[unit]} (unit {unit})"
        if not hint and abs(ratio - 1) > params.dimensions_tolerance:
            hint = f"; the model is {ratio:.3g}x the expected size"
    if not hint and _swapped_up(expected, extents, params.dimensions_tolerance):
        # glTF has no up-axis field, so a +Z-up export reads as a model lying on its back: only
        # the product's height can tell (REQUIREMENTS 1a: +Y up)
        hint = "; height and depth are swapped: the model is probably +Z up (glTF is +Y up)"
    yield ctx.finding("commerce.dimensions_mismatch", E, f"dimensions differ from the product's: {'; '.join(off)}{hint}",
                      measured=[round(float(v), 6) for v in extents], threshold=[v for v in expected], count=len(off))


def _swapped_up(expected: tuple[float | None, ...], extents: np.ndarray, tolerance: float) -> bool:
    """True when the extents match the expected dimensions once height (y) and depth (z) trade places."""
    swapped = (extents[0], extents[2], extents[1])
    pairs = [(w, h) for w, h in zip(expected, swapped, strict=True) if w is not None and w > 0]
    return expected[1] is not None and bool(pairs) and all(abs(h - w) <= tolerance * w for w, h in pairs)


def _root_transforms(view: AssetView, ctx: StepContext) -> Iterator[Finding]:
    base = view.scene.graph.base_frame
    dirty = []
    for parent, child, data in view.scene.graph.to_edgelist():
        if parent != base:
            continue
        matrix = np.asarray(data.get("matrix", np.eye(4)), dtype=np.float64)
        if matrix.shape == (4, 4) and not np.allclose(matrix, np.eye(4), atol=1e-9):
            dirty.append(str(child))
    if dirty:
        yield ctx.finding("commerce.root_transform", I,
                          f"{len(dirty)} root node(s) carry a transform (clean exports have T=0, R=identity, S=1 at the root): "
                          f"{', '.join(dirty[:5])}", count=len(dirty))


@hookimpl
def meshforge_validate_steps() -> list[ValidateStep]:
    return [
        ValidateStep(name="commerce.materials", summary="PBR metallic-roughness materials, texture roles, alpha, UVs (storefront)",
                     params=MaterialsParams, codes=MATERIAL_CODES, check=check_materials),
        ValidateStep(name="commerce.budgets", summary="file size, triangles, draw calls, materials and texture budgets (storefront)",
                     params=BudgetsParams, codes=BUDGET_CODES, check=check_budgets),
        ValidateStep(name="commerce.scale", summary="real-world size in metres, product dimensions, +Y up, origin at bottom centre",
                     params=ScaleParams, codes=SCALE_CODES, check=check_scale),
    ]
