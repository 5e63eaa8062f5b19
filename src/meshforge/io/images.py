"""Safe image decoding: the size is checked from the header before a single pixel is decoded.

Pillow's own bomb guard is a process-wide setting (``Image.MAX_IMAGE_PIXELS``); meshforge never
touches it. Each call gets its own limit from the profile, so two engines with different limits
can run side by side.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from meshforge.errors import InputError

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's name: "PNG", "JPEG", "WEBP"...
    width: int
    height: int
    mode: str

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def mime(self) -> str:
        return {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp", "GIF": "image/gif",
                "BMP": "image/bmp", "TIFF": "image/tiff"}.get(self.format, f"image/{self.format.lower()}")


def _lazy_open(data: bytes, name: str) -> Image.Image:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow warns (or raises) on bombs by its global limit; we apply our own limit below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))  # lazy: reads the header only
    except Image.DecompressionBombError:
        # Over twice Pillow's global default: certainly over any sane limit; say how big it claims to be.
        raise InputError(name, "image dimensions exceed the decoding limit (decompression bomb)", code="input.image_too_large") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InputError(name, f"not a readable image ({exc})", code="input.corrupt_image") from None


def image_info(data: bytes, name: str = "<image>") -> ImageInfo:
    """Format, size and mode from the header, without decoding pixels."""
    img = _lazy_open(data, name)
    width, height = img.size
    return ImageInfo(format=str(img.format or "unknown"), width=int(width), height=int(height), mode=str(img.mode))


def open_image(data: bytes, *, name: str = "<image>", max_pixels: int = 64 * 1024 * 1024) -> Image.Image:
    """Decode an image fully, refusing bombs (before decoding) and corrupt or truncated data."""
    from PIL import Image

    img = _lazy_open(data, name)
    width, height = img.size
    if width <= 0 or height <= 0:
        raise InputError(name, f"image has no pixels ({width}x{height})", code="input.corrupt_image")
    if width * height > max_pixels:
        raise InputError(
            name,
            f"image is {width}x{height} = {width * height / 1e6:.0f} Mpx, over the limit of {max_pixels / 1e6:.0f} Mpx "
            "(limits.max_image_pixels)",
            code="input.image_too_large",
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img.load()
    except Image.DecompressionBombError:
        raise InputError(name, "image exceeds the decoding limit (decompression bomb)", code="input.image_too_large") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputError(name, f"image is truncated or corrupt ({exc})", code="input.corrupt_image") from None
    return img
