"""Helpers for the batch tests (no tests here): a plugin that paces or crashes jobs on request.

Imported by name in batch worker processes (``Batch(plugins=["test_batch_support"])`` or
``meshforge batch --plugin test_batch_support``), so it must stay importable from tests/.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

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
    time.sleep(float(meta.get("sleep_s", params.sleep_s)))
    return []


@hookimpl
def meshforge_validate_steps() -> list[ValidateStep]:
    return [ValidateStep(name="batchtest.pace", summary="test: sleep or crash on request", params=PaceParams, codes=(), check=pace)]
