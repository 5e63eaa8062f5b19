"""Problem regions of a mesh, coloured, as a GLB anyone can open (model-viewer, Blender, a browser).

A light, self-contained recomputation (the validators stay the judges; this shows *where*):

* ``hole_border``  faces on an open (boundary) edge, after welding vertices within 1e-6 of the size
* ``non_manifold`` faces on an edge shared by more than two faces
* ``thin_wall``    faces whose inward ray hits the other side closer than ``thin_mm``
* ``overhang``     downward faces steeper than ``overhang_deg`` from vertical, not resting on the bed
* ``flagged``      faces named by other findings' ``samples`` (degenerate, duplicate, intersecting...)

Each category is its own named mesh with a flat colour; boundary and non-manifold edges are also
drawn as line primitives so a one-pixel crack is visible from across the room.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import trimesh

    from meshforge.types import Finding

# Drawing priority: a face in two categories takes the first one's colour.
CATEGORIES: dict[str, tuple[int, int, int, int]] = {
    "non_manifold": (214, 39, 200, 255),  # magenta
    "hole_border": (230, 40, 40, 255),  # red
    "thin_wall": (255, 150, 0, 255),  # orange
    "overhang": (40, 110, 230, 255),  # blue
    "flagged": (250, 210, 0, 255),  # yellow
    "ok": (190, 192, 198, 255),  # grey
}
EDGE_COLORS = {"hole_border_edges": (230, 40, 40, 255), "non_manifold_edges": (214, 39, 200, 255)}

# Finding-code words -> the category their sample faces belong to.
_SAMPLE_WORDS = (("thin", "thin_wall"), ("thickness", "thin_wall"), ("overhang", "overhang"))


@dataclass
class Problems:
    faces: dict[str, np.ndarray]  # category -> bool mask over faces
    edges: dict[str, np.ndarray] = field(default_factory=dict)  # name -> (E, 2, 3) segments
    counts: dict[str, int] = field(default_factory=dict)

    def category_of_faces(self) -> np.ndarray:
        """Index into CATEGORIES per face (the highest-priority category it belongs to)."""
        names = list(CATEGORIES)
        n = len(next(iter(self.faces.values()))) if self.faces else 0
        out = np.full(n, names.index("ok"), dtype=np.int64)
        for i in reversed(range(len(names) - 1)):
            mask = self.faces.get(names[i])
            if mask is not None:
                out[mask] = i
        return out


def weld(vertices: np.ndarray, faces: np.ndarray, rel_tol: float = 1e-6) -> np.ndarray:
    """Faces re-indexed so vertices within ``rel_tol`` x bbox diagonal share an index (vectorized)."""
    v = np.asarray(vertices, dtype=np.float64)
    finite = np.isfinite(v).all(axis=1)
    if not finite.any():
        return np.asarray(faces, dtype=np.int64)
    lo = v[finite].min(axis=0)
    diag = float(np.linalg.norm(v[finite].max(axis=0) - lo)) or 1.0
    q = np.zeros((len(v), 3), dtype=np.int64)
    q[finite] = np.round((v[finite] - lo) / (diag * rel_tol)).astype(np.int64)
    q[~finite] = -1 - np.arange((~finite).sum())[:, None]  # never merge non-finite vertices
    _, inverse = np.unique(q, axis=0, return_inverse=True)
    return inverse.reshape(-1)[np.asarray(faces, dtype=np.int64)]


def edge_topology(faces: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(edge of each face-edge (F*3,), edge vertex pairs (E, 2), faces per edge (E,))."""
    e = np.sort(faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
    key = e[:, 0] * (int(e.max()) + 1 if len(e) else 1) + e[:, 1]
    uniq, first, inverse, counts = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    return inverse, e[first], counts


def find_problems(
    mesh: trimesh.Trimesh,
    *,
    findings: Iterable[Finding] = (),
    up: np.ndarray | None = None,
    overhang_deg: float = 45.0,
    thin_units: float = 0.0,
    thin_max_faces: int = 200_000,
) -> Problems:
    """Problem faces and edges of ``mesh`` (its own coordinates; ``up`` is the build direction)."""
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    n = len(faces)
    cats = {name: np.zeros(n, dtype=bool) for name in CATEGORIES if name != "ok"}
    problems = Problems(faces=cats)
    if n == 0:
        return problems
    welded = weld(vertices, faces)
    face_edge, edge_vertices, per_edge = edge_topology(welded)
    owner = np.repeat(np.arange(n), 3)
    # Coordinates of welded vertex ids: any original vertex that maps to it.
    coords = np.zeros((int(welded.max()) + 1, 3))
    coords[welded.reshape(-1)] = vertices[faces.reshape(-1)]
    for name, condition in (("hole_border", per_edge == 1), ("non_manifold", per_edge > 2)):
        on_face_edge = condition[face_edge]
        cats[name][owner[on_face_edge]] = True
        problems.edges[f"{name}_edges"] = coords[edge_vertices[condition]]
        problems.counts[f"{name}_edges"] = int(condition.sum())

    with np.errstate(all="ignore"):
        normals = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        normals = np.where(length > 0, normals / np.where(length > 0, length, 1.0), 0.0)
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64)
    finite = np.isfinite(vertices).all(axis=1)
    if finite.any():
        along = _dot(vertices, up)  # element-wise: BLAS matvec on tall arrays contends for the 2 CI cores
        height = along[finite]
        floor = float(height.min())
        tol = max(1e-6, 1e-3 * float(height.max() - floor))
        face_low = np.nanmin(along[faces], axis=1)
        downward = _dot(normals, up) < -math.sin(math.radians(overhang_deg))
        cats["overhang"] = downward & (face_low > floor + tol)

    if thin_units > 0:
        cats["thin_wall"] |= _thin_faces(mesh, normals, thin_units, thin_max_faces)

    for f in findings:
        idx = np.asarray([s for s in f.samples if 0 <= s < n], dtype=np.int64)
        if len(idx) == 0:
            continue
        target = next((cat for word, cat in _SAMPLE_WORDS if word in f.code), "flagged")
        cats[target][idx] = True
    for name, mask in cats.items():
        problems.counts[name] = int(mask.sum())
    return problems


