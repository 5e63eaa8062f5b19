"""Data checks on decoded glTF accessors, equivalent to the Khronos glTF-Validator's data errors.

Pure numpy, no I/O: each function takes decoded arrays plus the accessor's declaration and returns
:class:`Issue` values (one per accessor and condition, with a count and up to 10 sample element
indices, where the Khronos validator prints one message per element). Codes are the Khronos ones
(``ACCESSOR_MAX_MISMATCH``); the validate step lowercases them into ``gltf.accessor_max_mismatch``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

# Khronos tolerances (lib/src/errors.dart): |len - 1| > 0.00674 for vec3 / 0.00769 for vec4 is an error.
UNIT_TOLERANCE_VEC3 = 0.00674
RESTART = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFFFFFF}

ERROR = "error"
WARNING = "warning"
INFO = "info"


@dataclass(frozen=True, kw_only=True)
class Issue:
    """One structural problem: a Khronos (UPPER_CASE) or meshforge (lower_case) code, a JSON pointer."""

    code: str
    severity: str
    pointer: str
    message: str
    measured: Any = None
    threshold: Any = None
    count: int | None = None
    samples: tuple[int, ...] = field(default=())

    @property
    def finding_code(self) -> str:
        return f"gltf.{self.code.lower()}"


def _samples(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.flatnonzero(mask)[:10])


def _all_finite(values: np.ndarray) -> bool:
    """True when no component is NaN or infinite: two reductions, no boolean array of the data's size.

    NaN propagates through ``min``/``max`` and an infinity becomes the min or the max, so both are
    finite exactly when every component is.
    """
    if values.dtype.kind != "f" or values.size == 0:
        return True
    with np.errstate(invalid="ignore"):
        return bool(np.isfinite(values.min()) and np.isfinite(values.max()))


def check_float_values(values: np.ndarray, pointer: str) -> list[Issue]:
    """NaN or infinite components (ACCESSOR_INVALID_FLOAT)."""
    if values.dtype.kind != "f" or values.size == 0 or _all_finite(values):
        return []
    bad = ~np.isfinite(values).all(axis=1)
    n = int(bad.sum())
    if not n:
        return []
    return [Issue(code="ACCESSOR_INVALID_FLOAT", severity=ERROR, pointer=pointer,
                  message=f"{n} element(s) hold NaN or infinite values", measured=n, count=n, samples=_samples(bad))]


def check_bounds(values: np.ndarray, accessor: dict[str, Any], pointer: str, *, require: bool, tolerance: float = 0.0) -> list[Issue]:
    """Declared min/max present (POSITION), equal to the data, and no element outside them.

    ``tolerance`` (absolute) is for data decoded from a lossy codec (Draco quantizes positions, so its
    accessors' bounds describe the original, not the quantized, values); 0 for plain data, as Khronos.
    """
    issues: list[Issue] = []
    declared_min, declared_max = accessor.get("min"), accessor.get("max")
    if require and (declared_min is None or declared_max is None):
        issues.append(Issue(code="MESH_PRIMITIVE_POSITION_ACCESSOR_WITHOUT_BOUNDS", severity=ERROR, pointer=pointer,
                            message="POSITION accessor has no min/max (required by the glTF spec)"))
    if values.size == 0:
        return issues
    if _all_finite(values):
        data = values  # the common case: no mask, no copy
    else:
        data = values[np.isfinite(values).all(axis=1)]
        if not len(data):
            return issues
    actual_min = data.min(axis=0).astype(np.float64)
    actual_max = data.max(axis=0).astype(np.float64)
    for key, declared, actual, worse in (("min", declared_min, actual_min, np.less), ("max", declared_max, actual_max, np.greater)):
        if declared is None:
            continue
        try:
            decl = np.asarray(declared, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            issues.append(Issue(code="TYPE_MISMATCH", severity=ERROR, pointer=f"{pointer}/{key}", message=f"{key} is not a list of numbers"))
            continue
        if decl.shape[0] != values.shape[1]:
            issues.append(Issue(code="INVALID_ACCESSOR_BOUNDS_LENGTH", severity=ERROR, pointer=f"{pointer}/{key}",
                                message=f"{key} has {decl.shape[0]} components, the accessor {values.shape[1]}"))
            continue
        # Compare at the accessor's own precision (the validator compares float32 values).
        if values.dtype == np.float32:
            decl_c = decl.astype(np.float32).astype(np.float64)
        else:
            decl_c = decl
        mismatch = (np.abs(decl_c - actual) > tolerance) & np.isfinite(decl_c)
        if mismatch.any():
            code = "ACCESSOR_MIN_MISMATCH" if key == "min" else "ACCESSOR_MAX_MISMATCH"
            issues.append(Issue(code=code, severity=ERROR, pointer=f"{pointer}/{key}",
                                message=f"declared {key} {decl.tolist()} differs from the data's {key} {actual.tolist()}",
                                measured=actual.tolist(), threshold=decl.tolist(), count=int(mismatch.sum())))
        shifted = decl_c - tolerance if key == "min" else decl_c + tolerance
        # some element lies outside exactly when the data's own min/max does: per-element work only then
        if not worse(actual, shifted).any():
            continue
        outside = worse(data.astype(np.float64), shifted[None, :]).any(axis=1)
        if outside.any():
            code = "ACCESSOR_ELEMENT_OUT_OF_MIN_BOUND" if key == "min" else "ACCESSOR_ELEMENT_OUT_OF_MAX_BOUND"
            n = int(outside.sum())
            issues.append(Issue(code=code, severity=ERROR, pointer=pointer,
                                message=f"{n} element(s) lie outside the declared {key} {decl.tolist()}",
                                measured=n, threshold=decl.tolist(), count=n, samples=_samples(outside)))
    return issues


def check_unit_vectors(values: np.ndarray, pointer: str, *, semantic: str) -> list[Issue]:
    """NORMAL (vec3) and TANGENT xyz unit length, TANGENT w = +-1 (Khronos tolerance)."""
    if values.dtype.kind != "f" or values.size == 0:
        return []
    issues = []
    xyz = values[:, :3].astype(np.float64)
    finite = np.isfinite(xyz).all(axis=1)
    length = np.sqrt(np.einsum("ij,ij->i", np.where(finite[:, None], xyz, 0.0), np.where(finite[:, None], xyz, 0.0)))
    bad = finite & (np.abs(length - 1.0) > UNIT_TOLERANCE_VEC3)
    if bad.any():
        n = int(bad.sum())
        worst = float(np.abs(length[bad] - 1.0).max())
        issues.append(Issue(code="ACCESSOR_VECTOR3_NON_UNIT", severity=ERROR, pointer=pointer,
                            message=f"{n} {semantic} vector(s) are not unit length (worst |len - 1| = {worst:.4g})",
                            measured=round(worst, 6), threshold=UNIT_TOLERANCE_VEC3, count=n, samples=_samples(bad)))
    if semantic == "TANGENT" and values.shape[1] == 4:
        w = values[:, 3]
        bad_w = np.isfinite(w) & (w != 1.0) & (w != -1.0)
        if bad_w.any():
            n = int(bad_w.sum())
            issues.append(Issue(code="ACCESSOR_INVALID_SIGN", severity=ERROR, pointer=pointer,
                                message=f"{n} tangent w component(s) are not 1.0 or -1.0", count=n, samples=_samples(bad_w)))
    return issues


def check_clamped(values: np.ndarray, pointer: str) -> list[Issue]:
    """COLOR_n float components must lie in 0..1 (ACCESSOR_NON_CLAMPED)."""
    if values.dtype.kind != "f" or values.size == 0:
        return []
    bad = ((values < 0) | (values > 1)).any(axis=1)
    if not bad.any():
        return []
    n = int(bad.sum())
    return [Issue(code="ACCESSOR_NON_CLAMPED", severity=ERROR, pointer=pointer,
                  message=f"{n} colour element(s) outside 0..1", count=n, samples=_samples(bad))]


def check_indices(indices: np.ndarray, vertex_count: int, component_size: int, pointer: str, *, triangles: bool) -> tuple[list[Issue], np.ndarray]:
    """Index range, primitive-restart values and degenerate triangles.

    Returns the issues and a boolean mask of the *triangles* that are usable (all three indices in
    range and no restart value); for non-triangle modes the mask covers indices.
    """
    issues: list[Issue] = []
    flat = indices.reshape(-1)
    usable_len = (len(flat) // 3) * 3
    if not flat.size or int(flat.max()) < vertex_count:
        # every index in range (a restart value is never a valid index): one reduction, no masks
        if not triangles:
            return issues, np.ones(len(flat), dtype=bool)
        tris = flat[:usable_len].reshape(-1, 3)
        issues.extend(_degenerate(tris, pointer))
        return issues, np.ones(len(tris), dtype=bool)
    restart = flat == RESTART.get(component_size, -1)
    oob = (flat >= vertex_count) & ~restart
    if oob.any():
        n = int(oob.sum())
        issues.append(Issue(code="ACCESSOR_INDEX_OOB", severity=ERROR, pointer=pointer,
                            message=f"{n} index value(s) >= the vertex count {vertex_count} (max index {int(flat.max())})",
                            measured=int(flat.max()), threshold=vertex_count - 1, count=n, samples=_samples(oob)))
    if restart.any():
        n = int(restart.sum())
        issues.append(Issue(code="ACCESSOR_INDEX_PRIMITIVE_RESTART", severity=ERROR, pointer=pointer,
                            message=f"{n} index value(s) equal the primitive-restart value {RESTART[component_size]}",
                            count=n, samples=_samples(restart)))
    bad = oob | restart
    if not triangles:
        return issues, ~bad
    tris = flat[:usable_len].reshape(-1, 3)
    ok = ~bad[:usable_len].reshape(-1, 3).any(axis=1)
    issues.extend(_degenerate(tris, pointer))
    return issues, ok


def _degenerate(tris: np.ndarray, pointer: str) -> list[Issue]:
    degenerate = (tris[:, 0] == tris[:, 1]) | (tris[:, 1] == tris[:, 2]) | (tris[:, 0] == tris[:, 2])
    if not degenerate.any():
        return []
    n = int(degenerate.sum())
    return [Issue(code="ACCESSOR_INDEX_TRIANGLE_DEGENERATE", severity=INFO, pointer=pointer,
                  message=f"{n} degenerate triangle(s) (repeated index)", count=n, samples=_samples(degenerate))]


def check_node_transform(node: dict[str, Any], pointer: str) -> list[Issue]:
    """Finite TRS / matrix values, unit rotation, no matrix together with TRS."""
    issues: list[Issue] = []
    for key, size in (("matrix", 16), ("translation", 3), ("rotation", 4), ("scale", 3)):
        if key not in node:
            continue
        try:
            arr = np.asarray(node[key], dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            issues.append(Issue(code="TYPE_MISMATCH", severity=ERROR, pointer=f"{pointer}/{key}", message=f"{key} is not a list of numbers"))
            continue
        if arr.shape[0] != size:
            issues.append(Issue(code="ARRAY_LENGTH_NOT_IN_LIST", severity=ERROR, pointer=f"{pointer}/{key}",
                                message=f"{key} has {arr.shape[0]} values, expected {size}"))
            continue
        if not np.isfinite(arr).all():
            issues.append(Issue(code="VALUE_NOT_IN_RANGE", severity=ERROR, pointer=f"{pointer}/{key}",
                                message=f"{key} holds non-finite values"))
            continue
        if key == "rotation" and abs(float(np.linalg.norm(arr)) - 1.0) > 0.00769:
            issues.append(Issue(code="ROTATION_NON_UNIT", severity=ERROR, pointer=f"{pointer}/{key}",
                                message=f"rotation quaternion has length {float(np.linalg.norm(arr)):.4g}",
                                measured=float(np.linalg.norm(arr)), threshold=1.0))
    if "matrix" in node and any(k in node for k in ("translation", "rotation", "scale")):
        issues.append(Issue(code="NODE_MATRIX_TRS", severity=ERROR, pointer=pointer, message="node has both matrix and TRS properties"))
    return issues
