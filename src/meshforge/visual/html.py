"""HTML views of reports: one self-contained page per asset, and a gallery page per batch.

The JSON report (``meshforge.report/1``) is the source of truth; these pages are rendered from it
with Jinja2 (autoescaped templates in ``templates/``). An asset page embeds everything it shows —
thumbnails, the exported GLB, the debug GLB and the vendored model-viewer script — as ``data:``
URLs, so it opens offline from ``file://`` and survives being e-mailed. The gallery links to the
asset pages and thumbnails beside it (relative links), so it stays small for big batches.
"""

from __future__ import annotations

import base64
import functools
import json
import math
import os
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

THUMB_VIEWS = ("threequarter", "front", "top")
GLB_MIME = "model/gltf-binary"


@functools.cache
def _env() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("meshforge.visual", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = format_number
    env.filters["value"] = format_value
    env.filters["tojson_compact"] = lambda v: json.dumps(v, separators=(",", ":"), default=str)
    return env


@functools.cache
def model_viewer_data_url() -> str:
    """The vendored model-viewer (UMD build) as a ``data:`` script URL."""
    data = resources.files("meshforge.visual").joinpath("static/model-viewer-umd.min.js").read_bytes()
    return "data:text/javascript;base64," + base64.b64encode(data).decode("ascii")


def format_number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        magnitude = abs(value)
        if value != 0 and (magnitude >= 1e12 or magnitude < 1e-3):
            return f"{value:.{digits - 1}e}"
        if magnitude >= 10 ** digits:
            return f"{value:,.0f}"  # 123,457 rather than 1.235e+05
        return f"{value:,.{digits}g}" if magnitude >= 1 else f"{value:.{digits}g}"
    return str(value)


def format_value(value: Any) -> str:
    """Measured / threshold values: numbers, lists of numbers, strings."""
    if isinstance(value, (list, tuple)):
        return " × ".join(format_number(v) for v in value)
    return format_number(value)


def page_name(report: Mapping[str, Any]) -> str:
    """``chair`` for a report about chair.glb (the engine's out_name rule)."""
    inp = report.get("input") or {}
    raw = str(inp.get("name") or inp.get("id") or "asset")
    stem = Path(raw).stem if raw else "asset"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem).strip(".")
    return safe or "asset"


def _locate(path: str, roots: Iterable[Path]) -> Path | None:
    """Find an output file: by name beside the report first, else as recorded. Beside the report
    first: a copied run folder's pages otherwise linked the original folder's files (the recorded
    path still exists there), and broke once it was deleted."""
    p = Path(path)
    for root in roots:
        for candidate in (root / p.name, root / "rejected" / p.name):
            if candidate.is_file():
                return candidate
    return p if p.is_file() else None


def _data_url(path: Path, mime: str) -> str:
    return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _extent(metrics: Mapping[str, Any] | None) -> list[float] | None:
    bounds = (metrics or {}).get("bounds")
    if not bounds:
        return None
    try:
        return [float(hi) - float(lo) for lo, hi in zip(bounds[0], bounds[1], strict=True)]
    except (TypeError, ValueError):
        return None


