"""The ``meshforge`` command line: a thin layer over the public API. Exit codes are decided here.

0: every file passes the profile; 1: an error finding remains (after repair, for ``run``);
2: unusable input or usage (unreadable/corrupt file, unknown profile, bad parameter), one line each.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

EXIT_OK, EXIT_FAIL, EXIT_UNUSABLE = 0, 1, 2


def _debug_enabled(ctx: click.Context | None) -> bool:
    if os.environ.get("MESHFORGE_DEBUG", "") in ("1", "true"):
        return True
    while ctx is not None:
        if ctx.params.get("debug"):
            return True
        ctx = ctx.parent
    return False


def handle_errors(fn: F) -> F:
    """MeshforgeError -> one line ``where: reason`` and exit 2; never a traceback unless --debug."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from meshforge.errors import MeshforgeError

        try:
            return fn(*args, **kwargs)
        except MeshforgeError as exc:
            click.echo(f"meshforge: {exc}", err=True)
            sys.exit(EXIT_UNUSABLE)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            if _debug_enabled(click.get_current_context(silent=True)):
                raise
            click.echo(f"meshforge: internal error: {type(exc).__name__}: {exc} (run with --debug for the traceback)", err=True)
            sys.exit(EXIT_UNUSABLE)

    return wrapper  # type: ignore[return-value]


class LazyGroup(click.Group):
    """Subcommands living in their own modules, imported only when invoked (startup stays fast)."""

    lazy: dict[str, str] = {
        # name -> "module:attribute" of a click command
        "batch": "meshforge.cli.batch:batch",
        "webhook": "meshforge.cli.webhook:webhook",
        "report": "meshforge.cli.report:report",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._available()})

    def _available(self) -> list[str]:
        import importlib.util

        return [name for name, target in self.lazy.items() if importlib.util.find_spec(target.partition(":")[0])]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            module_name, _, attr = self.lazy[name].partition(":")
            import importlib
            import importlib.util

            if importlib.util.find_spec(module_name) is None:
                return None
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="meshforge")
@click.option("--debug", is_flag=True, help="Show tracebacks (also MESHFORGE_DEBUG=1).")
def main(debug: bool) -> None:
    """Validate, repair and export 3D models for storefronts and printers."""


def _profile_options(fn: F) -> F:
    fn = click.option("--set", "overrides", multiple=True, metavar="STEP.PARAM=VALUE",
                      help="Override a profile parameter (repeatable), e.g. --set thickness.min_mm=1.0")(fn)
    fn = click.option("--profile", "-p", required=True, help="Profile name, alias or path to a .toml file.")(fn)
    return fn


def _output_options(fn: F) -> F:
    fn = click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path),
                      help="Write the JSON report (all inputs) to this file.")(fn)
    fn = click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead of the summary.")(fn)
    fn = click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")(fn)
    return fn


def _engine(profile: str, overrides: tuple[str, ...], append: dict[str, list[str]] | None = None) -> Any:
    from meshforge.engine import Engine

    return Engine(profile, overrides=overrides, append=append, debug=_debug_enabled(click.get_current_context(silent=True)))


def _finish(result: Any, *, as_json: bool, quiet: bool, report_path: Path | None, wrote: bool) -> None:
    from meshforge.report import write_json

    data = result.to_dict()
    if report_path is not None:
        write_json(report_path, data)
    for asset in result.assets:
        if asset.exit_code == EXIT_UNUSABLE:
            for finding in asset.errors:
                click.echo(f"meshforge: {finding.message}", err=True)
    if as_json:
        click.echo(json.dumps(data, indent=2, allow_nan=False, default=str))
    elif not quiet:
        from meshforge.cli import render  # rich: only for the summary a person reads (-q and --json skip its import)

        render.summary(result, wrote=wrote)
    sys.exit(result.exit_code)


@main.command()
@_profile_options
@_output_options
@click.option("--out", "-o", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("meshforge-out"),
              show_default=True, help="Folder for exported files and per-asset reports (failures go to OUT/rejected/).")
