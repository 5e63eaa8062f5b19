"""Frozen values that cross the plugin boundary.

Plugins *declare* steps (dataclasses below) through the stage hooks in :mod:`meshforge.hookspecs`;
the engine runs them in the order the profile gives. Steps get read-only inputs and return values:
findings, a new scene, written files. They never mutate what they are handed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    import trimesh

    from meshforge.asset import AssetView, Inputs
    from meshforge.context import StepContext


class Stage(StrEnum):
    PREPROCESS = "preprocess"
    GENERATE = "generate"
    VALIDATE = "validate"
    REPAIR = "repair"
    EXPORT = "export"


STAGES: tuple[Stage, ...] = tuple(Stage)


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$")
_CODE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_.]*$")
MAX_SAMPLES = 10

Scalar = float | int | str | bool | None


@dataclass(frozen=True, kw_only=True)
class Finding:
    """One thing a check measured. ``code`` is stable once shipped: ``<family>.<condition>``."""

    code: str
    severity: Severity
    message: str
    measured: Scalar | list[Scalar] = None
    threshold: Scalar | list[Scalar] = None
    count: int | None = None
    samples: tuple[int, ...] = ()
    step: str = ""  # filled by the engine
    fixable_by: tuple[str, ...] = ()  # filled by the engine from the chain's repair steps

    def __post_init__(self) -> None:
        if not _CODE.match(self.code):
            raise ValueError(f"finding code {self.code!r} is not '<family>.<condition>' in lowercase")
        object.__setattr__(self, "severity", Severity(self.severity))
        if not isinstance(self.message, str) or not self.message.strip():
            raise ValueError(f"finding {self.code!r} needs a message saying what was found")
        if self.count is not None:
            if int(self.count) < 0:
                raise ValueError(f"finding {self.code!r}: count {self.count} is negative")
            object.__setattr__(self, "count", int(self.count))
        object.__setattr__(self, "samples", tuple(int(s) for s in self.samples)[:MAX_SAMPLES])

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": str(self.severity),
            "message": self.message,
            "measured": self.measured,
            "threshold": self.threshold,
            "count": self.count,
            "samples": list(self.samples),
            "step": self.step,
            "fixable": bool(self.fixable_by),
            "fixable_by": list(self.fixable_by),
        }


@dataclass(frozen=True)
class Units:
    """Length unit of the scene's coordinates and its up axis.

    ``length`` is None when the format carries no unit (STL, OBJ, PLY, OFF): profiles decide
    what to assume, and the units checks say so in their findings.
    """

    length: str | None = None  # "m", "mm", "cm", "in", "ft", "um"
    up: str = "+Z"  # "+Y" for glTF

    METRES_PER_UNIT = MappingProxyType(
        {"um": 1e-6, "mm": 1e-3, "cm": 1e-2, "m": 1.0, "in": 0.0254, "ft": 0.3048}
    )

    def metres_per_unit(self, assume: str | None = None) -> float | None:
        unit = self.length or assume
        return self.METRES_PER_UNIT.get(unit) if unit else None


@dataclass(frozen=True, kw_only=True)
class SourceFile:
    """The bytes of one input, read once; ``path`` is None for in-memory inputs."""

    name: str
    data: bytes
    path: Path | None = None

    @property
    def folder(self) -> Path | None:
        return self.path.parent if self.path is not None else None


@dataclass(frozen=True, kw_only=True)
class ReadLimits:
    """Caps checked *before* memory is committed (hostile input is normal input)."""

    max_file_bytes: int = 512 * 1024 * 1024
    max_triangles: int = 20_000_000
    max_vertices: int = 30_000_000
    max_image_pixels: int = 64 * 1024 * 1024
    max_nodes: int = 100_000
    max_primitives: int = 20_000
    max_depth: int = 256


@dataclass(frozen=True, kw_only=True)
class Loaded:
    """What a reader returns: the scene, its units, and anything it noticed on the way."""

    scene: trimesh.Scene
    format: str
    units: Units = field(default_factory=Units)
    document: Any = None  # format-level document for container checks (e.g. the glTF JSON)
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Reader:
    """Reads one format. ``read`` must raise :class:`meshforge.errors.InputError` on bad input."""

    format: str
    suffixes: tuple[str, ...]
    read: Callable[[SourceFile, ReadLimits], Loaded]
    requires: tuple[str, ...] = ()


@dataclass(frozen=True)
class NoParams:
    """Parameters of a step that takes none."""


P = TypeVar("P")


@dataclass(frozen=True, kw_only=True)
class StepSpec(Generic[P]):
    name: str  # "print.wall_thickness": lowercase, dotted
    summary: str  # one line for `meshforge plugins`
    params: type[P] = NoParams  # type: ignore[assignment]
    requires: tuple[str, ...] = ()  # importable modules; missing -> step unavailable, with the reason

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"step name {self.name!r} must be lowercase words joined by dots")


@dataclass(frozen=True, kw_only=True)
class PreprocessStep(StepSpec[P]):
    """Turns the user's inputs into normalized inputs (returns a new Inputs; never edits one)."""

    apply: Callable[[Inputs, P, StepContext], Inputs]


@dataclass(frozen=True, kw_only=True)
class GenerateStep(StepSpec[P]):
    """Produces a model from the inputs, or None when the inputs are not for it.

    The engine asks the chain's generate steps in order; the first that returns a model wins.
    """

    generate: Callable[[Inputs, P, StepContext], Generated | None]


@dataclass(frozen=True, kw_only=True)
class ValidateStep(StepSpec[P]):
    codes: tuple[str, ...]  # every finding code it may emit (documented in docs/findings.md)
    check: Callable[[AssetView, P, StepContext], Iterable[Finding]]


@dataclass(frozen=True, kw_only=True)
class RepairStep(StepSpec[P]):
    fixes: tuple[str, ...]  # runs when one of these codes was found, or when the profile says always
    apply: Callable[[AssetView, P, StepContext], RepairResult]


@dataclass(frozen=True, kw_only=True)
class ExportStep(StepSpec[P]):
    formats: tuple[str, ...]
    write: Callable[[AssetView, P, StepContext], Iterable[Path]]  # files written under ctx.out_dir


AnyStep = PreprocessStep | GenerateStep | ValidateStep | RepairStep | ExportStep

STEP_TYPES: Mapping[Stage, type] = MappingProxyType(
    {
        Stage.PREPROCESS: PreprocessStep,
        Stage.GENERATE: GenerateStep,
        Stage.VALIDATE: ValidateStep,
        Stage.REPAIR: RepairStep,
        Stage.EXPORT: ExportStep,
    }
)


@dataclass(frozen=True, kw_only=True)
class Generated:
    """A model produced by a generate step: bytes to read (sniffed, loaded once) or a ready scene."""

    data: bytes | None = None
    filename: str = "generated"
    path: Path | None = None  # where the bytes came from, so relative resources resolve
    scene: trimesh.Scene | None = None
    units: Units | None = None  # for a ready scene
    provenance: Mapping[str, Any] = field(default_factory=dict)  # provider, job id, seed, cost...

    def __post_init__(self) -> None:
        if (self.data is None) == (self.scene is None):
            raise ValueError("Generated needs exactly one of data or scene")


@dataclass(frozen=True, kw_only=True)
class RepairResult:
    """What a repair did. ``scene`` None means nothing changed."""

    scene: trimesh.Scene | trimesh.Trimesh | None = None
    units: Units | None = None  # when the repair changed units or up axis
    note: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)  # numbers worth reporting

    @classmethod
    def unchanged(cls, note: str = "nothing to do") -> RepairResult:
        return cls(note=note)
