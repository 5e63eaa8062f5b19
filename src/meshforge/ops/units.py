"""Length units: conversion factors and the "what unit was this really in?" heuristic.

Generated and exported models lose their units all the time (STL has none; a GLB exporter that
forgot to convert writes millimetres as metres). A part's size says a lot: a 0.04-unit-tall
figurine is in metres, a 4000-unit-tall one is in micrometres or badly scaled.
"""

from __future__ import annotations

from types import MappingProxyType

METRES = MappingProxyType({"um": 1e-6, "mm": 1e-3, "cm": 1e-2, "m": 1.0, "in": 0.0254, "ft": 0.3048})
ALIASES = MappingProxyType(
    {
        "micron": "um", "micrometer": "um", "micrometre": "um", "millimeter": "mm", "millimetre": "mm",
        "centimeter": "cm", "centimetre": "cm", "meter": "m", "metre": "m", "inch": "in", "foot": "ft", "feet": "ft",
    }
)
# Units worth suggesting, most common mistakes first (a metres export read as mm is the classic).
_CANDIDATES = ("m", "in", "cm", "mm", "um")


def normalize(unit: str) -> str:
    """``"millimeter"`` -> ``"mm"``; raises ValueError for an unknown unit."""
    key = unit.strip().lower()
    key = ALIASES.get(key, key)
    if key not in METRES:
        raise ValueError(f"unknown length unit {unit!r}; known: {', '.join(METRES)}")
    return key


def scale_factor(src: str, dst: str) -> float:
    """Multiply coordinates in ``src`` units by this to get ``dst`` units."""
    return METRES[normalize(src)] / METRES[normalize(dst)]


def likely_unit(max_extent: float, assumed: str = "mm", plausible_mm: tuple[float, float] = (1.0, 2000.0)) -> str | None:
    """The unit under which a part ``max_extent`` (in ``assumed`` units) long is plausible.

    Returns None when it is already plausible as assumed, or when no unit makes it plausible
    (then the size itself is the problem, not the unit). Among units that fit, the one putting
    the part closest to the middle of the plausible range (geometric mean) wins.
    """
    import math

    if not (max_extent > 0 and math.isfinite(max_extent)):
        return None
    low, high = plausible_mm
    assumed = normalize(assumed)

    def size_mm(unit: str) -> float:
        return max_extent * scale_factor(unit, "mm")

    if low <= size_mm(assumed) <= high:
        return None
    centre = math.log(math.sqrt(low * high))
    fits = [u for u in _CANDIDATES if u != assumed and low <= size_mm(u) <= high]
    if not fits:
        return None
    return min(fits, key=lambda u: abs(math.log(size_mm(u)) - centre))
