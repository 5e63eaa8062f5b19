"""meshlab.fill_holes: PyMeshLab hole filling with fairing (GPL plugin)."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

pytest.importorskip("pymeshlab")

from meshforge import testing as t  # noqa: E402
from meshforge.ops import repair  # noqa: E402
from meshforge_meshlab import repair as meshlab_repair  # noqa: E402

STEP = {s.name: s for s in meshlab_repair.meshforge_repair_steps()}["meshlab.fill_holes"]


def test_plugin_contract():
    assert t.check_plugin(meshlab_repair) == []


def test_closes_a_missing_side():
    result = t.run_repair(STEP, t.open_box())
    assert result.scene is not None and result.scene.is_watertight
    assert result.scene.volume == pytest.approx(8000.0, rel=1e-3)


def test_closes_a_curved_hole_closer_to_the_surface_than_a_fan():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    keep = sphere.vertices[sphere.faces].mean(axis=1)[:, 2] < 8.5
    cut = trimesh.Trimesh(sphere.vertices, sphere.faces[keep], process=False)
    result = t.run_repair(STEP, cut, max_hole_edges=100)
    assert result.scene.is_watertight
    from meshforge.ops import holes
    from meshforge.ops.solid import distances_to

    fan, _ = holes.fill_holes(cut, max_hole_edges=100, max_hole_fraction=10.0)
    truth = trimesh.creation.icosphere(subdivisions=5, radius=10.0)
    # the refined, faired cap strays no farther from the sphere than the flat fan
    ours = result.scene.vertices[np.unique(result.scene.faces)]
    flat = fan.vertices[np.unique(fan.faces)]
    assert distances_to(truth, ours).max() <= distances_to(truth, flat).max()


def test_leaves_holes_over_the_edge_limit():
    sphere = trimesh.creation.icosphere(subdivisions=3, radius=10.0)
    centre = sphere.vertices[sphere.faces].mean(axis=1)
    keep = (centre[:, 2] < 5.0) | (centre[:, 0] < 0.0)  # a wide hole bent across two planes
    cut = trimesh.Trimesh(sphere.vertices, sphere.faces[keep], process=False)
    result = t.run_repair(STEP, cut, max_hole_edges=10)
    assert result.scene is None and repair.edge_counts(np.asarray(cut.faces))[0] > 10


def test_caps_a_planar_rim_over_the_edge_limit_like_the_core():
    import os
    from pathlib import Path

    path = Path(os.environ.get("MESHFORGE_CORPUS", Path(__file__).resolve().parents[3].parent / "shared" / "corpus"))
    path = path / "off/pmp/hemisphere.off"
    if not path.is_file():
        pytest.skip("corpus not present")
    mesh = trimesh.load(path, force="mesh", process=False)
    assert repair.edge_counts(np.asarray(mesh.faces))[0] == 120  # over MeshLab's 64-edge limit
    result = t.run_repair(STEP, mesh)
    assert result.scene is not None and repair.edge_counts(np.asarray(result.scene.faces)) == (0, 0)
    assert result.details["core_faces_added"] == 120
