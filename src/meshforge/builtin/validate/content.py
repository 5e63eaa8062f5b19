"""Storefront content rules that the glTF document and the base-colour pixels decide.

``commerce.content``: extensions against the target's allow-list (REQUIREMENTS C10; compression and
WebP/KTX2 are only allowed where the profile lists them, C11), cameras, lights, animations, skins and
morph targets (C15), and names (C20). ``commerce.base_color_range``: base-colour texels darker or
brighter than a physically plausible albedo (C13). Both read what the reader kept, so a scene that a
repair replaced (the exporter writes a fresh GLB) is judged by the other checks only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from meshforge.asset import AssetView
from meshforge.builtin.validate.commerce import _gltf_doc
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.ops.naming import is_conventional
from meshforge.params import field
from meshforge.types import Finding, Severity, ValidateStep

# What a storefront viewer (model-viewer, Scene Viewer, Quick Look via conversion) renders without
# special loaders: the PBR material extensions Amazon lists (REQUIREMENTS 1b) plus the common
# texture transform and emissive strength. Compression (Draco, meshopt, KTX2) and WebP are not here:
# C11 allows them only in web profiles, which list them.
STOREFRONT_EXTENSIONS = (
    "KHR_materials_clearcoat", "KHR_materials_emissive_strength", "KHR_materials_ior", "KHR_materials_sheen",
    "KHR_materials_specular", "KHR_materials_transmission", "KHR_materials_unlit", "KHR_materials_variants",
    "KHR_materials_volume", "KHR_texture_transform",
)


@dataclass(frozen=True, kw_only=True)
class ContentParams:
    allowed_extensions: tuple[str, ...] = field(
        STOREFRONT_EXTENSIONS, "extensions the target renders (C10); a required one outside the list is an error, "
        "an optional one a warning; [\"*\"] allows any")
    scene_content: Literal["error", "warning", "info", "off"] = field(
        "warning", "cameras, lights, animations, skins and morph targets (C15: fail for Amazon, warn otherwise)")
    check_names: bool = field(True, "report names outside [a-z0-9_-] or not starting with a letter, as info (C20)")


def check_content(view: AssetView, params: ContentParams, ctx: StepContext) -> Iterator[Finding]:
    doc = _gltf_doc(view)
    if doc is None:
        return
    tree = doc.json if isinstance(doc.json, dict) else {}
    yield from _extensions(tree, params, ctx)
    if params.scene_content != "off":
        yield from _scene_content(tree, Severity(params.scene_content), ctx)
    if params.check_names:
        yield from _names(tree, ctx)


def _strings(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _extensions(tree: dict, params: ContentParams, ctx: StepContext) -> Iterator[Finding]:
    if "*" in params.allowed_extensions:
        return
    allowed = set(params.allowed_extensions)
    required = _strings(tree.get("extensionsRequired"))
    used = [e for e in _strings(tree.get("extensionsUsed")) if e not in required]
    for names, severity, why in (
        (required, Severity.ERROR, "required by the file: the target cannot show the model without them"),
        (used, Severity.WARNING, "optional: the target ignores them, so the model may look different there"),
    ):
        outside = sorted({e for e in names if e not in allowed})
        if outside:
            yield ctx.finding(
                "commerce.extension_not_allowed", severity,
                f"extension(s) {', '.join(outside)} are not on the target's allow-list ({why})",
                measured=outside, count=len(outside),
            )


def _scene_content(tree: dict, severity: Severity, ctx: StepContext) -> Iterator[Finding]:
    def count(key: str) -> int:
        value = tree.get(key)
        return len(value) if isinstance(value, list) else 0

    lights = tree.get("extensions", {}).get("KHR_lights_punctual", {}) if isinstance(tree.get("extensions"), dict) else {}
    meshes = tree.get("meshes") if isinstance(tree.get("meshes"), list) else []
    morphs = sum(
        1 for m in meshes if isinstance(m, dict) and isinstance(m.get("primitives"), list)
        for p in m["primitives"] if isinstance(p, dict) and p.get("targets")
    )
    found = {
        "cameras": count("cameras"),
        "lights": len(lights.get("lights", [])) if isinstance(lights, dict) and isinstance(lights.get("lights"), list) else 0,
        "animations": count("animations"),
        "skins": count("skins"),
        "morph-target primitives": morphs,
    }
    present = {k: v for k, v in found.items() if v}
    if present:
        listed = ", ".join(f"{v} {k}" for k, v in present.items())
        yield ctx.finding(
            "commerce.scene_content", severity,
            f"the file carries {listed}: storefront viewers light and frame the model themselves and some reject these",
            measured=[f"{v} {k}" for k, v in present.items()], count=sum(present.values()),
        )


def _names(tree: dict, ctx: StepContext) -> Iterator[Finding]:
    bad: list[str] = []
    for key in ("nodes", "meshes", "materials", "images", "textures", "scenes"):
        items = tree.get(key)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and not is_conventional(name):
                bad.append(f"/{key}/{i} {name[:40]!r}")
    if bad:
        yield ctx.finding(
            "commerce.naming", Severity.INFO,
            f"{len(bad)} name(s) outside lower-case letters, digits, '_' and '-' or not starting with a letter: "
            f"{', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}",
            count=len(bad),
        )


# --- base colour range (C13) -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BaseColorParams:
    min_luminance: int = field(30, "darkest plausible albedo, sRGB 0-255 (C13: Khronos materials guidance, auditor)")
    max_luminance: int = field(243, "brightest plausible albedo, sRGB 0-255 (C13)")
    max_fraction: float = field(0.01, "warn when more than this fraction of a texture's opaque texels is outside (C13: 1 %)")
    max_pixels: int = field(1 << 20, "texels read per texture; larger ones are sampled on a regular grid")


def check_base_color_range(view: AssetView, params: BaseColorParams, ctx: StepContext) -> Iterator[Finding]:
    from meshforge.ops import commerce_checks as cc

    outside: list[tuple[str, float]] = []
    worst = 0.0
    for tex in cc.unique_textures(view.scene):
        if tex.slot != "baseColorTexture":
            continue
        fraction = _fraction_outside(tex.image, params)
        if fraction is not None and fraction > params.max_fraction:
            outside.append((f"{tex.material or '(unnamed)'} {tex.size[0]}x{tex.size[1]}", fraction))
            worst = max(worst, fraction)
    if outside:
        shown = ", ".join(f"{label} {fraction:.1%}" for label, fraction in outside[:5])
        yield ctx.finding(
            "commerce.base_color_range", Severity.WARNING,
            f"{len(outside)} base-colour texture(s) with more than {params.max_fraction:.0%} of texels outside sRGB luminance "
            f"{params.min_luminance}-{params.max_luminance} (too dark or too bright for a real material under PBR lighting): {shown}",
            measured=round(worst, 6), threshold=params.max_fraction, count=len(outside),
        )


def _fraction_outside(image: Any, params: BaseColorParams) -> float | None:
    """Fraction of opaque texels whose Rec. 709 luminance (on the sRGB values) is outside the range."""
    try:
        step = max(1, int(np.ceil(np.sqrt(image.size[0] * image.size[1] / max(params.max_pixels, 1)))))
        pixels = np.asarray(image if image.mode in ("RGB", "RGBA") else image.convert("RGBA"))[::step, ::step]
    except Exception:  # an image Pillow cannot convert is the structure check's business
        return None
    rgb = pixels[..., :3].astype(np.float32)
    opaque = pixels[..., 3] > 0 if pixels.shape[-1] == 4 else np.ones(rgb.shape[:2], dtype=bool)
    if not opaque.any():
        return None
    luminance = rgb @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    bad = ((luminance < params.min_luminance) | (luminance > params.max_luminance)) & opaque
    return float(bad.sum() / opaque.sum())


@hookimpl
def meshforge_validate_steps() -> list[ValidateStep]:
    return [
        ValidateStep(name="commerce.content", summary="extension allow-list, cameras/lights/animations, names (storefront)",
                     params=ContentParams, codes=("commerce.extension_not_allowed", "commerce.scene_content", "commerce.naming"),
                     check=check_content),
        ValidateStep(name="commerce.base_color_range", summary="base-colour texels within a plausible albedo luminance (storefront)",
                     params=BaseColorParams, codes=("commerce.base_color_range",), check=check_base_color_range),
    ]
