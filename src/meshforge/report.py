"""The report: the source of truth for what meshforge found and did. Schema ``meshforge.report/1``.

The JSON form is validated by ``schemas/report.schema.json`` in the tests; terminal and HTML views
are rendered from it.
"""

from __future__ import annotations

import json
import math
import os
import threading
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from meshforge.types import Finding, Severity

SCHEMA_ID = "meshforge.report/1"


class Status(StrEnum):
    PASS = "pass"  # no error finding remains
    FAIL = "fail"  # an error finding remains (exit 1)
    UNUSABLE = "unusable"  # the input could not be used at all (exit 2)


@dataclass(frozen=True, kw_only=True)
class Metrics:
    triangles: int
    vertices: int
    bounds: tuple[tuple[float, float, float], tuple[float, float, float]] | None
    volume: float | None  # signed, tetrahedra to the vertices' centroid: a closed mesh's volume; for an open one origin-independent
    watertight: bool | None  # every edge used by exactly two faces once bit-identical positions are merged (UV seams are no holes)
    units: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "triangles": self.triangles,
            "vertices": self.vertices,
            "bounds": [list(b) for b in self.bounds] if self.bounds else None,
            "volume": self.volume,
            "watertight": self.watertight,
            "units": self.units,
        }


@dataclass(frozen=True, kw_only=True)
class StepRecord:
    step_id: str
    name: str
    plugin: str
    stage: str
    params: dict[str, Any]
    seconds: float
    outcome: str  # "ok", "skipped", "failed", "timeout"
    note: str = ""
    before: Metrics | None = None
    after: Metrics | None = None
    details: dict[str, Any] = field(default_factory=dict)
    findings: int = 0
    attempt: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.step_id,
            "uses": self.name,
            "plugin": self.plugin,
            "stage": self.stage,
            "params": self.params,
            "seconds": round(self.seconds, 6),
            "outcome": self.outcome,
            "note": self.note,
            "before": self.before.to_dict() if self.before else None,
            "after": self.after.to_dict() if self.after else None,
            "details": self.details,
            "findings": self.findings,
            "attempt": self.attempt,
        }


@dataclass(frozen=True, kw_only=True)
class Output:
    path: str
    format: str
    bytes: int
    sha256: str
    rejected: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "bytes": self.bytes, "sha256": self.sha256, "rejected": self.rejected}


@dataclass(frozen=True, kw_only=True)
class AssetReport:
    input: dict[str, Any]  # id, path/name, format, bytes, sha256
    profile: dict[str, Any]
    status: Status
    findings: tuple[Finding, ...]  # final findings (after repair and re-validation)
    initial_findings: tuple[Finding, ...] = ()  # before repair
    steps: tuple[StepRecord, ...] = ()
    outputs: tuple[Output, ...] = ()
    attempts: tuple[dict[str, Any], ...] = ()
    metrics: Metrics | None = None
    seconds: float = 0.0
    meshforge_version: str = ""

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity is Severity.ERROR)

    @property
    def exit_code(self) -> int:
        return {Status.PASS: 0, Status.FAIL: 1, Status.UNUSABLE: 2}[self.status]

    def to_dict(self) -> dict[str, Any]:
        return json_safe({
            "schema": SCHEMA_ID,
            "meshforge_version": self.meshforge_version,
            "input": self.input,
            "profile": self.profile,
            "status": str(self.status),
            "seconds": round(self.seconds, 6),
            "metrics": self.metrics.to_dict() if self.metrics else None,
            "summary": summarize(self.findings),
            "findings": [f.to_dict() for f in self.findings],
            "initial_findings": [f.to_dict() for f in self.initial_findings],
            "steps": [s.to_dict() for s in self.steps],
            "attempts": list(self.attempts),
            "outputs": [o.to_dict() for o in self.outputs],
        })

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False, default=str)


def json_safe(value: Any) -> Any:
    """Plain JSON values. Non-finite floats become strings ("nan", "inf"): JSON has no NaN, and a
    NaN vertex is news. numpy values a plugin put in its details become numbers and lists, and
    anything else (a Path) its string, so ``to_dict()`` always feeds ``json.dumps`` as is."""
    if isinstance(value, Enum):  # StrEnum values are already strings; a plain Enum's name is not its value
        return json_safe(value.value)
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):  # in a stable order: the same report on every run
        return sorted((json_safe(v) for v in value), key=repr)
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays and scalars, without importing numpy here
        return json_safe(value.tolist())
    return str(value)


def summarize(findings: tuple[Finding, ...]) -> dict[str, int]:
    return {sev.value: sum(1 for f in findings if f.severity is sev) for sev in Severity}


@dataclass(frozen=True, kw_only=True)
class RunResult:
    """Reports for every input of one invocation; ``exit_code`` is the CLI's."""

    assets: tuple[AssetReport, ...]

    @property
    def exit_code(self) -> int:
        return max((a.exit_code for a in self.assets), default=0)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA_ID, "exit_code": self.exit_code, "assets": [a.to_dict() for a in self.assets]}


def schema() -> dict[str, Any]:
    """The JSON schema every report validates against."""
    return json.loads(resources.files("meshforge").joinpath("schemas/report.schema.json").read_text("utf-8"))


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")  # two writers never share one
    tmp.write_text(json.dumps(data, indent=2, allow_nan=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)
