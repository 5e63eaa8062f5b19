"""Where jobs run: inline, in local worker processes, or on a Dask distributed cluster.

Each executor takes the jobs to run and yields events; the coordinator (:mod:`meshforge.batch.runner`)
records them. Events are tuples: ``("started", spec, worker)``, ``("result", spec, result_dict)``,
``("failed", spec, reason)`` and ``("interrupted", spec, reason)`` (the job did nothing wrong but
its worker went away; it runs again).

The local pool is ours rather than ``ProcessPoolExecutor`` because we need to know which process
runs which job: a worker that segfaults or runs past the time limit is killed and only *its* job is
failed; ``ProcessPoolExecutor`` breaks the whole pool and cannot say who was guilty.
"""

from __future__ import annotations

import collections
import math
import multiprocessing
import os
import signal
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from meshforge.batch.catalog import JobSpec
from meshforge.batch.store import StateStore
from meshforge.batch.worker import execute_job, get_engine, worker_name

Event = tuple[Any, ...]


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything a worker needs to rebuild the engine: plain, picklable data."""

    profile: Any
    overrides: Any
    entry_points: bool
    plugins: tuple[str, ...]  # module names registered as runtime plugins in every worker
    out_root: str
    db_path: str
    job_timeout: float | None = None  # seconds; the worker is killed past it (local executor)
    generate_concurrency: int = 8  # generation jobs in flight at once (provider limit), all workers together


class InlineExecutor:
    """One job after another in this process (debugging, tiny catalogs, embedding without processes)."""

    name = "inline"

    def __init__(self, config: RunConfig) -> None:
        self.config = config

    def run(self, jobs: Sequence[JobSpec]) -> Iterator[Event]:
        cfg = self.config
        engine = get_engine(cfg.profile, cfg.overrides, cfg.entry_points, cfg.plugins)
        state = StateStore(cfg.db_path)
        for spec in jobs:
            yield ("started", spec, worker_name())
            try:
                result = execute_job(engine, spec, cfg.out_root, state)
            except Exception as exc:
                yield ("failed", spec, f"{type(exc).__name__}: {exc}")
                continue
            yield ("result", spec, result)


# --- local worker processes ---------------------------------------------------------------------


@dataclass(eq=False)
class _Worker:
    proc: Any
    conn: Any
    pid: int
    ready: bool = False
    isolating: bool = False  # running one suspect job alone
    jobs: dict[str, tuple[JobSpec, float]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{worker_name().rpartition(':')[0]}:{self.pid}"

    def cpu_jobs(self) -> int:
        return sum(1 for spec, _ in self.jobs.values() if not spec.generates)

    def gen_jobs(self) -> int:
        return sum(1 for spec, _ in self.jobs.values() if spec.generates)


class ProcessExecutor:
    """``workers`` processes; each runs one CPU-bound job at a time plus some generation jobs on threads."""

    name = "process"

    def __init__(self, config: RunConfig, workers: int, native_threads: int | None = None) -> None:
        self.config = config
        self.n = max(1, workers)
        self.gen_per_worker = max(1, math.ceil(config.generate_concurrency / self.n))
        self._ctx = multiprocessing.get_context("spawn")  # no inherited threads, locks or GL state
        # Each worker's share of the cores for the native libraries' thread pools (BLAS, OpenMP, TBB):
        # left at "every core" they oversubscribe the machine as soon as two workers run.
        self.native_threads = max(1, default_workers() // self.n) if native_threads is None else native_threads
        self.peak_rss_kb: dict[int, int] = {}

    def _start(self) -> _Worker:
        cfg = self.config
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        proc = self._ctx.Process(
            target=_worker_entry,
            args=(child_conn, cfg.profile, cfg.overrides, cfg.entry_points, cfg.plugins, cfg.out_root, cfg.db_path,
                  1 + self.gen_per_worker, os.getpid(), self.native_threads),
            daemon=True,
            name="meshforge-batch-worker",
        )
        proc.start()
        child_conn.close()
        return _Worker(proc=proc, conn=parent_conn, pid=proc.pid or 0)

    def run(self, jobs: Sequence[JobSpec]) -> Iterator[Event]:
        cpu: collections.deque[JobSpec] = collections.deque(largest_first(j for j in jobs if not j.generates))
        gen: collections.deque[JobSpec] = collections.deque(j for j in jobs if j.generates)
        suspects: collections.deque[JobSpec] = collections.deque()
        suspect_ids: set[str] = set()
        workers = [self._start() for _ in range(min(self.n, max(1, len(jobs))))]
        retired: list[_Worker] = []  # stopped early: nothing left for them, the others still finishing
        timeout = self.config.job_timeout or None
        failed_starts = 0

        def requeue(spec: JobSpec, suspect: bool) -> None:
            if suspect or spec.id in suspect_ids:
                suspect_ids.add(spec.id)
                suspects.append(spec)
            else:
                (gen if spec.generates else cpu).appendleft(spec)

        try:
            while cpu or gen or suspects or any(w.jobs for w in workers):
                yield from self._dispatch(workers, cpu, gen, suspects)
                ready = wait([w.conn for w in workers] + [w.proc.sentinel for w in workers], timeout=0.2)
                for w in list(workers):
                    if w.conn in ready:
                        events, fatal = self._drain(w)
                        yield from events
                        if fatal:
                            raise RuntimeError(f"a batch worker could not start: {fatal}")
                now = time.monotonic()
                for w in list(workers):
                    overdue = [jid for jid, (_, t0) in w.jobs.items() if timeout and now - t0 > timeout]
                    if overdue:
                        _kill(w.proc)
                    if w.proc.is_alive() and not overdue:
                        continue
                    w.proc.join(timeout=5)
                    events, _ = self._drain(w)  # results sent just before it died still count
                    yield from events
                    yield from self._orphaned(w, overdue, timeout, requeue)
                    failed_starts = 0 if w.ready else failed_starts + 1
                    if failed_starts > 3:
                        raise RuntimeError(f"batch workers die while starting ({_exit_reason(w.proc.exitcode)}); workers are spawned "
                                           "and import the main script: start a batch under `if __name__ == \"__main__\":`")
                    workers[workers.index(w)] = self._start()
                if not (cpu or gen or suspects):
                    # Stop idle workers now rather than at the end: their exit (interpreter teardown,
                    # ~0.3 s with numpy/open3d loaded) overlaps the last jobs instead of following them.
                    # A job requeued later (its worker died) goes to that worker's replacement.
                    for w in [w for w in workers if w.ready and not w.jobs]:
                        workers.remove(w)
                        retired.append(w)
                        _stop(w)
        finally:
            for w in workers:
                _stop(w)
            workers += retired
            deadline = time.monotonic() + 10
            for w in workers:
                w.proc.join(timeout=max(0.1, deadline - time.monotonic()))
                if w.proc.is_alive():
                    _kill(w.proc)
                    w.proc.join(timeout=5)

    def _dispatch(self, workers: list[_Worker], cpu: collections.deque[JobSpec], gen: collections.deque[JobSpec],
                  suspects: collections.deque[JobSpec]) -> Iterator[Event]:
        limit = self.config.generate_concurrency
        for w in workers:
            if not w.ready or w.isolating:
                continue
            if suspects and not w.jobs:
                spec = suspects.popleft()
                w.isolating = True
                yield from self._send(w, spec)
                continue
            if cpu and w.cpu_jobs() == 0:
                yield from self._send(w, cpu.popleft())
            while gen and w.gen_jobs() < self.gen_per_worker and sum(x.gen_jobs() for x in workers) < limit:
                yield from self._send(w, gen.popleft())

    def _send(self, w: _Worker, spec: JobSpec) -> Iterator[Event]:
        w.jobs[spec.id] = (spec, time.monotonic())
        yield ("started", spec, w.name)
        try:
            w.conn.send(("job", spec.to_dict()))
        except OSError:
            pass  # the worker is gone: the sentinel reports it and the job is handled as orphaned

    def _drain(self, w: _Worker) -> tuple[list[Event], str | None]:
        events: list[Event] = []
        fatal = None
        while True:
            try:
                if not w.conn.poll():
                    break
                message = w.conn.recv()
            except (EOFError, OSError):
                break
            kind = message[0]
            if kind == "ready":
                w.ready = True
            elif kind == "fatal":
                fatal = message[1]
            elif kind in ("result", "error"):
                entry = w.jobs.pop(message[1], None)
                if entry is None:
                    continue
                spec = entry[0]
                if kind == "result":
                    rss = message[2].get("maxrss_kb")
                    if rss:
                        self.peak_rss_kb[w.pid] = max(rss, self.peak_rss_kb.get(w.pid, 0))
                    events.append(("result", spec, message[2]))
                else:
                    events.append(("failed", spec, message[2]))
                if not w.jobs:
                    w.isolating = False
        return events, fatal

    def _orphaned(self, w: _Worker, overdue: list[str], timeout: float | None,
                  requeue: Any) -> Iterator[Event]:
        """The jobs of a worker that died or was killed: who failed, who runs again (alone)."""
        reason = _exit_reason(w.proc.exitcode)
        left = dict(w.jobs)
        w.jobs.clear()
        for jid in overdue:
            spec, _ = left.pop(jid)
            yield ("failed", spec, f"ran past the job time limit of {timeout:g} s; worker killed")
        if not left:
            return
        if overdue:  # killed for another job's sake: innocent
            for spec, _ in left.values():
                yield ("interrupted", spec, "worker killed for another job's time limit")
                requeue(spec, False)
            return
        if len(left) == 1 or w.isolating:
            for spec, _ in left.values():
                yield ("failed", spec, f"worker process died ({reason})")
            return
        # Several jobs shared the dead process: run each alone to find the one that kills it.
        for spec, _ in left.values():
            requeue(spec, True)
            yield ("interrupted", spec, f"worker process died ({reason}) while running {len(left)} jobs; running it alone")


def _stop(w: _Worker) -> None:
    try:
        w.conn.send(None)
    except OSError:
        pass


def largest_first(jobs: Iterable[JobSpec]) -> list[JobSpec]:
    """Jobs in decreasing input file size, the catalog order among equals.

    Longest-first scheduling: the batch then ends on small jobs, not on one big job running alone
    while the other workers idle. File size is the cost estimate that needs no parsing; a job
    whose file cannot be read sorts last (it fails quickly).
    """

    def size(spec: JobSpec) -> int:
        try:
            return os.path.getsize(spec.model) if spec.model else 0
        except OSError:
            return 0

    return sorted(jobs, key=size, reverse=True)  # stable: equal sizes keep their order


def _worker_entry(*args: Any) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator handles Ctrl-C and stops us
    from meshforge.batch.worker import worker_main

    worker_main(*args)


def _kill(proc: Any) -> None:
    try:
        os.kill(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, TypeError):
        pass


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "no exit status"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


# --- Dask distributed ---------------------------------------------------------------------------


class DaskExecutor:
    """The same jobs as tasks on a Dask distributed cluster.

    Each task rebuilds (once per worker process) the engine from the profile and overrides, runs
    the job and writes into ``out_root``: the batch folder must be on storage every worker sees.
    Dask retries a task whose worker died on another worker and gives up with ``KilledWorker``
    after ``distributed.scheduler.allowed-failures``; that job is failed, the batch goes on.
    """

    name = "dask"

    def __init__(self, config: RunConfig, scheduler: Any, window: int | None = None) -> None:
        self.config = config
        self.scheduler = scheduler
        self.window = window

    def _client(self) -> tuple[Any, bool]:
        from distributed import Client

        if isinstance(self.scheduler, Client):
            return self.scheduler, False
        if self.scheduler is None:
            raise ValueError("the dask executor needs a scheduler address (--scheduler tcp://HOST:PORT) or a Client")
        return Client(self.scheduler), True

    def run(self, jobs: Sequence[JobSpec]) -> Iterator[Event]:
        import uuid

        from distributed import as_completed

        cfg = self.config
        client, own = self._client()
        try:
            threads = sum(client.nthreads().values()) or 1
            window = self.window or 2 * threads  # bounded in flight: 20,000 futures would be needless scheduler load
            todo = collections.deque(jobs)
            futures: dict[Any, JobSpec] = {}
            run_id = uuid.uuid4().hex[:8]

            def submit() -> Any:
                spec = todo.popleft()
                fut = client.submit(
                    _dask_task, cfg.profile, cfg.overrides, cfg.entry_points, cfg.plugins, spec.to_dict(), cfg.out_root,
                    cfg.db_path,
                    key=f"meshforge-job-{spec.id}-{run_id}", pure=False, retries=0,
                )
                futures[fut] = spec
                return fut

            first = []
            while todo and len(first) < window:
                spec = todo[0]
                first.append(submit())
                yield ("started", spec, "dask")
            done = as_completed(first)
            for fut in done:
                spec = futures.pop(fut)
                if fut.status == "finished":
                    yield ("result", spec, fut.result())
                else:
                    exc = fut.exception()
                    name = type(exc).__name__
                    reason = f"dask worker died running it ({name}: {exc})" if name == "KilledWorker" else f"{name}: {exc}"
                    yield ("failed", spec, reason)
                fut.release()
                if todo:
                    nxt = todo[0]
                    done.add(submit())
                    yield ("started", nxt, "dask")
        finally:
            if own:
                client.close()


def _dask_task(profile: Any, overrides: Any, entry_points: bool, plugins: tuple[str, ...], spec: dict[str, Any], out_root: str,
               db_path: str) -> dict[str, Any]:
    from meshforge.batch.worker import run_job

    return run_job(profile, overrides, entry_points, plugins, spec, out_root, db_path)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


__all__ = ["DaskExecutor", "InlineExecutor", "ProcessExecutor", "RunConfig", "default_workers"]
