"""Catalogs: CSV or JSON Lines, one job per row.

Every row has an ``id`` and exactly one of ``model`` (a path), ``image`` (a path; several separated by
``;`` in CSV or a list in JSON) or ``prompt``. Every other column is free metadata handed to the
steps (title, category, height_mm...). Paths are relative to the catalog's folder.

Reading never stops at a bad row: each problem becomes a :class:`RowProblem` with its row number
(the line number in the file, header = line 1 for CSV) and the good rows run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshforge.errors import InputError

# The id names the job's output folder, so it must be a safe, portable file name.
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
INPUT_COLUMNS = ("model", "image", "prompt")
RESERVED = ("id", *INPUT_COLUMNS)
# Metadata columns with these suffixes are measurements: they must be finite positive numbers.
NUMERIC_SUFFIXES = ("_mm", "_cm", "_m", "_in", "_px", "_kg", "_g", "_s")
MAX_PROMPT_CHARS = 4000


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """One catalog row that can run. Plain data: it crosses process and machine boundaries."""

    id: str
    row: int
    kind: str  # "model", "image" or "prompt"
    model: str | None = None  # absolute path
    images: tuple[str, ...] = ()  # absolute paths
    prompt: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    @property
    def generates(self) -> bool:
        """True when the job waits on a generation provider (network-bound), not only on CPU."""
        return self.kind != "model"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "row": self.row,
            "kind": self.kind,
            "model": self.model,
            "images": list(self.images),
            "prompt": self.prompt,
            "metadata": dict(self.metadata),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        return cls(
            id=data["id"],
            row=int(data["row"]),
            kind=data["kind"],
            model=data.get("model"),
            images=tuple(data.get("images") or ()),
            prompt=data.get("prompt"),
            metadata=dict(data.get("metadata") or {}),
        )

    def fingerprint(self) -> str:
        """Hash of what the job asks for (not its row number): a changed row is a new job."""
        body = {k: v for k, v in self.to_dict().items() if k != "row"}
        return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def inputs(self) -> Any:
        """The engine's Inputs for this job."""
        from meshforge.asset import Inputs

        return Inputs(
            id=self.id,
            model=Path(self.model) if self.model else None,
            filename=Path(self.model).name if self.model else None,
            images=tuple(Path(p) for p in self.images),
            prompt=self.prompt,
            metadata=dict(self.metadata),
        )


@dataclass(frozen=True, kw_only=True)
class RowProblem:
    row: int
    id: str | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "id": self.id, "reason": self.reason}

    def __str__(self) -> str:
        who = f" (id {self.id!r})" if self.id else ""
        return f"row {self.row}{who}: {self.reason}"


@dataclass(frozen=True, kw_only=True)
class Catalog:
    path: Path | None
    jobs: tuple[JobSpec, ...]
    problems: tuple[RowProblem, ...]


