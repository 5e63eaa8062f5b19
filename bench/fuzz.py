"""Longer fuzzing of the readers on demand: mutate valid corpus files, count cases and failures.

    python bench/fuzz.py --cases 20000 --seed 1        # all seed formats
    python bench/fuzz.py --cases 5000 --only 3mf obj

A failure is any exception other than InputError, or no answer within --timeout seconds. Each one
is saved under --out with its traceback so it can become a regression test.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("MESHFORGE_CORPUS", ROOT.parent / "shared" / "corpus"))
SEEDS = {
    "stl-binary": ["stl/numpy-stl/triamid.stl", "stl/numpy-stl/binary/HalfDonut.stl"],
    "stl-ascii": ["stl/trimesh/multibody.stl"],
    "obj": ["obj/trimesh/box.obj", "obj/trimesh/negative_indices.obj", "obj/trimesh/polygonfaces.obj"],
    "ply": ["ply/o3dv/cube_rgb_binary.ply", "ply/trimesh/plane.ply"],
    "off": ["off/trimesh/comments.off", "off/pmp/hole_capsule.off"],
    "3mf": ["3mf/3mf-samples/box.3mf", "3mf/3mf-samples/MUSTPASS/MUSTPASS_Chapter3.2c_MultipleItemsTransform.3mf"],
    "glb": ["glb/trimesh/BoxTextured.glb", "glb/assimp/BoxBadNormals.glb"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=int, default=10)
    ap.add_argument("--only", nargs="*", default=None, help=f"formats: {', '.join(SEEDS)}")
    ap.add_argument("--out", type=Path, default=Path("fuzz-failures"))
    ap.add_argument("--files", nargs="*", type=Path, default=(),
                    help="extra seed files (e.g. Draco/meshopt GLBs written by meshforge or gltfpack)")
    args = ap.parse_args()
    from meshforge.io.fuzzing import alarm, mutate, read_mutant

    rng = random.Random(args.seed)
    kinds = args.only or list(SEEDS)
    seeds = [(k, CORPUS / p) for k in kinds for p in SEEDS[k]] + [(f.suffix.lstrip("."), f) for f in args.files]
    data = {p: p.read_bytes() for _, p in seeds}
    outcomes: collections.Counter[str] = collections.Counter()
    failures = 0
    started = time.perf_counter()
    for case in range(args.cases):
        kind, path = seeds[case % len(seeds)]
        ops = [(rng.randrange(5), rng.randrange(1 << 20), rng.randrange(1 << 31)) for _ in range(rng.randint(1, 6))]
        mutant = mutate(data[path], ops)
        try:
            with alarm(args.timeout):
                outcomes[read_mutant(path.name, mutant)] += 1
        except Exception as exc:  # anything but InputError is a bug
            failures += 1
            args.out.mkdir(parents=True, exist_ok=True)
            stem = args.out / f"{kind}-{case}"
            stem.with_suffix(path.suffix).write_bytes(mutant)
            stem.with_suffix(".txt").write_text(f"{path}\n{ops}\n\n{traceback.format_exc()}")
            print(f"FAIL {kind} case {case}: {type(exc).__name__}: {exc}", file=sys.stderr)
    seconds = time.perf_counter() - started
    print(f"cases run: {args.cases}  failures: {failures}  seconds: {seconds:.1f}  "
          f"({args.cases / seconds:.0f} cases/s)")
    for outcome, n in outcomes.most_common():
        print(f"  {outcome:28s} {n}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
