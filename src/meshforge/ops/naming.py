"""The Khronos naming convention storefront pipelines expect (REQUIREMENTS C20): lower-case letters,
digits, ``_`` and ``-``, starting with a letter. One rule for the check that reports names and the
GLB writer that produces them."""

from __future__ import annotations

import re

CONVENTIONAL = re.compile(r"[a-z][a-z0-9_-]*\Z")
_OUTSIDE = re.compile(r"[^a-z0-9_-]+")


def is_conventional(name: str) -> bool:
    return bool(CONVENTIONAL.match(name))


def conventional(name: str, kind: str) -> str:
    """``name`` in the convention: "Chair Leg.001" -> "chair_leg_001", "2nd" -> "node_2nd" (for kind
    "node"), "geometry_0/geometry_0" -> "geometry_0_geometry_0"; an empty result becomes ``kind``."""
    slug = _OUTSIDE.sub("_", name.strip().lower()).strip("_")
    if not slug:
        return kind
    return slug if slug[0].isalpha() else f"{kind}_{slug}"
