"""Repair-rate table over ../shared/corpus: meshforge vs `admesh -fundv` vs `prusa-slicer --export-stl`.

For each defective, printable mesh of the corpus (STL/OBJ/PLY/OFF, not spec-invalid, with triangles),
each tool repairs the same file; each output is judged by PrusaSlicer (`--info`: manifold, open edges)
and admesh (disconnected facets in the file as read). Reported per output: closed+manifold by both
referees, volume change, symmetric Hausdorff distance and the outward drift (farthest output point
from the input surface) as fractions of the input's bbox diagonal. A hole cap's sag counts as
Hausdorff distance; a union's removed inner walls do not count as drift.

    python bench/repair_rate.py                 # all rows, both fill methods when PyMeshLab is present
    python bench/repair_rate.py --limit 5 --fill mesh

Not a test: it prints a table and the success rates.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("MESHFORGE_CORPUS", ROOT.parent / "shared" / "corpus"))
MESH_FORMATS = {"stl-binary", "stl-ascii", "obj", "ply-ascii", "ply-binary-le", "off", "off-binary"}
REPAIR = ["clean", "weld", "fix_winding", "fill_holes", "solidify", "remove_debris"]
USES = {"clean": "mesh.clean", "weld": "mesh.weld", "fix_winding": "mesh.fix_winding", "fill_holes": "mesh.fill_holes",
        "solidify": "mesh.solidify", "remove_debris": "mesh.remove_debris"}


def rows() -> list[dict[str, str]]:
    with (CORPUS / "MANIFEST.tsv").open(newline="", encoding="utf-8") as fh:
        out = []
        for r in csv.DictReader(fh, delimiter="\t"):
            defects = r["known_defects"]
            if r["format"] not in MESH_FORMATS or not r["triangles"] or int(r["triangles"]) < 4:
                continue
            if defects.startswith("INVALID") or "measured: closed manifold, single shell" in defects:
                continue
            out.append(r)
        return out


def profile(fill: str, meshlab_solidify: bool = False) -> dict:
    steps = {sid: {"uses": uses, "always": True} for sid, uses in USES.items()}
    steps["fill_holes"]["uses"] = "meshlab.fill_holes" if fill == "meshlab" else "mesh.fill_holes"
    if meshlab_solidify:
        steps["solidify"]["uses"] = ["meshlab.solidify", "mesh.solidify"]
    return {"schema": 1, "name": f"bench-{fill}", "summary": "repair only",
            "chain": {"generate": ["import"], "validate": [], "repair": REPAIR, "export": ["stl"]},
            "steps": {"import": {}, **steps, "stl": {}}, "run": {"assume_units": "mm"}}


TIMEOUT = 90  # seconds per tool and file; a tool that takes longer counts as a failure ("timeout")


class ToolTimeout(BaseException):  # BaseException: the engine's step isolation must not swallow it
    pass


def _alarm(signum, frame):
    raise ToolTimeout()


def prusa_info(path: Path) -> dict:
    proc = subprocess.run(["prusa-slicer", "--info", str(path)], capture_output=True, text=True, timeout=TIMEOUT)
    out: dict = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def admesh_disconnected(path: Path) -> int | None:
    proc = subprocess.run(["admesh", str(path)], capture_output=True, text=True, timeout=TIMEOUT)
    m = re.search(r"Total disconnected facets\s*:\s*(\d+)", proc.stdout)
    return int(m.group(1)) if m else None


def _closest(mesh: trimesh.Trimesh, points: np.ndarray):
    """(distance, closest point, triangle id) of each point on ``mesh`` (open3d BVH)."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, dtype=np.float32)),
                        o3d.core.Tensor(np.asarray(mesh.faces, dtype=np.uint32)))
    ans = scene.compute_closest_points(o3d.core.Tensor(points.astype(np.float32)))
    closest = ans["points"].numpy().astype(np.float64)
    tri = ans["primitive_ids"].numpy().astype(np.int64)
    dist = np.linalg.norm(points - closest, axis=1)
    missing = tri >= len(mesh.faces)  # no triangle (e.g. all degenerate): infinitely far
    dist[missing], tri[missing] = np.inf, 0
    return dist, closest, tri


def _inside(mesh: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """Points inside a closed mesh (open3d ray parity)."""
    import open3d as o3d

    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(np.asarray(mesh.vertices, dtype=np.float32)),
                        o3d.core.Tensor(np.asarray(mesh.faces, dtype=np.uint32)))
    return scene.compute_occupancy(o3d.core.Tensor(points.astype(np.float32)), nsamples=3).numpy() > 0.5


