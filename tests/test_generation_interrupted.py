"""A run stopped while it submits a generation job: a rerun knows whether anything was sent.

`meshforge run` in a child process against the local provider server, stopped at a chosen instant
(SIGKILL, or Ctrl-C), then run again. A run stopped while it only waited out a 429's Retry-After
sent nothing: the rerun submits at once. A run stopped with its submit request in flight may have
been billed: the rerun says so at once (it used to wait out the dead run's whole deadline first).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meshforge.generation.pytest_plugin import photo  # noqa: F401
from meshforge.generation.testing import ProviderServer

pytest.importorskip("meshforge_provider_meshy")

# deadline_s is long on purpose: a rerun that waited for the dead run would outlast RERUN_S.
PROFILE = """\
schema = 1
name = "gen"
summary = "photo -> meshy (local test server) -> STL"
[chain]
generate = ["gen"]
export = ["stl"]
[steps.gen]
uses = "meshy.generate"
base_url = "{base}"
backoff_cap_s = 120.0
deadline_s = 600.0
requests_per_s = 0.0
poll_initial_s = 0.05
poll_max_s = 0.1
[steps.stl]
"""
RERUN_S = 90


def _record(out: Path) -> dict | None:
    db = out / ".meshforge" / "jobs.sqlite"
    if not db.is_file():
        return None
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            rows = [json.loads(r) for (r,) in conn.execute("SELECT record FROM jobs")]
    except sqlite3.OperationalError:
        return None
    return rows[0] if rows else None


def _stop_when(server: ProviderServer, out: Path, cmd: list[str], env: dict[str, str], sig: int, ready) -> dict:
    """Start ``cmd``, send ``sig`` to it once ``ready(record)`` holds, wait for it; the job record then."""
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            record = _record(out)
            if record is not None and ready(record):
                break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, sig)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    record = _record(out)
    assert record is not None
    return record


def _setup(tmp_path: Path, server: ProviderServer, photo: Path) -> tuple[Path, list[str], dict[str, str]]:
    profile = tmp_path / "gen.toml"
    profile.write_text(PROFILE.format(base=server.base("meshy")))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "meshforge", "run", "-p", str(profile), str(photo), "--out", str(out)]
    return out, cmd, {**os.environ, **server.env()}


def _waiting_out_the_429(server: ProviderServer):
    return lambda record: server.count("meshy", "submit") == 1 and record.get("in_flight") is False


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_a_run_stopped_while_waiting_out_a_429_is_submitted_by_the_rerun(tmp_path, photo, sig):
    with ProviderServer() as server:
        server.inject("meshy", "submit", status=429, retry_after=60)
        out, cmd, env = _setup(tmp_path, server, photo)
        record = _stop_when(server, out, cmd, env, sig, _waiting_out_the_429(server))
        assert server.submissions["meshy"] == 0  # the provider took nothing
        # Ctrl-C reaches the step and records it; a kill -9 leaves "prepared", nothing in flight
        assert record["state"] == ("stopped" if sig == signal.SIGINT else "prepared") and record["in_flight"] is False
        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RERUN_S)
        assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        assert server.submissions["meshy"] == 1 and server.count("meshy", "submit") == 2
    assert (out / "p.stl").is_file()
    report = json.loads((out / "p.report.json").read_text())
    assert "generation.unconfirmed_submission" not in {f["code"] for f in report["findings"]}


def test_a_run_killed_with_its_submit_in_flight_is_reported_by_the_rerun_at_once(tmp_path, photo):
    with ProviderServer() as server:
        server.inject("meshy", "submit", kind="slow", delay=30)  # the provider sits on the request
        out, cmd, env = _setup(tmp_path, server, photo)
        record = _stop_when(server, out, cmd, env, signal.SIGKILL,
                            lambda r: server.count("meshy", "submit") == 1 and r.get("in_flight") is True)
        assert record["state"] == "prepared"
        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RERUN_S)
        assert rerun.returncode != 0
        assert "may have been accepted and billed" in rerun.stderr
        assert server.count("meshy", "submit") == 1  # never sent twice
    report = json.loads((out / "rejected" / "p.report.json").read_text())
    assert "generation.unconfirmed_submission" in {f["code"] for f in report["findings"]}


def test_a_live_run_waiting_out_a_429_is_not_taken_over(tmp_path, photo):
    """The owner is alive (only waiting): a second run must neither submit nor call it unconfirmed."""
    with ProviderServer() as server:
        server.inject("meshy", "submit", status=429, retry_after=3)
        out, cmd, env = _setup(tmp_path, server, photo)
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                record = _record(out)
                if record is not None and _waiting_out_the_429(server)(record):
                    break
                time.sleep(0.02)
            second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=RERUN_S)
            first_out, first_err = first.communicate(timeout=RERUN_S)
        finally:
            if first.poll() is None:
                first.kill()
                first.wait()
        assert first.returncode == 0, first_err
        assert second.returncode == 0, second.stderr  # it followed the first run's job
        assert server.submissions["meshy"] == 1
