"""Durable batch state: one SQLite file (``DIR/batch.sqlite``), WAL mode, one writer per table.

The coordinating process is the only writer of ``jobs``/``events``; worker processes write only
``state`` (provider job ids, through :class:`StateStore`), so a kill -9 anywhere leaves a database
that SQLite's journal brings back to the last committed transaction. A job becomes ``done`` in the
same transaction that records its outputs, after the engine has published them (rename), so a job
is either done with all its outputs on disk or it runs again.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshforge.batch.catalog import JobSpec, RowProblem

DB_NAME = "batch.sqlite"
SCHEMA_VERSION = "1"

PENDING, RUNNING, DONE, FAILED = "pending", "running", "done", "failed"
STATUSES = (PENDING, RUNNING, DONE, FAILED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    row INTEGER NOT NULL,
    kind TEXT NOT NULL,
    spec TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    verdict TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    errors TEXT,
    queued_at REAL,
    started_at REAL,
    finished_at REAL,
    seconds REAL,
    worker TEXT,
    outputs TEXT,
    report TEXT,
    maxrss_kb INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status);
CREATE TABLE IF NOT EXISTS problems (row INTEGER NOT NULL, id TEXT, reason TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (ts REAL NOT NULL, id TEXT NOT NULL, event TEXT NOT NULL, detail TEXT);
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, record TEXT NOT NULL, updated REAL NOT NULL);
"""


def connect(path: Path, *, timeout: float = 60.0) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # a committed 'done' survives power loss, not only kill -9
    conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    return conn


@dataclass(frozen=True, kw_only=True)
class JobRow:
    """A job as the store knows it."""

    id: str
    row: int
    kind: str
    spec: JobSpec
    status: str
    verdict: str | None
    attempts: int
    error: str | None
    errors: list[str]
    started_at: float | None
    finished_at: float | None
    seconds: float | None
    worker: str | None
    outputs: list[dict[str, Any]]
    report: str | None
    maxrss_kb: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "row": self.row,
            "kind": self.kind,
            "status": self.status,
            "verdict": self.verdict,
            "attempts": self.attempts,
            "error": self.error,
            "errors": self.errors,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "seconds": self.seconds,
            "worker": self.worker,
            "outputs": self.outputs,
            "report": self.report,
            "maxrss_kb": self.maxrss_kb,
        }


