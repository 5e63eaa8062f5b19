"""``glb``: one self-contained binary glTF (metres, +Y up, PBR metallic-roughness, normals present).

A scene still in other units or +Z up (a chain without ``commerce.to_metres``) is converted here,
so the file is always what glTF says it is. A unit-less scene is read in the unit ops.units.decide_for
gives, the one commerce.scale reports and commerce.to_metres applies: the writer has no unit of its
own to assume (it had one, mm, while the scale check read such files as metres: GLBs came out 1000x
too small). Geometry compression is the profile's choice: Draco and meshopt need a decoder in the
viewer (model-viewer has both; AR Quick Look, the Khronos asset auditor and many marketplaces have
neither: REQUIREMENTS.md C11).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from meshforge.asset import AssetView
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.io.gltf_write import asset_glb
from meshforge.ops.units import window_of
from meshforge.params import field
from meshforge.types import ExportStep, Units


@dataclass(frozen=True, kw_only=True)
class GlbParams:
    compression: Literal["none", "draco", "meshopt"] = field("none", "geometry compression: none, draco (KHR_draco_mesh_compression, lossy: "
                                     "14-bit positions, 10-bit normals, 12-bit UVs) or meshopt (EXT_meshopt_compression, lossless)")
    jpeg_quality: int = field(90, "quality for a JPEG texture that has to be encoded at export (one never "
                                  "decoded from a file or prepared by commerce.textures)")


def write_glb(view: AssetView, params: GlbParams, ctx: StepContext) -> list[Path]:
    assert ctx.out_dir is not None, "export steps run with an output folder"
    # in metres, +Y up, in the unit commerce.scale reported when to_metres did not run; the bytes
    # commerce.budgets measured on a repaired asset, when it did
    path = ctx.out_dir / f"{view.out_name}.glb"
    data = asset_glb(view, compression=params.compression, jpeg_quality=params.jpeg_quality, window=window_of(ctx))
    path.write_bytes(data)
    if params.compression != "none":
        ctx.log.info("wrote %s with %s geometry compression (%d bytes)", path.name, params.compression, len(data))
    return [path]


GLTF_UNITS = Units("m", "+Y")


@hookimpl
def meshforge_export_steps() -> list[ExportStep]:
    return [
        ExportStep(
            name="glb",
            summary="single self-contained GLB (embedded textures, PBR metal-rough, normals, metres, +Y up)",
            params=GlbParams,
            formats=("glb",),
            write=write_glb,
        ),
    ]
