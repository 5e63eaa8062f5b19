"""meshlab.self_intersections: PyMeshLab's per-face test behind the core's print.self_intersections code."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import trimesh

pytest.importorskip("pymeshlab")

from meshforge import testing as t  # noqa: E402
from meshforge.ops.intersections import intersecting_pairs  # noqa: E402
from meshforge_meshlab import validate as meshlab_validate  # noqa: E402

CORPUS = Path(os.environ.get("MESHFORGE_CORPUS", Path(__file__).resolve().parents[3].parent / "shared" / "corpus"))
STEP = {s.name: s for s in meshlab_validate.meshforge_validate_steps()}["meshlab.self_intersections"]


@pytest.fixture(scope="module")
def corpus() -> Path:
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.fail(f"the real-model corpus is missing at {CORPUS} (set MESHFORGE_CORPUS)")
    return CORPUS


def test_plugin_contract():
    assert t.check_plugin(meshlab_validate) == []
    assert STEP.codes == ("print.self_intersections",)


def test_clean_cube_and_soup_have_no_intersections():
    assert t.run_check(STEP, t.cube()) == []
    assert t.run_check(STEP, t.soup(t.cube())) == []  # welded first: STL neighbours do not count


def test_overlapping_cubes_agree_with_the_core_test():
    # offsets off the grid: with aligned corners MeshLab also counts faces that only touch
    mesh = trimesh.util.concatenate([t.cube(10.0), t.cube(10.0).apply_translation((3.3, 4.1, 2.7))])
    [finding] = t.run_check(STEP, t.soup(mesh), severity="error")
    assert (finding.code, finding.severity) == ("print.self_intersections", "error")
    assert finding.count == len(np.unique(intersecting_pairs(mesh.triangles)))


@pytest.mark.parametrize("rel", ["obj/manifold/self_intersectA.obj", "stl/trimesh/teapot.stl", "stl/assimp/3DSMaxExport.STL"])
def test_same_faces_as_the_core_on_corpus_files(corpus, rel):
    mesh = trimesh.load(corpus / rel, process=False, force="mesh")
    core = np.unique(intersecting_pairs(mesh.triangles))
    [finding] = t.run_check(STEP, mesh)
    assert finding.count == len(core)
