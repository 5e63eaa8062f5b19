"""Units, size and bed placement as 4x4 transforms (pure: meshes in, matrices and numbers out)."""

from __future__ import annotations

from typing import Any

import numpy as np

# Up axis of the source -> rotation to +Z up (glTF and many OBJ exporters are +Y up).
_UP_TO_Z = {
    "+Z": np.eye(3),
    "+Y": np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),  # (x, y, z) -> (x, -z, y)
    "-Y": np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]]),
    "+X": np.array([[0.0, 0, -1], [0, 1, 0], [1, 0, 0]]),
    "-Z": np.array([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]]),
}


def up_to_z(up: str) -> np.ndarray:
    """4x4 rotation that makes ``up`` (``"+Y"``...) the +Z axis; identity for unknown axes."""
    out = np.eye(4)
    out[:3, :3] = _UP_TO_Z.get(up.upper(), np.eye(3))
    return out


def scale(factor: float) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3] *= factor
    return out


def target_scale(extents: np.ndarray, metadata: Any) -> tuple[float | None, str]:
    """Uniform factor that brings the part to the size the job asks for, from metadata keys
    ``height_mm`` (Z extent), ``max_size_mm`` (largest extent) or ``size_mm`` (a number: largest
    extent; three numbers: fit inside that box). (None, reason) when the metadata names no size."""
    def number(value: Any) -> float | None:
        try:
            out = float(value)
        except (TypeError, ValueError):
            return None
        return out if np.isfinite(out) and out > 0 else None

    ext = np.asarray(extents, dtype=np.float64)
    if ext.max() <= 0:
        return None, "part has no extent"
    if (h := number(metadata.get("height_mm"))) is not None and ext[2] > 0:
        return h / ext[2], f"height_mm={h:g}"
    if (m := number(metadata.get("max_size_mm"))) is not None:
        return m / ext.max(), f"max_size_mm={m:g}"
    size = metadata.get("size_mm")
    if isinstance(size, (list, tuple)) and len(size) == 3:
        box = [number(v) for v in size]
        if all(b is not None for b in box):
            ratios = np.asarray(box, dtype=np.float64) / np.maximum(ext, 1e-300)
            return float(ratios.min()), f"size_mm={list(box)}"
    elif (s := number(size)) is not None:
        return s / ext.max(), f"size_mm={s:g}"
    return None, "no target size in the job metadata (height_mm, max_size_mm, size_mm)"


def on_bed(bounds: np.ndarray, *, centre: tuple[float, float]) -> np.ndarray:
    """Translation putting min Z at 0 and the XY bounding-box centre at ``centre``."""
    lo, hi = np.asarray(bounds, dtype=np.float64)
    out = np.eye(4)
    out[:3, 3] = [centre[0] - (lo[0] + hi[0]) / 2.0, centre[1] - (lo[1] + hi[1]) / 2.0, -lo[2]]
    return out
