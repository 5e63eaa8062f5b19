#!/usr/bin/env python3
"""Regenerate docs/screenshots/report.png and gallery.png from a real run over corpus files.

    python scripts/make_screenshots.py            # needs the corpus (../shared/corpus) and chromium

Runs the FDM print profile (with glb, thumbnails and debug_glb exports added) over a few corpus
files, renders the HTML pages and the gallery with ``meshforge.visual.html``, and screenshots them
in headless Chromium (``meshforge.visual.browser``). When the profile's validators are not all
installed here, a small stand-in edge check is used so the pictures still show findings; the page
says which profile ran.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("MESHFORGE_CORPUS", ROOT.parent / "shared" / "corpus"))
FILES = (
    "stl/trimesh/teapot.stl",
    "stl/trimesh/shared.STL",
    "stl/numpy-stl/binary/rear_case.stl",
    "obj/pmp/suzanne.obj",
    "ply/trimesh/bunny.ply",
    "stl/trimesh/20mm-xyz-cube.stl",
)
EXPORTS = ["stl", "glb", "thumbnails", "debug_glb"]


def _engine():
    from meshforge import Engine, hookimpl
    from meshforge.errors import ProfileError
    from meshforge.types import Severity, ValidateStep

    profile = {"name": "fdm-print-stl+visual", "extends": "fdm-print-stl", "chain": {"export": EXPORTS},
               "steps": {"glb": {}, "thumbnails": {}, "debug_glb": {}}}
    try:
        return Engine(profile)
    except ProfileError as exc:
        print(f"fdm-print-stl does not resolve here ({exc}); using a stand-in edge check", file=sys.stderr)

    from meshforge.visual.debug import edge_topology, weld

    def check(view, params, ctx):
        _, _, per_edge = edge_topology(weld(view.mesh.vertices, view.mesh.faces))
        for code, mask, what in (("demo.open_edges", per_edge == 1, "open (boundary) edges"),
                                 ("demo.non_manifold", per_edge > 2, "edges shared by more than two faces")):
            if mask.any():
                yield ctx.finding(code, Severity.ERROR, f"{int(mask.sum())} {what}", measured=int(mask.sum()),
                                  threshold=0, count=int(mask.sum()))
        size = view.mesh.extents
        yield ctx.finding("demo.size", Severity.INFO, "bounding box (mm)", measured=[round(float(s), 2) for s in size],
                          threshold=[220.0, 210.0, 220.0])

    class StandIn:
        __name__ = "stand_in_checks"

        @hookimpl
        def meshforge_validate_steps(self):
            return [ValidateStep(name="demo.edges", summary="open and non-manifold edges (stand-in)",
                                 codes=("demo.open_edges", "demo.non_manifold", "demo.size"), check=check)]

    profile = {"name": "visual-demo", "chain": {"generate": ["import"], "validate": ["edges"],
                                                "repair": ["weld", "fill_holes", "place_on_bed"], "export": EXPORTS},
               "steps": {"import": {}, "edges": {"uses": "demo.edges"},
                         "weld": {"uses": "mesh.weld", "always": True},
                         "fill_holes": {"uses": "mesh.fill_holes", "always": True},
                         "place_on_bed": {"uses": "print.place_on_bed", "always": True},
                         "stl": {}, "glb": {}, "thumbnails": {}, "debug_glb": {}},
               "run": {"assume_units": "mm"}}
    return Engine(profile, plugins=[StandIn()])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folder here")
    args = parser.parse_args()

    from meshforge.visual.browser import Chromium
    from meshforge.visual.html import render_dir

    work = args.keep or Path(tempfile.mkdtemp(prefix="meshforge-shots-"))
    engine = _engine()
    for rel in FILES:
        report = engine.run(CORPUS / rel, out_dir=work)
        print(f"{rel}: {report.status}", file=sys.stderr)
    pages, gallery = render_dir(work)
    failing = next((p for p in pages if p.name == "suzanne.report.html"), pages[0])
    args.out.mkdir(parents=True, exist_ok=True)
    with Chromium(width=1280, height=1000, timeout=90) as browser:
        page = browser.open(failing.as_uri())
        page.evaluate("document.querySelector('button[data-src=debug]') && document.querySelector('button[data-src=debug]').click()")
        page.wait_for("document.body.dataset.model !== 'pending'", timeout=90)
        page.call("Runtime.evaluate", {"expression": "new Promise(r => setTimeout(r, 500))", "awaitPromise": True})
        page.screenshot(args.out / "report.png", full_page=True)
        problems = page.errors
        page = browser.open(gallery.as_uri())
        page.wait_for("Array.from(document.images).every(i => i.complete)")
        page.screenshot(args.out / "gallery.png")
        problems += page.errors
    for name in ("report.png", "gallery.png"):
        print(args.out / name)
    if problems:
        print("browser errors:", *problems, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
