"""Terminal views (rich) of reports, profiles and plugins. Rendered from the report data only."""

from __future__ import annotations

import os
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

_SEVERITY_STYLE = {"error": "bold red", "warning": "yellow", "info": "cyan"}
_STATUS_STYLE = {"pass": "bold green", "fail": "bold red", "unusable": "bold magenta"}


def _console() -> Console:
    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(highlight=False, soft_wrap=False, width=160)  # logs and CI: don't fold at 80
    return console


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def summary(result: Any, *, wrote: bool) -> None:
    console = _console()
    for asset in result.assets:
        data = asset.to_dict()
        status = data["status"]
        name = data["input"].get("name", data["input"]["id"])
        counts = data["summary"]
        console.print(
            Text.assemble(
                (f"{status.upper():>8} ", _STATUS_STYLE.get(status, "")),
                (name, "bold"),
                f"  [{data['profile']['name']}]  {counts['error']} errors, {counts['warning']} warnings, "
                f"{counts['info']} info  ({data['seconds']:.2f} s)",
            )
        )
        if data["findings"]:
            table = Table(show_edge=False, pad_edge=False, box=None, padding=(0, 1))
            for col in ("severity", "code", "measured", "threshold", "count", "message"):
                table.add_column(col, overflow="fold")
            order = {"error": 0, "warning": 1, "info": 2}
            for f in sorted(data["findings"], key=lambda f: order[f["severity"]]):
                sev = f["severity"]
                # Text, not str: a message quoting "[...]" (a list, a file name) is not rich markup
                table.add_row(Text(sev, _SEVERITY_STYLE[sev]), Text(f["code"]), Text(_fmt(f["measured"])),
                              Text(_fmt(f["threshold"])), Text(_fmt(f["count"])), Text(f["message"]))
            console.print(table)
        repaired = [s for s in data["steps"] if s["stage"] == "repair" and s["outcome"] == "ok" and s["after"]]
        for step in repaired:
            before, after = step["before"] or {}, step["after"] or {}
            console.print(
                f"   repaired [bold]{escape(step['id'])}[/] ({escape(step['plugin'])}): {before.get('triangles')} → "
                f"{after.get('triangles')} triangles, watertight {before.get('watertight')} → {after.get('watertight')}"
                + (f" — {escape(step['note'])}" if step["note"] else "")
            )
        if wrote:
            for out in data["outputs"]:
                tag = "rejected" if out["rejected"] else "wrote"
                console.print(f"   {tag} {escape(str(out['path']))} ({out['bytes']} bytes)")


def profiles_table(items: list[dict[str, Any]]) -> None:
    table = Table(title="profiles")
    for col in ("name", "aliases", "summary", "source"):
        table.add_column(col)
    for item in items:
        table.add_row(item["name"], ", ".join(item["aliases"]), item["summary"], item["source"])
    _console().print(table)


def profile(data: dict[str, Any]) -> None:
    console = _console()
    console.print(f"[bold]{escape(data['name'])}[/] — {escape(data['summary'])}")
    console.print(f"sources: {' → '.join(data['sources'])}", markup=False)
    for stage, steps in data["chain"].items():
        if not steps:
            continue
        console.print(f"[bold]{stage}[/]")
        for step in steps:
            extra = " (always)" if step.get("always") else ""
            console.print(f"  {step['id']} = {step['plugin']}:{step['uses']}{extra}", markup=False)
            for key, value in step["params"].items():
                console.print(f"      {key} = {_fmt(value)}", markup=False)
            for fallback in step.get("fallback_from", []):
                console.print(f"      [yellow]fell back from {escape(str(fallback))}[/]")
    console.print(f"[bold]run[/] {escape(str(data['run']))}")
    console.print(f"[bold]limits[/] {escape(str(data['limits']))}")


def plugins_table(records: list[dict[str, Any]]) -> None:
    table = Table(title="plugins")
    for col in ("plugin", "version", "from", "status", "steps"):
        table.add_column(col, overflow="fold")
    for rec in records:
        origin = "built in" if rec["origin"] == "builtin" else (rec["distribution"] or rec["origin"])
        lines = []
        for stage, steps in rec["steps"].items():
            names = []
            for s in steps:
                names.append(s["name"] if s["available"] else f"[red]{s['name']} (unavailable: {s['reason']})[/]")
            lines.append(f"{stage}: {', '.join(names)}")
        status = rec["status"] + (f": {rec['reason']}" if rec["reason"] else "")
        table.add_row(rec["name"], rec["version"] or "", origin, status, "\n".join(lines))
    _console().print(table)
