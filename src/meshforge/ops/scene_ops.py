"""Scene plumbing shared by the commerce repairs: copy-on-write scenes, instance counts, attributes.

Repairs never edit the scene they are handed: :func:`with_geometry` builds a new Scene that
shares every unchanged geometry (read-only by contract) and swaps in the replaced ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def with_geometry(scene: Any, replaced: Mapping[str, Any], *, graph: Any = None) -> Any:
    """A new Scene with ``replaced`` geometries swapped in (others shared), and an optional new graph."""
    import trimesh

    out = trimesh.Scene(base_frame=scene.graph.base_frame)
    out.metadata.update(scene.metadata)
    for name, geom in scene.geometry.items():
        out.geometry[name] = replaced.get(name, geom)
    out.graph = (graph if graph is not None else scene.graph).copy()
    return out


def copy_geometry(geom: Any) -> Any:
    """``geom.copy()`` that keeps its material object. trimesh deep-copies the material (and its
    images), which split one shared material into one per mesh: dedupe's "9 -> 5" came back as 9
    after the next repair, and the GLB carried 9 materials. Materials are never edited in place
    here (the texture repair builds new ones), so sharing is safe."""
    if not hasattr(geom, "faces"):
        return geom.copy()
    new = geom.copy(include_cache=True)
    material = getattr(geom.visual, "material", None)
    if material is not None and getattr(new.visual, "material", None) is not None:
        new.visual.material = material
    return new


def instance_counts(scene: Any) -> dict[str, int]:
    """How many nodes draw each geometry (a geometry placed 3 times costs 3x its triangles)."""
    nodes = scene.graph.geometry_nodes
    return {name: len(nodes.get(name, ())) for name in scene.geometry}


def triangle_meshes(scene: Any) -> dict[str, Any]:
    import trimesh

    return {name: g for name, g in scene.geometry.items() if isinstance(g, trimesh.Trimesh) and len(g.faces)}


def loaded_normals(mesh: Any) -> np.ndarray | None:
    """Vertex normals the file carried (or a repair set), without computing any."""
    cached = mesh._cache.cache.get("vertex_normals")  # trimesh keeps given normals in its cache
    if cached is not None and len(cached) == len(mesh.vertices):
        return np.asarray(cached)
    return None


def rebuild(mesh: Any, vertices: np.ndarray, faces: np.ndarray, attributes: Mapping[str, np.ndarray]) -> Any:
    """A new Trimesh with ``mesh``'s material/visual kind and the carried per-vertex attributes."""
    import trimesh
    from trimesh.visual import ColorVisuals, TextureVisuals

    visual: Any = None
    if isinstance(mesh.visual, TextureVisuals):
        visual = TextureVisuals(uv=attributes.get("uv"), material=mesh.visual.material)
    elif "color" in attributes:
        visual = ColorVisuals(vertex_colors=np.asarray(attributes["color"]))
    normals = attributes.get("normal")
    if normals is not None:
        normals = np.asarray(normals, dtype=np.float64)
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = np.where(length > 1e-12, normals / np.where(length > 1e-12, length, 1.0), 0.0)
    out = trimesh.Trimesh(vertices=vertices, faces=faces, visual=visual, process=False,
                          vertex_normals=normals, metadata=dict(mesh.metadata))
    return out


def vertex_attributes(mesh: Any) -> dict[str, np.ndarray]:
    """Per-vertex data to carry through a topology change: uv, normal, color."""
    from trimesh.visual import ColorVisuals, TextureVisuals

    out: dict[str, np.ndarray] = {}
    visual = mesh.visual
    if isinstance(visual, TextureVisuals) and visual.uv is not None and len(visual.uv) == len(mesh.vertices):
        out["uv"] = np.asarray(visual.uv, dtype=np.float64)
    elif isinstance(visual, ColorVisuals) and visual.kind in ("vertex", "face"):
        out["color"] = np.asarray(visual.vertex_colors)
    normals = loaded_normals(mesh)
    if normals is not None:
        out["normal"] = normals
    return out


def vertex_keys(mesh: Any) -> np.ndarray | None:
    """Per-vertex values two vertices must share to be merged: UV, vertex colour, loaded normal and
    every extra vertex attribute (tangents), as one (n, k) float array; None for a bare mesh."""
    from trimesh.visual import ColorVisuals, TextureVisuals

    n = len(mesh.vertices)
    columns: list[np.ndarray] = []
    visual = mesh.visual
    if isinstance(visual, TextureVisuals):  # UVs, and colours when a loader kept them beside a texture
        columns += [np.asarray(v) for v in visual.vertex_attributes.values() if len(v) == n]
    elif isinstance(visual, ColorVisuals) and visual.kind == "vertex":
        columns.append(np.asarray(visual.vertex_colors))
    normals = loaded_normals(mesh)
    if normals is not None:
        columns.append(normals)
    columns += [np.asarray(v) for v in mesh.vertex_attributes.values() if len(v) == n]
    if not columns:
        return None
    return np.column_stack([c.reshape(n, -1).astype(np.float64) for c in columns])


