"""Distances along face normals by ray casting, and overhang areas.

``inward_thickness`` casts one ray per face from just inside its centroid along the inverted face
normal: the distance to the first surface it meets is the wall thickness there (Blender 3D-Print
Toolbox method; inf when it escapes: open meshes). ``outward_gaps`` casts along the normal from just
outside: the distance to the next surface the ray *enters* is the width of the empty space in front
of the face (an engraved stroke, a slot, the clearance to another part).

Both go through one :class:`RayCaster`, so a check chain builds the BVH once (1.3 M triangles:
~0.7 s of Open3D's Embree build, paid once for both). Open3D's ``RaycastingScene`` is used when
importable, else trimesh's ray module (which uses embreex when installed); both are imported lazily.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


class RayCaster:
    """First hits of rays against one triangle mesh; the acceleration structure is built once.

    ``faces`` must not touch non-finite vertices. Embree works in float32: a part placed at
    x = 110 mm has a resolution of ~8e-6 mm there, coarser than a ray offset, so rays would start on
    their own face. The caster therefore works on the part centred at the origin (centre of the
    finite vertices: a NaN vertex no face uses must not turn every coordinate into NaN); callers
    pass and get back original coordinates.
    """

    def __init__(self, vertices: np.ndarray, faces: np.ndarray, backend: str = "auto") -> None:
        v = np.asarray(vertices, dtype=np.float64)
        self.faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
        with np.errstate(invalid="ignore"):
            centre = (np.nanmin(v, axis=0) + np.nanmax(v, axis=0)) / 2.0 if len(v) else np.zeros(3)
        self.centre = np.nan_to_num(centre, nan=0.0, posinf=0.0, neginf=0.0)
        self.vertices = v  # float64, as given: callers' coordinates
        self._scene = None
        self.backend = "trimesh"
        if backend in ("auto", "open3d"):
            try:
                import open3d as o3d
            except Exception:
                if backend == "open3d":
                    raise
            else:
                self.backend = "open3d"
                v32 = np.empty(v.shape, dtype=np.float32)
                with np.errstate(invalid="ignore", over="ignore"):
                    np.subtract(v, self.centre, out=v32, casting="unsafe")  # centred float32, no float64 copy
                self._scene = o3d.t.geometry.RaycastingScene()
                self._scene.add_triangles(o3d.core.Tensor(v32), o3d.core.Tensor(self.faces.astype(np.uint32)))
        if self._scene is None:
            import trimesh

            self._scene = trimesh.Trimesh(v - self.centre, self.faces, process=False)

    def first_hits(self, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per ray: distance along the unit direction to the first face hit (inf if none), and that
        face's index in ``faces`` (-1 if none)."""
        origins = np.asarray(origins, dtype=np.float64) - self.centre
        dirs = np.asarray(dirs, dtype=np.float64)
        if self.backend == "open3d":
            import open3d as o3d

            rays = np.empty((len(origins), 6), dtype=np.float32)
            rays[:, :3] = origins
            rays[:, 3:] = dirs
            hit = self._scene.cast_rays(o3d.core.Tensor(rays))
            t = hit["t_hit"].numpy().astype(np.float64)
            face = hit["primitive_ids"].numpy().astype(np.int64)
            miss = ~np.isfinite(t)
            t[miss] = np.inf
            face[miss] = -1
            return t, face
        t = np.full(len(origins), np.inf)
        face = np.full(len(origins), -1, dtype=np.int64)
        locations, ray_idx, tri_idx = self._scene.ray.intersects_location(origins, dirs, multiple_hits=False)
        if len(ray_idx):
            d = np.linalg.norm(locations - origins[ray_idx], axis=1)
            closer = d < t[ray_idx]
            t[ray_idx[closer]] = d[closer]
            face[ray_idx[closer]] = tri_idx[closer]
        return t, face

    def all_hits(self, origins: np.ndarray, dirs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Every face each ray passes through: (ray index, distance along the unit direction, face
        index, (u, v) with the hit at (1-u-v) a + u b + v c of the face's corners) per hit. A ray
        through an edge shared by two faces reports one of them. Open3D only (``list_intersections``)."""
        if self.backend != "open3d":
            raise NotImplementedError("all_hits needs the open3d backend")
        import open3d as o3d

        rays = np.empty((len(origins), 6), dtype=np.float32)
        rays[:, :3] = np.asarray(origins, dtype=np.float64) - self.centre
        rays[:, 3:] = dirs
        hits = self._scene.list_intersections(o3d.core.Tensor(rays))
        splits = hits["ray_splits"].numpy().astype(np.int64)
        ray = np.repeat(np.arange(len(origins)), np.diff(splits))
        return (ray, hits["t_hit"].numpy().astype(np.float64), hits["primitive_ids"].numpy().astype(np.int64),
                hits["primitive_uvs"].numpy().astype(np.float64).reshape(-1, 2))


def inward_thickness(
    caster: RayCaster,
    face_ids: np.ndarray,
    normals: np.ndarray,
    *,
    offset: float,
    outward: bool = True,
) -> np.ndarray:
    """Distance from each face in ``face_ids`` (unit ``normals``) to the surface behind it.

    ``outward=False`` says the normals point inward (an inverted mesh): rays then follow them.
    """
    sign = 1.0 if outward else -1.0
    origins = _centroids(caster, face_ids) - sign * normals * offset
    t, _ = caster.first_hits(origins, -sign * normals)
    return t + offset


def outward_gaps(
    caster: RayCaster,
    face_ids: np.ndarray,
    normals: np.ndarray,
    normals_of: Callable[[np.ndarray], np.ndarray],
    *,
    offset: float,
    outward: bool = True,
    max_wall_angle_deg: float = 90.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Width of the empty space in front of each face in ``face_ids`` (unit ``normals``): the
    distance along its outward normal to the first face hit, and that face (-1 when none), so
    callers can tell a slot in one part from the clearance to another part.

    Only a face whose normal (``normals_of(hit faces)``, unit) points back at the ray's within
    ``max_wall_angle_deg`` closes a gap; any other hit counts as none (inf, -1). That also drops a
    ray that meets a face from behind, travelling inside material (overlapping shells, a face
    buried in another part): its normal points along the ray.
    """
    sign = 1.0 if outward else -1.0
    dirs = sign * normals
    origins = _centroids(caster, face_ids) + dirs * offset
    t, face = caster.first_hits(origins, dirs)
    hit = np.flatnonzero(face >= 0)
    # the normals' common sign cancels: facing each other is their dot product, inverted mesh or not
    facing = np.einsum("ij,ij->i", normals[hit], normals_of(face[hit])) <= -np.cos(np.radians(max_wall_angle_deg))
    wall = np.zeros(len(t), dtype=bool)
    wall[hit[facing]] = True
    return np.where(wall, t + offset, np.inf), np.where(wall, face, -1)


def _centroids(caster: RayCaster, face_ids: np.ndarray) -> np.ndarray:
    f = caster.faces[face_ids]
    v = caster.vertices
    return (v[f[:, 0]] + v[f[:, 1]] + v[f[:, 2]]) / 3.0


def overhang_mask(normals: np.ndarray, up: np.ndarray, max_angle_deg: float) -> np.ndarray:
    """Faces facing down more steeply than ``max_angle_deg`` from vertical (Blender's rule).

    A face needs support when its normal is within (90 deg - max_angle) of straight down, i.e.
    ``-n.up > sin(max_angle)``: 45 deg -> normals within 45 deg of down; 71 deg -> within 19 deg.
    """
    return -(normals @ up) > np.sin(np.radians(max_angle_deg))
