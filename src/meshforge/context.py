"""What a step gets besides its input and params: who it is, a logger, where to write, services.

New capabilities are added here as attributes, so step signatures never grow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from meshforge.types import Finding, ReadLimits, Severity

if TYPE_CHECKING:
    import httpx

    from meshforge.profiles import ResolvedStep


@dataclass(frozen=True, kw_only=True)
class StepContext:
    step: ResolvedStep
    log: logging.Logger
    out_dir: Path | None = None  # exporters write here (a private staging folder the engine publishes)
    work_dir: Path | None = None  # scratch space that lives for the run
    limits: ReadLimits = field(default_factory=ReadLimits)
    attempt: int = 1  # generation attempt (regeneration increments it)
    http_factory: Callable[[], httpx.Client] | None = None
    state: Any = None  # job store for generation (persist provider job ids), injected by batch runs
    params_lookup: Callable[[str], Any] | None = None  # the engine's, for params_of

    def params_of(self, uses: str) -> Any:
        """Parameters of the profile's first step that uses ``uses`` (``"commerce.scale"``,
        ``"glb"``), or None when the chain has none. A step that must agree with another one (the
        size budget with the GLB the export writes, every unit reading with commerce.scale's
        plausible window) reads that step's settings instead of keeping a copy in sync by hand."""
        return self.params_lookup(uses) if self.params_lookup is not None else None

    @property
    def http(self) -> httpx.Client:
        """The engine's shared HTTP client (created on first use)."""
        if self.http_factory is None:
            raise RuntimeError("this engine was built without HTTP access")
        return self.http_factory()

    def finding(
        self,
        code: str,
        severity: Severity | str,
        message: str,
        *,
        measured: Any = None,
        threshold: Any = None,
        count: int | None = None,
        samples: Sequence[int] = (),
    ) -> Finding:
        return Finding(
            code=code,
            severity=Severity(severity),
            message=message,
            measured=_plain(measured),
            threshold=_plain(threshold),
            count=None if count is None else int(count),
            samples=tuple(int(s) for s in samples),
            step=self.step.id,
        )


def _plain(value: Any) -> Any:
    """numpy scalars and arrays -> JSON-friendly Python values."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)