class BatchStore:
    """The coordinator's view of ``DIR/batch.sqlite``."""

    def __init__(self, out_dir: Path, *, create: bool = True) -> None:
        self.dir = Path(out_dir)
        self.path = self.dir / DB_NAME
        if not create and not self.path.is_file():
            from meshforge.errors import InputError

            raise InputError(self.dir, f"is not a batch folder (no {DB_NAME})", code="input.unreadable")
        self.dir.mkdir(parents=True, exist_ok=True)
        self._conn = connect(self.path)
        self._lock = threading.RLock()
        self._conn.executescript(_SCHEMA)
        if self.meta("schema") is None:
            self.set_meta(schema=SCHEMA_VERSION)

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # --- meta ---------------------------------------------------------------------------------

    def meta(self, key: str) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row["value"])

    def set_meta(self, **values: Any) -> None:
        with self._tx() as c:
            c.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v, default=str)) for k, v in values.items()],
            )

    # --- catalog ------------------------------------------------------------------------------

    def sync_catalog(self, jobs: Iterable[JobSpec], problems: Iterable[RowProblem]) -> dict[str, int]:
        """Add new jobs; a finished job whose row changed runs again; the rest keep their state."""
        added = changed = kept = 0
        now = time.time()
        with self._tx() as c:
            existing = {r["id"]: r["fingerprint"] for r in c.execute("SELECT id, fingerprint FROM jobs")}
            for job in jobs:
                fp = job.fingerprint()
                spec = json.dumps(job.to_dict(), default=str)
                if job.id not in existing:
                    c.execute(
                        "INSERT INTO jobs (id, row, kind, spec, fingerprint, status, queued_at) VALUES (?, ?, ?, ?, ?, 'pending', ?)",
                        (job.id, job.row, job.kind, spec, fp, now),
                    )
                    added += 1
                elif existing[job.id] != fp:
                    c.execute(
                        "UPDATE jobs SET row = ?, kind = ?, spec = ?, fingerprint = ?, status = 'pending', verdict = NULL,"
                        " error = NULL, errors = NULL, outputs = NULL, report = NULL, attempts = 0, queued_at = ? WHERE id = ?",
                        (job.row, job.kind, spec, fp, now, job.id),
                    )
                    c.execute("INSERT INTO events VALUES (?, ?, 'changed', ?)", (now, job.id, "catalog row changed"))
                    changed += 1
                else:
                    c.execute("UPDATE jobs SET row = ? WHERE id = ?", (job.row, job.id))
                    kept += 1
            c.execute("DELETE FROM problems")
            c.executemany("INSERT INTO problems VALUES (?, ?, ?)", [(p.row, p.id, p.reason) for p in problems])
        return {"added": added, "changed": changed, "kept": kept}

    def problems(self) -> list[RowProblem]:
        return [RowProblem(row=r["row"], id=r["id"], reason=r["reason"]) for r in self._conn.execute("SELECT * FROM problems ORDER BY row")]

    # --- job lifecycle ------------------------------------------------------------------------

    def runnable(self, *, include_failed: bool = False) -> list[JobSpec]:
        """Jobs to run now, in catalog order: pending, interrupted (running when the last run died)."""
        statuses = (PENDING, RUNNING, FAILED) if include_failed else (PENDING, RUNNING)
        marks = ",".join("?" * len(statuses))
        rows = self._conn.execute(f"SELECT spec FROM jobs WHERE status IN ({marks}) ORDER BY row", statuses)
        return [JobSpec.from_dict(json.loads(r["spec"])) for r in rows]

    def requeue(self, *, failed: bool = False, verdicts: Iterable[str] = (), ids: Iterable[str] = ()) -> int:
        """Mark jobs pending again (``batch retry``); returns how many."""
        clauses, args = [], []
        if failed:
            clauses.append("status = 'failed'")
        verdicts = list(verdicts)
        if verdicts:
            clauses.append(f"(status = 'done' AND verdict IN ({','.join('?' * len(verdicts))}))")
            args.extend(verdicts)
        ids = list(ids)
        if ids:
            clauses.append(f"id IN ({','.join('?' * len(ids))})")
            args.extend(ids)
        if not clauses:
            return 0
        now = time.time()
        with self._tx() as c:
            cur = c.execute(f"UPDATE jobs SET status = 'pending', queued_at = ? WHERE {' OR '.join(clauses)}", [now, *args])
            c.execute("INSERT INTO events SELECT ?, id, 'retry', NULL FROM jobs WHERE status = 'pending' AND queued_at = ?", (now, now))
            return cur.rowcount

    def started(self, job_id: str, worker: str) -> int:
        now = time.time()
        with self._tx() as c:
            c.execute(
                "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?, worker = ?, error = NULL WHERE id = ?",
                (now, worker, job_id),
            )
            c.execute("INSERT INTO events VALUES (?, ?, 'started', ?)", (now, job_id, worker))
            row = c.execute("SELECT attempts FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return int(row["attempts"]) if row else 0

    def finished(self, job_id: str, result: Mapping[str, Any]) -> None:
        now = time.time()
        with self._tx() as c:
            c.execute(
                "UPDATE jobs SET status = 'done', verdict = ?, error = NULL, errors = ?, finished_at = ?, seconds = ?,"
                " outputs = ?, report = ?, maxrss_kb = ? WHERE id = ?",
                (
                    result.get("verdict"),
                    json.dumps(result.get("errors", [])),
                    now,
                    result.get("seconds"),
                    json.dumps(result.get("outputs", [])),
                    result.get("report"),
                    result.get("maxrss_kb"),
                    job_id,
                ),
            )
            c.execute("INSERT INTO events VALUES (?, ?, 'done', ?)", (now, job_id, result.get("verdict")))

    def failed(self, job_id: str, reason: str, *, seconds: float | None = None) -> None:
        now = time.time()
        with self._tx() as c:
            c.execute(
                "UPDATE jobs SET status = 'failed', error = ?, finished_at = ?, seconds = ? WHERE id = ?",
                (reason, now, seconds, job_id),
            )
            c.execute("INSERT INTO events VALUES (?, ?, 'failed', ?)", (now, job_id, reason))

    def interrupted(self, job_id: str, reason: str) -> None:
        """A job that did not fail by itself (its worker was killed for another job): run it again."""
        now = time.time()
        with self._tx() as c:
            c.execute("UPDATE jobs SET status = 'pending' WHERE id = ?", (job_id,))
            c.execute("INSERT INTO events VALUES (?, ?, 'interrupted', ?)", (now, job_id, reason))

    # --- reading ------------------------------------------------------------------------------

    def jobs(self, *, status: str | None = None) -> list[JobRow]:
        if status is None:
            rows = self._conn.execute("SELECT * FROM jobs ORDER BY row")
        else:
            rows = self._conn.execute("SELECT * FROM jobs WHERE status = ? ORDER BY row", (status,))
        return [_job_row(r) for r in rows]

    def job(self, job_id: str) -> JobRow | None:
        row = self._conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else _job_row(row)

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATUSES, 0)
        for r in self._conn.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status"):
            out[r["status"]] = r["n"]
        return out

    def verdicts(self) -> dict[str, int]:
        return {
            r["verdict"]: r["n"]
            for r in self._conn.execute("SELECT verdict, COUNT(*) AS n FROM jobs WHERE status = 'done' GROUP BY verdict")
        }

    def events(self, job_id: str | None = None) -> list[dict[str, Any]]:
        if job_id is None:
            rows = self._conn.execute("SELECT * FROM events ORDER BY ts")
        else:
            rows = self._conn.execute("SELECT * FROM events WHERE id = ? ORDER BY ts", (job_id,))
        return [dict(r) for r in rows]


