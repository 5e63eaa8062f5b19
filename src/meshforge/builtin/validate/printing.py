"""Print checks (profiles print-base, fdm-print-stl, sla-print-stl): thin adapters over meshforge.ops.

Every check reads the mesh in millimetres (``view.units``; the profile's ``run.assume_units`` fills
in unit-less formats) and shares the welded topology through ``view.derived`` so closed, manifold,
orientation and shells weld and sort the edges once. Severities follow ../shared/REQUIREMENTS.md
Part 4b (fail -> error, warn -> warning). Finding codes are documented in docs/findings/print.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

import meshforge
from meshforge.builtin.validate.core import exact_weld
from meshforge.params import field
from meshforge.types import Severity, ValidateStep

if TYPE_CHECKING:
    from collections.abc import Iterator

    from meshforge.asset import AssetView
    from meshforge.context import StepContext
    from meshforge.ops.thickness import RayCaster
    from meshforge.ops.topology import Topology

SeverityName = Literal["error", "warning", "info"]
WELD_HELP = "vertices of edges left open by exact matching also weld within this fraction of the bounding-box diagonal"
WELD_DEFAULT = 1e-6  # far below PrusaSlicer's nearby matching (shortest edge, REQUIREMENTS 2c); closes float cracks


# --- shared derived values ------------------------------------------------------------------


def mm_per_unit(view: AssetView) -> float:
    """Factor from scene units to millimetres (unit-less scenes are taken as millimetres)."""
    from meshforge.ops.units import scale_factor

    return scale_factor(view.units.length or "mm", "mm")


def up_vector(view: AssetView) -> np.ndarray:
    text = (view.units.up or "+Z").strip().upper()
    sign = -1.0 if text.startswith("-") else 1.0
    axis = {"X": 0, "Y": 1, "Z": 2}.get(text[-1], 2)
    up = np.zeros(3)
    up[axis] = sign
    return up


def finite_mesh(view: AssetView) -> tuple[np.ndarray, np.ndarray]:
    """Vertices and the faces whose corners are all finite (non-finite ones are reported by hygiene)."""
    v, f, _ = _finite(view)
    return v, f


def face_ids(view: AssetView) -> np.ndarray:
    """Index in ``view.mesh.faces`` of each face :func:`finite_mesh` kept (for samples)."""
    return _finite(view)[2]


def _finite(view: AssetView) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    def compute() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        mesh = view.mesh
        v = np.asarray(mesh.vertices, dtype=np.float64)
        f = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
        ids = np.arange(len(f))
        ok = np.isfinite(v).all(axis=1)
        if not ok.all() and len(f):
            ids = np.flatnonzero(ok[f].all(axis=1))
            f = f[ids]
        return v, f, ids

    return view.derived.get("print.finite_mesh", compute)


def used_points(view: AssetView) -> np.ndarray:
    """Finite vertices that some face uses (a boolean mask, not np.unique over every corner)."""

    def compute() -> np.ndarray:
        v, f = finite_mesh(view)
        used = np.zeros(len(v), dtype=bool)
        used[f.reshape(-1)] = True
        return v[used]

    return view.derived.get("print.used_points", compute)


def topo(view: AssetView, weld_rel: float) -> Topology:
    def compute() -> Topology:
        from meshforge.ops.topology import topology

        mesh = view.mesh
        v = np.asarray(mesh.vertices, dtype=np.float64)
        ok = np.isfinite(v).all(axis=1)
        pts = v if ok.all() else v[ok]
        diag = float(np.linalg.norm(np.ptp(pts, axis=0))) if len(pts) else 0.0
        return topology(mesh.vertices, mesh.faces, weld_rel * diag, geometry=view.derived.face_geometry, welded=exact_weld(view))

    return view.derived.get(f"print.topology:{weld_rel!r}", compute)


def _samples(indices: np.ndarray) -> list[int]:
    return [int(i) for i in np.asarray(indices).reshape(-1)[:10]]


def _empty(view: AssetView) -> bool:
    return len(finite_mesh(view)[1]) == 0


# --- print.closed ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ClosedParams:
    weld_tolerance: float = field(WELD_DEFAULT, WELD_HELP)


def check_closed(view: AssetView, params: ClosedParams, ctx: StepContext) -> Iterator[Any]:
    if _empty(view):
        return
    t = topo(view, params.weld_tolerance)
    if not t.closed:
        yield ctx.finding(
            "print.not_watertight",
            Severity.ERROR,
            f"mesh is open after welding coincident vertices: {len(t.boundary_edges)} boundary edges "
            f"in {t.boundary_loops} hole(s)",
            measured=t.boundary_loops,
            threshold=0,
            count=len(t.boundary_edges),
            samples=_samples(t.boundary_faces),
        )


# --- print.manifold -------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ManifoldParams:
    weld_tolerance: float = field(WELD_DEFAULT, WELD_HELP)


def check_manifold(view: AssetView, params: ManifoldParams, ctx: StepContext) -> Iterator[Any]:
    if _empty(view):
        return
    t = topo(view, params.weld_tolerance)
    if len(t.nonmanifold_edges):
        yield ctx.finding(
            "print.non_manifold_edges",
            Severity.ERROR,
            f"{len(t.nonmanifold_edges)} edges are shared by more than two faces",
            measured=len(t.nonmanifold_edges),
            threshold=0,
            count=len(t.nonmanifold_edges),
            samples=_samples(t.nonmanifold_faces),
        )
    if len(t.nonmanifold_vertices):
        yield ctx.finding(
            "print.non_manifold_vertices",
            Severity.ERROR,
            f"{len(t.nonmanifold_vertices)} vertices join separate fans of faces (bow-tie)",
            measured=len(t.nonmanifold_vertices),
            threshold=0,
            count=len(t.nonmanifold_vertices),
            samples=_samples(t.nonmanifold_vertices),
        )


# --- print.orientation ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OrientationParams:
    weld_tolerance: float = field(WELD_DEFAULT, WELD_HELP)


def check_orientation(view: AssetView, params: OrientationParams, ctx: StepContext) -> Iterator[Any]:
    if _empty(view):
        return
    t = topo(view, params.weld_tolerance)
    if t.winding_conflicts:
        yield ctx.finding(
            "print.inconsistent_winding",
            Severity.ERROR,
            f"{t.winding_conflicts} edges are traversed in the same direction by both faces (flipped faces)",
            measured=t.winding_conflicts,
            threshold=0,
            count=t.winding_conflicts,
            samples=_samples(t.winding_faces),
        )
        return  # the sign of the volume means nothing until the winding agrees
    if not t.closed:
        return  # an open mesh has no inside; print.closed reports it
    scale = mm_per_unit(view) ** 3
    # volumes within round-off of zero (double-sided sheets, flat parts) say nothing about orientation
    diag = float(np.linalg.norm(np.ptp(used_points(view), axis=0)))
    vtol = 1e-9 * diag**3
    inverted = _inverted_shells(view, t, vtol)
    if t.volume < -vtol or len(inverted):
        shells = len(inverted) if len(inverted) else t.n_shells
        yield ctx.finding(
            "print.inverted",
            Severity.ERROR,
            f"faces point inward: signed volume {t.volume * scale:.6g} mm^3"
            + (f"; {len(inverted)} of {t.n_shells} shells are inside out" if t.n_shells > 1 else ""),
            measured=float(t.volume * scale),
            threshold=0.0,
            count=shells,
            samples=_samples([np.flatnonzero(t.shell_of_face == s)[0] for s in inverted[:10]]),
        )


def _inverted_shells(view: AssetView, t: Topology, vtol: float) -> np.ndarray:
    """Shells with negative volume that are not voids (their box is not inside a positive shell's box)."""
    neg = np.flatnonzero(t.shell_volume < -vtol)
    if len(neg) == 0 or t.n_shells == 1:
        return neg if t.n_shells == 1 else np.zeros(0, dtype=np.int64)
    v = view.mesh.vertices
    faces = view.mesh.faces
    lo = np.full((t.n_shells, 3), np.inf)
    hi = np.full((t.n_shells, 3), -np.inf)
    ok = t.shell_of_face >= 0
    pts = v[faces[ok]]
    lab = t.shell_of_face[ok]
    for k in range(3):  # per axis, not per face: three vectorized reductions
        np.minimum.at(lo[:, k], lab, pts[:, :, k].min(axis=1))
        np.maximum.at(hi[:, k], lab, pts[:, :, k].max(axis=1))
    pos = np.flatnonzero(t.shell_volume > vtol)
    inside = ((lo[neg][:, None] >= lo[pos][None]) & (hi[neg][:, None] <= hi[pos][None])).all(axis=2).any(axis=1)
    return neg[~inside]


# --- print.shells ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ShellsParams:
    debris_max_fraction: float = field(0.001, "a shell under this fraction of the largest shell's volume is debris (P7)")
    debris_min_mm: float = field(0.0, "also debris: shells whose largest extent is under this many mm (0: off)")
    weld_tolerance: float = field(WELD_DEFAULT, WELD_HELP)


def check_shells(view: AssetView, params: ShellsParams, ctx: StepContext) -> Iterator[Any]:
    if _empty(view):
        return
    t = topo(view, params.weld_tolerance)
    if t.n_shells <= 1:
        return
    yield ctx.finding(
        "print.multiple_shells",
        Severity.INFO,
        f"mesh has {t.n_shells} separate shells (print services want one part per file)",
        measured=t.n_shells,
        threshold=1,
        count=t.n_shells,
        samples=_samples(_first_face_per_shell(t)),
    )
    size = np.abs(t.shell_volume)
    basis = "volume"
    if size.max() <= 0:
        size, basis = t.shell_area, "area"
    debris = size < params.debris_max_fraction * size.max()
    if params.debris_min_mm > 0:
        debris |= _shell_extent_mm(view, t) < params.debris_min_mm
    if debris.any() and not debris.all():
        ids = np.flatnonzero(debris)
        yield ctx.finding(
            "print.debris_shells",
            Severity.WARNING,
            f"{len(ids)} of {t.n_shells} shells are debris (under {params.debris_max_fraction:g} of the largest shell's {basis})",
            measured=float(size[ids].max() / size.max()),
            threshold=params.debris_max_fraction,
            count=len(ids),
            samples=_samples(_first_face_per_shell(t)[ids]),
        )


def _first_face_per_shell(t: Topology) -> np.ndarray:
    first = np.full(t.n_shells, -1, dtype=np.int64)
    ok = np.flatnonzero(t.shell_of_face >= 0)
    first[t.shell_of_face[ok][::-1]] = ok[::-1]
    return first


def _shell_extent_mm(view: AssetView, t: Topology) -> np.ndarray:
    v = view.mesh.vertices
    ok = np.flatnonzero(t.shell_of_face >= 0)
    pts = v[view.mesh.faces[ok]]
    lab = t.shell_of_face[ok]
    lo = np.full((t.n_shells, 3), np.inf)
    hi = np.full((t.n_shells, 3), -np.inf)
    for k in range(3):
        np.minimum.at(lo[:, k], lab, pts[:, :, k].min(axis=1))
        np.maximum.at(hi[:, k], lab, pts[:, :, k].max(axis=1))
    return (hi - lo).max(axis=1) * mm_per_unit(view)


# --- print.self_intersections ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class IntersectionsParams:
    severity: SeverityName = field("warning", "severity of a self-intersection (P6: warn for FDM, fail for powder services)")
    weld_tolerance: float = field(WELD_DEFAULT, WELD_HELP)


def check_self_intersections(view: AssetView, params: IntersectionsParams, ctx: StepContext) -> Iterator[Any]:
    if _empty(view):
        return
    t = topo(view, params.weld_tolerance)
    pairs = view.derived.get(f"print.intersections:{params.weld_tolerance!r}", lambda: _intersecting_faces(view, t))
    if len(pairs):
        faces = np.unique(pairs)
        yield ctx.finding(
            "print.self_intersections",
            params.severity,
            f"{len(faces)} faces intersect other faces ({len(pairs)} intersecting triangle pairs)",
            measured=len(pairs),
            threshold=0,
            count=len(faces),
            samples=_samples(faces),
        )


def _intersecting_faces(view: AssetView, t: Topology) -> np.ndarray:
    """Pairs of intersecting face indices; large crowded or mixed-size meshes go by edge rays through
    the BVH the thickness check builds anyway (see ``intersecting_pairs``)."""
    from meshforge.ops.intersections import intersecting_pairs, intersecting_pairs_by_rays

    mesh = view.mesh
    ok = np.flatnonzero(t.valid)

    def by_rays() -> np.ndarray | None:
        caster = ray_caster(view, "auto")
        if caster.backend != "open3d":
            return None
        kept = face_ids(view)
        pairs = intersecting_pairs_by_rays(caster, t.faces[kept], kept)
        pairs = pairs[t.valid[pairs].all(axis=1)] if len(pairs) else pairs
        return np.searchsorted(ok, pairs)  # face ids -> rows of ok, order kept (both ascending)

    return ok[intersecting_pairs(np.asarray(mesh.vertices)[mesh.faces[ok]], t.faces[ok], rays=by_rays)]


# --- print.units ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class UnitsParams:
    min_size_mm: float = field(1.0, "largest dimension below this is implausible (wrong units, P1)")
    max_size_mm: float = field(2000.0, "largest dimension above this is implausible (wrong units, P1)")


def _extents(view: AssetView) -> np.ndarray | None:
    used = used_points(view)
    if len(used) == 0:
        return None
    return np.ptp(used, axis=0) * mm_per_unit(view)


def check_units(view: AssetView, params: UnitsParams, ctx: StepContext) -> Iterator[Any]:
    from meshforge.ops.units import likely_unit, scale_factor

    ext = _extents(view)
    if ext is None:
        return
    largest = float(ext.max())
    if params.min_size_mm <= largest <= params.max_size_mm:
        return
    assumed = view.units.length or "mm"
    in_units = largest / scale_factor(assumed, "mm")
    unit = likely_unit(in_units, assumed, (params.min_size_mm, params.max_size_mm))
    hint = f"; it is plausible in {unit} (scale x{scale_factor(unit, assumed):g})" if unit else "; no unit makes it plausible"
    side = "small" if largest < params.min_size_mm else "large"
    yield ctx.finding(
        "print.suspect_units",
        Severity.ERROR,
        f"largest dimension is {largest:.6g} mm read as {assumed}: too {side} to be a real part{hint}",
        measured=largest,
        threshold=[params.min_size_mm, params.max_size_mm],
    )


# --- print.build_volume ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BuildVolumeParams:
    volume_mm: tuple[float, float, float] = field((220.0, 210.0, 220.0), "printer build volume X, Y, Z in mm (P8, 2e)")
    allow_rotation: bool = field(True, "a part that fits only after rotating is a warning, not an error")


def check_build_volume(view: AssetView, params: BuildVolumeParams, ctx: StepContext) -> Iterator[Any]:
    v, f = finite_mesh(view)
    if len(f) == 0:
        return
    up = up_vector(view)
    axis = int(np.argmax(np.abs(up)))
    order = [a for a in range(3) if a != axis] + [axis]  # (x, y, up)
    pts = used_points(view) * mm_per_unit(view)
    ext = np.ptp(pts, axis=0)[order]
    vol = np.asarray(params.volume_mm, dtype=np.float64)
    tol = 1e-6 * max(float(vol.max()), 1.0)
    if (ext <= vol + tol).all():
        return
    rotated = None
    if np.all(np.sort(ext) <= np.sort(vol) + tol):
        rotated = "turning it 90 degrees about an axis"
    else:
        import trimesh

        try:
            _, obb = trimesh.bounds.oriented_bounds(pts)
            if np.all(np.sort(obb) <= np.sort(vol) + tol):
                rotated = f"rotating it (oriented box {' x '.join(f'{e:.1f}' for e in sorted(obb, reverse=True))} mm)"
        except Exception:  # degenerate (flat) point sets: qhull refuses; then the answer is "no"
            rotated = None
    size = " x ".join(f"{e:.1f}" for e in ext)
    box = " x ".join(f"{e:g}" for e in vol)
    if rotated and params.allow_rotation:
        yield ctx.finding(
            "print.exceeds_build_volume",
            Severity.WARNING,
            f"part {size} mm does not fit the {box} mm build volume as placed, but fits after {rotated}",
            measured=[float(e) for e in ext],
            threshold=[float(e) for e in vol],
        )
    else:
        yield ctx.finding(
            "print.exceeds_build_volume",
            Severity.ERROR,
            f"part {size} mm does not fit the {box} mm build volume in any orientation",
            measured=[float(e) for e in ext],
            threshold=[float(e) for e in vol],
        )


# --- print.triangle_budget ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class TriangleBudgetParams:
    max_triangles: int = field(1_000_000, "upload ceiling of the print service (P9: Shapeways 1,000,000)")


def check_triangle_budget(view: AssetView, params: TriangleBudgetParams, ctx: StepContext) -> Iterator[Any]:
    n = len(view.mesh.faces)
    if n > params.max_triangles:
        yield ctx.finding(
            "print.too_many_triangles",
            Severity.ERROR,
            f"{n} triangles exceed the ceiling of {params.max_triangles}",
            measured=n,
            threshold=params.max_triangles,
            count=n - params.max_triangles,
        )


# --- print.wall_thickness -------------------------------------------------------------------

# shared by the two ray checks, which cast from the same faces through one BVH
RayBackend = Literal["auto", "open3d", "trimesh"]
MAX_RAYS_HELP = "cast at most this many rays; larger meshes are sampled by area (seeded)"
BACKEND_HELP = "ray caster: open3d (Embree) when installed, else trimesh"


@dataclass(frozen=True, kw_only=True)
class ThicknessParams:
    min_mm: float = field(0.8, "walls thinner than this fail (P10; FDM 0.8 mm Hubs)")
    warn_mm: float = field(1.0, "walls thinner than this warn (P10; Blender thickness_min 1 mm)")
    error_min_fraction: float = field(
        0.001, "walls under min_mm are an error above this fraction of the surface, else a warning (knife edges, CAD slivers) [heuristic]"
    )
    max_rays: int = field(300_000, MAX_RAYS_HELP)
    backend: RayBackend = field("auto", BACKEND_HELP)


def ray_caster(view: AssetView, backend: str) -> RayCaster:
    """One BVH over the finite faces per geometry version, shared by the thickness and gap checks."""

    def compute() -> RayCaster:
        from meshforge.ops.thickness import RayCaster

        v, f = finite_mesh(view)
        return RayCaster(v, f, backend=backend)

    return view.derived.get(f"print.ray_caster:{backend}", compute)


@dataclass(frozen=True)
class RayFaces:
    """The faces a ray check casts from: indices into :func:`finite_mesh` faces, and their weights."""

    ids: np.ndarray
    weight: np.ndarray  # area when every face casts; 1 per ray when sampled by area
    usable: int  # faces with a non-zero area
    sampled: bool

    def how(self) -> str:
        return f" (sampled {len(self.ids)} of {self.usable} faces by area)" if self.sampled else ""


def ray_faces(view: AssetView, max_rays: int) -> RayFaces | None:
    """Every face with an area, or an area-weighted seeded sample of ``max_rays`` of them (computed
    once per geometry version: the thickness and gap checks cast from the same faces)."""

    def compute() -> RayFaces | None:
        if len(finite_mesh(view)[1]) == 0:
            return None
        area = view.derived.face_geometry.area[face_ids(view)]
        usable = np.flatnonzero(area > 0)
        if len(usable) == 0:
            return None
        if len(usable) <= max_rays:
            return RayFaces(usable, area[usable], len(usable), False)
        rng = np.random.default_rng(0)
        # area-weighted draw by inverting the cumulative area (what Generator.choice(p=) does, without its
        # checks); sorted draws make the search cache-friendly and the hits sorted (1.3M faces: 0.2 -> 0.03 s)
        cum = np.cumsum(area[usable])
        draws = np.sort(rng.random(max_rays) * cum[-1])
        hit = np.searchsorted(cum, draws, side="right").clip(0, len(usable) - 1)
        hit = hit[np.r_[True, hit[1:] != hit[:-1]]]
        return RayFaces(usable[hit], np.ones(len(hit)), len(usable), True)

    return view.derived.get(f"print.ray_faces:{max_rays}", compute)


def check_wall_thickness(view: AssetView, params: ThicknessParams, ctx: StepContext) -> Iterator[Any]:
    from meshforge.ops.thickness import inward_thickness

    rays = ray_faces(view, params.max_rays)
    if rays is None:
        return
    ids = rays.ids
    diag = float(np.linalg.norm(np.ptp(used_points(view), axis=0)))
    # an inside-out part (print.inverted) would cast its rays outward: follow the volume's sign
    outward = topo(view, WELD_DEFAULT).volume >= 0
    caster = ray_caster(view, params.backend)
    normals = view.derived.face_geometry.normals(face_ids(view)[ids])
    dist = inward_thickness(caster, ids, normals, offset=1e-6 * diag, outward=outward) * mm_per_unit(view)
    for limit, severity in ((params.min_mm, Severity.ERROR), (params.warn_mm, Severity.WARNING)):
        thin = dist < limit
        if thin.any():
            fraction = float(rays.weight[thin].sum() / rays.weight.sum())
            how = rays.how()
            if severity is Severity.ERROR and fraction <= params.error_min_fraction:
                severity = Severity.WARNING
                how += f"; at most {params.error_min_fraction:.1%} of the surface, so a warning"
            yield ctx.finding(
                "print.thin_walls",
                severity,
                f"{fraction:.2%} of the surface has walls under {limit:g} mm (thinnest {dist[thin].min():.3g} mm, "
                f"{int(thin.sum())} faces){how}",
                measured=round(fraction, 6),
                threshold=limit,
                count=int(thin.sum()),
                samples=_samples(face_ids(view)[ids[thin][np.argsort(dist[thin], kind="stable")]]),
            )
            ctx.log.debug("thickness by %s over %d rays", caster.backend, len(ids))
            return


# --- print.narrow_gaps ----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GapsParams:
    min_mm: float = field(0.8, "gaps within one part narrower than this close up (min engrave detail; FDM 0.8 mm [unconfirmed], 4b)")
    min_clearance_mm: float = field(0.3, "gaps between two parts narrower than this fuse (clearance; FDM 0.3-0.4 mm [unconfirmed], 4b)")
    max_wall_angle_deg: float = field(
        30.0, "two walls form a gap when they face each other within this angle; wider V notches and inner creases "
        "narrow to nothing at their bottom line and are not gaps [heuristic]")
    severity: SeverityName = field("warning", "severity when more than min_fraction of the surface faces such a gap")
    min_fraction: float = field(
        0.001, "at most this fraction of the surface is only info (a few faces: a tight crease, a scan artefact) [heuristic]"
    )
    max_rays: int = field(300_000, MAX_RAYS_HELP)
    backend: RayBackend = field("auto", BACKEND_HELP)


def check_narrow_gaps(view: AssetView, params: GapsParams, ctx: StepContext) -> Iterator[Any]:
    """Minimum negative feature size: engraved strokes, slots and holes within a part, and the
    clearance between parts (print-in-place chains, gears), each against its own limit.

    Positive features (pins, ridges, embossed strokes) are measured by the thickness rays: a pin
    thinner than the minimum wall is a thin wall there.
    """
    from meshforge.ops.thickness import outward_gaps

    rays = ray_faces(view, params.max_rays)
    if rays is None:
        return
    ids = rays.ids
    diag = float(np.linalg.norm(np.ptp(used_points(view), axis=0)))
    t = topo(view, WELD_DEFAULT)
    geometry = view.derived.face_geometry
    kept = face_ids(view)
    caster = ray_caster(view, params.backend)
    # only walls that face each other make a gap (a slot, a stroke, two parts); see max_wall_angle_deg
    gap, entered = outward_gaps(caster, ids, geometry.normals(kept[ids]), lambda faces: geometry.normals(kept[faces]),
                                offset=1e-6 * diag, outward=t.volume >= 0, max_wall_angle_deg=params.max_wall_angle_deg)
    gap = gap * mm_per_unit(view)
    hit = entered >= 0
    other_part = np.zeros(len(gap), dtype=bool)
    other_part[hit] = t.shell_of_face[kept[entered[hit]]] != t.shell_of_face[kept[ids[hit]]]
    kinds = (
        ("print.narrow_gaps", ~other_part, params.min_mm,
         "engraved detail, slots and holes this narrow close up when printed"),
        ("print.tight_clearance", other_part, params.min_clearance_mm,
         "parts this close fuse together when printed"),
    )
    for code, where, limit, why in kinds:
        narrow = where & (gap < limit)
        if not narrow.any():
            continue
        fraction = float(rays.weight[narrow].sum() / rays.weight.sum())
        severity: SeverityName = params.severity
        how = rays.how()
        if fraction <= params.min_fraction:
            severity = "info"
            how += f"; at most {params.min_fraction:.1%} of the surface, so info"
        what = "a gap" if code == "print.narrow_gaps" else "another part"
        yield ctx.finding(
            code,
            severity,
            f"{fraction:.2%} of the surface faces {what} closer than {limit:g} mm (narrowest {gap[narrow].min():.3g} mm, "
            f"{int(narrow.sum())} faces): {why}{how}",
            measured=round(fraction, 6),
            threshold=limit,
            count=int(narrow.sum()),
            samples=_samples(kept[ids[narrow][np.argsort(gap[narrow], kind="stable")]]),
        )


# --- print.overhangs ------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class OverhangParams:
    max_angle_deg: float = field(45.0, "faces steeper than this from vertical need support (P11; 45 deg FDM)")
    severity: SeverityName = field("warning", "severity of an overhang (P11: warn for FDM, info for resin)")
    bed_tolerance_mm: float = field(0.1, "faces within this height of the lowest point rest on the bed (not overhangs)")
    min_bed_contact_mm2: float = field(25.0, "warn when the flat area resting on the bed is smaller [heuristic]")


def check_overhangs(view: AssetView, params: OverhangParams, ctx: StepContext) -> Iterator[Any]:
    from meshforge.ops.thickness import overhang_mask

    v, f = finite_mesh(view)
    if len(f) == 0:
        return
    scale = mm_per_unit(view)
    geometry = view.derived.face_geometry
    kept = face_ids(view)
    all_kept = len(kept) == len(geometry.norm)
    normals = geometry.normals() if all_kept else geometry.normals(kept)
    area = (geometry.area if all_kept else geometry.area[kept]) * scale**2
    up = up_vector(view)
    with np.errstate(invalid="ignore"):
        height = (v @ up) * scale  # per vertex, then per corner: no (n, 3, 3) copy
    corner = height[f]  # (n, 3) corner heights
    base = float(corner.min())
    on_bed = corner.max(axis=1) <= base + params.bed_tolerance_mm
    over = overhang_mask(normals, up, params.max_angle_deg) & ~on_bed
    total = float(area.sum())
    if over.any():
        over_area = float(area[over].sum())
        fraction = over_area / total if total > 0 else 0.0
        yield ctx.finding(
            "print.overhangs",
            params.severity,
            f"{over_area:.1f} mm^2 ({fraction:.1%} of the surface) overhangs more than {params.max_angle_deg:g} deg "
            "from vertical and needs support",
            measured=[round(over_area, 3), round(fraction, 6)],
            threshold=params.max_angle_deg,
            count=int(over.sum()),
            samples=_samples(face_ids(view)[np.flatnonzero(over)[np.argsort(-area[over], kind="stable")]]),
        )
    contact = float(area[on_bed & (-(normals @ up) > 0.999)].sum())
    if contact < params.min_bed_contact_mm2:
        yield ctx.finding(
            "print.small_bed_contact",
            Severity.WARNING,
            f"only {contact:.1f} mm^2 of flat surface rests on the bed in this orientation",
            measured=round(contact, 3),
            threshold=params.min_bed_contact_mm2,
        )


# --- registration ---------------------------------------------------------------------------


@meshforge.hookimpl
def meshforge_validate_steps() -> list[ValidateStep]:
    return [
        ValidateStep(name="print.closed", summary="watertight after welding coincident vertices; counts holes",
                     params=ClosedParams, codes=("print.not_watertight",), check=check_closed),
        ValidateStep(name="print.manifold", summary="every edge has two faces; no bow-tie vertices", params=ManifoldParams,
                     codes=("print.non_manifold_edges", "print.non_manifold_vertices"), check=check_manifold),
        ValidateStep(name="print.orientation", summary="consistent winding and outward normals (positive volume)",
                     params=OrientationParams, codes=("print.inconsistent_winding", "print.inverted"), check=check_orientation),
        ValidateStep(name="print.shells", summary="shell count and debris shells", params=ShellsParams,
                     codes=("print.multiple_shells", "print.debris_shells"), check=check_shells),
        ValidateStep(name="print.self_intersections", summary="faces crossing other faces (k-d tree, grid or edge-ray broad phase + SAT)",
                     params=IntersectionsParams, codes=("print.self_intersections",), check=check_self_intersections),
        ValidateStep(name="print.units", summary="size plausible in the assumed unit (names the likely unit)",
                     params=UnitsParams, codes=("print.suspect_units",), check=check_units),
        ValidateStep(name="print.build_volume", summary="fits the printer's build volume (says whether rotating helps)",
                     params=BuildVolumeParams, codes=("print.exceeds_build_volume",), check=check_build_volume),
        ValidateStep(name="print.triangle_budget", summary="triangle count under the print service's ceiling",
                     params=TriangleBudgetParams, codes=("print.too_many_triangles",), check=check_triangle_budget),
        ValidateStep(name="print.wall_thickness", summary="inward ray per face: area with walls under the minimum",
                     params=ThicknessParams, codes=("print.thin_walls",), check=check_wall_thickness),
        ValidateStep(name="print.narrow_gaps", summary="outward ray per face: gaps (engraving, slots) and clearance between parts under the minimum",
                     params=GapsParams, codes=("print.narrow_gaps", "print.tight_clearance"), check=check_narrow_gaps),
        ValidateStep(name="print.overhangs", summary="area needing support; flat bed contact", params=OverhangParams,
                     codes=("print.overhangs", "print.small_bed_contact"), check=check_overhangs),
    ]
