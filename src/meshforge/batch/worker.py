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


# Thread-count variables of the native libraries a chain may load (OpenBLAS through numpy/scipy,
# OpenMP through fast-simplification or pymeshlab, MKL/BLIS/Accelerate builds, numexpr).
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
_OPENBLAS_SETTERS = ("openblas_set_num_threads", "openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                     "scipy_openblas_set_num_threads64_")


def limit_native_threads(n: int) -> dict[str, Any]:
    """Give the native thread pools of this process ``n`` threads each (a worker's share of the cores).

    A library left alone sizes its pool to every core of the machine. With one worker per core that
    is oversubscription: after each threaded call OpenBLAS keeps its helper spinning on the core the
    other worker needs (measured: 0.4 CPU s per ecommerce-glb job), and a call whose helper has been
    pushed off its core waits for it (a (2M x 3) @ (3 x 3) product took 22 s instead of 1 s while
    another process kept the second core busy). Variables the user set are left as they are.
    Libraries loaded later read the variables; OpenBLAS builds already loaded (numpy loads one
    before the worker code runs when the main module imports numpy) are told at run time, on Linux.
    open3d's TBB pool is sized once open3d is imported, by :func:`limit_open3d_threads`.
    Returns what was changed.
    """
    import ctypes

    n = max(1, int(n))
    user_blas = any(os.environ.get(v) for v in ("OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "OMP_NUM_THREADS"))
    env = {}
    for var in THREAD_ENV:
        if not os.environ.get(var):
            os.environ[var] = env[var] = str(n)
    openblas = []
    if not user_blas:
        for path in _loaded_libraries("openblas"):
            try:
                lib = ctypes.CDLL(path, mode=getattr(os, "RTLD_NOLOAD", 0) | getattr(os, "RTLD_LAZY", 1))
            except OSError:
                continue
            for name in _OPENBLAS_SETTERS:
                setter = getattr(lib, name, None)
                if setter is not None:
                    setter.argtypes = [ctypes.c_int]
                    setter.restype = None
                    setter(n)
                    openblas.append(path)
                    break
    return {"threads": n, "env": env, "openblas": openblas}


def limit_open3d_threads(n: int) -> bool:
    """Size open3d's TBB pool (decimation error, ray casting) once open3d has been imported; True if done."""
    o3d = sys.modules.get("open3d")
    utility = getattr(o3d, "utility", None)
    setter = getattr(utility, "set_max_threads", None)
    if setter is None:
        return False
    try:
        setter(max(1, int(n)))
    except Exception:  # an open3d without the call, or one that refuses: its default pool stays
        return False
    return True


def _loaded_libraries(fragment: str) -> list[str]:
    """Paths of the shared libraries mapped in this process whose file name contains ``fragment`` (Linux)."""
    found: list[str] = []
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                parts = line.split(None, 5)
                if len(parts) == 6:
                    path = parts[5].strip()
                    if fragment in os.path.basename(path).lower() and path not in found:
                        found.append(path)
    except OSError:
        pass
    return found


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
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    report = engine.run(spec.inputs(), out_dir=target, state=state)
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
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
        "cpu_seconds": (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime),
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
                db_path: str, threads: int, parent: int, native_threads: int = 0) -> None:
    """Entry point of a local worker process: build the engine, then serve jobs from ``conn``.

    Messages in: ``("job", spec_dict)`` or ``None`` (stop). Out: ``("ready", pid)``,
    ``("result", id, dict)``, ``("error", id, reason)``. Several jobs may run at once on threads
    (generation jobs waiting on a provider); the coordinator decides how many. ``native_threads``
    (when > 0) sizes the native libraries' thread pools: see :func:`limit_native_threads`.
    """
    from concurrent.futures import ThreadPoolExecutor

    if native_threads > 0:
        limit_native_threads(native_threads)
    open3d_sized = native_threads <= 0
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
        nonlocal open3d_sized
        if not open3d_sized and "open3d" in sys.modules:  # imported by an earlier job's step
            limit_open3d_threads(native_threads)
            open3d_sized = True
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
    # Every result is sent and every state save committed: skip the interpreter's teardown, which
    # takes ~0.3 s with numpy, scipy and open3d loaded and would delay the end of the batch.
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError, AttributeError):
            pass
    os._exit(0)
