"""Geometry hygiene shared by every profile (geometry.hygiene): empty, non-finite, degenerate and
duplicate triangles, unreferenced vertices. Codes are documented in docs/findings/geometry.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

import meshforge
from meshforge.params import field
from meshforge.types import Severity, ValidateStep

if TYPE_CHECKING:
    from collections.abc import Iterator

    from meshforge.asset import AssetView
    from meshforge.context import StepContext


@dataclass(frozen=True, kw_only=True)
class HygieneParams:
    max_degenerate_area_mm2: float = field(
        1e-4, "a triangle with area at or under this (mm^2; scene units converted) is degenerate (P5, Blender threshold_zero)"
    )


def exact_weld(view: AssetView) -> tuple[np.ndarray, int]:
    """Welded id per vertex of ``view.mesh`` (bit-identical positions; -1 for non-finite ones)."""
    from meshforge.ops.topology import weld

    return view.derived.get("geometry.weld_exact", lambda: weld(view.mesh.vertices))


def _samples(indices: np.ndarray) -> list[int]:
    return [int(i) for i in np.asarray(indices).reshape(-1)[:10]]


def check_hygiene(view: AssetView, params: HygieneParams, ctx: StepContext) -> Iterator[Any]:
    from meshforge.ops.units import length_of, scale_factor, window_of

    mesh = view.mesh
    v = np.asarray(mesh.vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    if len(f) == 0:
        yield ctx.finding("geometry.empty", Severity.ERROR, "the model has no triangles", measured=0, threshold=1, count=0)
        return
    with np.errstate(invalid="ignore", over="ignore"):  # a finite sum: every coordinate is finite, no (n, 3) mask
        all_finite = bool(np.isfinite(v.sum()))
    bad = np.zeros(0, dtype=np.int64) if all_finite else np.flatnonzero(~np.isfinite(v).all(axis=1))
    if len(bad):
        yield ctx.finding(
            "geometry.non_finite",
            Severity.ERROR,
            f"{len(bad)} vertices have NaN or infinite coordinates",
            measured=len(bad),
            threshold=0,
            count=len(bad),
            samples=_samples(bad),
        )
    ids, _ = exact_weld(view)
    a, b, c = (ids.take(np.ascontiguousarray(f[:, k])) for k in range(3))  # welded corners, one column each
    ok = None if len(ids) == 0 or ids.min() >= 0 else (np.minimum(np.minimum(a, b), c) >= 0)  # None: all finite
    repeated = a == b
    repeated |= b == c
    repeated |= c == a
    # unit-less: the storefront's one decision (print profiles stamp mm first); reading fuze.obj
    # (0.2 units across, metres by that decision) as mm made 973 of its 1000 triangles "degenerate"
    mm2 = scale_factor(length_of(view, "mm", window_of(ctx)), "mm") ** 2
    with np.errstate(invalid="ignore", over="ignore"):
        area = view.derived.face_geometry.area * mm2
        if ok is not None:
            area = np.where(ok, area, np.inf)
    degenerate = repeated | (area <= params.max_degenerate_area_mm2)
    if ok is not None:
        degenerate &= ok
    if degenerate.any():
        idx = np.flatnonzero(degenerate)
        yield ctx.finding(
            "geometry.degenerate_faces",
            Severity.WARNING,
            f"{len(idx)} triangles have (near) zero area or repeat a vertex",
            measured=len(idx),
            threshold=params.max_degenerate_area_mm2,
            count=len(idx),
            samples=_samples(idx),
        )
    # degenerate copies count too (as the corpus manifest counts them)
    live = np.arange(len(f)) if ok is None else np.flatnonzero(ok)
    if ok is not None:
        a, b, c = a[live], b[live], c[live]
    if len(live) > 1:
        # each face's welded ids in increasing order, by columns (np.sort(axis=1) is 5x slower)
        lo = np.minimum(np.minimum(a, b), c)
        hi = np.maximum(np.maximum(a, b), c)
        mid = a + b
        mid += c
        mid -= lo
        mid -= hi
        nv = int(hi.max()) + 1
        if nv < 2**21:  # three ids fit one int64: a plain sort, an argsort only when there are duplicates
            flat = lo * nv
            flat += mid
            flat *= nv
            flat += hi
            s = np.sort(flat)
            dup_sorted = np.zeros(len(s), dtype=bool)
            if (s[1:] == s[:-1]).any():
                order = np.argsort(flat, kind="stable")
                s = flat[order]
                dup_sorted[1:] = s[1:] == s[:-1]
        else:
            key = np.stack([lo, mid, hi], axis=1)
            order = np.lexsort(key.T[::-1])
            s = key[order]
            dup_sorted = np.zeros(len(s), dtype=bool)
            dup_sorted[1:] = (s[1:] == s[:-1]).all(axis=1)
        if dup_sorted.any():
            idx = np.sort(live[order[dup_sorted]])
            yield ctx.finding(
                "geometry.duplicate_faces",
                Severity.WARNING,
                f"{len(idx)} triangles repeat another triangle's corners (either winding)",
                measured=len(idx),
                threshold=0,
                count=len(idx),
                samples=_samples(idx),
            )
    referenced = np.zeros(len(v), dtype=bool)
    referenced[f.reshape(-1)] = True
    if not referenced.all():
        idx = np.flatnonzero(~referenced)
        yield ctx.finding(
            "geometry.unreferenced_vertices",
            Severity.INFO,
            f"{len(idx)} vertices are not used by any triangle",
            measured=len(idx),
            threshold=0,
            count=len(idx),
            samples=_samples(idx),
        )


@meshforge.hookimpl
def meshforge_validate_steps() -> list[ValidateStep]:
    return [
        ValidateStep(
            name="geometry.hygiene",
            summary="empty, NaN/Inf, degenerate and duplicate triangles, unreferenced vertices",
            params=HygieneParams,
            codes=(
                "geometry.empty",
                "geometry.non_finite",
                "geometry.degenerate_faces",
                "geometry.duplicate_faces",
                "geometry.unreferenced_vertices",
            ),
            check=check_hygiene,
        )
    ]
