"""Every hook a meshforge plugin can implement, typed and documented in one place.

Plugins import :data:`meshforge.hookimpl` and implement any subset of these. Stage hooks *declare*
steps (frozen dataclasses from :mod:`meshforge.types`); they are called once when an engine is built
and never run work. The engine runs the steps the profile names, in the profile's order, and owns
timing, error isolation, measurement and the report.

Example plugin module::

    import meshforge
    from meshforge.types import ValidateStep, Severity

    def check_feet(view, params, ctx):
        if view.mesh.bounds[1][2] > 300:
            yield ctx.finding("acme.too_tall", Severity.ERROR, "taller than 300 mm")

    @meshforge.hookimpl
    def meshforge_validate_steps():
        return [ValidateStep(name="acme.height", summary="height under 300 mm",
                             codes=("acme.too_tall",), check=check_feet)]
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from meshforge.report import AssetReport, StepRecord
    from meshforge.types import ExportStep, GenerateStep, PreprocessStep, Reader, RepairStep, ValidateStep

PROJECT = "meshforge"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- stage hooks: "what steps can you offer?" ------------------------------------------------


@hookspec
def meshforge_preprocess_steps() -> Iterable[PreprocessStep]:
    """Steps that normalize the inputs (images, prompts, fingerprints) before generation.

    Each step's ``apply(inputs, params, ctx)`` returns a new :class:`meshforge.asset.Inputs`.
    """


@hookspec
def meshforge_generate_steps() -> Iterable[GenerateStep]:
    """Steps that produce a model: import a file, call a generation service, or build one offline.

    ``generate(inputs, params, ctx)`` returns :class:`meshforge.types.Generated` or None when the
    inputs are not for it; the engine asks the chain's steps in order until one answers.
    """


@hookspec
def meshforge_validate_steps() -> Iterable[ValidateStep]:
    """Checks. ``check(view, params, ctx)`` yields :class:`meshforge.types.Finding` values whose
    codes are listed in the step's ``codes``."""


@hookspec
def meshforge_repair_steps() -> Iterable[RepairStep]:
    """Repairs. ``apply(view, params, ctx)`` returns :class:`meshforge.types.RepairResult`.

    A repair runs only when a finding with one of its ``fixes`` codes is present, or when the
    profile marks it ``always = true``.
    """


@hookspec
def meshforge_export_steps() -> Iterable[ExportStep]:
    """Writers. ``write(view, params, ctx)`` writes under ``ctx.out_dir`` and returns the paths."""


# --- formats -------------------------------------------------------------------------------


@hookspec
def meshforge_readers() -> Iterable[Reader]:
    """Readers for model formats, by format name (``"stl"``, ``"glb"`` ...)."""


@hookspec(firstresult=True)
def meshforge_detect_format(head: bytes, filename: str | None) -> str | None:
    """Name the format of a file from its first bytes (and name). First non-None answer wins.

    The built-in magic-byte sniffer answers last (``trylast``), so a plugin can claim a format first.
    A sniffer that raises is skipped and logged; the next one answers.
    """


# --- observers -----------------------------------------------------------------------------
# Observers watch and never steer: each implementation is called on its own, and one that raises
# is logged and skipped (the run, and the other observers, go on). Wrappers are not called.


@hookspec
def meshforge_step_finished(record: StepRecord) -> None:
    """Called after every step the engine ran (tracing, metrics). Return values are ignored."""


@hookspec
def meshforge_run_finished(report: AssetReport) -> None:
    """Called once per asset when its report is final (queues, uploads, metrics)."""