def subset(mesh: Any, vertex_index: np.ndarray, faces: np.ndarray, face_index: np.ndarray) -> Any:
    """A new Trimesh of some of ``mesh``'s vertices (``vertex_index``) and faces (``faces`` over them,
    from ``face_index``), carrying its material, UVs, colours (vertex or face), loaded normals and
    vertex/face attributes exactly: nothing is recomputed or renormalised."""
    import trimesh
    from trimesh.visual import ColorVisuals, TextureVisuals

    n_vertices, n_faces = len(mesh.vertices), len(mesh.faces)
    visual: Any = None
    if isinstance(mesh.visual, TextureVisuals):
        visual = TextureVisuals(material=mesh.visual.material)
        for name, values in mesh.visual.vertex_attributes.items():
            if len(values) == n_vertices:
                visual.vertex_attributes[name] = np.asarray(values)[vertex_index]
        face_materials = mesh.visual.face_materials
        if face_materials is not None and len(face_materials) == n_faces:
            visual.face_materials = np.asarray(face_materials)[face_index]
    elif isinstance(mesh.visual, ColorVisuals) and mesh.visual.kind == "vertex":
        visual = ColorVisuals(vertex_colors=np.asarray(mesh.visual.vertex_colors)[vertex_index])
    elif isinstance(mesh.visual, ColorVisuals) and mesh.visual.kind == "face":
        visual = ColorVisuals(face_colors=np.asarray(mesh.visual.face_colors)[face_index])
    normals = loaded_normals(mesh) if len(vertex_index) else None  # trimesh's setter fails on an empty array
    out = trimesh.Trimesh(vertices=np.asarray(mesh.vertices, dtype=np.float64)[vertex_index], faces=faces,
                          visual=visual, vertex_normals=None if normals is None else normals[vertex_index],
                          process=False, validate=False, metadata=dict(mesh.metadata))
    for name, values in mesh.vertex_attributes.items():
        if len(values) == n_vertices:
            out.vertex_attributes[name] = np.asarray(values)[vertex_index]
    for name, values in mesh.face_attributes.items():
        if len(values) == n_faces:
            out.face_attributes[name] = np.asarray(values)[face_index]
    return out


def map_geometry(scene: Any, fn: Callable[[str, Any], Any | None]) -> tuple[Any, list[str]]:
    """Apply ``fn(name, mesh)`` to each triangle mesh; returns (new scene or None, names changed)."""
    replaced = {}
    for name, mesh in triangle_meshes(scene).items():
        new = fn(name, mesh)
        if new is not None:
            replaced[name] = new
    if not replaced:
        return None, []
    return with_geometry(scene, replaced), sorted(replaced)


# --- whole-scene similarity transforms (units, up axis, origin) -------------------------------------

Z_UP_TO_Y_UP = np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]])  # (x, y, z) -> (x, z, -y)


def transform_scene(scene: Any, matrix: np.ndarray) -> Any:
    """A new Scene equal to ``matrix`` applied to the world, with root node transforms left as they were.

    Geometry gets ``matrix`` baked in and every graph edge ``T`` becomes ``M T M^-1`` (exact for the
    similarity transforms used here), so instancing is kept and an identity root stays identity.
    """
    import trimesh

    matrix = np.asarray(matrix, dtype=np.float64)
    inverse = np.linalg.inv(matrix)
    replaced = {}
    for name, geom in scene.geometry.items():
        if hasattr(geom, "apply_transform"):
            new = copy_geometry(geom)
            new.apply_transform(matrix)
            replaced[name] = new
    edges = []
    for a, b, data in scene.graph.to_edgelist():
        data = dict(data)
        if "matrix" in data:
            data["matrix"] = matrix @ np.asarray(data["matrix"], dtype=np.float64) @ inverse
        edges.append((a, b, data))
    graph = trimesh.scene.transforms.SceneGraph(base_frame=scene.graph.base_frame)
    graph.from_edgelist(edges, strict=False)
    out = with_geometry(scene, replaced)
    out.graph = graph
    return out


def world_bounds(scene: Any) -> np.ndarray | None:
    bounds = scene.bounds
    if bounds is None or not np.isfinite(bounds).all():
        return None
    return np.asarray(bounds, dtype=np.float64)


def to_metres_y_up(scene: Any, metres_per_unit: float, up: str) -> tuple[Any, bool]:
    """Scale to metres and rotate a +Z-up scene to +Y up; returns (scene, changed)."""
    matrix = np.eye(4)
    if up.upper() in ("+Z", "Z"):
        matrix = Z_UP_TO_Y_UP.copy()
    matrix[:3, :3] *= metres_per_unit
    if np.allclose(matrix, np.eye(4)):
        return scene, False
    return transform_scene(scene, matrix), True