def _dot(points: np.ndarray, direction: np.ndarray) -> np.ndarray:
    return points[:, 0] * direction[0] + points[:, 1] * direction[1] + points[:, 2] * direction[2]


def _thin_faces(mesh: trimesh.Trimesh, normals: np.ndarray, limit: float, max_faces: int) -> np.ndarray:
    """Inward ray from each face centre (a strided sample past ``max_faces``): hit closer than ``limit``."""
    n = len(mesh.faces)
    out = np.zeros(n, dtype=bool)
    ids = np.flatnonzero(np.linalg.norm(normals, axis=1) > 0)
    if len(ids) > max_faces:
        ids = ids[:: int(math.ceil(len(ids) / max_faces))]
    if len(ids) == 0:
        return out
    centres = mesh.triangles_center[ids]
    eps = 1e-5 * float(mesh.scale or 1.0)
    origins = centres - normals[ids] * eps
    try:
        locations, ray_idx, tri_idx = mesh.ray.intersects_location(origins, -normals[ids], multiple_hits=False)
    except Exception:  # a ray engine failing on odd geometry must not stop the debug export
        return out
    if len(ray_idx) == 0:
        return out
    dist = np.linalg.norm(locations - centres[ray_idx], axis=1)
    thin = (dist < limit) & (tri_idx != ids[ray_idx])
    out[ids[ray_idx[thin]]] = True
    return out


def debug_scene(mesh: trimesh.Trimesh, problems: Problems, *, to_gltf: np.ndarray | None = None) -> trimesh.Scene:
    """A scene with one coloured mesh per category (and edge lines), in glTF axes via ``to_gltf`` (4x4)."""
    import trimesh
    from trimesh.visual.material import PBRMaterial

    scene = trimesh.Scene()
    category = problems.category_of_faces()
    vertices = np.nan_to_num(np.asarray(mesh.vertices, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    for i, (name, rgba) in enumerate(CATEGORIES.items()):
        sel = np.flatnonzero(category == i)
        if len(sel) == 0:
            continue
        sub = trimesh.Trimesh(vertices, faces[sel], process=False)
        sub.remove_unreferenced_vertices()
        material = PBRMaterial(name=name, baseColorFactor=rgba, metallicFactor=0.0, roughnessFactor=0.8, doubleSided=True)
        sub.visual = trimesh.visual.TextureVisuals(material=material)
        scene.add_geometry(sub, node_name=name, geom_name=name)
    for name, segments in problems.edges.items():
        if len(segments) == 0:
            continue
        path = trimesh.load_path(np.nan_to_num(segments))
        path.colors = np.tile(np.asarray(EDGE_COLORS[name], dtype=np.uint8), (len(path.entities), 1))
        scene.add_geometry(path, node_name=name, geom_name=name)
    if to_gltf is not None and scene.geometry:
        scene.apply_transform(to_gltf)
    return scene


def legend(problems: Problems) -> list[dict[str, Any]]:
    """Rows for the HTML page: category, colour, the faces drawn in that colour (``faces``) and the
    faces with that problem (``total``). A face with several problems is drawn once, in the colour
    of the first category listing it, so the drawn counts add up to the faces on screen."""
    drawn = np.bincount(problems.category_of_faces(), minlength=len(CATEGORIES))
    return [
        {"category": name, "color": "#%02x%02x%02x" % rgba[:3], "faces": int(drawn[i]), "total": problems.counts.get(name, 0)}
        for i, (name, rgba) in enumerate(CATEGORIES.items())
        if name != "ok"
    ]
