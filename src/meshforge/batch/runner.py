"""The batch coordinator: catalog in, durable state in ``DIR/batch.sqlite``, results out.

    from meshforge.batch import Batch
    batch = Batch("catalog.csv", profile="ecommerce-glb", out_dir="out")
    for result in batch.results():          # or batch.run(on_result=callback)
        print(result.id, result.status, result.verdict)

Rerunning the same batch into the same folder resumes it: finished jobs are skipped, interrupted
ones run again (a generation already submitted is polled through the state store, not resubmitted).
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshforge.batch.catalog import Catalog, JobSpec, RowProblem, read_catalog, rows_to_catalog
from meshforge.batch.executors import DaskExecutor, InlineExecutor, ProcessExecutor, RunConfig, default_workers
from meshforge.batch.store import DONE, FAILED, BatchStore, JobRow
from meshforge.errors import MeshforgeError

SUMMARY_SCHEMA = "meshforge.batch/1"
EXECUTORS = ("process", "inline", "dask")


class BatchError(MeshforgeError):
    """A batch that cannot start: a folder holding another batch, an unknown executor."""


@dataclass(frozen=True, kw_only=True)
class JobResult:
    """One job's outcome, as the callback/iterator and the JSON-lines mode see it."""

    id: str
    row: int
    status: str  # "done" or "failed" ("done" means the chain ran; see verdict)
    verdict: str | None = None  # "pass", "fail", "unusable" (the engine's report status)
    error: str | None = None  # why a failed job failed (crash, time limit, bug)
    errors: tuple[str, ...] = ()  # error finding codes that remain
    messages: tuple[str, ...] = ()
    outputs: tuple[Mapping[str, Any], ...] = ()  # path, format, bytes, sha256, rejected
    report: str | None = None
    seconds: float | None = None
    cpu_seconds: float | None = None  # CPU (user + system) of the process that ran it, while it ran
    attempts: int = 0
    worker: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == DONE and self.verdict == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "row": self.row,
            "status": self.status,
            "verdict": self.verdict,
            "error": self.error,
            "errors": list(self.errors),
            "messages": list(self.messages),
            "outputs": [dict(o) for o in self.outputs],
            "report": self.report,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "attempts": self.attempts,
            "worker": self.worker,
        }


@dataclass(frozen=True, kw_only=True)
class BatchSummary:
    out_dir: Path
    counts: Mapping[str, int]  # pending/running/done/failed over the whole batch
    verdicts: Mapping[str, int]  # pass/fail/unusable among done jobs
    problems: tuple[RowProblem, ...]
    failures: tuple[Mapping[str, Any], ...]  # failed jobs and done jobs that did not pass, with reasons
    ran: int = 0  # jobs finished (done or failed) by this invocation
    seconds: float = 0.0
    peak_worker_rss_mb: float | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def jobs_per_minute(self) -> float:
        return 60.0 * self.ran / self.seconds if self.seconds > 0 else 0.0

    @property
    def exit_code(self) -> int:
        """0: every job done and passing, no bad rows; 1 otherwise."""
        clean = (
            not self.problems
            and self.counts.get(FAILED, 0) == 0
            and self.counts.get(DONE, 0) == self.total
            and set(self.verdicts) <= {"pass"}
        )
        return 0 if clean else 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SUMMARY_SCHEMA,
            "out_dir": str(self.out_dir),
            "total": self.total,
            "counts": dict(self.counts),
            "verdicts": dict(self.verdicts),
            "problems": [p.to_dict() for p in self.problems],
            "failures": [dict(f) for f in self.failures],
            "ran": self.ran,
            "seconds": round(self.seconds, 3),
            "jobs_per_minute": round(self.jobs_per_minute, 2),
            "peak_worker_rss_mb": self.peak_worker_rss_mb,
            "exit_code": self.exit_code,
        }


class Reporter:
    """Progress sink (the CLI's rich bar, JSON lines, or nothing)."""

    def start(self, *, total: int, done: int, failed: int, todo: int, problems: Sequence[RowProblem]) -> None: ...

    def job(self, result: JobResult) -> None: ...

    def event(self, kind: str, spec: JobSpec, detail: str) -> None: ...

    def finish(self, summary: BatchSummary) -> None: ...


