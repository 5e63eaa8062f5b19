"""Decimation benchmark: a generated 1.3M-triangle textured GLB -> 100k triangles, meshforge vs gltfpack.

    python bench/decimate.py [--triangles 1300000] [--target 100000]

Prints, for each tool, wall time file -> file (load, simplify, write GLB; "meshforge" = the steps,
"engine" = a whole Engine.run with its report), the triangles it wrote, and
the symmetric Hausdorff distance (max and mean) of its output to the input as a fraction of the
bounding-box diagonal (same sampler for both), then the ratios meshforge / gltfpack. gltfpack runs
with -noq (no quantisation, so its error is the simplifier's alone) and -si target/input.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def textured_torus(n_u: int, n_v: int):
    """A bumpy torus with a wrapping UV grid (duplicated seam vertices), like a scanned/generated asset."""
    import trimesh
    from PIL import Image
    from trimesh.visual import TextureVisuals
    from trimesh.visual.material import PBRMaterial

    u, v = np.linspace(0, 1, n_u + 1), np.linspace(0, 1, n_v + 1)
    uu, vv = np.meshgrid(u, v, indexing="ij")
    a, b = 2 * np.pi * uu, 2 * np.pi * vv
    r = 0.1 + 0.01 * np.sin(9 * a) * np.cos(7 * b) + 0.004 * np.sin(31 * a + 3 * b)
    xyz = np.stack([(0.3 + r * np.cos(b)) * np.cos(a), r * np.sin(b) + 0.1, (0.3 + r * np.cos(b)) * np.sin(a)], -1).reshape(-1, 3)
    uv = np.stack([uu, vv], -1).reshape(-1, 2)
    i, j = np.meshgrid(np.arange(n_u), np.arange(n_v), indexing="ij")
    p = (i * (n_v + 1) + j).ravel()
    q = p + n_v + 1
    faces = np.concatenate([np.stack([p, p + 1, q], 1), np.stack([q, p + 1, q + 1], 1)])
    checker = (np.indices((256, 256)).sum(axis=0) // 32 % 2 * 200 + 40).astype(np.uint8)
    image = Image.fromarray(np.stack([checker, checker // 2, 255 - checker], -1))
    material = PBRMaterial(baseColorTexture=image, metallicFactor=0.0, roughnessFactor=0.8)
    return trimesh.Trimesh(xyz, faces, visual=TextureVisuals(uv=uv, material=material), process=False)


def error_vs(input_mesh, path: Path) -> tuple[int, float, float]:
    import trimesh

    from meshforge.ops.decimate import hausdorff

    out = trimesh.load_scene(path).to_mesh()
    diag = float(np.linalg.norm(np.ptp(input_mesh.vertices, axis=0)))
    hmax, hmean = hausdorff(input_mesh.vertices, input_mesh.faces, out.vertices, out.faces, samples=50_000)
    return len(out.faces), hmax / diag, hmean / diag


def run_meshforge(src: Path, dst: Path, target: int) -> float:
    from meshforge import Engine

    profile = {"name": "bench", "chain": {"generate": ["import"], "repair": ["decimate"], "export": ["glb"]},
               "steps": {"decimate": {"uses": "commerce.decimate", "target_triangles": target, "always": True,
                                      "measure_error": False}}}
    engine = Engine(profile, entry_points=False)
    started = time.perf_counter()
    report = engine.run(src, out_dir=dst.parent)
    seconds = time.perf_counter() - started
    if not report.outputs:
        sys.exit(f"meshforge wrote nothing: {[(s.name, s.outcome, s.note) for s in report.steps]}")
    Path(report.outputs[0].path).replace(dst)
    return seconds


def run_meshforge_steps(src: Path, dst: Path, target: int) -> float:
    """File -> file through the same steps without the engine's per-step report metrics (volume, watertight)."""
    import trimesh

    from meshforge import testing
    from meshforge.builtin.repair.decimate import meshforge_repair_steps
    from meshforge.io.gltf_write import glb_bytes
    from meshforge.types import Units

    step = {s.name: s for s in meshforge_repair_steps()}["commerce.decimate"]
    started = time.perf_counter()
    scene = trimesh.load_scene(src)
    result = testing.run_repair(step, scene, units=Units("m", "+Y"), target_triangles=target, measure_error=False)
    dst.write_bytes(glb_bytes(result.scene))
    return time.perf_counter() - started


def run_gltfpack(src: Path, dst: Path, ratio: float) -> float:
    exe = ROOT / "node_modules" / ".bin" / "gltfpack"
    if not exe.exists():
        exe = Path(shutil.which("gltfpack") or "gltfpack")
    started = time.perf_counter()
    subprocess.run([str(exe), "-i", str(src), "-o", str(dst), "-si", f"{ratio:.6f}", "-noq"], check=True,
                   capture_output=True, cwd=ROOT)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triangles", type=int, default=1_300_000)
    parser.add_argument("--target", type=int, default=100_000)
    args = parser.parse_args()
    n_v = int(np.sqrt(args.triangles / 2 / 2))
    n_u = int(args.triangles / 2 / n_v)
    mesh = textured_torus(n_u, n_v)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        src = work / "dense.glb"
        src.write_bytes(mesh.export(file_type="glb"))
        print(f"input: {len(mesh.faces):,} triangles, {len(mesh.vertices):,} vertices, {src.stat().st_size / 1e6:.1f} MB GLB")
        ratio = args.target / len(mesh.faces)
        rows = {}
        tools = (("gltfpack", lambda d: run_gltfpack(src, d, ratio)), ("meshforge", lambda d: run_meshforge_steps(src, d, args.target)),
                 ("engine", lambda d: run_meshforge(src, d, args.target)))
        for name, fn in tools:
            dst = work / name / f"{name}.glb"
            dst.parent.mkdir()
            seconds = fn(dst)
            tris, hmax, hmean = error_vs(mesh, dst)
            rows[name] = (seconds, tris, hmax, hmean)
            print(f"{name:10s} {seconds:6.2f} s  {tris:>8,} triangles  Hausdorff max {hmax:.2e}  mean {hmean:.2e} (of bbox diagonal)")
        (gs, _, gmax, gmean), (ms, _, mmax, mmean) = rows["gltfpack"], rows["meshforge"]
        print(f"ratio meshforge/gltfpack: time {ms / gs:.2f}  max error {mmax / gmax:.2f}  mean error {mmean / gmean:.2f}")
        print(f"ratio engine/gltfpack:    time {rows['engine'][0] / gs:.2f}  (engine adds load checks and before/after report metrics)")


if __name__ == "__main__":
    main()
