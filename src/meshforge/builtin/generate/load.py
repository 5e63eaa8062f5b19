"""``import``: the model file (or bytes, or in-memory mesh) the user gave *is* the generation."""

from __future__ import annotations

from pathlib import Path

from meshforge.asset import Inputs
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.io.source import read_source
from meshforge.types import Generated, GenerateStep, NoParams


def import_model(inputs: Inputs, params: NoParams, ctx: StepContext) -> Generated | None:
    if inputs.scene is not None:
        return Generated(scene=inputs.scene, filename=inputs.filename or inputs.id, provenance={"source": "memory"})
    if isinstance(inputs.model, bytes):
        return Generated(data=inputs.model, filename=inputs.filename or inputs.id, provenance={"source": "bytes"})
    if isinstance(inputs.model, Path):
        source = read_source(inputs.model, ctx.limits)
        return Generated(data=source.data, filename=source.name, path=source.path, provenance={"source": "file"})
    return None  # images or a prompt: for another generate step


@hookimpl
def meshforge_generate_steps() -> list[GenerateStep]:
    return [
        GenerateStep(
            name="import",
            summary="use the model file the job names (STL, OBJ, PLY, OFF, GLB, glTF, 3MF)",
            generate=import_model,
        )
    ]