def _normalize_profile(profile: Any) -> Any:
    if isinstance(profile, (str, os.PathLike)):
        text = os.fspath(profile)
        if text.endswith(".toml") or os.sep in text:
            return str(Path(text).resolve())
        return text
    if isinstance(profile, Mapping):
        return json.loads(json.dumps(dict(profile), default=str))
    raise BatchError("--profile", f"a batch needs a profile name, path or dict, not {type(profile).__name__}")


def _normalize_overrides(overrides: Iterable[str] | Mapping[str, Any]) -> Any:
    if isinstance(overrides, Mapping):
        return {str(k): v for k, v in overrides.items()}
    return list(overrides)


class Batch:
    """A catalog run with durable state in ``out_dir``; see the module docstring."""

    def __init__(
        self,
        catalog: str | os.PathLike[str] | Iterable[Mapping[str, Any]] | None,
        *,
        out_dir: str | os.PathLike[str],
        profile: Any = None,
        overrides: Iterable[str] | Mapping[str, Any] = (),
        executor: str = "process",
        workers: int | None = None,
        scheduler: Any = None,
        job_timeout: float | None = None,
        generate_concurrency: int = 8,
        entry_points: bool = True,
        plugins: Iterable[str] = (),
        check_files: bool = True,
    ) -> None:
        if executor not in EXECUTORS:
            raise BatchError("--executor", f"unknown executor {executor!r}; valid: {', '.join(EXECUTORS)}")
        self.out_dir = Path(out_dir).resolve()
        self.store = BatchStore(self.out_dir, create=True)
        stored_profile = self.store.meta("profile")
        if profile is None:
            if stored_profile is None:
                raise BatchError(str(self.out_dir), "no profile given and the folder holds no batch to resume")
            profile = stored_profile
            overrides = self.store.meta("overrides") or []
            entry_points = bool(self.store.meta("entry_points") if self.store.meta("entry_points") is not None else entry_points)
        self.profile = _normalize_profile(profile)
        self.overrides = _normalize_overrides(overrides)
        self.entry_points = entry_points
        self.plugins = tuple(plugins) or tuple(self.store.meta("plugins") or ())
        if stored_profile is not None and (stored_profile, self.store.meta("overrides")) != (self.profile, self.overrides):
            raise BatchError(
                str(self.out_dir),
                f"holds a batch run with profile {stored_profile!r} and overrides {self.store.meta('overrides')!r}; "
                "use another --out folder, or the same profile and --set values to resume it",
            )
        # Resolve the profile here, once: a typo fails before any worker starts.
        from meshforge.batch.worker import get_engine

        self.engine = get_engine(self.profile, self.overrides, entry_points, self.plugins)
        self.executor_name = executor
        self.workers = default_workers() if workers is None else workers
        self.scheduler = scheduler
        run = self.engine.profile.run
        if job_timeout is None and run.step_timeout_s:
            job_timeout = run.step_timeout_s * (len(self.engine.profile.chain) + 1)
        self.job_timeout = job_timeout or None
        self.generate_concurrency = max(1, generate_concurrency)
        self.catalog: Catalog | None = None
        if catalog is not None:
            if isinstance(catalog, (str, os.PathLike)):
                self.catalog = read_catalog(catalog, check_files=check_files)
            else:
                rows = [(n, row) for n, row in enumerate(catalog, start=1)]
                self.catalog = rows_to_catalog(rows, base=Path.cwd(), check_files=check_files)
            self.store.sync_catalog(self.catalog.jobs, self.catalog.problems)
        if stored_profile is None:
            self.store.set_meta(
                profile=self.profile,
                overrides=self.overrides,
                entry_points=entry_points,
                plugins=list(self.plugins),
                created=time.time(),
                catalog=str(Path(catalog).resolve()) if isinstance(catalog, (str, os.PathLike)) else None,
            )
        self.peak_rss_kb: dict[Any, int] = {}
        self.released: dict[str, list[str]] = {}  # by the last retry(resubmit=True): job id -> provider job keys

    # --- running ------------------------------------------------------------------------------

    def _executor(self) -> Any:
        config = RunConfig(
            profile=self.profile,
            overrides=self.overrides,
            entry_points=self.entry_points,
            plugins=self.plugins,
            out_root=str(self.out_dir),
            db_path=str(self.store.path),
            job_timeout=self.job_timeout,
            generate_concurrency=self.generate_concurrency,
        )
        if self.executor_name == "inline" or (self.executor_name == "process" and self.workers == 0):
            return InlineExecutor(config)
        if self.executor_name == "dask":
            return DaskExecutor(config, self.scheduler)
        return ProcessExecutor(config, self.workers)

    def results(self, *, reporter: Reporter | None = None) -> Iterator[JobResult]:
        """Run what is left to run; yield each job's result as it finishes (in completion order)."""
        reporter = reporter or Reporter()
        todo = self.store.runnable()
        counts = self.store.counts()
        reporter.start(total=sum(counts.values()), done=counts[DONE], failed=counts[FAILED], todo=len(todo),
                       problems=self.store.problems())
        self._started = time.perf_counter()
        self._ran = 0
        if not todo:
            return
        executor = self._executor()
        attempts: dict[str, int] = {}
        workers: dict[str, str] = {}
        for event in executor.run(todo):
            kind, spec = event[0], event[1]
            if kind == "started":
                attempts[spec.id] = self.store.started(spec.id, event[2])
                workers[spec.id] = event[2]
                reporter.event("started", spec, event[2])
            elif kind == "result":
                res = event[2]
                self.store.finished(spec.id, res)
                if res.get("maxrss_kb"):
                    key = res.get("worker")
                    self.peak_rss_kb[key] = max(res["maxrss_kb"], self.peak_rss_kb.get(key, 0))
                self._ran += 1
                result = JobResult(
                    id=spec.id, row=spec.row, status=DONE, verdict=res.get("verdict"), errors=tuple(res.get("errors", ())),
                    messages=tuple(res.get("messages", ())), outputs=tuple(res.get("outputs", ())), report=res.get("report"),
                    seconds=res.get("seconds"), cpu_seconds=res.get("cpu_seconds"), attempts=attempts.get(spec.id, 0),
                    worker=res.get("worker"),
                )
                reporter.job(result)
                yield result
            elif kind == "failed":
                self.store.failed(spec.id, event[2])
                self._ran += 1
                result = JobResult(id=spec.id, row=spec.row, status=FAILED, error=event[2],
                                   attempts=attempts.get(spec.id, 0), worker=workers.get(spec.id))
                reporter.job(result)
                yield result
            elif kind == "interrupted":
                self.store.interrupted(spec.id, event[2])
                reporter.event("interrupted", spec, event[2])

    def run(self, *, on_result: Callable[[JobResult], Any] | None = None, reporter: Reporter | None = None) -> BatchSummary:
        """Run to the end; ``on_result`` is called with each JobResult; writes the summary files."""
        for result in self.results(reporter=reporter):
            if on_result is not None:
                on_result(result)
        summary = self.summary(ran=self._ran, seconds=time.perf_counter() - self._started)
        write_summary(self.store, summary)
        if reporter is not None:
            reporter.finish(summary)
        return summary

    def retry(self, *, failed: bool = True, verdicts: Iterable[str] = (), ids: Iterable[str] = (),
              resubmit: bool = False) -> int:
        """Mark jobs to run again (then call :meth:`run`); returns how many were requeued.

        ``resubmit``: the generation jobs of ``ids`` whose earlier submission is unconfirmed (the run
        stopped before the provider's answer was recorded) are submitted again instead of reported
        again: ``force = true`` for those jobs only. A person checks the provider's dashboard first:
        if the provider did accept the earlier submission, this pays twice. Each named job must have
        such a submission (named in its report), else nothing is changed and :class:`BatchError` says so.
        """
        ids = list(ids)
        if resubmit:
            if not ids:
                raise BatchError("--resubmit", "may pay twice, so it names its jobs one by one: give --id for each")
            self.released = self._release_unconfirmed(ids)
        return self.store.requeue(failed=failed, verdicts=verdicts, ids=ids)

    def _release_unconfirmed(self, ids: Sequence[str]) -> dict[str, list[str]]:
        """Mark the unconfirmed provider jobs of ``ids`` ``stopped`` (a new submission may replace them);
        returns job id -> released job keys. Checks every job before changing any."""
        from meshforge.batch.store import StateStore

        state = StateStore(self.store.path)
        found: dict[str, list[str]] = {}
        for job_id in ids:
            job = self.store.job(job_id)
            if job is None:
                raise BatchError(str(self.out_dir), f"no job {job_id!r} in this batch")
            keys = [k for k in _generation_keys(self.out_dir, job) if _unconfirmed(state.load(k))]
            if not keys:
                raise BatchError(job_id, "has no unconfirmed generation to submit again (its report names none: "
                                         "run `meshforge batch status` for its failure)")
            found[job_id] = keys
        for keys in found.values():
            for key in keys:
                record = state.load(key)
                if record is not None and _unconfirmed(record):
                    state.save(key, {**record, "state": "stopped", "updated_at": time.time(),
                                     "error": "released for a new submission by `meshforge batch retry --resubmit`"})
        return found

    def summary(self, *, ran: int = 0, seconds: float = 0.0) -> BatchSummary:
        return summarize(self.store, ran=ran, seconds=seconds, peak_rss_kb=max(self.peak_rss_kb.values(), default=0))

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unconfirmed(record: dict[str, Any] | None) -> bool:
    """An unconfirmed submission nobody is still making: ``unconfirmed``, or ``prepared`` by an owner
    known to have ended (a live run's record is its own business)."""
    from meshforge.generation.owner import owner_gone

    if record is None:
        return False
    return record.get("state") == "unconfirmed" or (record.get("state") == "prepared" and owner_gone(record))


