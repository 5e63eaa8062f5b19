"""Throughput of `meshforge batch` vs a sequential loop over Engine.run, and memory per worker.

    python bench/batch_throughput.py --count 200 --workers 2            # the issue's figure
    python bench/batch_throughput.py --count 12 --max-tris 200000       # a quick look

Assets are made once into --assets (default /tmp/meshforge-bench-assets): displaced spheres and tori
of 50k-500k triangles with UVs and a 2048x2048 JPEG base-colour texture, as GLB (ecommerce-glb input).
Prints jobs/minute for both, the ratio (target >= 1.8 on 2 cores) and peak RSS per worker process.
Nothing here asserts: numbers are for the report.

Where the time goes, so a figure can be judged even on a shared machine: CPU seconds per job (all
threads of the loop's process; in the batch each job's worker process while it ran, and the whole
batch including start-up), cores used, the workers' idle fraction (1 - job time / (workers x wall))
and the CPU that other processes used meanwhile (from /proc/stat): when ``other_cpu_share`` is
above a few percent the run was disturbed and should be repeated.
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


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime


def machine_busy_seconds() -> float | None:
    """CPU seconds every process on the machine has used since boot (Linux), to spot outside load."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = [int(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


def other_share(busy0: float | None, busy1: float | None, own_cpu: float, wall: float) -> float | None:
    """Share of the machine's capacity that other processes used during a phase."""
    if busy0 is None or busy1 is None:
        return None
    cores = len(os.sched_getaffinity(0))
    return round(max(0.0, (busy1 - busy0) - own_cpu) / (cores * wall), 3)


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
    load_before = os.getloadavg()[0]
    busy0, cpu0 = machine_busy_seconds(), cpu_seconds()
    t0 = time.perf_counter()
    verdicts_seq = {}
    for job in jobs:
        verdicts_seq[job.id] = str(engine.run(job.inputs(), out_dir=args.out / "seq" / job.id).status)
    seq_s = time.perf_counter() - t0
    seq_cpu = cpu_seconds() - cpu0
    seq_other = other_share(busy0, machine_busy_seconds(), seq_cpu, seq_s)
    seq_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    results = []
    busy0, cpu0, kids0 = machine_busy_seconds(), cpu_seconds(), cpu_seconds(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with Batch(catalog, out_dir=args.out / "batch", profile=args.profile, workers=args.workers) as batch:
        summary = batch.run(on_result=results.append)
        per_worker: dict[str, int] = {}
        for j in batch.store.jobs():
            if j.worker and j.maxrss_kb:
                per_worker[j.worker] = max(per_worker.get(j.worker, 0), j.maxrss_kb)
        verdicts_batch = {j.id: j.verdict for j in batch.store.jobs()}
    batch_s = time.perf_counter() - t0  # includes spawning workers and opening the database
    # The workers have been joined, so their CPU is in RUSAGE_CHILDREN: start-up and imports included.
    batch_cpu = cpu_seconds() - cpu0 + cpu_seconds(resource.RUSAGE_CHILDREN) - kids0
    batch_other = other_share(busy0, machine_busy_seconds(), batch_cpu, batch_s)
    # getattr: the bench also measures checkouts from before JobResult.cpu_seconds
    job_cpu = [r.cpu_seconds for r in results if getattr(r, "cpu_seconds", None) is not None]
    job_wall = sum(r.seconds or 0.0 for r in results)

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
        "sequential_cpu_s_per_job": round(seq_cpu / n, 3),
        "sequential_cores_used": round(seq_cpu / seq_s, 2),
        "batch_cpu_s_per_job": round(sum(job_cpu) / len(job_cpu), 3) if job_cpu else None,
        "batch_cpu_s_per_job_with_startup": round(batch_cpu / n, 3),
        "batch_cores_used": round(batch_cpu / batch_s, 2),
        "batch_worker_idle_fraction": round(1 - job_wall / (args.workers * batch_s), 3),
        "load_before": round(load_before, 2),
        "other_cpu_share": {"sequential": seq_other, "batch": batch_other},
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
