"""Texture preparation for storefront GLBs: power-of-two sizes, the right codec for each role.

Roles decide encoding and colour handling (glTF 2.0 spec, materials):
* ``baseColor`` and ``emissive`` are sRGB colour: JPEG when opaque, PNG when alpha is used;
* ``normal``, ``metallicRoughness``, ``occlusion`` are linear data: PNG (lossless), RGB, never
  colour-managed, unless the source is already JPEG: its artifacts are in the pixels, and keeping
  them losslessly only made the file bigger (DamagedHelmet's maps: 3.9 MB of JPEG -> 8.3 MB).
  ICC profiles are dropped (glTF ignores them; the validator warns).
Where the profile allows ``EXT_texture_webp``, WebP replaces both: lossy for colour (alpha kept),
lossless for data maps (vectors and factors, not pictures) that are not JPEG already.
Pure functions over Pillow images; each result carries its encoded bytes so the GLB writer embeds
them as they are instead of encoding again.
"""

from __future__ import annotations

import hashlib
import io
import math
from dataclasses import dataclass
from typing import Any

COLOR_ROLES = ("baseColorTexture", "emissiveTexture")
DATA_ROLES = ("normalTexture", "metallicRoughnessTexture", "occlusionTexture")
ROLES = COLOR_ROLES + DATA_ROLES


def is_pot(n: int) -> bool:
    return n > 0 and (n & (n - 1)) == 0


def pot_size(n: int, max_px: int) -> int:
    """The power of two nearest ``n`` (in log scale), at most ``max_px`` (itself rounded down to POT)."""
    cap = 1 << max(int(math.floor(math.log2(max(max_px, 1)))), 0)
    if n <= 1:
        return 1
    nearest = 1 << int(round(math.log2(n)))
    return max(1, min(nearest, cap))


@dataclass(frozen=True)
class Prepared:
    image: Any  # PIL.Image with .format "JPEG", "PNG" or "WEBP" and its encoded bytes attached
    changed: bool
    before: tuple[int, int]
    after: tuple[int, int]
    codec: str


def uses_alpha(img: Any) -> bool:
    if img.mode not in ("RGBA", "LA", "PA") and not (img.mode == "P" and "transparency" in img.info):
        return False
    alpha = img.convert("RGBA").getchannel("A")
    lo, _ = alpha.getextrema()
    return lo < 255


def prepare_texture(img: Any, role: str, *, max_px: int, opaque_material: bool = True,
                    jpeg_quality: int = 90, webp: bool = False) -> Prepared:
    """Resize ``img`` to power-of-two sides <= ``max_px`` and encode it as its role needs."""
    from PIL import Image

    from meshforge.io.images import attach_encoded

    width, height = img.size
    size = (pot_size(width, max_px), pot_size(height, max_px))
    if role in COLOR_ROLES:
        alpha = role == "baseColorTexture" and not opaque_material and uses_alpha(img)
        mode, codec = ("RGBA", "PNG") if alpha else ("RGB", "JPEG")
    source_format = (img.format or "").upper()
    lossy_source = source_format == "JPEG"
    if role not in COLOR_ROLES:
        mode, codec = "RGB", "JPEG" if lossy_source else "PNG"
    if webp:
        codec = "WEBP"
    needs = size != (width, height) or img.mode != mode or source_format != codec or "icc_profile" in img.info
    if not needs:
        return Prepared(image=img, changed=False, before=(width, height), after=size, codec=codec)
    work = img
    if work.mode in ("I;16", "I;16B", "I;16L", "I"):
        work = work.point(lambda v: v / 256).convert("L")  # 16-bit -> 8-bit, no colour management
    work = work.convert(mode)
    if size != (width, height):
        work = work.resize(size, Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    if codec == "JPEG":
        work.save(buf, format="JPEG", quality=jpeg_quality, optimize=True)
    elif codec == "WEBP":
        lossless = role in DATA_ROLES and not lossy_source
        work.save(buf, format="WEBP", lossless=lossless, quality=100 if lossless else jpeg_quality, method=4)
    else:
        work.save(buf, format="PNG", optimize=False)
    data = buf.getvalue()
    out = Image.open(io.BytesIO(data))
    out.load()
    attach_encoded(out, data)
    return Prepared(image=out, changed=True, before=(width, height), after=size, codec=codec)


def image_digest(img: Any) -> str:
    """Content hash of the pixels (not the container), to find duplicate textures."""
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{img.mode}{img.size}".encode())
    h.update(img.tobytes())
    return h.hexdigest()