def read_catalog(path: str | Path, *, check_files: bool = True) -> Catalog:
    """Read a ``.csv`` or ``.jsonl``/``.ndjson`` catalog; raises InputError only if the file itself is unusable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(path, "no such catalog file", code="input.unreadable") from None
    except UnicodeDecodeError:
        raise InputError(path, "catalog is not UTF-8 text", code="input.corrupt") from None
    except OSError as exc:
        raise InputError(path, f"cannot be read ({exc.strerror or exc})", code="input.unreadable") from None
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        raw = _jsonl_rows(text)
    elif suffix in (".csv", ".tsv", ".txt"):
        raw = _csv_rows(text, path, delimiter="\t" if suffix == ".tsv" else ",")
    else:
        raise InputError(path, "catalog must be .csv, .tsv or .jsonl", code="input.unknown_format")
    return rows_to_catalog(raw, base=path.parent.resolve(), path=path, check_files=check_files)


def rows_to_catalog(
    rows: Iterable[tuple[int, Mapping[str, Any] | str]],
    *,
    base: Path,
    path: Path | None = None,
    check_files: bool = True,
) -> Catalog:
    """Validate ``(row number, row)`` pairs; a ``str`` row is an unparseable line and its reason."""
    jobs: list[JobSpec] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for row_no, row in rows:
        if isinstance(row, str):
            problems.append(RowProblem(row=row_no, id=None, reason=row))
            continue
        try:
            job = _job(row_no, row, base, check_files)
        except _BadRow as exc:
            problems.append(RowProblem(row=row_no, id=exc.id, reason=exc.reason))
            continue
        if job.id in seen:
            problems.append(RowProblem(row=row_no, id=job.id, reason=f"duplicate id (first used on row {seen[job.id]})"))
            continue
        seen[job.id] = row_no
        jobs.append(job)
    return Catalog(path=path, jobs=tuple(jobs), problems=tuple(problems))


class _BadRow(Exception):
    def __init__(self, id: str | None, reason: str) -> None:  # noqa: A002
        super().__init__(reason)
        self.id = id
        self.reason = reason


def _jsonl_rows(text: str) -> list[tuple[int, Mapping[str, Any] | str]]:
    out: list[tuple[int, Mapping[str, Any] | str]] = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            out.append((n, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        out.append((n, value if isinstance(value, dict) else f"expected a JSON object, got {type(value).__name__}"))
    return out


def _csv_rows(text: str, path: Path, delimiter: str) -> list[tuple[int, Mapping[str, Any] | str]]:
    reader = csv.reader(text.splitlines(), delimiter=delimiter)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        return []
    if "id" not in header:
        raise InputError(path, f"catalog header has no 'id' column (columns: {', '.join(header)})", code="input.corrupt")
    if not any(c in header for c in INPUT_COLUMNS):
        raise InputError(path, "catalog header needs a 'model', 'image' or 'prompt' column", code="input.corrupt")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputError(path, f"catalog header repeats column(s) {', '.join(dupes)}", code="input.corrupt")
    out: list[tuple[int, Mapping[str, Any] | str]] = []
    for values in reader:
        row_no = reader.line_num
        if not values or not any(v.strip() for v in values):
            continue
        if len(values) != len(header):
            out.append((row_no, f"has {len(values)} fields, the header has {len(header)}"))
            continue
        row: dict[str, Any] = {}
        for key, value in zip(header, values):
            value = value.strip()
            if value == "":
                continue
            if key == "image":
                row[key] = [v.strip() for v in value.split(";") if v.strip()]
            elif key in RESERVED:
                row[key] = value
            else:
                row[key] = _scalar(value)
        out.append((row_no, row))
    return out


def _scalar(text: str) -> Any:
    """CSV cells are text; numbers in metadata become numbers (``80`` -> 80, ``0.5`` -> 0.5)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def _job(row_no: int, row: Mapping[str, Any], base: Path, check_files: bool) -> JobSpec:
    raw_id = row.get("id")
    job_id = str(raw_id).strip() if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool) else None
    if not job_id:
        raise _BadRow(None, "missing id")
    if not _ID.match(job_id):
        raise _BadRow(job_id, "id must be 1-128 letters, digits, '.', '_' or '-' and start with a letter or digit")
    given = [c for c in INPUT_COLUMNS if row.get(c) not in (None, "", [])]
    if not given:
        raise _BadRow(job_id, "needs one of model, image or prompt")
    if len(given) > 1:
        raise _BadRow(job_id, f"gives {' and '.join(given)}; give exactly one of model, image or prompt")
    kind = given[0]
    model: str | None = None
    images: tuple[str, ...] = ()
    prompt: str | None = None
    if kind == "model":
        if not isinstance(row["model"], str):
            raise _BadRow(job_id, "model must be a path")
        model = _existing(job_id, "model", row["model"], base, check_files)
    elif kind == "image":
        value = row["image"]
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) and v.strip() for v in items):
            raise _BadRow(job_id, "image must be a path or a list of paths")
        images = tuple(_existing(job_id, "image", v, base, check_files) for v in items)
    else:
        if not isinstance(row["prompt"], str) or not row["prompt"].strip():
            raise _BadRow(job_id, "prompt must be non-empty text")
        prompt = row["prompt"].strip()
        if len(prompt) > MAX_PROMPT_CHARS:
            raise _BadRow(job_id, f"prompt is {len(prompt)} characters, over {MAX_PROMPT_CHARS}")
    metadata = {k: v for k, v in row.items() if k not in RESERVED}
    for key, value in metadata.items():
        if key.endswith(NUMERIC_SUFFIXES):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise _BadRow(job_id, f"{key} must be a positive number, got {value!r}")
        elif not isinstance(value, (str, int, float, bool, list, dict)) and value is not None:
            raise _BadRow(job_id, f"{key} has an unsupported value {value!r}")
    return JobSpec(id=job_id, row=row_no, kind=kind, model=model, images=images, prompt=prompt, metadata=metadata)


def _existing(job_id: str, column: str, value: str, base: Path, check: bool) -> str:
    path = Path(value.strip()).expanduser()
    if not path.is_absolute():
        path = base / path
    if check:
        if not path.exists():
            raise _BadRow(job_id, f"{column} file not found: {value}")
        if not path.is_file():
            raise _BadRow(job_id, f"{column} is not a file: {value}")
    return str(path)
