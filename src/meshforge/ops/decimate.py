"""Triangle-count reduction that keeps attributes, and the distance it cost.

Pure geometry (numpy in, numpy out). Two engines, best measured first:

* ``meshoptimizer`` (PyPI ``meshoptimizer``, the library gltfpack is built on): quadric edge
  collapse that keeps *vertices of the input* (so UVs, normals and colours carry over by index),
  detects UV seams itself (vertices sharing a position with different attributes collapse only
  along the seam, from both sides at once, so seams never crack) and weighs UV/normal error.
* ``fast_simplification`` (core dependency): Fast-Quadric-Mesh-Simplification. Moves vertices,
  so attributes are averaged over the input vertices each output vertex replaced; UV seams are
  open borders in the input and stay borders.

``hausdorff`` measures the symmetric surface distance between input and output (exact
point-to-triangle distance with Open3D's BVH when importable, else a KD-tree over dense samples).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Backend = Literal["auto", "meshoptimizer", "fast_simplification"]


@dataclass(frozen=True, kw_only=True)
class Simplified:
    vertices: np.ndarray  # (n, 3) float64
    faces: np.ndarray  # (m, 3) int64
    attributes: Mapping[str, np.ndarray] = field(default_factory=dict)  # same keys as given, per output vertex
    backend: str = ""
    reached: bool = True  # False when the engine stopped above the target (locked borders/seams)


def have_meshoptimizer() -> bool:
    try:
        import meshoptimizer  # noqa: F401
    except Exception:  # ImportError, or a broken native library
        return False
    return True


def simplify(
    vertices: np.ndarray,
    faces: np.ndarray,
    target_faces: int,
    *,
    attributes: Mapping[str, np.ndarray] | None = None,
    weights: Mapping[str, float] | None = None,
    locked: np.ndarray | None = None,
    backend: Backend = "auto",
) -> Simplified:
    """Reduce ``faces`` to at most ``target_faces`` (best effort), carrying per-vertex ``attributes``.

    ``weights`` scale each attribute's error against the position error (meshoptimizer only);
    ``locked`` is a boolean mask of vertices that must not move (material borders).
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    attributes = dict(attributes or {})
    target_faces = max(int(target_faces), 1)
    if len(faces) <= target_faces:
        return Simplified(vertices=vertices, faces=faces, attributes=attributes, backend="none")
    if backend == "meshoptimizer" or (backend == "auto" and have_meshoptimizer()):
        return _meshopt(vertices, faces, target_faces, attributes, dict(weights or {}), locked)
    return _fast(vertices, faces, target_faces, attributes)


_MESHOPT: object = None


def _meshopt_lib():  # noqa: ANN202 - a ctypes handle
    """meshoptimizer's C functions with their exact C signatures (size_t, float), on our own handle.

    The ``meshoptimizer`` package ships the compiled library but declares no ctypes signature for
    ``meshopt_simplifyWithAttributes``/``meshopt_simplifySloppy`` (floats then fail to convert), so we
    load the same shared object into a private handle and declare them (meshoptimizer 0.22 ABI).
    """
    global _MESHOPT
    if _MESHOPT is None:
        import ctypes

        from meshoptimizer._loader import lib as shipped

        lib = ctypes.CDLL(shipped._name)
        u32p, f32p, u8p, sz = ctypes.POINTER(ctypes.c_uint), ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_ubyte), ctypes.c_size_t
        lib.meshopt_simplify.argtypes = [u32p, u32p, sz, f32p, sz, sz, sz, ctypes.c_float, ctypes.c_uint, f32p]
        lib.meshopt_simplifyWithAttributes.argtypes = [u32p, u32p, sz, f32p, sz, sz, f32p, sz, f32p, sz, u8p, sz,
                                                       ctypes.c_float, ctypes.c_uint, f32p]
        lib.meshopt_simplifySloppy.argtypes = [u32p, u32p, sz, f32p, sz, sz, sz, ctypes.c_float, f32p]
        for fn in (lib.meshopt_simplify, lib.meshopt_simplifyWithAttributes, lib.meshopt_simplifySloppy):
            fn.restype = sz
        _MESHOPT = lib
    return _MESHOPT


def _ptr(array: np.ndarray, ctype: type):  # noqa: ANN202
    import ctypes

    return array.ctypes.data_as(ctypes.POINTER(ctype))


