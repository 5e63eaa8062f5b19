"""Where generation jobs are remembered: the only protection against paying twice.

No provider documents an idempotency key (shared/PROVIDERS.md 2.9 rule 1), so the job id is written
here the moment ``submit`` returns; a restarted run loads the record and polls instead of submitting
again. A record is a plain JSON-able dict; the key is the job's fingerprint (input + provider +
parameters + attempt), see :mod:`meshforge.generation.fingerprint`.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class JobStore(Protocol):
    """Anything with these two methods can hold job records (the batch runner passes its own)."""

    def load(self, key: str) -> dict[str, Any] | None: ...

    def save(self, key: str, record: dict[str, Any]) -> None: ...


class MemoryJobStore:
    """A dict behind a lock: for tests and embedding programs that keep no state on disk."""

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()
        self.path: Path | None = None

    def load(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            raw = self._data.get(key)
        return None if raw is None else json.loads(raw)

    def save(self, key: str, record: dict[str, Any]) -> None:
        raw = json.dumps(record, sort_keys=True, default=str)
        with self._lock:
            self._data[key] = raw

    def keys(self) -> list[str]:
        with self._lock:
            return sorted(self._data)


class SqliteJobStore:
    """Job records in one SQLite file (WAL, one short transaction per save; safe across processes).

    A connection per thread: sqlite3 connections must not cross threads, and the engine runs
    steps (and the webhook receiver its handlers) on worker threads.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (key TEXT PRIMARY KEY, record TEXT NOT NULL, updated REAL NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
        return db

    def load(self, key: str) -> dict[str, Any] | None:
        row = self._connect().execute("SELECT record FROM jobs WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def save(self, key: str, record: dict[str, Any]) -> None:
        raw = json.dumps(record, sort_keys=True, default=str)
        db = self._connect()
        db.execute(
            "INSERT INTO jobs (key, record, updated) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET record = excluded.record, updated = excluded.updated",
            (key, raw, time.time()),
        )

    def keys(self) -> list[str]:
        return [r[0] for r in self._connect().execute("SELECT key FROM jobs ORDER BY key")]

    def claim(self, key: str, record: dict[str, Any], stale_s: float = 600.0,
              takeover: Callable[[dict[str, Any]], bool] | None = None) -> bool:
        """Atomically write ``record`` unless another run is already submitting this key (see :func:`may_claim`)."""
        return claim_row(self._connect(), "jobs", key, json.dumps(record, sort_keys=True, default=str), stale_s, takeover)

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


# Records a new submission may replace; a run finding any other state follows (or reports) that job.
CLAIMABLE = frozenset({"failed", "canceled", "expired", "stopped"})


def claim_row(db: sqlite3.Connection, table: str, key: str, raw: str, stale_s: float,
              takeover: Callable[[dict[str, Any]], bool] | None) -> bool:
    """``claim`` for a SQLite table of (key, record, updated) rows, in one immediate transaction: the
    job store's and the batch database's ``state`` table share it."""
    db.execute("BEGIN IMMEDIATE")
    try:
        row = db.execute(f"SELECT record, updated FROM {table} WHERE key = ?", (key,)).fetchone()
        if row is not None and not may_claim(json.loads(row[0]), row[1], stale_s, takeover):
            db.execute("ROLLBACK")
            return False
        db.execute(
            f"INSERT INTO {table} (key, record, updated) VALUES (?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET record = excluded.record, updated = excluded.updated",
            (key, raw, time.time()),
        )
        db.execute("COMMIT")
        return True
    except BaseException:
        db.execute("ROLLBACK")
        raise


def may_claim(current: dict[str, Any], updated: float, stale_s: float,
              takeover: Callable[[dict[str, Any]], bool] | None = None) -> bool:
    """May a new submission replace ``current`` (the stored record, saved at ``updated``)?

    Yes for a job that ended without a result (failed, canceled, expired, or stopped before its
    submit was sent), a ``prepared`` one older than ``stale_s``, and one ``takeover`` accepts (the
    client's: its owner ended with nothing in flight). Decided inside the store's transaction, so
    two runs finding the same dead owner cannot both take it over.
    """
    state = current.get("state")
    if state in CLAIMABLE:
        return True
    if state == "prepared" and updated < time.time() - stale_s:
        return True
    return takeover is not None and bool(takeover(current))


def is_job_store(obj: Any) -> bool:
    return obj is not None and callable(getattr(obj, "load", None)) and callable(getattr(obj, "save", None))


__all__ = ["CLAIMABLE", "JobStore", "MemoryJobStore", "SqliteJobStore", "claim_row", "is_job_store", "may_claim"]
