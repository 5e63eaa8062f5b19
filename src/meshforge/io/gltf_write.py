"""Write one self-contained GLB that the Khronos glTF-Validator accepts with zero errors.

trimesh's exporter does the heavy lifting (accessors with min/max, PBR metallic-roughness materials);
this module prepares the scene so its output is valid (metres / +Y up, finite
coordinates, unit normals, no empty primitives), post-processes the JSON tree (generator, bufferView
targets, no external or data URIs) and embeds the textures itself.

Why textures are embedded here: trimesh encodes every image again on export, JPEG at Pillow's default
quality 75, so a texture prepared at quality 90 (or passed through untouched) would lose quality
silently, and PNG encoding costs time for nothing. Images are taken off the materials before
trimesh runs and written afterwards with the bytes they were decoded from (``io.images``), WebP
under ``EXT_texture_webp``. Mesh compression (Draco or meshopt) is optional; see ``compress``.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from meshforge.io import glb_container
from meshforge.ops import scene_ops

GENERATOR = "meshforge"
COMPRESSIONS = ("none", "draco", "meshopt")
# glTF texture slots: where each PBRMaterial image goes in the material JSON
TEXTURE_SLOTS = {
    "baseColorTexture": ("pbrMetallicRoughness", "baseColorTexture"),
    "metallicRoughnessTexture": ("pbrMetallicRoughness", "metallicRoughnessTexture"),
    "normalTexture": (None, "normalTexture"),
    "occlusionTexture": (None, "occlusionTexture"),
    "emissiveTexture": (None, "emissiveTexture"),
}
COLOR_SLOTS = ("baseColorTexture", "emissiveTexture")
# LINEAR / LINEAR_MIPMAP_LINEAR / REPEAT: what viewers assume for product textures
DEFAULT_SAMPLER = {"magFilter": 9729, "minFilter": 9987, "wrapS": 10497, "wrapT": 10497}
_TOKEN = "meshforge-material-"


@dataclass
class _DetachedImages:
    """Images taken off the materials before trimesh exports, keyed by a placeholder material name."""

    by_token: dict[str, tuple[str | None, dict[str, Any]]] = field(default_factory=dict)  # token -> (name, slot -> image)
    tokens: dict[int, Any] = field(default_factory=dict)  # id(source material) -> stripped material

    def strip(self, material: Any) -> Any:
        """A copy of ``material`` without images and named by a token (one per source material)."""
        from trimesh.visual.material import PBRMaterial

        if id(material) in self.tokens:
            return self.tokens[id(material)]
        pbr = material if isinstance(material, PBRMaterial) else material.to_pbr()
        images = {slot: getattr(pbr, slot, None) for slot in TEXTURE_SLOTS}
        images = {slot: img for slot, img in images.items() if img is not None and hasattr(img, "size")}
        token = f"{_TOKEN}{len(self.by_token)}"
        # built from scalars: PBRMaterial.copy() would deep-copy every image just to drop it
        stripped = PBRMaterial(
            name=token, baseColorFactor=pbr.baseColorFactor, metallicFactor=pbr.metallicFactor,
            roughnessFactor=pbr.roughnessFactor, emissiveFactor=pbr.emissiveFactor, alphaMode=pbr.alphaMode,
            alphaCutoff=pbr.alphaCutoff, doubleSided=pbr.doubleSided,
        )
        self.by_token[token] = (pbr.name if isinstance(pbr.name, str) else None, images)
        self.tokens[id(material)] = stripped
        return stripped


def prepare(scene: Any, detached: _DetachedImages | None = None) -> Any:
    """The scene made drawable (``scene_ops.drawable_scene``), its materials' images taken off."""
    from trimesh.visual import TextureVisuals

    detached = detached if detached is not None else _DetachedImages()

    def strip(mesh: Any) -> None:
        if isinstance(mesh.visual, TextureVisuals) and mesh.visual.material is not None:
            mesh.visual.material = detached.strip(mesh.visual.material)

    return scene_ops.drawable_scene(scene, strip)