def _meshopt(
    vertices: np.ndarray,
    faces: np.ndarray,
    target: int,
    attributes: dict[str, np.ndarray],
    weights: dict[str, float],
    locked: np.ndarray | None,
) -> Simplified:
    import ctypes

    lib = _meshopt_lib()
    # meshoptimizer's error is relative to the mesh extent; centre for float32 precision
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    # Snap to a 2^-20-of-extent grid: seam copies that differ in the last bits (cos(2*pi) != cos(0))
    # become bit-equal, so meshoptimizer recognises them as one seam instead of two free borders.
    quantum = float(np.max(hi - lo)) * 2.0**-20 or 1.0
    pos = np.ascontiguousarray(np.round((vertices - (lo + hi) / 2) / quantum) * quantum + 0.0, dtype=np.float32)  # -0.0 -> 0.0
    indices = np.ascontiguousarray(faces.reshape(-1), dtype=np.uint32)
    dest = np.empty(len(indices), dtype=np.uint32)
    n_idx, n_vert, target_idx = len(indices), len(pos), target * 3
    none_f = ctypes.POINTER(ctypes.c_float)()
    u32, f32 = ctypes.c_uint, ctypes.c_float
    attr_cols = [(k, np.asarray(v, dtype=np.float32).reshape(n_vert, -1)) for k, v in attributes.items() if weights.get(k)]
    count = n_idx + 1
    if attr_cols or locked is not None:
        if attr_cols:
            attr = np.ascontiguousarray(np.hstack([a for _, a in attr_cols]), dtype=np.float32)
            w = np.concatenate([np.full(a.shape[1], weights[k], dtype=np.float32) for k, a in attr_cols])
        else:
            attr, w = np.zeros((n_vert, 1), dtype=np.float32), np.zeros(1, dtype=np.float32)
        lock = np.ascontiguousarray(locked if locked is not None else np.zeros(n_vert), dtype=np.uint8)
        count = lib.meshopt_simplifyWithAttributes(
            _ptr(dest, u32), _ptr(indices, u32), n_idx, _ptr(pos, f32), n_vert, 12, _ptr(attr, f32), attr.shape[1] * 4,
            _ptr(w, f32), len(w), _ptr(lock, ctypes.c_ubyte), target_idx, 1.0, 0, none_f)
    if count > target_idx:
        count = lib.meshopt_simplify(_ptr(dest, u32), _ptr(indices, u32), n_idx, _ptr(pos, f32), n_vert, 12,
                                     target_idx, 1.0, 0, none_f)
    if count > target_idx:
        # Topology (seams, borders) stopped the collapse: the sloppy simplifier clusters regardless,
        # unless that wipes the part out (a small part asked for 2 triangles): then keep the best topological result.
        sloppy = np.empty(len(indices), dtype=np.uint32)
        n_sloppy = lib.meshopt_simplifySloppy(_ptr(sloppy, u32), _ptr(indices, u32), n_idx, _ptr(pos, f32), n_vert, 12,
                                              target_idx, 1.0, none_f)
        if n_sloppy >= 3 * min(4, target):
            dest, count = sloppy, n_sloppy
    out = dest[:count].astype(np.int64).reshape(-1, 3)
    out = out[(out[:, 0] != out[:, 1]) & (out[:, 1] != out[:, 2]) & (out[:, 0] != out[:, 2])]
    used, inverse = np.unique(out.reshape(-1), return_inverse=True)
    return Simplified(
        vertices=vertices[used],
        faces=inverse.reshape(-1, 3),
        attributes={k: np.asarray(v)[used] for k, v in attributes.items()},
        backend="meshoptimizer",
        reached=len(out) <= target,
    )


def _fast(vertices: np.ndarray, faces: np.ndarray, target: int, attributes: dict[str, np.ndarray]) -> Simplified:
    import fast_simplification

    reduction = 1.0 - target / len(faces)
    if attributes:
        _, _, collapses = fast_simplification.simplify(vertices, faces, target_reduction=reduction, return_collapses=True)
        new_vertices, new_faces, mapping = fast_simplification.replay_simplification(vertices, faces, collapses)
        n = len(new_vertices)
        mapping = np.asarray(mapping, dtype=np.int64)
        alive = (mapping >= 0) & (mapping < n)  # -1: an input vertex no output face uses
        counts = np.bincount(mapping[alive], minlength=n).astype(np.float64)[:, None]
        carried = {}
        for key, values in attributes.items():
            values = np.asarray(values, dtype=np.float64).reshape(len(vertices), -1)
            acc = np.zeros((n, values.shape[1]))
            np.add.at(acc, mapping[alive], values[alive])
            mean = acc / np.maximum(counts, 1.0)
            carried[key] = mean.reshape((n, *np.asarray(attributes[key]).shape[1:])).astype(np.asarray(attributes[key]).dtype)
    else:
        new_vertices, new_faces = fast_simplification.simplify(vertices, faces, target_reduction=reduction)
        carried = {}
    new_faces = np.asarray(new_faces, dtype=np.int64)
    return Simplified(vertices=np.asarray(new_vertices, dtype=np.float64), faces=new_faces, attributes=carried,
                      backend="fast_simplification", reached=len(new_faces) <= target)


