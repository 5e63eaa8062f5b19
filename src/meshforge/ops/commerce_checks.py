"""Pure helpers for the storefront checks: what a trimesh scene holds in materials, textures and size.

No pluggy, no AssetView: numbers in, numbers out, so the checks are testable on small scenes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

TEXTURE_SLOTS = ("baseColorTexture", "metallicRoughnessTexture", "normalTexture", "occlusionTexture", "emissiveTexture")


@dataclass(frozen=True)
class TextureUse:
    image: Any  # PIL image
    slot: str
    material: str

    @property
    def size(self) -> tuple[int, int]:
        return tuple(int(v) for v in self.image.size)  # type: ignore[return-value]


def geometries(scene: Any) -> list[tuple[str, Any]]:
    """(name, Trimesh) for every geometry the scene graph draws at least once."""
    import trimesh

    used = {scene.graph[n][1] for n in scene.graph.nodes_geometry}
    return [(name, g) for name, g in scene.geometry.items() if name in used and isinstance(g, trimesh.Trimesh)]


def material_of(geom: Any) -> Any:
    visual = getattr(geom, "visual", None)
    return getattr(visual, "material", None) if getattr(visual, "kind", None) == "texture" or hasattr(visual, "material") else None


def textures_of(material: Any) -> list[tuple[str, Any]]:
    out = []
    for slot in TEXTURE_SLOTS:
        image = getattr(material, slot, None)
        if image is not None and hasattr(image, "size"):
            out.append((slot, image))
    return out


def unique_textures(scene: Any) -> list[TextureUse]:
    seen: dict[int, TextureUse] = {}
    for _, geom in geometries(scene):
        material = material_of(geom)
        if material is None:
            continue
        for slot, image in textures_of(material):
            seen.setdefault(id(image), TextureUse(image=image, slot=slot, material=str(getattr(material, "name", "") or "")))
    return list(seen.values())


def unique_materials(scene: Any) -> list[Any]:
    seen: dict[int, Any] = {}
    for _, geom in geometries(scene):
        material = material_of(geom)
        if material is not None:
            seen.setdefault(id(material), material)
    return list(seen.values())


def draw_calls(scene: Any) -> int:
    return len(scene.graph.nodes_geometry)


def is_power_of_two(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


def finite_bounds(vertices: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(min, max) over the vertices with finite coordinates; (None, None) when there are none.

    Clean data (the rule) costs two reductions: min/max are finite exactly when no coordinate is NaN
    or infinite. Only otherwise are the finite rows masked out (a copy).
    """
    v = np.asarray(vertices)
    if not len(v):
        return None, None
    with np.errstate(invalid="ignore"):
        lo, hi = v.min(axis=0), v.max(axis=0)
    if np.isfinite(lo).all() and np.isfinite(hi).all():
        return lo, hi
    finite = v[np.isfinite(v).all(axis=1)]
    if not len(finite):
        return None, None
    return finite.min(axis=0), finite.max(axis=0)


def to_y_up(bounds: np.ndarray, up: str) -> np.ndarray:
    """Bounds (2x3) re-expressed in a +Y-up frame (so 'height' is always axis 1)."""
    lo, hi = np.asarray(bounds, dtype=np.float64)
    if up in ("+Z", "Z"):
        # (x, y, z) z-up -> (x, z, -y) y-up
        return np.array([[lo[0], lo[2], -hi[1]], [hi[0], hi[2], -lo[1]]])
    return np.array([lo, hi])


def image_has_transparency(image: Any) -> bool | None:
    """True when any alpha < 255; False when opaque; None when the image has no alpha channel."""
    if image is None or "A" not in getattr(image, "mode", ""):
        return None
    alpha = np.asarray(image.getchannel("A"))
    return bool((alpha < 255).any())