def _postprocess(tree: dict[str, Any]) -> None:
    asset = tree.setdefault("asset", {})
    asset["version"] = "2.0"
    asset["generator"] = GENERATOR
    # vertex data -> ARRAY_BUFFER, indices -> ELEMENT_ARRAY_BUFFER (the validator hints otherwise)
    views = tree.get("bufferViews", [])
    for mesh in tree.get("meshes", []):
        for prim in mesh.get("primitives", []):
            for acc in prim.get("attributes", {}).values():
                view = tree["accessors"][acc].get("bufferView")
                if view is not None and "byteStride" not in views[view]:
                    views[view].setdefault("target", 34962)
            if "indices" in prim:
                view = tree["accessors"][prim["indices"]].get("bufferView")
                if view is not None:
                    views[view].setdefault("target", 34963)
    for image in tree.get("images", []):
        if "uri" in image:  # never external or data URIs in a GLB
            raise ValueError(f"image {image.get('name', '?')!r} would be written with a URI")
    for buffer in tree.get("buffers", []):
        buffer.pop("uri", None)


def _encoded(img: Any, slot: str, jpeg_quality: int) -> tuple[bytes, str]:
    """The bytes to embed for ``img``: those it was decoded from, else a fresh PNG (JPEG for JPEG colour)."""
    from meshforge.io.images import encoded_bytes

    known = encoded_bytes(img)
    if known is not None:
        return known
    work = img
    if work.mode.startswith("I;16") or work.mode == "I":
        work = work.point(lambda v: v / 256).convert("L")
    if work.mode not in ("RGB", "RGBA", "L", "LA"):
        work = work.convert("RGBA" if "A" in work.getbands() or "transparency" in work.info else "RGB")
    buf = io.BytesIO()
    if (img.format or "").upper() == "JPEG" and slot in COLOR_SLOTS and work.mode in ("RGB", "L"):
        work.save(buf, format="JPEG", quality=jpeg_quality)
        return buf.getvalue(), "image/jpeg"
    work.save(buf, format="PNG")
    return buf.getvalue(), "image/png"


def _embed_images(tree: dict[str, Any], binary: bytearray, detached: _DetachedImages, jpeg_quality: int) -> None:
    """Give the token-named materials back their names and textures, each image stored once."""
    images_by_id: dict[int, int] = {}
    images_by_digest: dict[str, int] = {}
    textures: dict[int, int] = {}
    for material in tree.get("materials", []):
        token = material.get("name")
        if token not in detached.by_token:
            continue
        name, slots = detached.by_token[token]
        if name:
            material["name"] = name
        else:
            material.pop("name", None)
        for slot, img in slots.items():
            index = images_by_id.get(id(img))
            if index is None:
                data, mime = _encoded(img, slot, jpeg_quality)
                digest = hashlib.blake2b(data, digest_size=16).hexdigest()
                index = images_by_digest.get(digest)
                if index is None:
                    view = glb_container.append_view(tree, binary, data)
                    tree.setdefault("images", []).append({"bufferView": view, "mimeType": mime})
                    index = images_by_digest[digest] = len(tree["images"]) - 1
                images_by_id[id(img)] = index
            if index not in textures:
                if not tree.get("samplers"):
                    tree["samplers"] = [dict(DEFAULT_SAMPLER)]
                texture: dict[str, Any] = {"sampler": 0}
                if tree["images"][index]["mimeType"] == "image/webp":
                    # no PNG/JPEG fallback is written, so viewers without WebP must refuse the file
                    texture["extensions"] = {"EXT_texture_webp": {"source": index}}
                    glb_container.declare_extension(tree, "EXT_texture_webp", required=True)
                else:
                    texture["source"] = index
                tree.setdefault("textures", []).append(texture)
                textures[index] = len(tree["textures"]) - 1
            parent, key = TEXTURE_SLOTS[slot]
            target = material.setdefault(parent, {}) if parent else material
            target[key] = {"index": textures[index]}


