"""Helpers for testing steps and plugins without an engine: views, contexts, tiny meshes.

    from meshforge import testing
    findings = testing.run_check(my_step, testing.cube(20.0), min_mm=0.8)
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from meshforge.asset import AssetView, Derived, Inputs
from meshforge.context import StepContext
from meshforge.params import build
from meshforge.profiles import ResolvedStep
from meshforge.types import (
    STEP_TYPES,
    AnyStep,
    Finding,
    NoParams,
    ReadLimits,
    RepairResult,
    RepairStep,
    SourceFile,
    Stage,
    Units,
    ValidateStep,
)

MM_Z_UP = Units("mm", "+Z")


def _scene(obj: Any) -> Any:
    import trimesh

    if isinstance(obj, trimesh.Scene):
        return obj
    return trimesh.Scene(obj)


def view(
    obj: Any,
    *,
    units: Units = MM_Z_UP,
    source_format: str = "memory",
    findings: Iterable[Finding] = (),
    document: Any = None,
    source: SourceFile | None = None,
    inputs: Inputs | None = None,
    id: str = "test",  # noqa: A002
) -> AssetView:
    """A read-only AssetView over a Trimesh or Scene, as the engine would build it."""
    scene = _scene(obj)
    return AssetView(
        id=id,
        inputs=inputs or Inputs(id=id),
        scene=scene,
        units=units,
        source_format=source_format,
        source=source,
        document=document,
        findings=tuple(findings),
        derived=Derived(scene),
        out_name=id,
    )


def _stage_of(spec: AnyStep) -> Stage:
    for stage, cls in STEP_TYPES.items():
        if isinstance(spec, cls):
            return stage
    raise TypeError(f"not a step: {spec!r}")


def step_context(
    spec: AnyStep | None = None,
    params: Any = None,
    *,
    out_dir: Path | None = None,
    work_dir: Path | None = None,
    limits: ReadLimits | None = None,
    http_factory: Any = None,
    state: Any = None,
    attempt: int = 1,
) -> StepContext:
    """A StepContext for calling a step function directly."""
    if spec is None:
        spec = ValidateStep(name="test.step", summary="test", codes=(), check=lambda v, p, c: ())
    step = ResolvedStep(id=spec.name, stage=_stage_of(spec), spec=spec, plugin="test", params=params or NoParams())
    return StepContext(
        step=step,
        log=logging.getLogger(f"meshforge.test.{spec.name}"),
        out_dir=out_dir,
        work_dir=work_dir,
        limits=limits or ReadLimits(),
        http_factory=http_factory,
        state=state,
        attempt=attempt,
    )


def params_for(spec: AnyStep, values: Mapping[str, Any] | None = None) -> Any:
    """The step's params dataclass built strictly from ``values`` (as a profile would)."""
    return build(spec.params, dict(values or {}), f"test: {spec.name}")


def run_check(spec: ValidateStep, obj: Any, *, units: Units = MM_Z_UP, view_kwargs: Mapping[str, Any] | None = None,
              **params: Any) -> list[Finding]:
    p = params_for(spec, params)
    v = obj if isinstance(obj, AssetView) else view(obj, units=units, **dict(view_kwargs or {}))
    return list(spec.check(v, p, step_context(spec, p)))


def run_repair(spec: RepairStep, obj: Any, *, findings: Iterable[Finding] = (), units: Units = MM_Z_UP,
               **params: Any) -> RepairResult:
    p = params_for(spec, params)
    v = obj if isinstance(obj, AssetView) else view(obj, units=units, findings=findings)
    return spec.apply(v, p, step_context(spec, p))


def codes(findings: Iterable[Finding]) -> list[str]:
    return sorted(f.code for f in findings)


def check_plugin(module: Any) -> list[str]:
    """Contract problems of a plugin module (empty when fine): names, params, declared codes."""
    from meshforge.plugins import PluginRecord, Registry, new_plugin_manager

    problems: list[str] = []
    pm = new_plugin_manager()  # the module alone: a built-in module can be checked too
    name = getattr(module, "__name__", "plugin")
    try:
        pm.register(module, name=name)
        pm.check_pending()
    except Exception as exc:
        return [f"plugin failed to register: {type(exc).__name__}: {exc}"]
    record = Registry(pm, [PluginRecord(name=name, origin="runtime", status="active")]).records[-1]
    if record.status != "active":
        return [f"plugin failed to register: {record.reason}"]
    for entries in record.steps.values():
        for entry in entries:
            spec = entry.spec
            if not dataclasses.is_dataclass(spec.params):
                problems.append(f"{spec.name}: params is not a dataclass")
                continue
            if not spec.params.__dataclass_params__.frozen:  # type: ignore[attr-defined]
                problems.append(f"{spec.name}: params dataclass is not frozen")
            try:
                spec.params()
            except TypeError:
                problems.append(f"{spec.name}: every parameter needs a default")
            if isinstance(spec, ValidateStep) and not spec.codes:
                problems.append(f"{spec.name}: declares no finding codes")
    return problems


# --- tiny meshes (millimetres, +Z up) --------------------------------------------------------


def cube(size: float = 20.0) -> Any:
    import trimesh

    return trimesh.creation.box(extents=(size, size, size))


def box(extents: tuple[float, float, float]) -> Any:
    import trimesh

    return trimesh.creation.box(extents=extents)


def open_box(size: float = 20.0, holes: int = 1) -> Any:
    """A cube with ``holes`` of its 6 sides' first triangles removed... as whole sides (each a hole)."""
    import trimesh

    mesh = trimesh.creation.box(extents=(size, size, size))
    normals = mesh.face_normals
    keep = np.ones(len(mesh.faces), dtype=bool)
    for axis_sign in [(2, 1), (2, -1), (0, 1), (0, -1), (1, 1), (1, -1)][:holes]:
        axis, sign = axis_sign
        keep &= ~(np.isclose(normals[:, axis], sign))
    return trimesh.Trimesh(mesh.vertices.copy(), mesh.faces[keep].copy(), process=False)


def inverted(mesh: Any) -> Any:
    import trimesh

    return trimesh.Trimesh(mesh.vertices.copy(), mesh.faces[:, ::-1].copy(), process=False)


def soup(mesh: Any) -> Any:
    """The same triangles with no shared vertices (how STL stores them)."""
    import trimesh

    tris = mesh.vertices[mesh.faces].reshape(-1, 3)
    faces = np.arange(len(tris)).reshape(-1, 3)
    return trimesh.Trimesh(tris, faces, process=False)