def _in_hole_balls(ref: trimesh.Trimesh, points: np.ndarray) -> np.ndarray:
    """Points inside the ball spanning one of ``ref``'s holes (centre = loop centroid, radius = farthest
    loop vertex, x1.1): any cap over that hole lies there, so they are cap points, not drift."""
    from meshforge.ops.holes import boundary_loops

    cap = np.zeros(len(points), dtype=bool)
    v = np.asarray(ref.vertices)
    for loop in boundary_loops(np.asarray(ref.faces, dtype=np.int64)):  # one iteration per hole
        c = v[loop].mean(axis=0)
        r = 1.1 * np.linalg.norm(v[loop] - c, axis=1).max()
        cap |= np.linalg.norm(points - c, axis=1) <= r
    return cap


def judge(inp: trimesh.Trimesh, ref: trimesh.Trimesh, out_path: Path, *, recentred: bool = False) -> dict:
    """Referees' verdict on ``out_path`` and its distances to the input.

    drift: farthest output point from the input surface, as a fraction of the bbox diagonal,
      not counting points in the ball spanning a hole of the input (a cap; reported as ``cap``).
    lost: farthest input point from the output surface that is not inside the output (input
      surface a union removed because it was inside the solid is no loss); 0 when such points are
      under 0.1 % of the input's area (debris removal, P7).
    solid: the output encloses a volume (a double-sided zero-thickness sheet is closed and
      manifold edge by edge, but prints nothing).
    """
    from meshforge.ops.solid import surface_points

    try:
        out = trimesh.load(out_path, force="mesh", process=False) if out_path.is_file() else None
    except Exception:
        out = None
    if out is None or not hasattr(out, "faces") or len(out.faces) == 0:
        return {"ok": False, "note": "no output"}
    if not np.isfinite(out.vertices).all():
        return {"ok": False, "note": "non-finite output"}
    info = prusa_info(out_path)
    prusa_ok = info.get("manifold") == "yes" and info.get("open_edges", "0") in ("0", "")
    admesh_ok = admesh_disconnected(out_path) == 0
    if recentred:  # PrusaSlicer moves the object onto its bed: undo the translation only
        out.apply_translation(inp.bounds.mean(axis=0) - out.bounds.mean(axis=0))
    diag = float(np.linalg.norm(inp.extents)) or 1.0
    vin, vout = abs(inp.volume), abs(out.volume)
    solid = vout > 1e-6 * diag ** 3
    p_out = surface_points(out, 5000)
    d_out, _, _ = _closest(ref, p_out)
    cap = _in_hole_balls(ref, p_out) & (d_out > 1e-9 * diag)
    p_in = surface_points(inp, 5000)[-5000:]  # area-weighted samples only: zero-area needles weigh nothing
    d_in, _, _ = _closest(out, p_in)
    far = d_in > 1e-4 * diag
    if far.any() and solid:
        far[far] &= ~_inside(out, p_in[far])
    if far.mean() <= 0.001:  # under 0.1 % of the surface: debris (P7), dropped on purpose
        far[:] = False
    return {"ok": prusa_ok and admesh_ok and solid, "prusa": prusa_ok, "admesh": admesh_ok, "solid": solid,
            "dvol": (vout - vin) / vin if vin > 1e-9 * diag ** 3 else float("nan"),
            "haus": max(d_out.max(), d_in.max()) / diag,
            "drift": float(d_out[~cap].max(initial=0.0)) / diag, "cap": float(d_out[cap].max(initial=0.0)) / diag,
            "lost": float(d_in[far].max(initial=0.0)) / diag}


def cell(x: dict) -> str:
    if "haus" not in x:
        return x.get("note", "no output")
    verdict = "OK " if x["ok"] else ("flat" if x["prusa"] and x["admesh"] else "bad")
    return f"{verdict:4s} dV{x['dvol']:+7.1%} D{x['drift']:5.2%} L{x['lost']:5.2%} C{x['cap']:5.2%}"


def run_tool(fn, *args):
    """Run ``fn`` under the per-tool timeout; (result or None, seconds, note)."""
    t0 = time.perf_counter()
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT)
    try:
        return fn(*args), time.perf_counter() - t0, ""
    except (ToolTimeout, subprocess.TimeoutExpired):
        return None, time.perf_counter() - t0, "timeout"
    finally:
        signal.alarm(0)