def _conventional_names(tree: dict[str, Any]) -> None:
    """Names in the convention storefronts expect (C20): trimesh names scene nodes "geometry_0/geometry_0"."""
    from meshforge.ops.naming import conventional, is_conventional

    for key, kind in (("nodes", "node"), ("meshes", "mesh"), ("materials", "material"), ("scenes", "scene")):
        for item in tree.get(key, []):
            name = item.get("name")
            if isinstance(name, str) and not is_conventional(name):
                item["name"] = conventional(name, kind)


def _check_float32(scene: Any) -> None:
    """glTF stores positions as 32-bit floats: a coordinate beyond them cannot be written.

    Said here with the geometry's name and its largest coordinate; trimesh's writer failed with
    "Out of range float values are not JSON compliant" on the accessor bounds.
    """
    import numpy as np

    limit = float(np.finfo(np.float32).max)
    for name, geometry in scene.geometry.items():
        vertices = getattr(geometry, "vertices", None)
        if vertices is None or not len(vertices):
            continue
        worst = float(np.abs(vertices).max())  # finite: drawable_scene dropped faces on NaN/inf vertices
        if worst > limit:
            raise ValueError(f"geometry {name!r} has coordinates up to {worst:.4g}, beyond the 32-bit floats glTF stores "
                             f"(largest {limit:.4g}): fix or remove those vertices first")


def glb_bytes(scene: Any, *, compression: str = "none", jpeg_quality: int = 90) -> bytes:
    """The GLB of ``scene`` (metres, +Y up already), optionally with compressed geometry.

    ``compression``: ``"draco"`` (KHR_draco_mesh_compression through DracoPy, ``io.draco_pack``: lossy,
    14-bit positions, 10-bit normals, 12-bit UVs, each primitive decoded again to prove the round
    trip) or ``"meshopt"`` (EXT_meshopt_compression, ``io.meshopt_pack``: lossless).
    """
    from trimesh.exchange.gltf import export_glb

    if compression not in COMPRESSIONS:
        raise ValueError(f"unknown compression {compression!r}; choose from {', '.join(COMPRESSIONS)}")
    detached = _DetachedImages()
    prepared = prepare(scene, detached)
    _check_float32(prepared)
    data = export_glb(prepared, include_normals=True, unitize_normals=True, tree_postprocessor=_postprocess)
    tree, binary = glb_container.split_glb(data)
    _embed_images(tree, binary, detached, jpeg_quality)
    _conventional_names(tree)
    if compression == "draco":
        from meshforge.io.draco_pack import compress_primitives

        tree, binary, _ = compress_primitives(tree, binary)
    elif compression == "meshopt":
        from meshforge.io.meshopt_pack import compress_views

        tree, binary = compress_views(tree, binary)
    return glb_container.join_glb(tree, binary)


def asset_glb(view: Any, *, compression: str = "none", jpeg_quality: int = 90,
              window: tuple[float, float] = (0.01, 10.0)) -> bytes:
    """The GLB an asset is exported as (converted to metres, +Y up in the unit ``ops.units.length_of``
    decides within the storefront ``window``), computed once per geometry version and settings:
    the storefront budget check measures the file a repaired asset will be written as, with the
    GLB step's own settings, and the writer then writes those very bytes."""
    from meshforge.ops import units as units_ops

    def build() -> bytes:
        unit = units_ops.length_of(view, window=window)
        scene, _ = scene_ops.to_metres_y_up(view.scene, units_ops.scale_factor(unit, "m"), view.units.up)
        return glb_bytes(scene, compression=compression, jpeg_quality=jpeg_quality)

    # the units are part of the key: a repair that only restates them keeps the same Derived
    key = f"export.glb:{compression}:{jpeg_quality}:{window}:{view.units.length}:{view.units.up}"
    return view.derived.get(key, build)

