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


def profile(fill: str) -> dict:
    steps = {sid: {"uses": uses, "always": True} for sid, uses in USES.items()}
    steps["fill_holes"]["uses"] = "meshlab.fill_holes" if fill == "meshlab" else "mesh.fill_holes"
    return {"schema": 1, "name": f"bench-{fill}", "summary": "repair only",
            "chain": {"generate": ["import"], "validate": [], "repair": REPAIR, "export": ["stl"]},
            "steps": {"import": {}, **steps, "stl": {}}, "run": {"assume_units": "mm"}}


def prusa_info(path: Path) -> dict:
    proc = subprocess.run(["prusa-slicer", "--info", str(path)], capture_output=True, text=True, timeout=300)
    out: dict = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def admesh_disconnected(path: Path) -> int | None:
    proc = subprocess.run(["admesh", str(path)], capture_output=True, text=True, timeout=300)
    m = re.search(r"Total disconnected facets\s*:\s*(\d+)", proc.stdout)
    return int(m.group(1)) if m else None


def judge(inp: trimesh.Trimesh, out_path: Path, *, recentred: bool = False) -> dict:
    from meshforge.ops.solid import distances_to, hausdorff, surface_points

    if not out_path.is_file() or out_path.stat().st_size <= 84:
        return {"ok": False, "note": "no output"}
    info = prusa_info(out_path)
    prusa_ok = info.get("manifold") == "yes" and info.get("open_edges", "0") in ("0", "")
    admesh_ok = admesh_disconnected(out_path) == 0
    out = trimesh.load(out_path, force="mesh")
    if recentred:  # PrusaSlicer moves the object onto its bed: undo the translation only
        out.apply_translation(inp.bounds.mean(axis=0) - out.bounds.mean(axis=0))
    diag = float(np.linalg.norm(inp.extents)) or 1.0
    vin, vout = abs(inp.volume), abs(out.volume)
    h = hausdorff(inp, out, samples=5000) / diag
    drift = float(distances_to(inp, surface_points(out, 5000)).max()) / diag
    return {"ok": prusa_ok and admesh_ok, "prusa": prusa_ok, "admesh": admesh_ok,
            "dvol": (vout - vin) / vin if vin > 0 else float("nan"), "haus": h, "drift": drift}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--fill", choices=["mesh", "meshlab", "both"], default="both")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "plugins" / "meshforge-meshlab" / "src"))
    from meshforge import Engine

    fills = ["mesh", "meshlab"] if args.fill == "both" else [args.fill]
    plugins = []
    if "meshlab" in fills:
        try:
            import pymeshlab  # noqa: F401

            import meshforge_meshlab.repair as ml
            plugins = [ml]
        except ImportError:
            fills.remove("meshlab")
    engines = {f: Engine(profile(f), entry_points=False, plugins=plugins) for f in fills}
    tools = [f"meshforge[{f}]" for f in fills] + ["admesh -fundv", "prusa --export-stl"]
    todo = rows()[: args.limit or None]
    results: dict[str, list[dict]] = {t: [] for t in tools}
    tmp = Path(tempfile.mkdtemp(prefix="repair-rate-"))
    print(f"{'file':44s} " + " ".join(f"{t:>30s}" for t in tools))
    for r in todo:
        src = CORPUS / r["path"]
        work = tmp / re.sub(r"[^A-Za-z0-9_.]", "_", r["path"])
        work.mkdir(parents=True)
        inp = trimesh.load(src, force="mesh", process=False)
        if len(inp.faces) == 0 or not np.isfinite(inp.vertices).all():
            print(f"{r['path'][:44]:44s} skipped: {len(inp.faces)} triangles as read, or non-finite coordinates")
            continue
        as_stl = work / "input.stl"  # admesh and the slicer read STL; same triangles, no repair
        as_stl.write_bytes(trimesh.Trimesh(inp.vertices, inp.faces, process=False).export(file_type="stl"))
        cells = []
        for f in fills:
            t0 = time.perf_counter()
            report = engines[f].run(src, out_dir=work / f)
            outs = [Path(o.path) for o in report.outputs if str(o.path).endswith(".stl")]
            res = judge(inp, outs[0] if outs else work / "none")
            res["s"] = time.perf_counter() - t0
            results[f"meshforge[{f}]"].append(res)
        subprocess.run(["admesh", "-fundv", "-b", str(work / "admesh.stl"), str(as_stl)], capture_output=True, timeout=300)
        results["admesh -fundv"].append(judge(inp, work / "admesh.stl"))
        subprocess.run(["prusa-slicer", "--export-stl", "--output", str(work / "prusa.stl"), str(as_stl)],
                       capture_output=True, timeout=300)
        results["prusa --export-stl"].append(judge(inp, work / "prusa.stl", recentred=True))
        for t in tools:
            x = results[t][-1]
            cells.append("no output" if "haus" not in x else
                         f"{'OK ' if x['ok'] else 'bad'} dV{x['dvol']:+7.1%} H{x['haus']:6.2%} D{x['drift']:6.2%}")
        print(f"{r['path'][:44]:44s} " + " ".join(f"{c:>30s}" for c in cells), flush=True)
    print()
    for t in tools:
        n = len(results[t])
        ok = sum(x["ok"] for x in results[t])
        ok_drift = sum(x["ok"] and x.get("drift", 1) <= 0.01 for x in results[t])
        ok_haus = sum(x["ok"] and x.get("haus", 1) <= 0.01 for x in results[t])
        print(f"{t:22s} closed+manifold (PrusaSlicer and admesh): {ok}/{n} = {ok / max(n, 1):.0%}; "
              f"with drift <= 1%: {ok_drift}/{n}; with Hausdorff <= 1%: {ok_haus}/{n}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