def _generation_keys(out_dir: Path, job: JobRow) -> list[str]:
    """The provider job keys a batch job's last report names (its attempts' provenance)."""
    if not job.report:
        return []
    path = Path(job.report) if Path(job.report).is_absolute() else out_dir / job.report
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    attempts = report.get("attempts") if isinstance(report, dict) else None
    return [str(a["provenance"]["job_key"]) for a in attempts or []
            if isinstance(a, dict) and isinstance(a.get("provenance"), dict) and a["provenance"].get("job_key")]


def summarize(store: BatchStore, *, ran: int = 0, seconds: float = 0.0, peak_rss_kb: int = 0) -> BatchSummary:
    failures: list[dict[str, Any]] = []
    peak = peak_rss_kb
    for job in store.jobs():
        if job.maxrss_kb:
            peak = max(peak, job.maxrss_kb)
        if job.status == FAILED:
            failures.append({"id": job.id, "row": job.row, "status": job.status, "reason": job.error, "attempts": job.attempts})
        elif job.status == DONE and job.verdict != "pass":
            failures.append({"id": job.id, "row": job.row, "status": job.status, "verdict": job.verdict,
                             "reason": ", ".join(job.errors) or job.verdict, "report": job.report})
    return BatchSummary(
        out_dir=store.dir,
        counts=store.counts(),
        verdicts=store.verdicts(),
        problems=tuple(store.problems()),
        failures=tuple(failures),
        ran=ran,
        seconds=seconds,
        peak_worker_rss_mb=round(peak / 1024, 1) if peak else None,
    )


