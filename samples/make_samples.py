"""Regenerate the samples the README runs (deterministic; run from the repo root).

- samples/figurine-metres-open.stl: a 60 mm-tall figurine-like solid exported in *metres*, with a
  hole and a patch of flipped triangles: what generators typically hand a print shop.
- samples/mug-mm.glb: a 95 mm-tall textured mug exported in *millimetres* (glTF means metres, so
  the file says 95 m), pivot at its centre rather than under its base, and a non-power-of-two
  texture: what a careless exporter hands a storefront. `ecommerce-glb` turns it into a 95 mm mug
  standing on y = 0 with a 256 px texture.

The mug is +Y up, as glTF requires. It used to be +Z up (lying on its side once read as glTF), but
meshforge cannot see that from the file: glTF has no up-axis field and a lying shape is a valid
pose for many products, so the README run passed a mug on its side. Only a product height
(metadata ``height_m`` / ``dimensions_mm``) tells: commerce.dimensions_mismatch then says height
and depth are swapped.
"""

from pathlib import Path

import numpy as np
import trimesh
from PIL import Image

HERE = Path(__file__).resolve().parent


def figurine() -> trimesh.Trimesh:
    body = trimesh.creation.capsule(height=30.0, radius=12.0, count=(24, 24))
    head = trimesh.creation.icosphere(subdivisions=3, radius=9.0)
    head.apply_translation((0, 0, 33.0))
    base = trimesh.creation.cylinder(radius=16.0, height=4.0, sections=48)
    base.apply_translation((0, 0, -26.0))  # the capsule ends at z = -27: inside the base, which is flat
    solid = trimesh.boolean.union([body, head, base], engine="manifold")
    solid.apply_translation(-solid.bounds[0])
    faces = solid.faces.copy()
    faces[10:30] = faces[10:30, ::-1]  # flipped patch
    keep = np.ones(len(faces), dtype=bool)
    keep[200:204] = False  # a hole
    mesh = trimesh.Trimesh(solid.vertices * 0.001, faces[keep], process=False)  # metres
    return mesh


def mug() -> trimesh.Scene:
    outer = trimesh.creation.cylinder(radius=40.0, height=95.0, sections=64)  # centred on the origin, along z
    uv = np.column_stack([(np.arctan2(outer.vertices[:, 1], outer.vertices[:, 0]) / (2 * np.pi)) % 1.0,
                          outer.vertices[:, 2] / 95.0 + 0.5])
    xs, ys = np.meshgrid(np.linspace(0, 1, 300), np.linspace(0, 1, 200))
    rgb = np.stack([(180 + 60 * xs), (90 + 80 * ys), (60 + 40 * np.sin(xs * 12))], axis=-1).astype(np.uint8)
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(rgb), metallicFactor=0.0, roughnessFactor=0.6)
    outer.visual = trimesh.visual.TextureVisuals(uv=uv, material=material)
    outer.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, (1, 0, 0)))  # height along +Y: (x, y, z) -> (x, z, -y)
    return trimesh.Scene(outer)


if __name__ == "__main__":
    figurine().export(HERE / "figurine-metres-open.stl")
    mug().export(HERE / "mug-mm.glb")
    print("wrote", *sorted(p.name for p in HERE.iterdir() if p.suffix in (".stl", ".glb")))
