"""Measured proposals for the ecommerce-glb validation path in code the glTF/commerce owner does not own.

    python bench/validate_glb.py --runs 3 --stages --proposals

``install()`` replaces, inside the benchmark's own subprocess only, four functions with the versions
proposed to their owners (same results, asserted by ``check()``):

* ``meshforge.asset.scene_to_mesh``: one geometry drawn once with an identity transform is returned
  as is (``scene.dump`` copies vertices, faces and visuals only to apply an identity matrix);
* ``meshforge.engine._measure``: watertight from one sort of int64 edge keys (trimesh's
  ``is_watertight`` hashes float rows in ``group_rows``: 4-5x slower, 3x the memory), volume from three
  gathers instead of a (n, 3, 3) copy, bounds and finiteness from one min/max reduction;
* ``meshforge.ops.topology.weld`` (exact, tolerance 0): a verified 64-bit hash of each vertex's bits
  and one argsort instead of a three-key float lexsort (falls back to the lexsort on any collision);
* ``meshforge.builtin.validate.core.check_hygiene``: areas from the vertex columns of the faces that
  need them (no (n, 3, 3) gather, no ``np.where`` copy of it), duplicates by a plain sort (argsort only
  when there are duplicates to report).

Delete this file once the owners have adopted (or rejected) the proposals.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_MIX1, _MIX2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x *= _MIX1
    x ^= x >> np.uint64(27)
    x *= _MIX2
    return x ^ (x >> np.uint64(31))


def watertight(faces: np.ndarray, n_vertices: int) -> bool:
    """Every edge used by exactly two faces (trimesh ``Trimesh.is_watertight``'s definition)."""
    f = np.asarray(faces, dtype=np.int64)
    if not len(f):
        return False
    e = f[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2)
    key = np.minimum(e[:, 0], e[:, 1]) * n_vertices + np.maximum(e[:, 0], e[:, 1])
    key.sort()
    new = np.empty(len(key), dtype=bool)
    new[0] = True
    np.not_equal(key[1:], key[:-1], out=new[1:])
    counts = np.diff(np.append(np.flatnonzero(new), len(key)))
    return bool((counts == 2).all())


def weld_exact(vertices: np.ndarray) -> tuple[np.ndarray, int] | None:
    """Exact weld labels by hash; None on a hash collision (caller falls back to the lexsort)."""
    v = np.asarray(vertices, dtype=np.float64)
    finite = np.isfinite(v).all(axis=1)
    ids = np.full(len(v), -1, dtype=np.int64)
    fv = v[finite] if not finite.all() else v
    if not len(fv):
        return ids, 0
    bits = np.ascontiguousarray(fv + 0.0).view(np.uint64)  # + 0.0 folds -0.0 into 0.0 (equal as floats)
    h = _mix(_mix(_mix(bits[:, 0]) ^ bits[:, 1]) ^ bits[:, 2])
    order = np.argsort(h)
    hs, rows = h[order], bits[order]
    same_hash = hs[1:] == hs[:-1]
    if (same_hash & (rows[1:] != rows[:-1]).any(axis=1)).any():
        return None
    new = np.empty(len(h), dtype=bool)
    new[0] = True
    new[1:] = ~same_hash
    labels = np.empty(len(h), dtype=np.int64)
    labels[order] = np.cumsum(new) - 1
    ids[finite] = labels
    return ids, int(new.sum())


def areas(v: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Triangle areas from the vertex coordinate columns (no (n, 3, 3) array)."""
    x, y, z = np.ascontiguousarray(v.T)
    i, j, k = f.T
    ux, uy, uz = x[j] - x[i], y[j] - y[i], z[j] - z[i]
    wx, wy, wz = x[k] - x[i], y[k] - y[i], z[k] - z[i]
    cx, cy, cz = uy * wz - uz * wy, uz * wx - ux * wz, ux * wy - uy * wx
    return 0.5 * np.sqrt(cx * cx + cy * cy + cz * cz)


def install() -> None:
    import trimesh

    import meshforge.asset as asset
    import meshforge.builtin.validate.core as core
    import meshforge.engine as engine
    import meshforge.ops.topology as topology
    from meshforge.report import Metrics
    from meshforge.types import Severity

    dump = asset.scene_to_mesh

    def scene_to_mesh(scene: Any) -> Any:
        if isinstance(scene, trimesh.Scene):
            nodes = scene.graph.nodes_geometry
            if len(nodes) == 1:
                matrix, name = scene.graph[nodes[0]]
                geometry = scene.geometry.get(name)
                if isinstance(geometry, trimesh.Trimesh) and np.array_equal(matrix, np.eye(4)):
                    return geometry
        return dump(scene)

    asset.scene_to_mesh = scene_to_mesh

    def _measure(mesh: Any, units: Any) -> Metrics:
        v, f = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces)
        if len(f) == 0:
            return Metrics(triangles=0, vertices=len(v), bounds=None, volume=None, watertight=None, units=units.length)
        with np.errstate(all="ignore"):
            lo, hi = v.min(axis=0), v.max(axis=0)
            finite = bool(np.isfinite(lo).all() and np.isfinite(hi).all())
            volume = float(np.einsum("ij,ij->", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])) / 6.0) if finite else None
        return Metrics(triangles=int(len(f)), vertices=int(len(v)), bounds=(tuple(map(float, lo)), tuple(map(float, hi))) if finite else None,
                       volume=volume, watertight=watertight(f, len(v)) if finite else None, units=units.length)

    engine._measure = _measure

    lexsort_weld = topology.weld

    def weld(vertices: np.ndarray, tolerance: float = 0.0) -> tuple[np.ndarray, int]:
        if tolerance == 0:
            result = weld_exact(vertices)
            if result is not None:
                return result
        return lexsort_weld(vertices, tolerance)

    topology.weld = weld

    def check_hygiene(view: Any, params: Any, ctx: Any) -> Any:
        from meshforge.ops.units import scale_factor

        mesh = view.mesh
        v = np.asarray(mesh.vertices, dtype=np.float64).reshape(-1, 3)
        f = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
        if len(f) == 0:
            yield ctx.finding("geometry.empty", Severity.ERROR, "the model has no triangles", measured=0, threshold=1, count=0)
            return
        finite = np.isfinite(v).all(axis=1)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            yield ctx.finding("geometry.non_finite", Severity.ERROR, f"{len(bad)} vertices have NaN or infinite coordinates",
                              measured=len(bad), threshold=0, count=len(bad), samples=bad[:10].tolist())
        ids, _ = view.derived.get("geometry.weld_exact", lambda: weld(v))
        wf = ids[f]
        ok = (wf >= 0).all(axis=1)
        repeated = (wf[:, 0] == wf[:, 1]) | (wf[:, 1] == wf[:, 2]) | (wf[:, 2] == wf[:, 0])
        mm2 = scale_factor(view.units.length or "mm", "mm") ** 2
        live = np.flatnonzero(ok) if not ok.all() else None
        with np.errstate(invalid="ignore", over="ignore"):
            if live is None:
                area = areas(v, f) * mm2
            else:
                area = np.full(len(f), np.inf)
                area[live] = areas(v, f[live]) * mm2
        degenerate = ok & (repeated | (area <= params.max_degenerate_area_mm2))
        if degenerate.any():
            idx = np.flatnonzero(degenerate)
            yield ctx.finding("geometry.degenerate_faces", Severity.WARNING, f"{len(idx)} triangles have (near) zero area or repeat a vertex",
                              measured=len(idx), threshold=params.max_degenerate_area_mm2, count=len(idx), samples=idx[:10].tolist())
        live = np.flatnonzero(ok) if live is None else live
        if len(live) > 1:
            key = np.sort(wf[live], axis=1)
            nv = int(key.max()) + 1
            if nv < 2**21:
                flat = (key[:, 0] * nv + key[:, 1]) * nv + key[:, 2]
                s = np.sort(flat)
                if (s[1:] == s[:-1]).any():
                    order = np.argsort(flat, kind="stable")
                    s = flat[order]
                    dup_sorted = np.zeros(len(s), dtype=bool)
                    dup_sorted[1:] = s[1:] == s[:-1]
                    idx = np.sort(live[order[dup_sorted]])
                    yield ctx.finding("geometry.duplicate_faces", Severity.WARNING,
                                      f"{len(idx)} triangles repeat another triangle's corners (either winding)",
                                      measured=len(idx), threshold=0, count=len(idx), samples=idx[:10].tolist())
            else:
                yield from (x for x in core_check(view, params, ctx) if x.code == "geometry.duplicate_faces")
        referenced = np.zeros(len(v), dtype=bool)
        referenced[f.reshape(-1)] = True
        if not referenced.all():
            idx = np.flatnonzero(~referenced)
            yield ctx.finding("geometry.unreferenced_vertices", Severity.INFO, f"{len(idx)} vertices are not used by any triangle",
                              measured=len(idx), threshold=0, count=len(idx), samples=idx[:10].tolist())

    core_check = core.check_hygiene
    core.check_hygiene = check_hygiene
    # the registered step holds the function object itself: patch the step list the hook returns
    steps = core.meshforge_validate_steps

    def meshforge_validate_steps() -> list[Any]:
        from dataclasses import replace

        return [replace(s, check=check_hygiene) if s.name == "geometry.hygiene" else s for s in steps()]

    meshforge_validate_steps.meshforge_impl = getattr(steps, "meshforge_impl", None)  # keep the pluggy marker
    core.meshforge_validate_steps = meshforge_validate_steps


def check() -> None:
    """The proposals give the same answers as the current code on small and corpus-like meshes."""
    import trimesh

    from meshforge.ops.topology import weld as lexsort_weld

    rng = np.random.default_rng(0)
    sphere = trimesh.creation.icosphere(subdivisions=4)
    assert watertight(sphere.faces, len(sphere.vertices)) == sphere.is_watertight is True
    opened = trimesh.Trimesh(sphere.vertices, sphere.faces[1:], process=False)
    assert watertight(opened.faces, len(opened.vertices)) == opened.is_watertight is False
    v = np.round(rng.normal(size=(5000, 3)), 1)  # many exact duplicates
    v[::97] = -0.0 * v[::97]
    v[5] = np.nan
    a, na = weld_exact(v)
    b, nb = lexsort_weld(v)
    assert na == nb and len(set(zip(a.tolist(), b.tolist(), strict=True))) == na + (1 if (a < 0).any() else 0)
    f = rng.integers(0, len(v), size=(2000, 3))
    t = v[f]
    expected = 0.5 * np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1)
    assert np.allclose(areas(v, f), expected, equal_nan=True)


if __name__ == "__main__":
    check()
    print("proposals agree with the current code")
