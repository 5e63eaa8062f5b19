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
    except UnidentifiedImageError:  # its text names our in-memory buffer object, which tells the user nothing
        raise InputError(name, f"not an image format Pillow reads (first bytes {data[:8]!r})", code="input.corrupt_image") from None
    except (OSError, ValueError, SyntaxError) as exc:
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
    attach_encoded(img, data)
    return img


# Kept in ``img.info`` because that is what survives the deep copies trimesh makes of materials;
# Pillow also copies ``info`` into derived images (convert, resize), so the entry carries a digest of
# the pixels and is believed only while the pixels still match.
_ENCODED = "meshforge.encoded"
_MIMES = {b"\x89PNG": "image/png", b"\xff\xd8\xff": "image/jpeg", b"RIFF": "image/webp"}


def _pixels_digest(img: Image.Image) -> str:
    import xxhash

    return f"{img.mode}{img.size}{xxhash.xxh3_64_hexdigest(img.tobytes())}"


def _mime(data: bytes) -> str | None:
    for magic, mime in _MIMES.items():
        if data.startswith(magic) and (mime != "image/webp" or data[8:12] == b"WEBP"):
            return mime
    return None


def attach_encoded(img: Image.Image, data: bytes) -> None:
    """Remember the encoded bytes ``img`` was decoded from, so writers can embed them unchanged."""
    if _mime(data) is not None:
        img.info[_ENCODED] = (_pixels_digest(img), bytes(data))


def encoded_bytes(img: Image.Image) -> tuple[bytes, str] | None:
    """The PNG, JPEG or WebP bytes ``img`` was decoded from, when known and still true to its pixels."""
    entry = img.info.get(_ENCODED)
    if not (isinstance(entry, tuple) and len(entry) == 2) or entry[0] != _pixels_digest(img):
        return None
    mime = _mime(entry[1])
    return (entry[1], mime) if mime else None
