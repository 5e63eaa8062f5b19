"""Throughput of `meshforge batch` vs a sequential loop over Engine.run, and memory per worker.

    python bench/batch_throughput.py --count 200 --workers 2            # the issue's figure
    python bench/batch_throughput.py --count 12 --max-tris 200000       # a quick look

Assets are made once into --assets (default /tmp/meshforge-bench-assets): displaced spheres and tori
of 50k-500k triangles with UVs and a 2048x2048 JPEG base-colour texture, as GLB (ecommerce-glb input).
Prints jobs/minute for both, the ratio (target >= 1.8 on 2 cores) and peak RSS per worker process.
Nothing here asserts: numbers are for the report.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np


def make_asset(path: Path, tris: int, seed: int) -> None:
    import trimesh
    from PIL import Image

    rng = np.random.default_rng(seed)
    # A UV sphere has 2 * rows * cols triangles: pick rows/cols for the target count.
    cols = int(np.sqrt(tris / 2 * 2))
    rows = max(8, tris // (2 * cols))
    mesh = trimesh.creation.uv_sphere(radius=0.15 + 0.1 * rng.random(), count=[rows, cols])
    normals = mesh.vertex_normals
    bumps = 0.01 * np.sin(mesh.vertices[:, 0] * rng.uniform(20, 60)) * np.cos(mesh.vertices[:, 1] * rng.uniform(20, 60))
    vertices = mesh.vertices + normals * bumps[:, None]
    v = vertices - vertices.mean(axis=0)
    uv = np.column_stack([0.5 + np.arctan2(v[:, 1], v[:, 0]) / (2 * np.pi), 0.5 + np.arcsin(np.clip(v[:, 2] / np.linalg.norm(v, axis=1), -1, 1)) / np.pi])
    y, x = np.mgrid[0:2048, 0:2048]
    img = np.stack([(x * 255 // 2047), (y * 255 // 2047), ((x ^ y) & 255)], axis=-1).astype(np.uint8)
    img = (img.astype(np.int16) + rng.integers(-3, 3, img.shape)).clip(0, 255).astype(np.uint8)
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=Image.fromarray(img), metallicFactor=0.0, roughnessFactor=0.7)
    textured = trimesh.Trimesh(vertices=vertices, faces=mesh.faces, process=False,
                               visual=trimesh.visual.TextureVisuals(uv=uv, material=material))
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(trimesh.Scene(textured).export(file_type="glb"))
    tmp.replace(path)


def make_catalog(folder: Path, count: int, min_tris: int, max_tris: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    rows = []
    for i in range(count):
        tris = int(rng.integers(min_tris, max_tris + 1))
        path = folder / f"sku-{i:04d}-{tris // 1000}k.glb"
        if not path.is_file():
            make_asset(path, tris, seed=i)
        rows.append({"id": path.stem, "model": str(path), "title": f"Product {i}", "category": "bench"})
    catalog = folder / f"catalog-{count}.csv"
    with catalog.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return catalog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--min-tris", type=int, default=50_000)
    ap.add_argument("--max-tris", type=int, default=500_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--profile", default="ecommerce-glb")
    ap.add_argument("--assets", type=Path, default=Path("/tmp/meshforge-bench-assets"))
    ap.add_argument("--out", type=Path, default=Path("/tmp/meshforge-bench-out"))
    args = ap.parse_args()

    from meshforge import Engine
    from meshforge.batch import Batch, read_catalog

    catalog = make_catalog(args.assets, args.count, args.min_tris, args.max_tris)
    jobs = read_catalog(catalog).jobs
    shutil.rmtree(args.out, ignore_errors=True)

    # Sequential reference: one process, one engine, a plain loop (what a script would do).
    engine = Engine(args.profile)
    t0 = time.perf_counter()
    verdicts_seq = {}
    for job in jobs:
        verdicts_seq[job.id] = str(engine.run(job.inputs(), out_dir=args.out / "seq" / job.id).status)
    seq_s = time.perf_counter() - t0
    seq_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    t0 = time.perf_counter()
    with Batch(catalog, out_dir=args.out / "batch", profile=args.profile, workers=args.workers) as batch:
        summary = batch.run()
        per_worker: dict[str, int] = {}
        for j in batch.store.jobs():
            if j.worker and j.maxrss_kb:
                per_worker[j.worker] = max(per_worker.get(j.worker, 0), j.maxrss_kb)
        verdicts_batch = {j.id: j.verdict for j in batch.store.jobs()}
    batch_s = time.perf_counter() - t0  # includes spawning workers and opening the database

    n = len(jobs)
    result = {
        "assets": n,
        "triangles": [args.min_tris, args.max_tris],
        "profile": args.profile,
        "cores": len(os.sched_getaffinity(0)),
        "workers": args.workers,
        "sequential_jobs_per_min": round(60 * n / seq_s, 2),
        "batch_jobs_per_min": round(60 * n / batch_s, 2),
        "speedup": round(seq_s / batch_s, 2),
        "target_speedup": 1.8,
        "sequential_peak_rss_mb": round(seq_rss_mb, 1),
        "worker_peak_rss_mb": {k: round(v / 1024, 1) for k, v in sorted(per_worker.items())},
        "same_verdicts": verdicts_seq == verdicts_batch,
        "batch_counts": dict(summary.counts),
        "batch_verdicts": dict(summary.verdicts),
    }
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
