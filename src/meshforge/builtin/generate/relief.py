"""``relief``: photo -> printable relief or lithophane, offline (no network, no account).

Luminance becomes thickness on a flat base: a *lithophane* (default) is thick where the photo is
dark, so it shows the picture when lit from behind; a *relief* is high where the photo is bright.
The solid is closed and manifold by construction (:mod:`meshforge.ops.relief`), in millimetres,
+Z up, lying on z = 0, so "send a photo, receive a printable object" works with fdm-print-stl.
Returns None unless the job carries an image (the ``import`` step handles model files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from meshforge.asset import Inputs
from meshforge.context import StepContext
from meshforge.errors import InputError
from meshforge.hookspecs import hookimpl
from meshforge.io.images import open_image
from meshforge.ops.relief import heightmap_solid, luminance_heights
from meshforge.params import field
from meshforge.types import Generated, GenerateStep, Units


@dataclass(frozen=True, kw_only=True)
class ReliefParams:
    mode: Literal["lithophane", "relief"] = field("lithophane", "lithophane: dark = thick (backlit); relief: bright = high")
    invert: bool = field(False, "swap which tones are thick")
    width_mm: float = field(100.0, "width of the picture area (mm); height follows the photo's aspect ratio")
    min_thickness_mm: float = field(0.8, "thinnest point (mm): FDM minimum wall 0.8 mm = 2 x 0.4 mm lines (REQUIREMENTS 4b)")
    max_thickness_mm: float = field(3.0, "thickest point (mm); common lithophane range 0.8-3 mm [heuristic]")
    border_mm: float = field(3.0, "frame around the picture at full thickness (mm); 0: none")
    resolution_mm: float = field(0.4, "sample spacing (mm): one 0.4 mm nozzle line; finer detail cannot print on FDM")
    smooth_px: float = field(1.0, "Gaussian smoothing (samples) so no ridge is thinner than the nozzle can print")
    max_samples: int = field(600, "cap on samples per side (the triangle count grows with its square)")


def build_relief(data: bytes, params: ReliefParams, *, name: str, max_pixels: int) -> tuple[np.ndarray, np.ndarray, dict]:
    from PIL import Image, ImageOps

    from meshforge.builtin.preprocess.images import to_srgb

    if params.min_thickness_mm <= 0 or params.max_thickness_mm < params.min_thickness_mm:
        raise InputError(name, "relief needs 0 < min_thickness_mm <= max_thickness_mm", code="relief.bad_parameters")
    if params.width_mm <= 0 or params.resolution_mm <= 0:
        raise InputError(name, "relief needs width_mm > 0 and resolution_mm > 0", code="relief.bad_parameters")
    img = open_image(data, name=name, max_pixels=max_pixels)
    img = ImageOps.exif_transpose(img) or img
    img = to_srgb(img)
    if img.mode == "RGBA":  # transparent areas count as white (thin in a lithophane)
        flat = Image.new("RGB", img.size, (255, 255, 255))
        flat.paste(img, mask=img.getchannel("A"))
        img = flat
    gray = img.convert("L")
    cols = int(round(params.width_mm / params.resolution_mm)) + 1
    cols = max(2, min(cols, params.max_samples))
    rows = max(2, min(int(round(cols * gray.size[1] / gray.size[0])), params.max_samples))
    pixel_mm = params.width_mm / (cols - 1)
    gray = gray.resize((cols, rows), Image.Resampling.LANCZOS)
    dark_is_thick = (params.mode == "lithophane") != params.invert
    border_px = int(round(params.border_mm / pixel_mm)) if params.border_mm > 0 else 0
    heights = luminance_heights(np.asarray(gray), min_mm=params.min_thickness_mm, max_mm=params.max_thickness_mm,
                                dark_is_thick=dark_is_thick, border_px=border_px, smooth_px=params.smooth_px)
    vertices, faces = heightmap_solid(heights, pixel_mm)
    info = {"generator": "relief", "mode": params.mode, "invert": params.invert, "grid": [int(heights.shape[1]), int(heights.shape[0])],
            "pixel_mm": round(pixel_mm, 4), "size_mm": [round(float(vertices[:, 0].max()), 3), round(float(vertices[:, 1].max()), 3),
                                                        round(float(heights.max()), 3)],
            "image": name}
    return vertices, faces, info


def generate_relief(inputs: Inputs, params: ReliefParams, ctx: StepContext) -> Generated | None:
    if inputs.model is not None or inputs.scene is not None:
        return None
    images = [Path(p) for p in inputs.prepared.get("images", ())] or list(inputs.images)
    if not images:
        return None
    source = images[0]
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise InputError(source, f"cannot read the image ({exc.strerror or exc})", code="input.unreadable") from None
    import trimesh

    vertices, faces, info = build_relief(data, params, name=str(inputs.images[0] if inputs.images else source),
                                         max_pixels=ctx.limits.max_image_pixels)
    mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False)
    return Generated(scene=trimesh.Scene(mesh), filename=f"{inputs.id}.stl", units=Units("mm", "+Z"),
                     provenance={**info, "cost": {"amount": 0, "unit": "credits"}})


@hookimpl
def meshforge_generate_steps() -> list[GenerateStep]:
    return [
        GenerateStep(
            name="relief",
            summary="photo -> printable lithophane / relief on a base (offline; closed manifold solid in mm)",
            params=ReliefParams,
            generate=generate_relief,
        )
    ]
