"""Reading real GLB/glTF files: geometry counts, instancing, PBR materials kept, compressed inputs decoded."""

from __future__ import annotations

import warnings

import pytest

from meshforge.io.gltf import read_glb, read_gltf
from meshforge.io.source import read_source
from meshforge.types import ReadLimits, Units


def load(corpus, rel):
    path = corpus / rel
    reader = read_glb if rel.endswith(".glb") else read_gltf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return reader(read_source(path, ReadLimits()), ReadLimits())


@pytest.mark.parametrize("rel,triangles", [
    ("glb/trimesh/BoxTextured.glb", 12),
    ("glb/assimp/2CylinderEngine.glb", 121496),  # instances expanded
    ("glb/trimesh/CesiumMilkTruck.glb", 3624),
    ("glb/trimesh/no_indices_3storybuilding.glb", 72),
    ("gltf/glTF-Transform/many-cubes.gltf", 6012),
    ("gltf/glTF-Transform/BoxTextured_glTF/BoxTextured.gltf", 12),
])
def test_triangle_counts_match_the_manifest(corpus, rel, triangles):
    loaded = load(corpus, rel)
    assert loaded.units == Units("m", "+Y")
    assert sum(len(loaded.scene.geometry[loaded.scene.graph[n][1]].faces) for n in loaded.scene.graph.nodes_geometry) == triangles
    assert loaded.document.triangles == triangles


def test_pbr_material_texture_and_uvs_are_kept(corpus):
    loaded = load(corpus, "glb/trimesh/BoxTextured.glb")
    (mesh,) = loaded.scene.geometry.values()
    material = mesh.visual.material
    assert material.baseColorTexture is not None and material.baseColorTexture.size == (256, 256)
    assert mesh.visual.uv is not None and mesh.visual.uv.shape == (24, 2)


def test_compressed_glb_is_decoded(corpus):
    # the manifest calls it meshopt; the file says KHR_draco_mesh_compression (required)
    pytest.importorskip("DracoPy")
    loaded = load(corpus, "glb/glTF-Transform/DenseSphere.glb")
    (mesh,) = loaded.scene.geometry.values()
    assert len(mesh.faces) == 30720
    assert mesh.extents.max() > 0
    assert not [i for i in loaded.document.issues if i.severity == "error"]


def test_draco_compressed_gltf_is_decoded(corpus):
    pytest.importorskip("DracoPy")
    loaded = load(corpus, "gltf/assimp/draco/2CylinderEngine.gltf")
    assert loaded.document.triangles > 100_000
    assert not {i.code for i in loaded.document.issues if i.severity == "error"} - {"external_uri"}


def test_without_a_decoder_compressed_geometry_is_an_error(corpus, monkeypatch):
    import meshforge.io.gltf as g

    monkeypatch.setattr(g, "supported_extensions", lambda: frozenset(g.PASSIVE_EXTENSIONS))
    monkeypatch.setitem(__import__("sys").modules, "meshoptimizer", None)
    monkeypatch.setitem(__import__("sys").modules, "DracoPy", None)
    from meshforge.io.gltf import read_document

    doc = read_document(read_source(corpus / "glb/glTF-Transform/DenseSphere.glb", ReadLimits()))
    found = {i.code for i in doc.issues}
    assert {"compressed_geometry", "unsupported_required_extension"} <= found