CSV_COLUMNS = ("id", "row", "kind", "status", "verdict", "attempts", "seconds", "errors", "error", "outputs", "sha256", "report")


def write_summary(store: BatchStore, summary: BatchSummary) -> tuple[Path, Path]:
    """``DIR/summary.json`` (counts, problems, failures, every job) and ``DIR/summary.csv`` (one row per job)."""
    from meshforge.report import write_json

    jobs = store.jobs()
    data = summary.to_dict()
    data["jobs"] = [j.to_dict() for j in jobs]
    json_path = store.dir / "summary.json"
    write_json(json_path, data)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for j in jobs:
        writer.writerow(_csv_row(j))
    csv_path = store.dir / "summary.csv"
    tmp = csv_path.with_name(".summary.csv.tmp")
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    tmp.replace(csv_path)
    return json_path, csv_path


def _csv_row(j: JobRow) -> list[Any]:
    return [
        j.id, j.row, j.kind, j.status, j.verdict or "", j.attempts,
        f"{j.seconds:.3f}" if j.seconds is not None else "",
        " ".join(j.errors), j.error or "",
        " ".join(o["path"] for o in j.outputs), " ".join(o["sha256"] for o in j.outputs), j.report or "",
    ]


def status(out_dir: str | os.PathLike[str]) -> BatchSummary:
    """The state of the batch in ``out_dir`` (read from its database; rewrites the summary files)."""
    store = BatchStore(Path(out_dir).resolve(), create=False)
    try:
        summary = summarize(store)
        write_summary(store, summary)
        return summary
    finally:
        store.close()


__all__ = ["Batch", "BatchError", "BatchSummary", "JobResult", "JobSpec", "Reporter", "status", "write_summary"]
