"""meshforge: validate, repair and export generated 3D models for storefronts and printers.

Public API::

    from meshforge import Engine
    report = Engine("fdm-print-stl").run("part.stl", out_dir="out")
"""

from meshforge.asset import AssetView, Derived, Inputs
from meshforge.context import StepContext
from meshforge.engine import Engine
from meshforge.errors import InputError, MeshforgeError, ProfileError
from meshforge.hookspecs import hookimpl
from meshforge.params import field
from meshforge.report import AssetReport, Metrics, Output, RunResult, Status, StepRecord
from meshforge.types import (
    ExportStep,
    Finding,
    Generated,
    GenerateStep,
    Loaded,
    NoParams,
    PreprocessStep,
    Reader,
    ReadLimits,
    RepairResult,
    RepairStep,
    Severity,
    SourceFile,
    Stage,
    Units,
    ValidateStep,
)

__version__ = "0.1.0"

__all__ = [
    "AssetReport",
    "AssetView",
    "Derived",
    "Engine",
    "ExportStep",
    "Finding",
    "GenerateStep",
    "Generated",
    "InputError",
    "Inputs",
    "Loaded",
    "MeshforgeError",
    "Metrics",
    "NoParams",
    "Output",
    "PreprocessStep",
    "ProfileError",
    "ReadLimits",
    "Reader",
    "RepairResult",
    "RepairStep",
    "RunResult",
    "Severity",
    "SourceFile",
    "Stage",
    "Status",
    "StepContext",
    "StepRecord",
    "Units",
    "ValidateStep",
    "__version__",
    "field",
    "hookimpl",
]
