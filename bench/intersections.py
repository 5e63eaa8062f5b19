"""Benchmark (not a test): self-intersection broad phases on large meshes, and PyMeshLab as a reference.

For each mesh: the exhaustive test (k-d tree of bounding spheres or grid, then SAT), the edge-ray
broad phase (every edge cast through an Open3D/Embree BVH, then the same SAT), whether they found the
same pairs, and PyMeshLab's per-face self-intersection selection when the GPL plugin's dependency is
installed (faces, not pairs). print.self_intersections takes the rays for meshes over 50,000 faces of
mixed triangle sizes or crowded with stacked/overlapping parts, the exhaustive test otherwise; and the
exhaustive test's broad phase (k-d tree, grid, or the grouped sweep when those would pass their budget
of candidate pairs) is named with the candidates it generated.

    python bench/intersections.py              # 1.3M sphere, sphere + poking sphere, a cone, two corpus meshes x16
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import trimesh

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"


def load(path: Path) -> trimesh.Trimesh:
    from meshforge.asset import scene_to_mesh
    from meshforge.io.readers import read
    from meshforge.io.source import read_source
    from meshforge.types import ReadLimits

    return scene_to_mesh(read(read_source(path, ReadLimits()), ReadLimits()).scene)


def subdivided(mesh: trimesh.Trimesh, times: int) -> trimesh.Trimesh:
    v, f = mesh.vertices, mesh.faces
    for _ in range(times):
        v, f = trimesh.remesh.subdivide(v, f)
    return trimesh.Trimesh(v, f, process=False)


def cone(n: int, radius: float = 20.0) -> trimesh.Trimesh:
    """A fan of n slim triangles round an apex and a base disk round its centre: every bounding
    sphere and box holds the axis, so the k-d tree alone would pair every face with every other."""
    a = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rim = np.stack([radius * np.cos(a), radius * np.sin(a), 0 * a], 1)
    v = np.concatenate([rim, [[0.0, 0.0, radius], [0.0, 0.0, 0.0]]])
    i = np.arange(n)
    j = np.roll(i, -1)
    faces = np.concatenate([np.stack([i, j, np.full(n, n)], 1), np.stack([j, i, np.full(n, n + 1)], 1)])
    return trimesh.Trimesh(v, faces, process=False)


def pymeshlab_faces(mesh: trimesh.Trimesh) -> tuple[int, float] | None:
    try:
        import pymeshlab
    except Exception:
        return None
    ms = pymeshlab.MeshSet()
    ms.add_mesh(pymeshlab.Mesh(np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int32)))
    started = time.perf_counter()
    ms.compute_selection_by_self_intersections_per_face()
    return ms.current_mesh().selected_face_number(), time.perf_counter() - started


def run(name: str, mesh: trimesh.Trimesh) -> None:
    from meshforge import testing
    from meshforge.builtin.validate import printing
    from meshforge.ops.intersections import broad_phase, crowding, intersecting_pairs, intersecting_pairs_by_rays, uniform_sizes
    from meshforge.ops.thickness import RayCaster

    view = testing.view(mesh)
    t = printing.topo(view, printing.WELD_DEFAULT)
    v, f = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces)
    ok = np.flatnonzero(t.valid & np.isfinite(v[f]).all(axis=(1, 2)))
    tri = v[f[ok]]
    lo, hi = tri.min(axis=1), tri.max(axis=1)
    started = time.perf_counter()
    exhaustive = ok[intersecting_pairs(tri, t.faces[ok])]
    exhaustive_s = time.perf_counter() - started
    started = time.perf_counter()
    caster = RayCaster(v, f[ok], backend="open3d")
    caster.first_hits(v[:1], np.array([[1.0, 0.0, 0.0]]))  # the BVH is built on the first cast
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    rays = intersecting_pairs_by_rays(caster, t.faces[ok], ok)
    rays_s = time.perf_counter() - started
    same = "same pairs" if np.array_equal(rays, exhaustive) else f"DIFFERENT ({len(rays)} vs {len(exhaustive)})"
    uniform, crowd = uniform_sizes(lo, hi), crowding(lo, hi)
    method, candidates = broad_phase(tri, t.faces[ok])
    route = "rays" if broad_phase(tri, t.faces[ok], rays=True)[0] == "rays" else "exhaustive"
    sizes = f"{'similar' if uniform else 'mixed'} sizes, crowding {crowd:.1f}: the step takes {route}"
    line = (f"{name}: {len(f):,} faces ({sizes}), {len(exhaustive):,} pairs; exhaustive {exhaustive_s:.2f} s "
            f"({method}, {candidates:,} candidates), rays {rays_s:.2f} s (+ BVH {build_s:.2f} s, shared with thickness), {same}")
    ref = pymeshlab_faces(mesh)
    if ref is not None:
        line += f"; PyMeshLab {ref[1]:.2f} s ({ref[0]:,} faces; ours {len(np.unique(exhaustive)):,})"
    print(line, flush=True)


def main() -> int:
    import open3d  # noqa: F401  (imported before timing)

    ball = trimesh.creation.icosphere(subdivisions=8, radius=50.0)
    run("sphere", ball)
    poke = trimesh.creation.icosphere(subdivisions=6, radius=20.0).apply_translation((45.0, 0.0, 0.0))
    run("sphere + poking sphere", trimesh.util.concatenate([ball, poke]))
    shell = trimesh.creation.icosphere(subdivisions=6, radius=10.0)
    run("4 copies of a sphere 0.3 apart", trimesh.util.concatenate([shell.copy().apply_translation((0.3 * i, 0, 0)) for i in range(4)]))
    run("closed cone of 5,000 segments", cone(5_000))
    for rel in ("obj/manifold/self_intersectA.obj", "obj/trimesh/chair_model.obj"):
        path = CORPUS / rel
        if path.is_file():
            run(f"{rel} subdivided x16", subdivided(load(path), 2))
        else:
            print(f"{rel}: not in the corpus at {CORPUS}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
