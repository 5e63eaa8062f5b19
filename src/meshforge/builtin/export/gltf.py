"""``glb``: one self-contained binary glTF (metres, +Y up, PBR metallic-roughness, normals present).

A scene still in other units or +Z up (a chain without ``commerce.to_metres``) is converted here,
so the file is always what glTF says it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from meshforge.asset import AssetView
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.io.gltf_write import glb_bytes
from meshforge.ops import scene_ops
from meshforge.params import field
from meshforge.types import ExportStep, Units


@dataclass(frozen=True, kw_only=True)
class GlbParams:
    assume_units: str = field("mm", "unit of coordinates when the scene carries none (STL, OBJ): converted to metres")


def write_glb(view: AssetView, params: GlbParams, ctx: StepContext) -> list[Path]:
    assert ctx.out_dir is not None, "export steps run with an output folder"
    scene = view.scene
    units = view.units
    per_unit = units.metres_per_unit(params.assume_units) or 1.0
    scene, changed = scene_ops.to_metres_y_up(scene, per_unit, units.up)
    if changed:
        ctx.log.info("converted %s/%s to metres/+Y up on export", units.length or params.assume_units, units.up)
    path = ctx.out_dir / f"{view.out_name}.glb"
    path.write_bytes(glb_bytes(scene))
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
