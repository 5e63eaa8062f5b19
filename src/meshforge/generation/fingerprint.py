"""Fingerprints: the same input, provider and parameters are generated once.

``input_fingerprint`` covers what the user gave, normalized (image *pixels* after orientation and
colour conversion, so re-saved or metadata-stripped copies match; the prompt with whitespace and
Unicode form normalized). ``job_key`` adds the provider, its options and the attempt number, so a
regeneration (attempt 2) is a new job while a re-run of attempt 1 reuses the earlier result.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from collections.abc import Iterable, Mapping
from typing import Any

VERSION = 1  # bump when normalization changes, so old fingerprints stop matching


def normalize_prompt(prompt: str | None) -> str:
    if not prompt:
        return ""
    return " ".join(unicodedata.normalize("NFC", prompt).split())


def pixels_digest(image: Any) -> str:
    """sha256 of a Pillow image's mode, size and pixel bytes (metadata and encoding ignored)."""
    h = hashlib.sha256()
    h.update(f"{image.mode}:{image.size[0]}x{image.size[1]}:".encode())
    h.update(image.tobytes())
    return h.hexdigest()


def bytes_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str, ensure_ascii=True)


def input_fingerprint(image_digests: Iterable[str], prompt: str | None) -> str:
    body = {"v": VERSION, "images": list(image_digests), "prompt": normalize_prompt(prompt)}
    return hashlib.sha256(_canonical(body).encode()).hexdigest()


def job_key(input_fp: str, provider: str, options: Mapping[str, Any], attempt: int = 1) -> str:
    body = {"v": VERSION, "input": input_fp, "provider": provider, "options": dict(options), "attempt": int(attempt)}
    return f"{provider}:{hashlib.sha256(_canonical(body).encode()).hexdigest()[:32]}"


__all__ = ["VERSION", "bytes_digest", "input_fingerprint", "job_key", "normalize_prompt", "pixels_digest"]