def _repairs(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for step in report.get("steps", []):
        if step.get("stage") != "repair" or step.get("outcome") == "skipped":
            continue
        before, after = step.get("before"), step.get("after")
        figures = []
        for key, label in (("triangles", "triangles"), ("vertices", "vertices"), ("volume", "volume"),
                           ("watertight", "watertight")):
            b = (before or {}).get(key)
            a = (after or {}).get(key) if after else b
            figures.append({"label": label, "before": b, "after": a, "changed": format_value(a) != format_value(b)})
        eb, ea = _extent(before), _extent(after) if after else _extent(before)
        figures.append({"label": "size", "before": eb, "after": ea, "changed": format_value(ea) != format_value(eb)})
        rows.append({"id": step.get("id"), "uses": step.get("uses"), "outcome": step.get("outcome"),
                     "note": step.get("note", ""), "changed": after is not None, "figures": figures,
                     "seconds": step.get("seconds"), "targets": (step.get("details") or {}).get("targets", [])})
    return rows


def _outputs(report: Mapping[str, Any], roots: list[Path], page_dir: Path) -> dict[str, Any]:
    found: dict[str, Any] = {"files": [], "thumbs": {}, "glb": None, "debug_glb": None, "debug": None}
    for out in report.get("outputs", []):
        path = _locate(str(out.get("path", "")), roots)
        name = Path(str(out.get("path", ""))).name
        link = os.path.relpath(path, page_dir) if path else None
        found["files"].append({"name": name, "format": out.get("format"), "bytes": out.get("bytes"), "link": link,
                               "rejected": out.get("rejected", False)})
        if path is None:
            continue
        for view in THUMB_VIEWS:
            if name.endswith(f".{view}.png"):
                found["thumbs"][view] = path
        if name.endswith(".debug.glb"):
            found["debug_glb"] = path
        elif name.endswith(".debug.json"):
            try:
                found["debug"] = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                found["debug"] = None
        elif name.endswith(".glb") and found["glb"] is None:
            found["glb"] = path
    return found


def asset_context(report: Mapping[str, Any], page_dir: Path, *, roots: Iterable[Path] = (),
                  inline_limit_bytes: int = 48 * 1024 * 1024) -> dict[str, Any]:
    """Everything the asset template shows, computed from the report dict (no geometry is loaded)."""
    roots = [page_dir, *roots]
    outs = _outputs(report, roots, page_dir)

    linked: list[str] = []

    def embed(path: Path | None, mime: str) -> str | None:
        if path is None:
            return None
        if path.stat().st_size <= inline_limit_bytes:
            return _data_url(path, mime)
        # Too big to inline: linked (the file must stay beside the page). Browsers fetch it for a page
        # served over http(s); from file:// they refuse, and the page says so.
        linked.append(path.name)
        return os.path.relpath(path, page_dir)

    findings = list(report.get("findings", []))
    order = {"error": 0, "warning": 1, "info": 2}
    findings.sort(key=lambda f: (order.get(f.get("severity"), 3), f.get("code", "")))
    metrics = report.get("metrics") or {}
    return {
        "name": page_name(report),
        "report": report,
        "input": report.get("input") or {},
        "status": report.get("status", "unknown"),
        "profile": (report.get("profile") or {}).get("name", ""),
        "summary": report.get("summary") or {},
        "metrics": metrics,
        "extent": _extent(metrics),
        "findings": findings,
        "initial_findings": list(report.get("initial_findings", [])),
        "repairs": _repairs(report),
        "steps": list(report.get("steps", [])),
        "files": outs["files"],
        "thumbs": [{"view": v, "src": embed(outs["thumbs"][v], "image/png")} for v in THUMB_VIEWS if v in outs["thumbs"]],
        "glb_src": (glb_src := embed(outs["glb"], GLB_MIME)),
        "debug_src": (debug_src := embed(outs["debug_glb"], GLB_MIME)),
        "first_src": "glb" if glb_src else "debug",  # in the viewer's src attribute; the script takes it from there
        "linked_models": linked,
        "inline_limit_mb": inline_limit_bytes / 2**20,
        "debug": outs["debug"],
        "model_viewer_src": model_viewer_data_url(),
        "report_json": json.dumps(report, default=str),
    }


def write_asset_page(report: Mapping[str, Any], out_dir: Path, *, name: str | None = None,
                     roots: Iterable[Path] = (), inline_limit_bytes: int = 48 * 1024 * 1024) -> Path:
    """Render ``report`` (an ``AssetReport.to_dict()``) to ``out_dir/<name>.report.html``; returns the path.

    Output files named in the report are found where recorded, else by name in ``out_dir``, its
    ``rejected/`` folder and ``roots``. A GLB over ``inline_limit_bytes`` is linked, not embedded.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{name or page_name(report)}.report.html"
    html = _env().get_template("asset.html.j2").render(**asset_context(report, out_dir, roots=roots,
                                                                       inline_limit_bytes=inline_limit_bytes))
    _write_atomic(target, html)
    return target


def gallery_cards(reports: Iterable[Mapping[str, Any]], out_dir: Path, pages: Mapping[int, Path] | None = None,
                  roots: Mapping[int, Path] | None = None) -> list[dict[str, Any]]:
    cards = []
    for i, report in enumerate(reports):
        name = page_name(report)
        page = (pages or {}).get(i) or out_dir / f"{name}.report.html"
        extra = (roots or {}).get(i)
        outs = _outputs(report, [out_dir, *([extra] if extra else [])], out_dir)
        thumb = next((outs["thumbs"][v] for v in THUMB_VIEWS if v in outs["thumbs"]), None)
        codes = sorted({f.get("code", "") for f in report.get("findings", [])})
        summary = report.get("summary") or {}
        metrics = report.get("metrics") or {}
        cards.append({
            "name": name,
            "title": Path(str((report.get("input") or {}).get("name") or name)).name,
            "status": report.get("status", "unknown"),
            "profile": (report.get("profile") or {}).get("name", ""),
            "link": os.path.relpath(page, out_dir) if page.is_file() else None,
            "thumb": os.path.relpath(thumb, out_dir) if thumb else None,
            "codes": codes,
            "errors": summary.get("error", 0),
            "warnings": summary.get("warning", 0),
            "triangles": metrics.get("triangles"),
            "extent": _extent(metrics),
            "units": metrics.get("units"),
            "seconds": report.get("seconds"),
        })
    return cards


def write_gallery(reports: list[Mapping[str, Any]], out_dir: Path, *, pages: Mapping[int, Path] | None = None,
                  roots: Mapping[int, Path] | None = None, title: str = "meshforge gallery") -> Path:
    """Render one card per report into ``out_dir/index.html`` (filters by status and finding code).

    ``pages[i]`` is report i's page (default ``out_dir/<name>.report.html``); ``roots[i]`` a folder
    where its output files may be found by name (default: ``out_dir`` and ``out_dir/rejected``).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cards = gallery_cards(reports, out_dir, pages, roots)
    statuses = sorted({c["status"] for c in cards})
    codes = sorted({code for c in cards for code in c["codes"]})
    counts = {s: sum(1 for c in cards if c["status"] == s) for s in statuses}
    html = _env().get_template("gallery.html.j2").render(title=title, cards=cards, statuses=statuses, codes=codes,
                                                         counts=counts)
    target = out_dir / "index.html"
    _write_atomic(target, html)
    return target


def write_run(reports: Iterable[Any], out_dir: Path) -> tuple[list[Path], Path]:
    """Pages for one ``meshforge run``'s reports (AssetReport or dicts) beside their JSON, plus the gallery.

    The engine writes a passing asset's JSON to ``out_dir`` and the others' to ``out_dir/rejected``;
    the pages go to the same folders, the gallery to ``out_dir/index.html``.
    """
    out_dir = Path(out_dir)
    dicts = [r.to_dict() if hasattr(r, "to_dict") else dict(r) for r in reports]
    pages: dict[int, Path] = {}
    for i, report in enumerate(dicts):
        folder = out_dir if report.get("status") == "pass" else out_dir / "rejected"
        pages[i] = write_asset_page(report, folder, roots=[out_dir])
    return list(pages.values()), write_gallery(dicts, out_dir, pages=pages)


def render_dir(folder: Path, *, out_dir: Path | None = None) -> tuple[list[Path], Path]:
    """Pages for every ``*.report.json`` under ``folder`` (beside each JSON, or in ``out_dir``) + a gallery."""
    folder = Path(folder)
    gallery_dir = Path(out_dir) if out_dir else folder
    paths = sorted(p for p in folder.rglob("*.report.json") if not p.name.startswith("."))
    reports: list[Mapping[str, Any]] = []
    pages: dict[int, Path] = {}
    roots: dict[int, Path] = {}
    written: list[Path] = []
    for path in paths:
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(report, dict) or not str(report.get("schema", "")).startswith("meshforge.report/"):
            continue
        page_dir = (gallery_dir / path.parent.relative_to(folder)) if out_dir else path.parent
        name = path.name.removesuffix(".report.json")
        page = write_asset_page(report, page_dir, name=name, roots=[path.parent])
        pages[len(reports)] = page
        roots[len(reports)] = path.parent
        reports.append(report)
        written.append(page)
    return written, write_gallery(reports, gallery_dir, pages=pages, roots=roots)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
