#!/usr/bin/env python3
"""Thumbnail speed: meshforge's numpy rasterizer vs a software-GL reference on the same mesh.

    python bench/bench_thumbnails.py [--triangles 1000000] [--size 512] [--supersample 2]

References (GPU-less renderers): Mesa llvmpipe through OSMesa (fixed-function flat-lit draw +
glReadPixels, when PyOpenGL and libOSMesa are installed; run in a child process because
PYOPENGL_PLATFORM must be set before import), and headless Chromium drawing the same GLB through
WebGL on SwiftShader (model-viewer, the HTML report's viewer), timed from navigation to
model-viewer's ``load`` event plus one screenshot, served from a loopback HTTP server. Prints
seconds and ratios; no assertion (speed targets are tracked here, not in tests).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import tempfile
import threading
import time
from importlib import resources
from pathlib import Path

import numpy as np
import trimesh


def bumpy_mesh(target: int) -> trimesh.Trimesh:
    """~``target`` triangles: subdivided spheres side by side, displaced so shading has work to do."""
    sphere = trimesh.creation.icosphere(subdivisions=7)  # 327,680 faces
    copies = max(1, round(target / len(sphere.faces)))
    mesh = trimesh.util.concatenate([sphere.copy().apply_translation((2.2 * i, 0, 0)) for i in range(copies)])
    mesh.vertices += mesh.vertex_normals * (0.04 * np.sin(mesh.vertices[:, 0] * 25))[:, None]
    return trimesh.Trimesh(mesh.vertices, mesh.faces, process=False)


def bench_numpy(mesh: trimesh.Trimesh, size: int, supersample: int) -> dict[str, float]:
    from meshforge.visual.render import VIEWS, prepare, render

    times = {}
    t0, c0 = time.perf_counter(), time.process_time()
    model = prepare(mesh, "+Z")
    times["prepare"] = time.perf_counter() - t0
    for view in VIEWS:
        t = time.perf_counter()
        render(model, view, size=size, supersample=supersample)
        times[view] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    times["total_cpu"] = time.process_time() - c0  # unaffected by other jobs sharing the cores
    return times


def bench_chromium(mesh: trimesh.Trimesh, size: int) -> float | None:
    from meshforge.visual.browser import Chromium, find_chromium

    if find_chromium() is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="meshforge-bench-"))
    try:
        glb = trimesh.Scene(mesh.copy().apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, (1, 0, 0))))
        (folder / "m.glb").write_bytes(glb.export(file_type="glb"))
        js = resources.files("meshforge.visual").joinpath("static/model-viewer-umd.min.js").read_bytes()
        (folder / "mv.js").write_bytes(js)
        (folder / "index.html").write_text(
            "<!DOCTYPE html><html><body style='margin:0'><script src='mv.js'></script>"
            f"<model-viewer id='v' src='m.glb' style='width:{size}px;height:{size}px'></model-viewer>"
            "<script>document.getElementById('v').addEventListener('load', () => document.title = 'loaded');</script>"
            "</body></html>"
        )
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

        handler = functools.partial(Quiet, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            with Chromium(width=size, height=size, timeout=300) as browser:
                t = time.perf_counter()
                page = browser.open(f"http://127.0.0.1:{server.server_address[1]}/index.html")
                page.wait_for("document.title === 'loaded'", timeout=300)
                page.screenshot()
                return time.perf_counter() - t
        finally:
            server.shutdown()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


OSMESA_CHILD = r"""
import os, sys, time
os.environ["PYOPENGL_PLATFORM"] = "osmesa"
import numpy as np
from OpenGL import GL, arrays, osmesa
data = np.load(sys.argv[1]); tris = np.ascontiguousarray(data["tris"]); norms = np.ascontiguousarray(data["norms"])
size = int(sys.argv[2])
t0 = time.perf_counter()
ctx = osmesa.OSMesaCreateContextExt(osmesa.OSMESA_RGBA, 24, 0, 0, None)
buf = arrays.GLubyteArray.zeros((size, size, 4))
assert osmesa.OSMesaMakeCurrent(ctx, buf, GL.GL_UNSIGNED_BYTE, size, size)
GL.glViewport(0, 0, size, size)
for cap in (GL.GL_DEPTH_TEST, GL.GL_LIGHTING, GL.GL_LIGHT0, GL.GL_NORMALIZE):
    GL.glEnable(cap)
