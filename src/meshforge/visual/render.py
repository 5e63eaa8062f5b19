"""Shaded PNG thumbnails of a scene from standard views, on the CPU (see :mod:`.raster`).

``prepare(scene, up)`` gathers the world-space geometry and its colour sources once (base colour
factor, base colour texture with UVs, vertex or face colours); ``render(model, view)`` projects
(orthographic), rasterizes and shades only the visible pixels (deferred shading: texture and normal
look-ups cost per pixel, not per face). Lighting is two-sided Lambert with a key and a fill light in
camera space, done in linear light and written as sRGB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from meshforge.visual.raster import rasterize

if TYPE_CHECKING:
    import trimesh
    from PIL import Image

MAX_TEXTURE_PX = 2048  # textures are downsampled to this edge before sampling
DEFAULT_COLOR = np.array([0.72, 0.74, 0.78, 1.0])  # neutral blue-grey for geometry without colour

# name -> (azimuth deg, elevation deg); the camera sits at azimuth 0 in front of the model (-Y in
# Z-up; +Z in glTF's Y-up) and turns towards +X with positive azimuth.
VIEWS: dict[str, tuple[float, float]] = {
    "front": (0.0, 0.0),
    "threequarter": (40.0, 28.0),
    "top": (0.0, 90.0),
}


@dataclass
class Part:
    """One geometry of the scene in world space (Z up) with how to colour it."""

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64
    vertex_normals: np.ndarray  # (V, 3)
    color: np.ndarray  # (4,) float 0..1, multiplies everything below
    texture: np.ndarray | None = None  # (H, W, 4) uint8 base colour texture
    uv: np.ndarray | None = None  # (V, 2)
    vertex_colors: np.ndarray | None = None  # (V, 4) float 0..1
    face_colors: np.ndarray | None = None  # (F, 4) float 0..1


@dataclass
class Model:
    parts: list[Part]
    offsets: np.ndarray  # (P + 1,) face offsets into the concatenated triangle list
    triangles: np.ndarray  # (N, 3, 3) world-space triangles
    face_normals: np.ndarray  # (N, 3) unit (zero for degenerate faces)

    @property
    def empty(self) -> bool:
        return len(self.triangles) == 0


def to_z_up(up: str) -> np.ndarray:
    """3x3 matrix taking coordinates with ``up`` ("+Z", "+Y", ...) to Z-up with the front facing -Y."""
    if up.upper().endswith("Y"):
        # glTF: +Y up, front faces +Z  ->  (x, y, z) -> (x, -z, y)
        m = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])
    else:
        m = np.eye(3)
    if up.startswith("-"):
        m = np.diag([1.0, -1.0, -1.0]) @ m
    return m


def prepare(scene: trimesh.Scene | trimesh.Trimesh, up: str = "+Z") -> Model:
    """Gather geometry and colour sources once; the result renders any number of views."""
    import trimesh

    with np.errstate(all="ignore"):  # non-finite vertices are news for the validators, not for pictures
        geoms = [scene] if isinstance(scene, trimesh.Trimesh) else scene.dump(concatenate=False)
    rot = to_z_up(up)
    parts: list[Part] = []
    for g in geoms:
        if not isinstance(g, trimesh.Trimesh) or len(g.faces) == 0:
            continue
        parts.append(_part(g, rot))
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    if parts:
        offsets[1:] = np.cumsum([len(p.faces) for p in parts])
        tris = np.concatenate([p.vertices[p.faces] for p in parts])
    else:
        tris = np.zeros((0, 3, 3))
    with np.errstate(all="ignore"):
        n = np.cross(tris[:, 1] - tris[:, 0], tris[:, 2] - tris[:, 0])
        length = np.linalg.norm(n, axis=1, keepdims=True)
        n = np.where(length > 0, n / np.where(length > 0, length, 1.0), 0.0)
    return Model(parts=parts, offsets=offsets, triangles=tris, face_normals=np.nan_to_num(n))


def _part(g: trimesh.Trimesh, rot: np.ndarray) -> Part:
    with np.errstate(all="ignore"):
        vertices = _transform(np.asarray(g.vertices, dtype=np.float64), rot.T)
    faces = np.asarray(g.faces, dtype=np.int64)
    with np.errstate(all="ignore"):
        try:
            vn = _transform(np.asarray(g.vertex_normals, dtype=np.float64), rot.T)
        except Exception:  # degenerate input: fall back to flat shading
            vn = np.zeros_like(vertices)
    part = Part(vertices=vertices, faces=faces, vertex_normals=np.nan_to_num(vn), color=DEFAULT_COLOR.copy())
    visual = g.visual
    kind = getattr(visual, "kind", None)
    if kind == "texture":
        mat = getattr(visual, "material", None)
        image = getattr(mat, "baseColorTexture", None)
        if image is None:
            image = getattr(mat, "image", None)
        factor = getattr(mat, "baseColorFactor", None)
        if factor is not None:
            part.color = _unit_color(factor)
        elif image is None and mat is not None:
            part.color = _unit_color(getattr(mat, "main_color", None))
        else:
            part.color = np.ones(4)
        uv = getattr(visual, "uv", None)
        if image is not None and uv is not None and len(uv) == len(vertices):
            if max(image.size) > MAX_TEXTURE_PX:  # a 1024-sample view never needs more texels
                scale = MAX_TEXTURE_PX / max(image.size)
                image = image.resize((max(1, round(image.size[0] * scale)), max(1, round(image.size[1] * scale))))
            part.texture = np.asarray(image.convert("RGBA"))
            part.uv = np.asarray(uv, dtype=np.float64)
    elif kind == "vertex" and getattr(visual, "defined", False):
        part.vertex_colors = np.asarray(visual.vertex_colors, dtype=np.float64) / 255.0
        part.color = np.ones(4)
    elif kind == "face" and getattr(visual, "defined", False):
        part.face_colors = np.asarray(visual.face_colors, dtype=np.float64) / 255.0
        part.color = np.ones(4)
    return part


def _unit_color(value: Any) -> np.ndarray:
    if value is None:
        return DEFAULT_COLOR.copy()
    c = np.asarray(value, dtype=np.float64).ravel()
    if c.size == 3:
        c = np.append(c, 1.0 if c.max() <= 1.0 else 255.0)
    if c.max() > 1.0 or c.dtype.kind in "ui":
        c = c / 255.0
    return np.clip(c[:4], 0.0, 1.0)


def camera(view: str | tuple[float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(right, up, forward) unit vectors of an orthographic camera for a named view or (az, el)."""
    az, el = VIEWS[view] if isinstance(view, str) else view
    a, e = math.radians(az), math.radians(el)
    eye = np.array([math.cos(e) * math.sin(a), -math.cos(e) * math.cos(a), math.sin(e)])
    forward = -eye
    hint = np.array([0.0, 0.0, 1.0]) if abs(eye[2]) < 0.999 else np.array([-math.sin(a), math.cos(a), 0.0])
    right = np.cross(forward, hint)
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    return right, up, forward


