"""Hypothesis mutates valid GLB/STL/OBJ/PLY/OFF/3MF bytes: every reader answers with a model or an InputError.

Bounded for CI (about 2,000 cases in total); ``python bench/fuzz.py`` runs longer on demand.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshforge.io.fuzzing import alarm, mutate, read_mutant

SEEDS = {
    "stl-binary": "stl/numpy-stl/triamid.stl",
    "stl-ascii": "stl/trimesh/multibody.stl",
    "obj": "obj/trimesh/box.obj",
    "ply": "ply/o3dv/cube_rgb_binary.ply",
    "off": "off/trimesh/comments.off",
    "3mf": "3mf/3mf-samples/box.3mf",
    "glb": "glb/trimesh/BoxTextured.glb",
}
OPS = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 1 << 20), st.integers(0, 1 << 31)), min_size=1, max_size=6)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_mutated_bytes_never_escape_as_exceptions(corpus: Path, kind: str) -> None:
    path = corpus / SEEDS[kind]
    seed = path.read_bytes()
    assert read_mutant(path.name, seed) == "ok"

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(ops=OPS)
    def check(ops: list[tuple[int, int, int]]) -> None:
        with alarm(10):
            outcome = read_mutant(path.name, mutate(seed, ops))
        assert outcome == "ok" or outcome.startswith("input.")

    check()