GL.glMatrixMode(GL.GL_PROJECTION); GL.glLoadIdentity()
lo, hi = tris.min(0), tris.max(0); c = (lo + hi) / 2; r = float((hi - lo).max()) / 2 * 1.1
GL.glOrtho(c[0] - r, c[0] + r, c[2] - r, c[2] + r, -1e3, 1e3)
GL.glMatrixMode(GL.GL_MODELVIEW); GL.glLoadIdentity(); GL.glRotatef(-90, 1, 0, 0)
GL.glEnableClientState(GL.GL_VERTEX_ARRAY); GL.glEnableClientState(GL.GL_NORMAL_ARRAY)
GL.glVertexPointer(3, GL.GL_FLOAT, 0, tris); GL.glNormalPointer(GL.GL_FLOAT, 0, norms)
for _ in range(3):
    GL.glClear(GL.GL_COLOR_BUFFER_BIT | GL.GL_DEPTH_BUFFER_BIT)
    GL.glDrawArrays(GL.GL_TRIANGLES, 0, len(tris)); GL.glFinish()
    GL.glReadPixels(0, 0, size, size, GL.GL_RGBA, GL.GL_UNSIGNED_BYTE)
print(time.perf_counter() - t0, GL.glGetString(GL.GL_RENDERER).decode())
"""


def bench_osmesa(mesh: trimesh.Trimesh, size: int) -> tuple[float, str] | None:
    """Seconds for context + three 1-sample views at ``size`` px in llvmpipe, or None if unavailable."""
    import subprocess
    import sys

    folder = Path(tempfile.mkdtemp(prefix="meshforge-bench-"))
    try:
        data = folder / "mesh.npz"
        np.savez(data, tris=mesh.vertices[mesh.faces].reshape(-1, 3).astype(np.float32),
                 norms=np.repeat(mesh.face_normals, 3, axis=0).astype(np.float32))
        proc = subprocess.run([sys.executable, "-c", OSMESA_CHILD, str(data), str(size)], capture_output=True,
                              text=True, timeout=600)
        if proc.returncode != 0:
            return None
        seconds, _, renderer = proc.stdout.strip().partition(" ")
        return float(seconds), renderer
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triangles", type=int, default=1_000_000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--supersample", type=int, default=2)
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args()
    mesh = bumpy_mesh(args.triangles)
    print(f"mesh: {len(mesh.faces):,} triangles; {args.size}px, supersample {args.supersample}")
    ours = bench_numpy(mesh, args.size, args.supersample)
    per_view = [ours[v] for v in ("front", "threequarter", "top")]
    print("numpy rasterizer (wall; total_cpu = CPU seconds): " + ", ".join(f"{k} {v:.2f} s" for k, v in ours.items()))
    if args.no_reference:
        return
    gl = bench_osmesa(mesh, args.size * args.supersample)
    if gl is None:
        print("reference: OSMesa unavailable (pip install PyOpenGL; apt-get install libosmesa6)")
    else:
        print(f"OSMesa {gl[1]}: 3 views at {args.size * args.supersample}px (same pixel count, flat fixed-function, "
              f"no texture): {gl[0]:.2f} s; ratio ours/osmesa: {ours['total'] / gl[0]:.2f}")
    ref = bench_chromium(mesh, args.size)
    if ref is None:
        print("reference: chromium not installed")
        return
    print(f"chromium/SwiftShader model-viewer (load + 1 frame, {args.size}px, no supersampling): {ref:.2f} s")
    print(f"ratio one view (ours prepare + mean view) / reference: {(ours['prepare'] + np.mean(per_view)) / ref:.2f}")
    print(f"ratio three views / reference one view: {ours['total'] / ref:.2f}")


if __name__ == "__main__":
    main()
