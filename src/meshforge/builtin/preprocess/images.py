"""``image.normalize``: make a photo safe and uniform before it goes to a generator.

Decoding goes through :func:`meshforge.io.images.open_image` (size checked from the header before a
pixel is decoded; corrupt or truncated data refused). Then: EXIF orientation applied, colour
converted to sRGB (embedded ICC profile, CMYK, 16-bit, palette), RGB or RGBA kept, every metadata
block dropped (EXIF with GPS, XMP, ICC), downsized to the provider's limit, optionally padded to a
square on a neutral or transparent background, written as PNG to the run's scratch folder.
The original file is untouched and stays in ``inputs.images``; the normalized copies go to
``inputs.prepared["images"]`` with their pixel digests (for the input fingerprint).

Rejections are :class:`~meshforge.errors.InputError` with codes ``image.too_small``,
``image.blurry`` (plus the reader's ``input.corrupt_image`` / ``input.image_too_large``).
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from meshforge.asset import Inputs
from meshforge.context import StepContext
from meshforge.errors import InputError
from meshforge.generation.fingerprint import pixels_digest
from meshforge.hookspecs import hookimpl
from meshforge.io.images import open_image
from meshforge.params import field
from meshforge.types import PreprocessStep

BACKGROUNDS = {"transparent": (0, 0, 0, 0), "white": (255, 255, 255, 255), "grey": (128, 128, 128, 255)}


@dataclass(frozen=True, kw_only=True)
class ImageParams:
    max_side: int = field(2048, "downsize so the longer side is at most this (px); generation APIs take ~1-4 K images")
    min_side: int = field(256, "reject images whose shorter side is below this (px): too little detail to generate from")
    blur_min: float = field(15.0, "reject when the sharpness score (Laplacian variance at 512 px) is below this; 0: off [heuristic]")
    pad_square: bool = field(False, "pad to a square canvas (some generators crop non-square input)")
    background: Literal["transparent", "white", "grey"] = field("transparent", "padding colour; images without alpha get white for 'transparent'")
    max_bytes: int = field(50 * 1024 * 1024, "refuse image files larger than this (bytes)")


def sharpness(gray: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of an 8-bit grayscale array (higher is sharper)."""
    g = gray.astype(np.float32)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = -4.0 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var())


def to_srgb(img: Any) -> Any:
    """RGB or RGBA in sRGB, whatever the input mode and embedded profile."""
    from PIL import Image, ImageCms

    icc = img.info.get("icc_profile")
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    if img.mode == "P":
        img = img.convert("RGBA" if has_alpha else "RGB")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            dst = ImageCms.createProfile("sRGB")
            base_mode = "RGBA" if has_alpha and img.mode in ("RGBA", "LA") else "RGB"
            if img.mode == "LA":
                img = img.convert("RGBA")
            if img.mode not in ("RGB", "RGBA", "CMYK", "L"):
                img = img.convert(base_mode)
            img = ImageCms.profileToProfile(img, src, dst, outputMode=base_mode if img.mode != "CMYK" else "RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile: fall back to Pillow's plain conversion below
    target = "RGBA" if has_alpha else "RGB"
    return img if img.mode == target else img.convert(target)


def normalize_image(data: bytes, *, name: str, params: ImageParams, max_pixels: int) -> tuple[Any, dict[str, Any]]:
    """The normalized Pillow image and what was done to it. Raises InputError on rejection."""
    from PIL import Image, ImageOps

    img = open_image(data, name=name, max_pixels=max_pixels)
    original = img.size
    orientation = img.getexif().get(0x0112, 1) if hasattr(img, "getexif") else 1
    img = ImageOps.exif_transpose(img) or img
    img = to_srgb(img)
    width, height = img.size
    if min(width, height) < params.min_side:
        raise InputError(name, f"image is {width}x{height} px; the shorter side must be at least {params.min_side} px "
                               "(image.min_side)", code="image.too_small")
    probe = img.convert("L")
    probe.thumbnail((512, 512), Image.Resampling.BILINEAR)
    score = sharpness(np.asarray(probe))
    if params.blur_min > 0 and score < params.blur_min:
        raise InputError(name, f"image looks blurred or featureless: sharpness {score:.1f} < {params.blur_min:g} "
                               "(image.blur_min)", code="image.blurry")
    resized = max(width, height) > params.max_side
    if resized:
        img.thumbnail((params.max_side, params.max_side), Image.Resampling.LANCZOS)
    padded = params.pad_square and img.size[0] != img.size[1]
    if padded:
        side = max(img.size)
        colour = BACKGROUNDS[params.background]
        mode = "RGBA" if img.mode == "RGBA" or params.background == "transparent" else "RGB"
        if mode == "RGB":
            colour = colour[:3]
        elif img.mode != "RGBA" and params.background == "transparent":
            mode, colour = "RGB", (255, 255, 255)  # no alpha to keep: a neutral white, not a black border
        canvas = Image.new(mode, (side, side), colour)
        canvas.paste(img, ((side - img.size[0]) // 2, (side - img.size[1]) // 2))
        img = canvas
    img = Image.frombytes(img.mode, img.size, img.tobytes())  # a fresh image: no info, exif, icc or text chunks
    info = {"source": name, "original_size": list(original), "size": list(img.size), "mode": img.mode,
            "exif_orientation": int(orientation), "resized": resized, "padded": padded, "sharpness": round(score, 2)}
    return img, info


def normalize(inputs: Inputs, params: ImageParams, ctx: StepContext) -> Inputs:
    if not inputs.images:
        return inputs
    folder = (ctx.work_dir or Path(tempfile.mkdtemp(prefix="meshforge-img-"))) / "preprocess"
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[str] = []
    digests: list[str] = []
    infos: list[dict[str, Any]] = []
    for i, path in enumerate(inputs.images):
        try:
            size = path.stat().st_size
            if size > params.max_bytes:
                raise InputError(path, f"image file is {size / 1e6:.1f} MB, over {params.max_bytes / 1e6:.1f} MB",
                                 code="input.image_too_large")
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(path, f"cannot read the image ({exc.strerror or exc})", code="input.unreadable") from None
        img, info = normalize_image(data, name=str(path), params=params, max_pixels=ctx.limits.max_image_pixels)
        out = folder / f"{i:02d}-{path.stem[:60]}.png"
        img.save(out, format="PNG", optimize=False)  # no exif=, icc_profile= or pnginfo=: metadata stripped
        paths.append(str(out))
        digests.append(pixels_digest(img))
        infos.append(info)
        ctx.log.info("image.normalize: %s %sx%s -> %sx%s", path.name, *info["original_size"], *info["size"])
    prepared = {**inputs.prepared, "images": tuple(paths), "image_digests": tuple(digests), "image_info": tuple(infos)}
    return replace(inputs, prepared=prepared)


@hookimpl
def meshforge_preprocess_steps() -> list[PreprocessStep]:
    return [
        PreprocessStep(
            name="image.normalize",
            summary="decode safely, apply EXIF orientation, sRGB RGB/RGBA, strip metadata, resize, pad; reject tiny/blurry",
            params=ImageParams,
            apply=normalize,
        )
    ]
