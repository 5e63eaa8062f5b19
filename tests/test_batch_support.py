"""Helpers for the batch tests (no tests here): a plugin that paces, crashes, burns CPU or reports
what its worker process looks like (thread pools) on request.

Imported by name in batch worker processes (``Batch(plugins=["test_batch_support"])`` or
``meshforge batch --plugin test_batch_support``), so it must stay importable from tests/.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from meshforge.hookspecs import hookimpl
from meshforge.params import field
from meshforge.types import ValidateStep

PROFILE = {
    "schema": 1,
    "name": "batch-test",
    "summary": "import, pace (test plugin), write STL",
    "chain": {"generate": ["import"], "validate": ["pace"], "export": ["stl"]},
    "steps": {"import": {}, "pace": {"uses": "batchtest.pace"}, "stl": {}},
}

PROFILE_TOML = """\
schema = 1
name = "batch-test"
summary = "import, pace (test plugin), write STL"
[chain]
generate = ["import"]
validate = ["pace"]
export = ["stl"]
[steps.import]
[steps.pace]
uses = "batchtest.pace"
[steps.stl]
"""


@dataclass(frozen=True, kw_only=True)
class PaceParams:
    sleep_s: float = field(0.0, "seconds every job sleeps (metadata sleep_s wins)")


def pace(view, params, ctx):  # type: ignore[no-untyped-def]
    meta = view.inputs.metadata
    crash = meta.get("crash")
    if crash == "exit":
        os._exit(7)
    if crash == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    if crash == "raise":
        raise RuntimeError("asked to fail")
    if meta.get("open3d"):
        import open3d  # noqa: F401  (a step that loads open3d, as decimation's error measure does)
    if meta.get("probe"):  # a folder: write what this worker process looks like from inside
        Path(meta["probe"], f"{view.inputs.id}.json").write_text(json.dumps(thread_probe()), encoding="utf-8")
    spin = float(meta.get("spin_s", 0.0))
    end = time.process_time() + spin
    while time.process_time() < end:  # CPU work, not waiting
        pass
    time.sleep(float(meta.get("sleep_s", params.sleep_s)))
    return []


def openblas_threads() -> int | None:
    """Thread count of the first OpenBLAS loaded (numpy's), or None when numpy uses another BLAS."""
    import ctypes

    import numpy  # noqa: F401  (loads its BLAS)
    from meshforge.batch.worker import _loaded_libraries

    for path in _loaded_libraries("openblas"):
        lib = ctypes.CDLL(path, mode=os.RTLD_NOLOAD | os.RTLD_LAZY)
        for name in ("openblas_get_num_threads", "openblas_get_num_threads64_", "scipy_openblas_get_num_threads",
                     "scipy_openblas_get_num_threads64_"):
            getter = getattr(lib, name, None)
            if getter is not None:
                return int(getter())
    return None


def thread_probe() -> dict[str, object]:
    o3d = sys.modules.get("open3d")
    return {
        "pid": os.getpid(),
        "t": time.time(),
        "env": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")},
        "openblas": openblas_threads(),
        "open3d": o3d.utility.get_max_threads() if o3d is not None else None,
    }


@hookimpl
def meshforge_validate_steps() -> list[ValidateStep]:
    return [ValidateStep(name="batchtest.pace", summary="test: sleep or crash on request", params=PaceParams, codes=(), check=pace)]
