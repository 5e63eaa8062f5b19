"""GLB geometry compression: bytes and time of meshforge's Draco and meshopt output vs gltfpack -cc.

    python bench/compression.py FILE.glb [FILE.glb ...]

Each input is read once with meshforge's reader and written with ``glb_bytes`` three ways (none,
draco, meshopt); the uncompressed output then goes through ``gltfpack -cc`` (meshopt with
quantization: what a web pipeline would otherwise run). Geometry bytes are the BIN chunk minus the
images, so textures do not hide the difference. Nothing asserts: numbers are for the report.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def geometry_bytes(data: bytes) -> int:
    from meshforge.io.glb_container import split_glb

    tree, binary = split_glb(data)
    images = sum(tree["bufferViews"][i["bufferView"]]["byteLength"] for i in tree.get("images", []))
    return len(binary) - images


def main(paths: list[Path]) -> None:
    from meshforge.io.gltf import read_glb
    from meshforge.io.gltf_write import glb_bytes
    from meshforge.io.source import read_source
    from meshforge.types import ReadLimits

    gltfpack = ROOT / "node_modules" / ".bin" / "gltfpack"
    print(f"{'file':<32} {'method':<14} {'geometry B':>12} {'ratio':>7} {'seconds':>8}")
    for path in paths:
        scene = read_glb(read_source(path, ReadLimits()), ReadLimits()).scene
        base = None
        for method in ("none", "draco", "meshopt"):
            start = time.perf_counter()
            data = glb_bytes(scene, compression=method)
            seconds = time.perf_counter() - start
            size = geometry_bytes(data)
            base = base or size
            print(f"{path.name[:32]:<32} {method:<14} {size:>12,} {size / base:>7.3f} {seconds:>8.2f}")
            if method == "none" and gltfpack.exists():
                with tempfile.TemporaryDirectory() as tmp:
                    src, out = Path(tmp) / "in.glb", Path(tmp) / "out.glb"
                    src.write_bytes(data)
                    start = time.perf_counter()
                    subprocess.run([str(gltfpack), "-i", str(src), "-o", str(out), "-cc"], check=True, capture_output=True)
                    packed = out.read_bytes()
                    gp_seconds = time.perf_counter() - start
                gp = geometry_bytes(packed)
        if gltfpack.exists():
            print(f"{path.name[:32]:<32} {'gltfpack -cc':<14} {gp:>12,} {gp / base:>7.3f} {gp_seconds:>8.2f}")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main([Path(p) for p in sys.argv[1:]])
