"""Pictures of the final asset: PNG thumbnails from standard views and a debug GLB of problem regions.

Thin adapters over :mod:`meshforge.visual.render` (a numpy rasterizer: no display, GPU or GL
library needed) and :mod:`meshforge.visual.debug`. Both write into ``ctx.out_dir``; the engine
publishes the files and lists them in the report, where the HTML page finds them.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from meshforge.asset import AssetView
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.params import field
from meshforge.types import ExportStep

_HEX = re.compile(r"^#?([0-9a-fA-F]{6})([0-9a-fA-F]{2})?$")


@dataclass(frozen=True, kw_only=True)
class ThumbnailParams:
    size: int = field(512, "edge of each square PNG in pixels")
    views: tuple[str, ...] = field(("front", "threequarter", "top"), "views to render: front, threequarter, top")
    supersample: int = field(2, "render at this multiple and downsample (anti-aliasing); 1 = off")
    background: str = field("#f4f5f7", "background colour '#rrggbb' / '#rrggbbaa', or 'transparent'")


@dataclass(frozen=True, kw_only=True)
class DebugGlbParams:
    overhang_deg: float = field(45.0, "downward faces steeper than this from vertical are overhangs (FDM 45 deg, REQUIREMENTS 2a)")
    thin_mm: float = field(0.8, "faces whose inward ray hits the far side closer than this are thin (Hubs FDM 0.8 mm, 2a); 0 = off")
    thin_max_faces: int = field(200_000, "cast at most this many thickness rays (a strided sample beyond)")
    summary: bool = field(True, "also write <name>.debug.json with the counts per category (the HTML legend)")


def parse_background(value: str) -> tuple[int, int, int, int]:
    if value.strip().lower() == "transparent":
        return (255, 255, 255, 0)
    m = _HEX.match(value.strip())
    if not m:
        raise ValueError(f"background {value!r} is not '#rrggbb', '#rrggbbaa' or 'transparent'")
    rgb = bytes.fromhex(m.group(1))
    alpha = int(m.group(2), 16) if m.group(2) else 255
    return (rgb[0], rgb[1], rgb[2], alpha)


def write_thumbnails(view: AssetView, params: ThumbnailParams, ctx: StepContext) -> list[Path]:
    from meshforge.visual.render import VIEWS, prepare, render

    assert ctx.out_dir is not None, "export steps run with an output folder"
    unknown = [v for v in params.views if v not in VIEWS]
    if unknown:
        raise ValueError(f"unknown view(s) {unknown}; choose from {sorted(VIEWS)}")
    background = parse_background(params.background)
    model = view.derived.get(f"visual.render_model{view.units.up}", lambda: prepare(view.scene, view.units.up))
    written = []
    for name in params.views:
        image = render(model, name, size=params.size, supersample=params.supersample, background=background)
        path = ctx.out_dir / f"{view.out_name}.{name}.png"
        image.save(path, format="PNG", optimize=False)
        written.append(path)
    return written


def _to_gltf(up: str, metres_per_unit: float) -> np.ndarray:
    """4x4 taking the asset's coordinates to glTF's (+Y up, metres)."""
    from meshforge.visual.render import to_z_up

    z_to_y = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
    m = np.eye(4)
    m[:3, :3] = metres_per_unit * (z_to_y @ to_z_up(up))
    return m


def write_debug_glb(view: AssetView, params: DebugGlbParams, ctx: StepContext) -> list[Path]:
    from meshforge.visual.debug import debug_scene, find_problems, legend
    from meshforge.visual.render import to_z_up

    assert ctx.out_dir is not None, "export steps run with an output folder"
    mesh = view.mesh
    mpu = view.units.metres_per_unit(assume="mm") or 1e-3
    up = to_z_up(view.units.up).T @ np.array([0.0, 0.0, 1.0])
    problems = find_problems(
        mesh,
        findings=view.findings,
        up=up,
        overhang_deg=params.overhang_deg,
        thin_units=params.thin_mm * 1e-3 / mpu if params.thin_mm > 0 else 0.0,
        thin_max_faces=params.thin_max_faces,
    )
    scene = debug_scene(mesh, problems, to_gltf=_to_gltf(view.units.up, mpu))
    path = ctx.out_dir / f"{view.out_name}.debug.glb"
    path.write_bytes(scene.export(file_type="glb"))
    written = [path]
    if params.summary:
        info = {"schema": "meshforge.debug/1", "glb": path.name, "counts": problems.counts, "legend": legend(problems),
                "params": {"overhang_deg": params.overhang_deg, "thin_mm": params.thin_mm}}
        summary = ctx.out_dir / f"{view.out_name}.debug.json"
        summary.write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        written.append(summary)
    return written


@hookimpl
def meshforge_export_steps() -> list[ExportStep]:
    return [
        ExportStep(
            name="thumbnails",
            summary="PNG renders (front, three-quarter, top) with shading and base colour/texture; CPU only",
            params=ThumbnailParams,
            formats=("png",),
            write=write_thumbnails,
        ),
        ExportStep(
            name="debug_glb",
            summary="GLB with problem regions coloured: holes' borders, non-manifold edges, thin walls, overhangs",
            params=DebugGlbParams,
            formats=("glb", "json"),
            write=write_debug_glb,
        ),
    ]
