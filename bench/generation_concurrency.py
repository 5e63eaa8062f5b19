"""Concurrent generation: N jobs against the local provider server with simulated latency.

    python bench/generation_concurrency.py                          # 200 jobs, 200 ms, limit 10 (the issue's figure)
    python bench/generation_concurrency.py --jobs 40 --limit 4      # a quick look

Each job is a full client round trip through the real step (submit -> persist -> poll -> download,
sniffed and checksummed) over HTTP on 127.0.0.1; the server finishes a task ``--latency`` seconds
after it was submitted. The per-provider limiter holds a slot from submit to download, so the
expected wall time is about (jobs / limit) x latency, against jobs x latency one at a time.
Prints both and their ratio. Nothing here asserts: numbers are for the report.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from meshforge.generation.testing import ProviderServer  # noqa: E402


@contextlib.contextmanager
def _server(args: argparse.Namespace):
    """(base URL, key environment, submission counter or None) of a server in this or its own process."""
    if args.in_process:
        with ProviderServer(task_seconds=args.latency, polls_to_finish=0) as server:
            yield server.url, server.env(), server.submissions
        return
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "provider_server.py"), "--task-seconds", str(args.latency),
                             "--polls-to-finish", "0"], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()  # type: ignore[union-attr]
        yield url, ProviderServer().env(), None
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--latency", type=float, default=0.2, help="seconds from submit to a finished task")
    ap.add_argument("--limit", type=int, default=10, help="per-provider concurrency limit (the step's `concurrency`)")
    ap.add_argument("--provider", default="rest", choices=["rest", "meshy", "tripo"])
    ap.add_argument("--in-process", action="store_true", help="run the server in this process (shares the GIL with the client)")
    args = ap.parse_args()

    import importlib

    from meshforge import testing
    from meshforge.asset import Inputs
    from meshforge.generation.store import MemoryJobStore

    module = importlib.import_module(f"meshforge_provider_{args.provider}")
    spec = module.meshforge_generate_steps()[0]
    with _server(args) as (base, env, submissions):
        import os

        os.environ.update(env)
        values = {"base_url": f"{base}/{args.provider}", "concurrency": args.limit, "requests_per_s": 0.0,
                  "poll_initial_s": args.latency / 10, "poll_max_s": args.latency / 10}
        if args.provider == "rest":
            values["api_key_env"] = "REST_API_KEY"
        params = testing.params_for(spec, values)
        store = MemoryJobStore()
        limits = httpx.Limits(max_connections=args.limit * 2 + 10, max_keepalive_connections=args.limit * 2 + 10)
        with httpx.Client(limits=limits) as http:
            def one(i: int) -> dict:
                ctx = testing.step_context(spec, params, http_factory=lambda: http, state=store)
                return dict(spec.generate(Inputs(id=f"job{i}", prompt=f"product number {i}"), params, ctx).provenance)

            started = time.perf_counter()
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                results = list(pool.map(one, range(args.jobs)))
            elapsed = time.perf_counter() - started
    ideal = args.jobs / args.limit * args.latency
    serial = args.jobs * args.latency
    assert len({r["job_id"] for r in results}) == args.jobs
    print(f"{args.jobs} jobs, {args.provider}, latency {args.latency * 1000:.0f} ms, concurrency limit {args.limit}")
    print(f"  wall time          {elapsed:8.2f} s")
    print(f"  (jobs/limit)xlat   {ideal:8.2f} s   ratio {elapsed / ideal:5.2f}  (1.00 = ideal)")
    print(f"  jobs x latency     {serial:8.2f} s   speed-up {serial / elapsed:5.1f}x over one at a time")
    print(f"  server {'in this process' if args.in_process else 'in its own process'}, "
          f"requests/job {sum(r['requests'] for r in results) / args.jobs:.2f}, polls/job {sum(r['polls'] for r in results) / args.jobs:.2f}")


if __name__ == "__main__":
    main()