def render(
    model: Model,
    view: str | tuple[float, float] = "threequarter",
    *,
    size: int = 512,
    supersample: int = 2,
    background: tuple[int, int, int, int] = (244, 245, 247, 255),
    margin: float = 0.06,
) -> Image.Image:
    """One shaded RGBA image of ``model`` from ``view``."""
    from PIL import Image

    ss = max(1, int(supersample))
    width = height = int(size) * ss
    right, up, forward = camera(view)
    rgba = np.empty((height, width, 4), dtype=np.uint8)
    rgba[:] = np.asarray(background, dtype=np.uint8)
    if not model.empty:
        tris = model.triangles
        basis = np.stack([right, up, forward], axis=1)  # world -> (sx, sy, depth)
        cam = _transform(tris.reshape(-1, 3), basis)
        finite = np.isfinite(cam).all(axis=1)
        if finite.any():
            inner = cam if finite.all() else cam[finite]
            lo = inner.min(axis=0)
            hi = inner.max(axis=0)
            extent = np.maximum(hi[:2] - lo[:2], 1e-12)
            scale = min(width, height) * (1.0 - 2.0 * margin) / float(extent.max())
            centre = (lo[:2] + hi[:2]) / 2.0
            pix = np.empty_like(cam)
            pix[:, 0] = width / 2.0 + (cam[:, 0] - centre[0]) * scale
            pix[:, 1] = height / 2.0 - (cam[:, 1] - centre[1]) * scale
            pix[:, 2] = cam[:, 2]
            frags = rasterize(pix.reshape(-1, 3, 3), width, height)
            _shade(model, frags, rgba, right, up, forward)
    image = Image.fromarray(rgba, "RGBA")
    if ss > 1:
        image = image.convert("RGBa").resize((int(size), int(size)), Image.Resampling.BOX).convert("RGBA")
    return image


