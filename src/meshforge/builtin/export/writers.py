"""Writers for the export stage: binary STL and 3MF, in millimetres.

Each writes into ``ctx.out_dir`` (a staging folder); the engine publishes the files atomically.
Print profiles convert to millimetres, +Z up before export (print.to_millimetres); a writer still
scales a scene whose declared unit is not mm, so no file claims mm while holding metres.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from meshforge.asset import AssetView
from meshforge.context import StepContext
from meshforge.hookspecs import hookimpl
from meshforge.types import ExportStep, NoParams

MODEL_PATH = "3D/3dmodel.model"
REQUIRED_PARTS = ("[Content_Types].xml", "_rels/.rels", MODEL_PATH)


def _target(view: AssetView, ctx: StepContext, suffix: str) -> Path:
    assert ctx.out_dir is not None, "export steps run with an output folder"
    return ctx.out_dir / f"{view.out_name}{suffix}"


def mesh_in_mm(view: AssetView):
    """The scene as one mesh in millimetres (a copy only when scaling is needed)."""
    from meshforge.ops.units import scale_factor

    mesh = view.mesh
    factor = scale_factor(view.units.length, "mm") if view.units.length else 1.0
    if factor == 1.0:
        return mesh
    scaled = mesh.copy()
    scaled.apply_scale(factor)
    return scaled


def write_stl(view: AssetView, params: NoParams, ctx: StepContext) -> list[Path]:
    path = _target(view, ctx, ".stl")
    mesh = mesh_in_mm(view)
    path.write_bytes(mesh.export(file_type="stl"))  # trimesh writes binary STL with recomputed facet normals
    return [path]


def check_3mf(data: bytes) -> list[str]:
    """Problems with a 3MF package (empty when valid): the OPC parts, the model's unit and mesh."""
    from lxml import etree

    problems: list[str] = []
    try:
        package = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        return [f"not a zip package: {exc}"]
    names = set(package.namelist())
    problems += [f"missing part {part}" for part in REQUIRED_PARTS if part not in names]
    if problems:
        return problems
    rels = etree.fromstring(package.read("_rels/.rels"))
    targets = [r.get("Target", "").lstrip("/") for r in rels if r.get("Type", "").endswith("/3dmodel")]
    if MODEL_PATH not in targets:
        problems.append("_rels/.rels has no 3dmodel relationship to /3D/3dmodel.model")
    types = package.read("[Content_Types].xml").decode("utf-8", "replace")
    if "application/vnd.ms-package.3dmanufacturing-3dmodel+xml" not in types:
        problems.append("[Content_Types].xml lacks the 3D model content type")
    model = etree.fromstring(package.read(MODEL_PATH))
    if model.get("unit") != "millimeter":
        problems.append(f"model unit is {model.get('unit')!r}, not 'millimeter'")
    ns = {"c": "http://schemas.microsoft.com/3dmanufacturing/core/2015/02"}
    n_vertices = len(model.findall(".//c:vertex", ns))
    triangles = model.findall(".//c:triangle", ns)
    if not triangles:
        problems.append("model holds no triangles")
    elif n_vertices:
        index = np.array([[int(t.get(k)) for k in ("v1", "v2", "v3")] for t in triangles[:100000]])
        if index.max() >= n_vertices or index.min() < 0:
            problems.append("triangle index out of range")
    if not model.findall(".//c:build/c:item", ns):
        problems.append("model has no build item")
    return problems


def write_3mf(view: AssetView, params: NoParams, ctx: StepContext) -> list[Path]:
    import trimesh

    path = _target(view, ctx, ".3mf")
    mesh = mesh_in_mm(view)
    data = trimesh.exchange.threemf.export_3MF(trimesh.Trimesh(mesh.vertices, mesh.faces, process=False))
    problems = check_3mf(data)
    if problems:
        raise ValueError(f"3MF writer produced an invalid package: {'; '.join(problems)}")
    path.write_bytes(data)
    return [path]


@hookimpl
def meshforge_export_steps() -> list[ExportStep]:
    return [
        ExportStep(name="stl", summary="binary STL in millimetres", formats=("stl",), write=write_stl),
        ExportStep(name="threemf", summary="3MF package (unit millimeter, one mesh object, one build item)",
                   formats=("3mf",), write=write_3mf),
    ]