def clean_roots(scene: Any) -> tuple[Any, int]:
    """Push root node transforms one level down so every root is T=0, R=identity, S=1 (world unchanged).

    A root's matrix ``R`` is multiplied into its children's edges and baked into the geometry the
    root itself draws (a copy; renamed when another node draws the same geometry).
    """
    import trimesh

    base = scene.graph.base_frame
    edges = [(a, b, dict(d)) for a, b, d in scene.graph.to_edgelist()]
    dirty = {b: np.asarray(d["matrix"], dtype=np.float64) for a, b, d in edges
             if a == base and "matrix" in d and not np.allclose(np.asarray(d["matrix"], dtype=np.float64), np.eye(4), atol=1e-12)}
    if not dirty:
        return scene, 0
    users: dict[str, int] = {}
    for _, _, d in edges:
        if "geometry" in d:
            users[d["geometry"]] = users.get(d["geometry"], 0) + 1
    geometry = dict(scene.geometry)
    # A root drawing geometry that other nodes draw too keeps its transform under one fresh clean
    # root (instancing kept); every other dirty root is pushed down into its children and geometry.
    wrap = {b for a, b, d in edges if a == base and b in dirty and users.get(d.get("geometry"), 0) > 1}
    wrapper = "root"
    while wrapper in scene.graph.nodes:
        wrapper += "_"
    new_edges = [(base, wrapper, {"matrix": np.eye(4)})] if wrap else []
    for a, b, d in edges:
        if a == base and b in wrap:
            new_edges.append((wrapper, b, d))
            continue
        if a == base and b in dirty:
            d["matrix"] = np.eye(4)
            name = d.get("geometry")
            if name is not None and name in geometry:
                baked = copy_geometry(geometry[name])
                baked.apply_transform(dirty[b])
                geometry[name] = baked
        elif a in dirty and a not in wrap:
            d["matrix"] = dirty[a] @ np.asarray(d.get("matrix", np.eye(4)), dtype=np.float64)
        new_edges.append((a, b, d))
    edges = new_edges
    graph = trimesh.scene.transforms.SceneGraph(base_frame=base)
    graph.from_edgelist(edges, strict=False)
    out = trimesh.Scene(base_frame=base)
    out.metadata.update(scene.metadata)
    for name, geom in geometry.items():
        out.geometry[name] = geom
    out.graph = graph
    return out, len(dirty)


def unit_normals(mesh: Any, given: np.ndarray | None) -> np.ndarray:
    """Unit vertex normals: the given ones where usable, computed (area-weighted) elsewhere, +Y last resort."""
    import trimesh

    computed = np.asarray(trimesh.Trimesh(mesh.vertices, mesh.faces, process=False).vertex_normals, dtype=np.float64)
    normals = computed.copy() if given is None else np.asarray(given, dtype=np.float64).copy()
    for fallback in (computed, np.array([0.0, 1.0, 0.0])):
        length = np.linalg.norm(normals, axis=1)
        bad = ~np.isfinite(length) | (length < 1e-8)
        normals[bad] = fallback[bad] if fallback.ndim == 2 else fallback
    return normals / np.linalg.norm(normals, axis=1, keepdims=True)


def drawable_mesh(mesh: Any) -> Any | None:
    """A copy fit for a viewer file, or None: finite positions, real triangles, finite UVs, unit normals."""
    import trimesh

    if not isinstance(mesh, trimesh.Trimesh) or len(mesh.faces) == 0:
        return None
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    keep = np.isfinite(vertices).all(axis=1)[faces].all(axis=1)
    keep &= (faces[:, 0] != faces[:, 1]) & (faces[:, 1] != faces[:, 2]) & (faces[:, 0] != faces[:, 2])
    if not keep.any():
        return None
    attrs = vertex_attributes(mesh)
    used, inverse = np.unique(faces[keep].reshape(-1), return_inverse=True)
    attrs = {k: np.asarray(v)[used] for k, v in attrs.items()}
    if "uv" in attrs:
        attrs["uv"] = np.where(np.isfinite(attrs["uv"]), attrs["uv"], 0.0)
    out = rebuild(mesh, vertices[used], inverse.reshape(-1, 3), attrs)
    out.vertex_normals = unit_normals(out, attrs.get("normal"))
    return out


def drawable_scene(scene: Any, adjust: Callable[[Any], None] | None = None) -> Any:
    """``scene`` with every geometry made drawable (:func:`drawable_mesh`), for the GLB and USDZ writers.

    Geometries with nothing drawable left are dropped; ``adjust`` may edit each new copy (its
    material); no drawable geometry at all, or a non-finite node transform, is a ``ValueError``.
    """
    import trimesh

    if isinstance(scene, trimesh.Trimesh):
        scene = trimesh.Scene(scene)
    replaced: dict[str, Any] = {}
    drop: list[str] = []
    for name, geom in scene.geometry.items():
        mesh = drawable_mesh(geom)
        if mesh is None:
            drop.append(name)
            continue
        if adjust is not None:
            adjust(mesh)
        replaced[name] = mesh
    out = with_geometry(scene, replaced)
    for name in drop:
        out.delete_geometry(name)
    if not out.geometry:
        raise ValueError("nothing drawable left to export (no finite, non-degenerate triangles)")
    for _, child, data in out.graph.to_edgelist():
        if "matrix" in data and not np.isfinite(np.asarray(data["matrix"], dtype=np.float64)).all():
            raise ValueError(f"node {child!r} has a non-finite transform")
    return out
