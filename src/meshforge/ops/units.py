"""Length units: conversion factors and the "what unit was this really in?" heuristic.

Generated and exported models lose their units all the time (STL has none; a GLB exporter that
forgot to convert writes millimetres as metres). A part's size says a lot: a 0.04-unit-tall
figurine is in metres, a 4000-unit-tall one is in micrometres or badly scaled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from meshforge.asset import AssetView
    from meshforge.context import StepContext

METRES = MappingProxyType({"um": 1e-6, "mm": 1e-3, "cm": 1e-2, "m": 1.0, "in": 0.0254, "ft": 0.3048})
ALIASES = MappingProxyType(
    {
        "micron": "um", "micrometer": "um", "micrometre": "um", "millimeter": "mm", "millimetre": "mm",
        "centimeter": "cm", "centimetre": "cm", "meter": "m", "metre": "m", "inch": "in", "foot": "ft", "feet": "ft",
    }
)
# Units worth suggesting, most common mistakes first (a metres export read as mm is the classic).
_CANDIDATES = ("m", "in", "cm", "mm", "um")
NAMES = MappingProxyType({"mm": "millimetres", "cm": "centimetres", "in": "inches", "um": "micrometres", "m": "metres", "ft": "feet"})

# Storefront reading of a file whose unit is missing or implausible: the first unit in this order
# that gives a plausible size. m first: glTF's unit, and Blender writes OBJ/STL in metres at scale 1.
# mm next: CAD, BIM, OpenSCAD and slicers model in mm and their GLB/OBJ exports often forget to
# convert (BIMserver#1359, cascadio#11: "models in millimeters"). cm (Maya, FBX) and in (US CAD)
# last. With the 1 cm..10 m window, m fits extents up to 10 and mm from 10 up, so cm and in are
# chosen only when product dimensions say so. The geometric-middle rule of likely_unit, used
# without a preference, put a 95-unit mug at 0.95 m (cm) instead of 95 mm.
STOREFRONT_PREFERENCE = ("m", "mm", "cm", "in")
STOREFRONT_SIZE_M = (0.01, 10.0)  # REQUIREMENTS C16: 1 cm..10 m, the plausible largest dimension
# Product dimensions pick the unit whose reading is within this factor of them: closer than any two
# candidate units are to each other (in/cm, 2.54x), so at most one unit can match.
DIMENSIONS_MATCH = 1.25


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


def likely_unit(max_extent: float, assumed: str = "mm", plausible_mm: tuple[float, float] = (1.0, 2000.0),
                prefer: Sequence[str] = ()) -> str | None:
    """The unit under which a part ``max_extent`` (in ``assumed`` units) long is plausible.

    Returns None when it is already plausible as assumed, or when no unit makes it plausible
    (then the size itself is the problem, not the unit). Among units that fit, the first in
    ``prefer`` wins; without one (the print checks), the unit putting the part closest to the
    middle of the plausible range (geometric mean).
    """
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
    rank = {u: i for i, u in enumerate(prefer)}
    return min(fits, key=lambda u: (rank.get(u, len(rank)), abs(math.log(size_mm(u)) - centre)))


# --- one storefront unit decision per asset ------------------------------------------------------


@dataclass(frozen=True)
class UnitDecision:
    """The unit an asset's coordinates are read in, and why (for the finding and the repair note).

    ``source``: "stated" (the file, or the profile's ``run.assume_units`` stamped on a unit-less
    file), "dimensions" (the product's dimensions match this unit), "size" (the first unit in the
    preference giving a plausible size), "default" (nothing plausible: metres, glTF's unit).
    """

    unit: str
    source: Literal["stated", "dimensions", "size", "default"]
    reason: str

    @property
    def guessed(self) -> bool:
        return self.source != "stated"


def decide_unit(extents: Sequence[float], stated: str | None, *, plausible_m: tuple[float, float] = STOREFRONT_SIZE_M,
                expected_m: Sequence[float | None] = (), prefer: Sequence[str] = STOREFRONT_PREFERENCE) -> UnitDecision:
    """Which unit the numbers of a model with these raw ``extents`` are in, for a storefront.

    A stated unit that gives a plausible size is kept. Otherwise (no unit, or an implausible one)
    product dimensions decide when one unit matches them, then the first unit in ``prefer`` that
    gives a plausible size. Every step that needs the unit calls this with the same inputs, so the
    report, the repair and the file agree.
    """
    finite = [float(e) for e in extents if math.isfinite(float(e))]
    largest = max(finite, default=0.0)
    low, high = plausible_m
    base = normalize(stated) if stated else prefer[0] if prefer else "m"
    plausible = low <= largest * METRES[base] <= high
    if stated and plausible:
        return UnitDecision(base, "stated", "stated by the file (or the profile's run.assume_units)")
    matched = _dimensions_unit(finite, expected_m)
    if matched is not None:
        return UnitDecision(matched, "dimensions", "it matches the product's dimensions")
    order = f"the first unit in the order {', '.join(prefer)} giving a plausible size ({low:g}-{high:g} m)"
    if plausible:  # unit-less, and the first preference fits
        return UnitDecision(base, "size", order)
    guess = likely_unit(largest, base, (low * 1000.0, high * 1000.0), prefer=prefer) if largest > 0 else None
    if guess is not None:
        return UnitDecision(guess, "size", order)
    kept = "as stated" if stated else "glTF's unit"
    return UnitDecision(base, "stated" if stated else "default",
                        f"no unit gives a plausible size ({low:g}-{high:g} m); {NAMES[base]}, {kept}")


def decide_for(view: AssetView, plausible_m: tuple[float, float] = STOREFRONT_SIZE_M) -> UnitDecision | None:
    """:func:`decide_unit` for an asset: its finite extents in the file's own numbers, its stated
    unit, its product dimensions. commerce.scale, commerce.to_metres and the GLB writer all ask
    this, so they cannot disagree. None without finite geometry."""
    import numpy as np

    from meshforge.ops.commerce_checks import finite_bounds

    verts = np.asarray(view.mesh.vertices)
    lo, hi = finite_bounds(verts) if len(verts) else (None, None)
    if lo is None or hi is None:
        return None
    return decide_unit((hi - lo).tolist(), view.units.length, plausible_m=plausible_m,
                       expected_m=expected_dimensions_m(view.inputs.metadata))


def window_of(ctx: StepContext) -> tuple[float, float]:
    """The plausible storefront size window (m): commerce.scale's when the chain has it, so every
    step reading a unit takes the decision the scale check reported."""
    scale = ctx.params_of("commerce.scale")
    return (scale.min_size_m, scale.max_size_m) if scale is not None else STOREFRONT_SIZE_M


def length_of(view: AssetView, default: str = "m", window: tuple[float, float] = STOREFRONT_SIZE_M) -> str:
    """The unit ``view``'s coordinates are in: stated, else :func:`decide_for`'s answer within
    ``window`` (:func:`window_of`), else ``default`` (no finite geometry). What the checks
    measure in and the writers convert from."""
    if view.units.length:
        return view.units.length
    decision = decide_for(view, window)
    return decision.unit if decision is not None else default


def _dimensions_unit(extents: Sequence[float], expected_m: Sequence[float | None]) -> str | None:
    """The unit whose reading of ``extents`` matches every given product dimension within
    DIMENSIONS_MATCH, each against the closest extent (axis-free: a model lying on its side
    still tells its unit)."""
    want = [float(v) for v in expected_m if v is not None and math.isfinite(float(v)) and v > 0]
    have = [e for e in extents if e > 0]
    if not want or not have:
        return None
    limit = math.log(DIMENSIONS_MATCH)

    def worst(unit: str) -> float:
        return max(min(abs(math.log(e * METRES[unit] / w)) for e in have) for w in want)

    best = min(METRES, key=worst)
    return best if worst(best) <= limit else None


def expected_dimensions_m(metadata: Mapping[str, Any]) -> tuple[float | None, float | None, float | None]:
    """(width, height, depth) in metres from product metadata: ``dimensions_mm`` (a mapping with
    width/height/depth or a 3-list), overridden per axis by ``width_m``/``height_m``/``depth_m``.
    Missing or unreadable values are None."""
    expected: list[float | None] = [None, None, None]
    dims_mm = metadata.get("dimensions_mm")
    if isinstance(dims_mm, Mapping):
        expected = [_mm_to_m(dims_mm.get(k)) for k in ("width", "height", "depth")]
    elif isinstance(dims_mm, (list, tuple)) and len(dims_mm) == 3:
        expected = [_mm_to_m(v) for v in dims_mm]
    for axis, key in enumerate(("width_m", "height_m", "depth_m")):
        value = number(metadata.get(key))
        if value is not None:
            expected[axis] = value
    return expected[0], expected[1], expected[2]


def number(value: Any) -> float | None:
    """A finite float from a metadata value (number or numeric string), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        out = float(value)
    except ValueError:
        return None
    return out if math.isfinite(out) else None


def _mm_to_m(value: Any) -> float | None:
    mm = number(value)
    return None if mm is None else mm / 1000.0