@click.option("--thumbnails", is_flag=True, help="Also render PNG thumbnails (front, three-quarter, top) of each asset.")
@click.option("--html", is_flag=True, help="Also write an HTML page per asset (3D preview, findings) and OUT/index.html.")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@handle_errors
def run(profile: str, overrides: tuple[str, ...], files: tuple[Path, ...], out_dir: Path, as_json: bool, quiet: bool,
        report_path: Path | None, thumbnails: bool, html: bool) -> None:
    """Run the whole chain on FILES: validate, repair, validate again, export."""
    from meshforge.report import RunResult

    _refuse_shared_output_names(files, out_dir)
    exports = (["thumbnails"] if thumbnails or html else []) + (["debug_glb"] if html else [])
    with _engine(profile, overrides, {"export": exports} if exports else None) as engine:
        state = _job_store(engine, out_dir)
        result = RunResult(assets=tuple(engine.run(f, out_dir=out_dir, state=state) for f in files))
        html = html or engine.profile.run.html
    if html:
        from meshforge.visual.html import write_run

        _pages, gallery = write_run(result.assets, out_dir)
        if not (quiet or as_json):
            click.echo(f"   report pages: {gallery}")
    _finish(result, as_json=as_json, quiet=quiet, report_path=report_path, wrote=True)


def _refuse_shared_output_names(files: tuple[Path, ...], out_dir: Path) -> None:
    """Two inputs whose outputs would have the same names (a/part.stl, b/part.stl) overwrite each
    other's files and report; say so before anything runs rather than lose the first one."""
    from meshforge.engine import output_stem

    seen: dict[str, Path] = {}
    for path in files:
        stem = output_stem(path.name)
        if stem in seen:
            raise click.UsageError(f"{seen[stem]} and {path} would both write {out_dir / stem}.*: "
                                   "run them into different --out folders or rename one")
        seen[stem] = path


def _job_store(engine: Any, out_dir: Path) -> Any:
    """A durable job store beside the outputs when the chain calls a generation service, so that
    rerunning the same command polls the jobs already paid for instead of submitting them again."""
    from meshforge.types import Stage

    paid = [s for s in engine.profile.stage(Stage.GENERATE) if not s.plugin.startswith("builtin.")]
    if not paid:
        return None
    from meshforge.generation.store import SqliteJobStore

    return SqliteJobStore(out_dir / ".meshforge" / "jobs.sqlite")


@main.command()
@_profile_options
@_output_options
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@handle_errors
def validate(profile: str, overrides: tuple[str, ...], files: tuple[Path, ...], as_json: bool, quiet: bool,
             report_path: Path | None) -> None:
    """Check FILES against a profile without changing or writing anything (except --report)."""
    from meshforge.report import RunResult

    with _engine(profile, overrides) as engine:
        result = RunResult(assets=tuple(engine.validate(f) for f in files))
    _finish(result, as_json=as_json, quiet=quiet, report_path=report_path, wrote=False)


@main.group()
def profiles() -> None:
    """List and show profiles."""


@profiles.command("list")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def profiles_list(as_json: bool) -> None:
    """Every profile on the search path (MESHFORGE_PROFILE_PATH, then the packaged ones)."""
    from meshforge.cli import render
    from meshforge.profiles import available_profiles

    items = available_profiles()
    if as_json:
        click.echo(json.dumps(items, indent=2))
    else:
        render.profiles_table(items)


@profiles.command("show")
@click.argument("name")
@click.option("--set", "overrides", multiple=True, metavar="STEP.PARAM=VALUE")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def profiles_show(name: str, overrides: tuple[str, ...], as_json: bool) -> None:
    """The resolved chain of NAME: every step, its plugin and its parameters."""
    from meshforge.cli import render

    engine = _engine(name, overrides)
    data = engine.profile.to_dict()
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        render.profile(data)


@main.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable listing.")
@handle_errors
def plugins_cmd(as_json: bool) -> None:
    """Every plugin: version, origin, status, and the steps it offers (with availability)."""
    from meshforge.cli import render
    from meshforge.plugins import load_plugins

    registry = load_plugins()
    data = [r.to_dict() for r in registry.records]
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        render.plugins_table(data)
