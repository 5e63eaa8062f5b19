"""Benchmark: ecommerce-glb validation of a ~1.3M-triangle GLB vs the Khronos glTF-Validator (node).

    python bench/validate_glb.py [--runs 3] [--subdivisions 8] [--normals] [--stages]

Alternates runs (meshforge, khronos, meshforge, ...), each in its own process, and prints wall times,
the ratio meshforge / khronos (target <= 2.0) and each side's peak memory (VmHWM / ru_maxrss).

The headline ratio is the command the issue names, ``meshforge validate -q --profile ecommerce-glb``,
as a new process against ``node`` running the validator: interpreter start and imports included
(python + numpy + trimesh + scipy is about 0.7 s before any work). The same profile is also run
through the Python API, where each process validates the file twice: the first ("API") differs
from the command by the CLI's own start-up, the second ("warm") is what a batch or a service pays
per model. ``--stages`` prints where the warm time goes (engine load + measure vs each validate
step). The peak memory is the command's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cli_path import meshforge_cli

ROOT = Path(__file__).resolve().parents[1]

MESHFORGE = r"""
import json, sys, time, warnings
warnings.simplefilter("ignore")
t = time.perf_counter()
from meshforge import Engine
import meshforge.asset, meshforge.engine
timed = {}
def timer(owner, name, label):  # wall time of engine internals, for --stages (behaviour unchanged)
    inner = getattr(owner, name)
    def wrapper(*a, **k):
        start = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            timed[label] = timed.get(label, 0.0) + time.perf_counter() - start
    setattr(owner, name, wrapper)
timer(Engine, "load", "engine.load (read)")
timer(meshforge.asset, "scene_to_mesh", "asset.scene_to_mesh")
timer(meshforge.engine, "_measure", "engine._measure")
profile = "ecommerce-glb" if sys.argv[2] == "full" else {"schema": 1, "name": "gltf-only", "chain": {"generate": ["import"],
    "validate": ["gltf.structure", "commerce.materials", "commerce.budgets", "commerce.scale"]}}
engine = Engine(profile, entry_points=False)
report = engine.validate(sys.argv[1])
elapsed = time.perf_counter() - t
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM"))
codes = sorted({f.code for f in report.findings})
del report
timed.clear()
t = time.perf_counter()
again = engine.validate(sys.argv[1])
warm = time.perf_counter() - t
steps = {r.step_id: r.seconds for r in again.steps}
steps.update(timed)
steps["(other)"] = warm - sum(steps.values())
print(json.dumps({"seconds": elapsed, "warm": warm, "peak_kb": hwm, "status": str(again.status), "codes": codes, "steps": steps}))
"""


def make_glb(path: Path, subdivisions: int, normals: bool = False) -> int:
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=subdivisions, radius=0.5)
    mesh.apply_translation([0, 0.5, 0])
    path.write_bytes(trimesh.Scene(mesh).export(file_type="glb", include_normals=normals))
    return len(mesh.faces)


def run_cli(path: Path) -> dict:
    """``meshforge validate`` as a user runs it: wall time and peak RSS of the child process."""
    started = time.perf_counter()
    proc = subprocess.Popen([meshforge_cli() or "meshforge", "validate", "-q", "--profile", "ecommerce-glb", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    return {"seconds": time.perf_counter() - started, "peak_kb": usage.ru_maxrss, "exit": os.waitstatus_to_exitcode(status)}


def run_meshforge(path: Path, mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", MESHFORGE, str(path), mode],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


KHRONOS = r"""
import json, resource, subprocess, sys, time
t = time.perf_counter()
out = subprocess.run(["node", sys.argv[1], sys.argv[2]], capture_output=True, text=True)
elapsed = time.perf_counter() - t
print(json.dumps({"seconds": elapsed, "peak_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                  "errors": json.loads(out.stdout)["issues"]["numErrors"]}))
"""


def run_khronos(path: Path) -> dict:
    # a wrapper process of its own, so the node child's ru_maxrss is not mixed with meshforge's
    out = subprocess.run([sys.executable, "-c", KHRONOS, str(ROOT / "scripts" / "gltf-validate.mjs"), str(path)],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--subdivisions", type=int, default=8)  # 20 * 4**8 = 1,310,720 triangles
    ap.add_argument("--normals", action="store_true", help="write NORMAL too (unit-length checks on 655k more vectors)")
    ap.add_argument("--stages", action="store_true", help="print the median warm seconds per stage")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sphere.glb"
        tris = make_glb(path, args.subdivisions, args.normals)
        print(f"input: {tris} triangles, {path.stat().st_size / 1e6:.1f} MB")
        ours: dict[str, list] = {"gltf": [], "full": []}
        cli, theirs = [], []
        for i in range(args.runs):
            cli.append(run_cli(path))
            for mode in ours:
                ours[mode].append(run_meshforge(path, mode))
            theirs.append(run_khronos(path))
            print(f"run {i + 1}: meshforge validate {cli[-1]['seconds']:.2f} s, "
                  + ", ".join(f"API[{mode}] {r[-1]['seconds']:.2f} s (warm {r[-1]['warm']:.2f})" for mode, r in ours.items())
                  + f", khronos {theirs[-1]['seconds']:.2f} s")
        k = statistics.median(r["seconds"] for r in theirs)
        c = statistics.median(r["seconds"] for r in cli)
        print(f"khronos   median {k:.2f} s (errors {theirs[-1]['errors']}), peak {max(r['peak_kb'] for r in theirs) / 1024:.0f} MB")
        print(f"meshforge validate -p ecommerce-glb: median {c:.2f} s (exit {cli[-1]['exit']}), peak {max(r['peak_kb'] for r in cli) / 1024:.0f} MB, "
              f"ratio meshforge/khronos = {c / k:.2f} (target <= 2.0)")
        for mode, runs in ours.items():
            m = statistics.median(r["seconds"] for r in runs)
            w = statistics.median(r["warm"] for r in runs)
            print(f"API[{mode}] median {m:.2f} s (codes {runs[-1]['codes']}), peak {max(r['peak_kb'] for r in runs) / 1024:.0f} MB, "
                  f"ratio {m / k:.2f}; warm {w:.2f} s, warm ratio {w / k:.2f}")
            if args.stages:
                stages = {name: statistics.median(r["steps"].get(name, 0.0) for r in runs) for name in runs[-1]["steps"]}
                print("    warm stages: " + ", ".join(f"{n} {sec:.3f}" for n, sec in stages.items()))


if __name__ == "__main__":
    main()
