"""Write one self-contained GLB that the Khronos glTF-Validator accepts with zero errors.

trimesh's exporter does the heavy lifting (accessors with min/max, embedded images as bufferViews,
PBR metallic-roughness materials); this module prepares the scene so its output is valid
(metres / +Y up, finite coordinates, unit normals, no empty primitives) and post-processes the
JSON tree (generator, bufferView targets, no external or data URIs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meshforge.ops import scene_ops

GENERATOR = "meshforge"


def _sanitize_mesh(mesh: Any) -> Any | None:
    """A copy fit for glTF, or None to drop it: finite positions, real triangles, unit normals."""
    import trimesh

    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        return None
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    finite_v = np.isfinite(vertices).all(axis=1)
    keep = finite_v[faces].all(axis=1)
    keep &= (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    if not keep.any():
        return None
    attrs = scene_ops.vertex_attributes(mesh)
    faces = faces[keep]
    used, inverse = np.unique(faces.reshape(-1), return_inverse=True)
    new_attrs = {k: np.asarray(v)[used] for k, v in attrs.items()}
    if "uv" in new_attrs:
        uv = np.asarray(new_attrs["uv"], dtype=np.float64)
        new_attrs["uv"] = np.where(np.isfinite(uv), uv, 0.0)
    out = scene_ops.rebuild(mesh, vertices[used], inverse.reshape(-1, 3), new_attrs)
    out.vertex_normals = unit_normals(out, new_attrs.get("normal"))
    return out


def unit_normals(mesh: Any, given: np.ndarray | None) -> np.ndarray:
    """Unit vertex normals: the given ones where usable, computed (area-weighted) elsewhere, +Y last resort."""
    import trimesh

    computed = np.asarray(trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).vertex_normals, dtype=np.float64)
    normals = computed.copy() if given is None else np.asarray(given, dtype=np.float64).copy()
    length = np.linalg.norm(normals, axis=1)
    bad = ~np.isfinite(length) | (length < 1e-8)
    normals[bad] = computed[bad]
    length = np.linalg.norm(normals, axis=1)
    bad = ~np.isfinite(length) | (length < 1e-8)
    normals[bad] = (0.0, 1.0, 0.0)
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def prepare(scene: Any) -> Any:
    """The scene with every geometry sanitized (dropped when nothing drawable is left)."""
    import trimesh

    replaced: dict[str, Any] = {}
    drop: list[str] = []
    for name, geom in scene.geometry.items():
        new = _sanitize_mesh(geom)
        if new is None:
            drop.append(name)
        else:
            replaced[name] = new
    out = scene_ops.with_geometry(scene, replaced)
    for name in drop:
        out.delete_geometry(name)
    if not out.geometry:
        raise ValueError("nothing drawable left to export (no finite, non-degenerate triangles)")
    # world must be finite too: node transforms with NaN/inf cannot be exported
    for a, b, data in out.graph.to_edgelist():
        if "matrix" in data and not np.isfinite(np.asarray(data["matrix"], dtype=np.float64)).all():
            raise ValueError(f"node {b!r} has a non-finite transform")
    return out if isinstance(out, trimesh.Scene) else trimesh.Scene(out)


def _postprocess(tree: dict[str, Any]) -> None:
    asset = tree.setdefault("asset", {})
    asset["version"] = "2.0"
    asset["generator"] = GENERATOR
    # vertex data -> ARRAY_BUFFER, indices -> ELEMENT_ARRAY_BUFFER (the validator hints otherwise)
    views = tree.get("bufferViews", [])
    for mesh in tree.get("meshes", []):
        for prim in mesh.get("primitives", []):
            for acc in prim.get("attributes", {}).values():
                view = tree["accessors"][acc].get("bufferView")
                if view is not None and "byteStride" not in views[view]:
                    views[view].setdefault("target", 34962)
            if "indices" in prim:
                view = tree["accessors"][prim["indices"]].get("bufferView")
                if view is not None:
                    views[view].setdefault("target", 34963)
    for image in tree.get("images", []):
        if "uri" in image:  # never external or data URIs in a GLB
            raise ValueError(f"image {image.get('name', '?')!r} would be written with a URI")
    for buffer in tree.get("buffers", []):
        buffer.pop("uri", None)


def glb_bytes(scene: Any) -> bytes:
    """The GLB of ``scene`` (metres, +Y up already)."""
    from trimesh.exchange.gltf import export_glb

    prepared = prepare(scene)
    return export_glb(prepared, include_normals=True, unitize_normals=True, tree_postprocessor=_postprocess)