def shared_position_mask(groups: list[np.ndarray], decimals: int = 6) -> list[np.ndarray]:
    """For each vertex array in ``groups``, a mask of vertices whose position also occurs in another group.

    Those are the borders between primitives (material boundaries): locking them keeps the
    primitives stitched after each is simplified on its own.
    """
    if len(groups) < 2:
        return [np.zeros(len(g), dtype=bool) for g in groups]
    allpos = np.concatenate([np.round(np.asarray(g, dtype=np.float64), decimals) for g in groups])
    owner = np.concatenate([np.full(len(g), i) for i, g in enumerate(groups)])
    _, key = np.unique(allpos, axis=0, return_inverse=True)
    key = key.reshape(-1)
    # a position is shared when it has more than one distinct owner
    pairs = np.unique(np.stack([key, owner], axis=1), axis=0)
    owners_per_key = np.bincount(pairs[:, 0], minlength=int(key.max()) + 1)
    shared = owners_per_key[key] > 1
    out, start = [], 0
    for g in groups:
        out.append(shared[start:start + len(g)])
        start += len(g)
    return out


def hausdorff(
    a_vertices: np.ndarray, a_faces: np.ndarray, b_vertices: np.ndarray, b_faces: np.ndarray,
    *, samples: int = 20000, seed: int = 0,
) -> tuple[float, float]:
    """Symmetric (max, mean) surface distance between meshes A and B, in their units.

    Each side is sampled at ``samples`` random surface points plus up to ``samples`` of its vertices,
    and each sample's distance to the other surface is exact when Open3D is importable.
    """
    d_ab = _one_sided(a_vertices, a_faces, b_vertices, b_faces, samples, seed)
    d_ba = _one_sided(b_vertices, b_faces, a_vertices, a_faces, samples, seed + 1)
    both = np.concatenate([d_ab, d_ba])
    if both.size == 0:
        return 0.0, 0.0
    return float(both.max()), float(both.mean())


def _surface_samples(vertices: np.ndarray, faces: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    tris = vertices[faces]
    area = np.linalg.norm(np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0]), axis=1)
    if area.sum() <= 0 or len(faces) == 0:
        return vertices[:0]
    pick = rng.choice(len(faces), size=n, p=area / area.sum())
    r1, r2 = rng.random(n), rng.random(n)
    flip = r1 + r2 > 1
    r1[flip], r2[flip] = 1 - r1[flip], 1 - r2[flip]
    t = tris[pick]
    pts = t[:, 0] + r1[:, None] * (t[:, 1] - t[:, 0]) + r2[:, None] * (t[:, 2] - t[:, 0])
    verts = vertices[rng.choice(len(vertices), size=min(n, len(vertices)), replace=False)]
    return np.vstack([pts, verts])


def _one_sided(src_v: np.ndarray, src_f: np.ndarray, dst_v: np.ndarray, dst_f: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pts = _surface_samples(np.asarray(src_v, np.float64), np.asarray(src_f, np.int64), n, rng)
    if len(pts) == 0 or len(dst_f) == 0:
        return np.zeros(0)
    try:
        import open3d as o3d

        scene = o3d.t.geometry.RaycastingScene()
        scene.add_triangles(o3d.core.Tensor(np.asarray(dst_v, np.float32)), o3d.core.Tensor(np.asarray(dst_f, np.uint32)))
        return scene.compute_distance(o3d.core.Tensor(pts.astype(np.float32))).numpy().astype(np.float64)
    except ImportError:
        from scipy.spatial import cKDTree

        dense = _surface_samples(np.asarray(dst_v, np.float64), np.asarray(dst_f, np.int64), 8 * n, rng)
        dist, _ = cKDTree(dense).query(pts)
        return dist