def main() -> int:
    global TIMEOUT
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--only", default="", help="substring of the corpus paths to run")
    ap.add_argument("--fill", choices=["mesh", "meshlab", "both"], default="mesh")
    ap.add_argument("--meshlab-solidify", action="store_true", help="meshlab.solidify before mesh.solidify")
    ap.add_argument("--timeout", type=int, default=TIMEOUT)
    args = ap.parse_args()
    TIMEOUT = args.timeout
    sys.path.insert(0, str(ROOT / "plugins" / "meshforge-meshlab" / "src"))
    from meshforge import Engine
    from meshforge.ops.repair import weld

    fills = ["mesh", "meshlab"] if args.fill == "both" else [args.fill]
    plugins = []
    if "meshlab" in fills or args.meshlab_solidify:
        try:
            import pymeshlab  # noqa: F401

            import meshforge_meshlab.repair as ml
            plugins = [ml]
        except ImportError:
            fills = [f for f in fills if f != "meshlab"] or ["mesh"]
            args.meshlab_solidify = False
    engines = {f: Engine(profile(f, args.meshlab_solidify), entry_points=False, plugins=plugins) for f in fills}
    tools = [f"meshforge[{f}]" for f in fills] + ["admesh -fundv", "prusa --export-stl"]
    todo = [r for r in rows() if args.only in r["path"]][: args.limit or None]
    results: dict[str, list[dict]] = {t: [] for t in tools}
    seconds: dict[str, float] = {t: 0.0 for t in tools}
    tmp = Path(tempfile.mkdtemp(prefix="repair-rate-"))
    print(f"D drift outward, L input lost (not inside the output), C cap over a hole; % of bbox diagonal; "
          f"'flat' = closed+manifold but no volume; timeout {TIMEOUT} s per tool")
    print(f"{'file':40s} " + " ".join(f"{t:>38s}" for t in tools))
    t_all = time.perf_counter()
    skipped = []
    for r in todo:
        src = CORPUS / r["path"]
        work = tmp / re.sub(r"[^A-Za-z0-9_.]", "_", r["path"])
        work.mkdir(parents=True)
        try:
            inp = trimesh.load(src, force="mesh", process=False)
        except Exception as exc:  # the reference loader cannot read it: nothing to compare against
            skipped.append(r["path"])
            print(f"{r['path'][:40]:40s} skipped: trimesh cannot load it ({type(exc).__name__})")
            continue
        if len(getattr(inp, "faces", [])) == 0 or not np.isfinite(inp.vertices).all() or np.abs(inp.vertices).max() > 1e12:
            skipped.append(r["path"])
            print(f"{r['path'][:40]:40s} skipped: no triangles as read, non-finite or overflowing (> 1e12) coordinates")
            continue
        ref, _ = weld(inp)  # open edges of the input after welding cracks: what a cap may span
        as_stl = work / "input.stl"  # admesh and the slicer read STL; same triangles, no repair
        as_stl.write_bytes(trimesh.Trimesh(inp.vertices, inp.faces, process=False).export(file_type="stl"))
        runs = {f"meshforge[{f}]": (lambda f=f: [Path(o.path) for o in engines[f].run(src, out_dir=work / f).outputs
                                                 if str(o.path).endswith(".stl")][:1] or [work / "none"])
                for f in fills}
        runs["admesh -fundv"] = lambda: (subprocess.run(["admesh", "-fundv", "-b", str(work / "admesh.stl"), str(as_stl)],
                                                        capture_output=True, timeout=TIMEOUT), [work / "admesh.stl"])[1]
        runs["prusa --export-stl"] = lambda: (subprocess.run(["prusa-slicer", "--export-stl", "--output", str(work / "prusa.stl"),
                                                              str(as_stl)], capture_output=True, timeout=TIMEOUT), [work / "prusa.stl"])[1]
        for t in tools:
            outs, s, note = run_tool(runs[t])
            seconds[t] += s
            res = {"ok": False, "note": note} if outs is None else judge(inp, ref, outs[0], recentred=t.startswith("prusa"))
            res["s"] = s
            results[t].append(res)
        print(f"{r['path'][:40]:40s} " + " ".join(f"{cell(results[t][-1]):>38s}" for t in tools), flush=True)
    print()
    if skipped:
        print(f"skipped (not counted for any tool): {', '.join(skipped)}")
    for t in tools:
        n = len(results[t])
        ok = sum(x["ok"] for x in results[t])
        flat = sum(x.get("prusa", False) and x.get("admesh", False) and not x.get("solid") for x in results[t])
        good = sum(x["ok"] and x["drift"] <= 0.01 and x["lost"] <= 0.01 for x in results[t])
        worst = max((x["drift"] for x in results[t] if x["ok"]), default=0.0)
        print(f"{t:20s} solid+closed+manifold (PrusaSlicer and admesh): {ok}/{n}; with drift and loss <= 1%: {good}/{n}; "
              f"worst drift of those {worst:.2%}; 'flat' sheets {flat}; {seconds[t]:.0f} s")
    print(f"total {time.perf_counter() - t_all:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