def _shade(model: Model, frags: Any, rgba: np.ndarray, right: np.ndarray, up: np.ndarray, forward: np.ndarray) -> None:
    covered = frags.face >= 0
    ys, xs = np.nonzero(covered)
    face = frags.face[ys, xs]
    bary = frags.bary[ys, xs]
    albedo = np.empty((len(face), 4), dtype=np.float32)
    normal = model.face_normals[face].copy()
    part_of = np.searchsorted(model.offsets, face, side="right") - 1
    for p_i, part in enumerate(model.parts):
        sel = np.flatnonzero(part_of == p_i)
        if len(sel) == 0:
            continue
        local = face[sel] - model.offsets[p_i]
        corners = part.faces[local]  # (n, 3)
        b = bary[sel][:, :, None]
        color = np.empty((len(sel), 4), dtype=np.float32)
        color[:] = part.color
        if part.texture is not None and part.uv is not None:
            uv = (part.uv[corners] * b).sum(axis=1)
            th, tw = part.texture.shape[:2]
            u = np.mod(uv[:, 0], 1.0)
            v = np.mod(uv[:, 1], 1.0)
            tx = np.clip((u * tw).astype(np.int64), 0, tw - 1)
            ty = np.clip(((1.0 - v) * th).astype(np.int64), 0, th - 1)
            color *= part.texture[ty, tx] * np.float32(1.0 / 255.0)
        elif part.vertex_colors is not None:
            color *= (part.vertex_colors[corners] * b).sum(axis=1)
        elif part.face_colors is not None:
            color *= part.face_colors[local]
        albedo[sel] = color
        # Smooth normals where a corner's normal agrees with its face (crease ~35 deg), flat elsewhere.
        fn = normal[sel][:, None, :]
        vn_c = part.vertex_normals[corners]
        vn_c = np.where(((vn_c * fn).sum(axis=2) > 0.82)[:, :, None], vn_c, fn)
        vn = (vn_c * b).sum(axis=1)
        length = np.linalg.norm(vn, axis=1, keepdims=True)
        ok = length[:, 0] > 1e-12
        normal[sel[ok]] = vn[ok] / length[ok]
    # Two-sided: a face seen from behind is lit as if it faced the camera.
    facing = _transform(normal, forward[:, None])[:, 0]
    normal[facing > 0] *= -1.0
    key = _unit(-forward + 0.55 * up - 0.45 * right)
    fill = _unit(-forward - 0.25 * up + 0.7 * right)
    lights = _transform(normal, np.stack([key, fill], axis=1))
    light = 0.28 + 0.72 * np.clip(lights[:, 0], 0.0, 1.0) + 0.22 * np.clip(lights[:, 1], 0.0, 1.0)
    linear = _TO_LINEAR[np.round(np.clip(albedo[:, :3], 0.0, 1.0) * 255.0).astype(np.intp)] * light[:, None].astype(np.float32)
    rgba[ys, xs, :3] = _TO_SRGB[np.clip(linear * 4095.0, 0, 4095).astype(np.intp)]
    rgba[ys, xs, 3] = 255


_TO_LINEAR = np.power(np.arange(256) / 255.0, 2.2).astype(np.float32)
_TO_SRGB = np.round(np.power(np.arange(4096) / 4095.0, 1.0 / 2.2) * 255.0).astype(np.uint8)


def _transform(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``points @ matrix`` for (N, 3) @ (3, K) as element-wise multiply-adds.

    Measured: BLAS matmul of a tall (3M, 3) array took ~2 s on the shared 2-core CI box (thread
    contention); three multiply-adds per column take ~0.05 s and never spawn threads.
    """
    out = np.empty((len(points), matrix.shape[1]), dtype=np.float64)
    for k in range(matrix.shape[1]):
        out[:, k] = points[:, 0] * matrix[0, k] + points[:, 1] * matrix[1, k] + points[:, 2] * matrix[2, k]
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def render_views(
    scene: trimesh.Scene | trimesh.Trimesh,
    up: str = "+Z",
    views: tuple[str, ...] = tuple(VIEWS),
    *,
    size: int = 512,
    supersample: int = 2,
    background: tuple[int, int, int, int] = (244, 245, 247, 255),
) -> dict[str, Image.Image]:
    """Images of ``scene`` from each of ``views`` (geometry gathered once)."""
    model = prepare(scene, up)
    return {v: render(model, v, size=size, supersample=supersample, background=background) for v in views}
