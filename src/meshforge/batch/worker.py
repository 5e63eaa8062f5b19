"""What runs one job, wherever it runs: in a worker process, on a Dask worker, or inline.

One Engine per process, built once from the profile *name/dict and overrides* (an Engine holds a
plugin manager and is never pickled). :func:`execute_job` returns plain data only.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from meshforge.batch.catalog import JobSpec
from meshforge.batch.store import StateStore

_ENGINES: dict[str, Any] = {}
_ENGINES_LOCK = threading.Lock()


def engine_key(profile: Any, overrides: Any, entry_points: bool, plugins: Any = ()) -> str:
    return json.dumps([profile, overrides, entry_points, list(plugins)], sort_keys=True, default=str)


def get_engine(profile: Any, overrides: Any, entry_points: bool = True, plugins: tuple[str, ...] = ()) -> Any:
    """The process's Engine for this profile (built on first use, then reused for every job).

    ``plugins`` are module names imported and registered as runtime plugins: names, not objects,
    because they must cross to worker processes and machines.
    """
    key = engine_key(profile, overrides, entry_points, plugins)
    with _ENGINES_LOCK:
        engine = _ENGINES.get(key)
        if engine is None:
            import importlib

            from meshforge.engine import Engine

            modules = [importlib.import_module(name) for name in plugins]
            engine = Engine(profile, overrides=overrides, entry_points=entry_points, plugins=modules)
            _ENGINES[key] = engine
        return engine


def job_dir(out_root: Path, job_id: str) -> Path:
    return Path(out_root) / "jobs" / job_id


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def maxrss_kb() -> int:
    """Peak resident memory of this process, in KiB.

    Linux: VmHWM, which starts afresh at exec (ru_maxrss survives exec, so a spawned worker would
    report its parent's peak). Elsewhere ru_maxrss (KiB on Linux/BSD, bytes on macOS).
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak // 1024 if sys.platform == "darwin" else peak)


def execute_job(engine: Any, spec: JobSpec | Mapping[str, Any], out_root: str | Path, state: Any) -> dict[str, Any]:
    """Run one job through the engine into ``out_root/jobs/<id>``; returns a plain result dict.

    The job's folder is cleared first (what a killed attempt left, including staging folders),
    then the engine publishes each output by rename, so no reader ever sees a partial file.
    """
    if not isinstance(spec, JobSpec):
        spec = JobSpec.from_dict(spec)
    target = job_dir(Path(out_root), spec.id)
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    started = time.perf_counter()
    report = engine.run(spec.inputs(), out_dir=target, state=state)
    seconds = time.perf_counter() - started
    reports = sorted(target.rglob("*.report.json"))
    errors = [f.code for f in report.findings if f.is_error]
    messages = [f.message for f in report.findings if f.is_error][:3]
    return {
        "id": spec.id,
        "verdict": str(report.status),
        "errors": sorted(set(errors)),
        "messages": messages,
        "outputs": [o.to_dict() for o in report.outputs],
        "report": str(reports[0]) if reports else None,
        "seconds": seconds,
        "maxrss_kb": maxrss_kb(),
        "worker": worker_name(),
    }


def run_job(profile: Any, overrides: Any, entry_points: bool, plugins: tuple[str, ...], spec: Mapping[str, Any],
            out_root: str, db_path: str) -> dict[str, Any]:
    """A self-contained task (used by the Dask executor): engine from the process cache, state in the batch DB."""
    engine = get_engine(profile, overrides, entry_points, plugins)
    return execute_job(engine, spec, out_root, StateStore(db_path))


# --- local worker processes ---------------------------------------------------------------------


def _watch_parent(parent: int) -> None:
    # A worker whose coordinator was killed (kill -9) must not go on writing into the batch folder.
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(3)


def worker_main(conn: Any, profile: Any, overrides: Any, entry_points: bool, plugins: tuple[str, ...], out_root: str,
                db_path: str, threads: int, parent: int) -> None:
    """Entry point of a local worker process: build the engine, then serve jobs from ``conn``.

    Messages in: ``("job", spec_dict)`` or ``None`` (stop). Out: ``("ready", pid)``,
    ``("result", id, dict)``, ``("error", id, reason)``. Several jobs may run at once on threads
    (generation jobs waiting on a provider); the coordinator decides how many.
    """
    from concurrent.futures import ThreadPoolExecutor

    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    send_lock = threading.Lock()

    def send(message: Any) -> None:
        with send_lock:
            try:
                conn.send(message)
            except (BrokenPipeError, EOFError, OSError):
                os._exit(3)

    try:
        engine = get_engine(profile, overrides, entry_points, plugins)
    except BaseException as exc:
        send(("fatal", f"{type(exc).__name__}: {exc}"))
        return
    state = StateStore(db_path)
    send(("ready", os.getpid()))

    def one(spec: dict[str, Any]) -> None:
        try:
            result = execute_job(engine, spec, out_root, state)
        except BaseException as exc:  # the engine isolates steps; anything here is a bug worth a line
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            send(("error", spec["id"], detail))
            return
        send(("result", spec["id"], result))

    with ThreadPoolExecutor(max_workers=max(1, threads), thread_name_prefix="meshforge-job") as pool:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                os._exit(3)
            if message is None:
                break
            pool.submit(one, message[1])
