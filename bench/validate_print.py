"""Benchmark (not a test): `meshforge validate --profile fdm-print-stl` vs `admesh -fundv` on one big STL.

Generates a binary STL (an icosphere: 20 * 4**k triangles, 1,310,720 by default), then runs both
tools alternately (so machine load hits both alike), and prints per-run wall times, the medians,
the ratio meshforge/admesh and each tool's peak resident memory. meshforge does far more than
admesh here (welded topology, bow-tie vertices, shells, self-intersections, wall thickness by ray
casting, overhangs, units, build volume); its per-step seconds come from its own JSON report.

    python bench/validate_print.py                 # 1.3 M triangles, 3 runs each
    python bench/validate_print.py --subdiv 6 --runs 2

A second line times a "topology only" profile (the fdm profile with validate = hygiene, closed,
manifold, orientation, shells: what admesh -fundv checks) so the like-for-like ratio is visible too.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cli_path import meshforge_cli


def make_stl(path: Path, subdiv: int) -> int:
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=subdiv, radius=50.0)  # 100 mm ball: fits the FDM bed
    mesh.export(path, file_type="stl")
    return len(mesh.faces)


def timed(cmd: list[str]) -> tuple[float, float, int, str]:
    """Wall seconds, peak RSS (MiB) of the child, return code, stdout."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    out = proc.stdout.read() if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    return seconds, usage.ru_maxrss / 1024.0, proc.returncode, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subdiv", type=int, default=8, help="icosphere subdivisions (8 -> 1,310,720 triangles)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", default="fdm-print-stl")
    args = ap.parse_args()
    admesh = shutil.which("admesh")
    meshforge = meshforge_cli()
    if not admesh or not meshforge:
        print("needs admesh and the meshforge CLI on PATH", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="mf-bench-") as tmp:
        stl = Path(tmp) / "ball.stl"
        n = make_stl(stl, args.subdiv)
        print(f"{stl.name}: {n:,} triangles, {stl.stat().st_size / 2**20:.1f} MiB binary STL; load average {os.getloadavg()[0]:.1f}")
        ours_cmd = [meshforge, "validate", "--profile", args.profile, "--json", str(stl)]
        ref_cmd = [admesh, "-fundv", str(stl)]
        topo_profile = Path(tmp) / "topology-only.toml"
        topo_profile.write_text(
            f'schema = 1\nname = "topology-only"\nextends = "{args.profile}"\n'
            '[chain]\nvalidate = ["hygiene", "closed", "manifold", "orientation", "shells"]\n'
        )
        topo_cmd = [meshforge, "validate", "--profile", str(topo_profile), "--quiet", str(stl)]
        ours, ref, ours_mem, ref_mem, topo = [], [], [], [], []
        report = None
        for i in range(args.runs):
            s, m, rc, out = timed(ours_cmd)
            ours.append(s)
            ours_mem.append(m)
            if report is None:
                try:
                    report = json.loads(out)
                except json.JSONDecodeError:
                    report = {}
            s3, _, rc3, _ = timed(topo_cmd)
            topo.append(s3)
            s2, m2, rc2, _ = timed(ref_cmd)
            ref.append(s2)
            ref_mem.append(m2)
            print(f"run {i + 1}: meshforge {s:.2f} s (exit {rc}, {m:.0f} MiB)   topology-only {s3:.2f} s (exit {rc3})   "
                  f"admesh -fundv {s2:.2f} s (exit {rc2}, {m2:.0f} MiB)")
        mo, ma = statistics.median(ours), statistics.median(ref)
        print(f"median: meshforge {mo:.2f} s, admesh {ma:.2f} s, ratio {mo / ma:.1f} (target <= 2.0)")
        mt = statistics.median(topo)
        print(f"median topology-only profile {mt:.2f} s, ratio {mt / ma:.1f} (like for like with admesh)")
        print(f"peak memory: meshforge {max(ours_mem):.0f} MiB, admesh {max(ref_mem):.0f} MiB")
        assets = (report or {}).get("assets") or ([report] if report and "steps" in report else [])
        for asset in assets:
            steps = sorted(asset.get("steps", []), key=lambda s: -s.get("seconds", 0))
            print("slowest steps (first run): " + ", ".join(f"{s.get('id')} {s.get('seconds', 0):.2f} s" for s in steps[:6]))
            print("findings: " + (", ".join(sorted({f["code"] for f in asset.get("findings", [])})) or "none"))
            inside = sum(s.get("seconds", 0) for s in asset.get("steps", []))
            total = asset.get("seconds", 0)
            print(f"asset seconds (inside the engine, after start-up): {total:.2f}; steps {inside:.2f}, "
                  f"outside the steps (read + weld, metrics, report) {total - inside:.2f}")
        if ours:
            print(f"start-up and exit (first run: wall - asset seconds): {ours[0] - (assets[0].get('seconds', 0) if assets else 0):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