def _job_row(r: sqlite3.Row) -> JobRow:
    return JobRow(
        id=r["id"],
        row=r["row"],
        kind=r["kind"],
        spec=JobSpec.from_dict(json.loads(r["spec"])),
        status=r["status"],
        verdict=r["verdict"],
        attempts=r["attempts"],
        error=r["error"],
        errors=json.loads(r["errors"]) if r["errors"] else [],
        started_at=r["started_at"],
        finished_at=r["finished_at"],
        seconds=r["seconds"],
        worker=r["worker"],
        outputs=json.loads(r["outputs"]) if r["outputs"] else [],
        report=r["report"],
        maxrss_kb=r["maxrss_kb"],
    )


class StateStore:
    """Generation state (provider job ids) in the batch database: the ``JobStore`` protocol.

    ``load(key) -> dict | None`` and ``save(key, record)``. Safe to use from several threads and
    processes at once: each thread gets its own connection and every save is its own transaction,
    committed before ``save`` returns (a provider step saves its job id the moment submit returns).
    Picklable: it carries only the database path, so it can be handed to worker processes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._local = threading.local()

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path)
            conn.execute("CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, record TEXT NOT NULL, updated REAL NOT NULL)")
            self._local.conn = conn
        return conn

    def load(self, key: str) -> dict[str, Any] | None:
        row = self._conn().execute("SELECT record FROM state WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row["record"])

    def save(self, key: str, record: Mapping[str, Any]) -> None:
        self._conn().execute(
            "INSERT INTO state (key, record, updated) VALUES (?, ?, ?)"
            " ON CONFLICT(key) DO UPDATE SET record = excluded.record, updated = excluded.updated",
            (key, json.dumps(dict(record), default=str), time.time()),
        )

    def claim(self, key: str, record: Mapping[str, Any], stale_s: float = 600.0,
              takeover: Callable[[dict[str, Any]], bool] | None = None) -> bool:
        """Atomically write ``record`` unless another run is submitting this key: two catalog rows with
        the same input share one provider job, and their workers race for it."""
        from meshforge.generation.store import claim_row

        return claim_row(self._conn(), "state", key, json.dumps(dict(record), default=str), stale_s, takeover)

    def delete(self, key: str) -> None:
        self._conn().execute("DELETE FROM state WHERE key = ?", (key,))

    def keys(self) -> list[str]:
        return [r["key"] for r in self._conn().execute("SELECT key FROM state ORDER BY key")]
