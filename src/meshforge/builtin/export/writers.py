"""Writers for the export stage: binary STL, 3MF, GLB.

Each writes into ``ctx.out_dir`` (a staging folder); the engine publishes the files atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from meshforge.asset import AssetView
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.types import ExportStep, NoParams


def _target(view: AssetView, ctx: StepContext, suffix: str) -> Path:
    assert ctx.out_dir is not None, "export steps run with an output folder"
    return ctx.out_dir / f"{view.out_name}{suffix}"


def write_stl(view: AssetView, params: NoParams, ctx: StepContext) -> list[Path]:
    path = _target(view, ctx, ".stl")
    path.write_bytes(view.mesh.export(file_type="stl"))
    return [path]


@hookimpl
def meshforge_export_steps() -> list[ExportStep]:
    return [
        ExportStep(name="stl", summary="binary STL (millimetres for print profiles)", formats=("stl",), write=write_stl),
    ]
