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


# --- ownership: who may take over a "prepared" record --------------------------------------------

DRIVER = """\
import sys, time, httpx
from pathlib import Path
from meshforge.generation.client import JobRunner
from meshforge.generation.providers import GenerationRequest
from meshforge.generation.store import SqliteJobStore
from meshforge_provider_meshy import Meshy, MeshyParams

db, base, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
poll, resubmit_failed = (float(sys.argv[4]), int(sys.argv[5])) if len(sys.argv) > 5 else (0.05, 0)


class Descheduled(SqliteJobStore):  # pauses between the first look at the record and the claim

    def claim(self, *args, **kwargs):
        time.sleep(pause)
        return super().claim(*args, **kwargs)


params = MeshyParams(base_url=base, deadline_s=600.0, backoff_cap_s=120.0, requests_per_s=0.0, poll_initial_s=poll,
                     poll_max_s=max(poll, 0.1), resubmit_failed=resubmit_failed)
runner = JobRunner(Meshy(params), params, http=httpx.Client(), store=Descheduled(db), key="K",
                   models_dir=Path(db).parent / "models")
print(runner.run(GenerationRequest(kind="text", prompt="a chair")).provenance["job_id"], flush=True)
"""


def test_runs_that_lost_the_claim_to_a_killed_owner_submit_once_between_them(tmp_path):
    """B and C find no record, then lose the claim to A, which waits out a 429 and is killed. Exactly
    one of B and C may claim the job then (both used to fall through and submit: two paid jobs)."""
    from meshforge.generation.store import SqliteJobStore

    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    db = tmp_path / "jobs.sqlite"
    SqliteJobStore(db).close()
    with ProviderServer() as server:
        server.inject("meshy", "submit", status=429, retry_after=60)
        env = {**os.environ, **server.env()}

        def start(pause: float) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, str(driver), str(db), server.base("meshy"), str(pause)], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        pause = 8.0
        b, c = start(pause), start(pause)  # they look (no record yet), then pause before claiming
        started = time.monotonic()
        time.sleep(2.0)
        a = start(0.0)
        try:
            deadline = time.monotonic() + 120
            while not (server.count("meshy", "submit") == 1 and (SqliteJobStore(db).load("K") or {}).get("in_flight") is False):
                assert time.monotonic() < deadline and a.poll() is None, a.communicate()
                time.sleep(0.02)
            assert time.monotonic() < started + pause, "A took too long to claim: B and C did not lose to it"
            time.sleep(started + pause + 2.0 - time.monotonic())  # B and C have lost their claims and follow A
            assert a.poll() is None and b.poll() is None and c.poll() is None
            a.kill()
            a.wait()
            out_b, out_c = b.communicate(timeout=RERUN_S)[0], c.communicate(timeout=RERUN_S)[0]
        finally:
            for p in (a, b, c):
                if p.poll() is None:
                    p.kill()
        assert b.returncode == 0 and c.returncode == 0
        assert server.submissions["meshy"] == 1 and out_b.strip() == out_c.strip()  # one job, followed by both


def test_a_run_following_a_failed_job_does_not_write_it_over_the_resubmission(tmp_path):
    """resubmit_failed = 1: A's job fails and A submits a second one; B, following the first, used to
    write "failed" back over A's new record, claim that, and pay for a third job."""
    from meshforge.generation.store import SqliteJobStore

    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    db = tmp_path / "jobs.sqlite"
    SqliteJobStore(db).close()
    with ProviderServer(task_seconds=2.0) as server:
        server.fail_next_task("meshy", "moderation")  # the first job fails, later ones succeed
        env = {**os.environ, **server.env()}

        def start(poll: float) -> subprocess.Popen:
            return subprocess.Popen([sys.executable, str(driver), str(db), server.base("meshy"), "0", str(poll), "1"],
                                    env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        a = start(0.05)
        deadline = time.monotonic() + 120
        while not (SqliteJobStore(db).load("K") or {}).get("job_id"):
            assert time.monotonic() < deadline and a.poll() is None, a.communicate()
            time.sleep(0.02)
        b = start(1.0)  # follows the first job, polling slowly: it sees the failure after A has resubmitted
        outs = [p.communicate(timeout=RERUN_S)[0] for p in (a, b)]
        assert a.returncode == 0 and b.returncode == 0, outs
        assert server.submissions["meshy"] == 2  # the failed job and one resubmission
        assert SqliteJobStore(db).load("K")["state"] == "downloaded"


def test_a_store_without_claim_keeps_the_claim_rules(tmp_path, monkeypatch):
    """MemoryJobStore has no claim(): a synchronous job paid for but not kept (its folder cannot be
    written) was submitted again silently; it must be refused like the SQLite store refuses it."""
    import io

    import httpx
    from PIL import Image

    from meshforge.generation.client import JobRunner
    from meshforge.generation.providers import GenerationRequest, ImageRef, ProviderError
    from meshforge.generation.store import MemoryJobStore

    stability = pytest.importorskip("meshforge_provider_stability")
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "red").save(buf, "PNG")
    req = GenerationRequest(kind="image", images=(ImageRef(data=buf.getvalue(), mime="image/png", name="a.png"),))
    (tmp_path / "file").write_text("x")
    store = MemoryJobStore()
    with ProviderServer() as server, httpx.Client() as http:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        params = stability.StabilityParams(base_url=server.base("stability"), requests_per_s=0.0)
        with pytest.raises(OSError):  # models folder under a file: the paid model cannot be kept
            JobRunner(stability.Stability(params), params, http=http, store=store, key="K",
                      models_dir=tmp_path / "file" / "models").run(req)
        with pytest.raises(ProviderError) as err:
            JobRunner(stability.Stability(params), params, http=http, store=store, key="K",
                      models_dir=tmp_path / "models").run(req)
        assert "force = true" in err.value.message and server.submissions["stability"] == 1


def test_only_a_process_known_dead_here_gives_up_its_record(tmp_path):
    from meshforge.generation import owner as owner_mod
    from meshforge.generation.owner import current_owner, idle_and_gone, owner_gone

    me = current_owner()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        alive = {**me, "pid": child.pid, "start": owner_mod._start_time(child.pid)}
        record = {"state": "prepared", "in_flight": False, "owner": alive}
        assert not owner_gone(record) and not idle_and_gone(record)
        # the same pid started at another time: the pid was reused, its owner is gone
        assert owner_gone({**record, "owner": {**alive, "start": alive["start"] + 1}})
        # another machine, boot or pid namespace (containers sharing a hostname are each pid 1): unknowable
        for key in ("host", "boot", "pidns"):
            assert not owner_gone({**record, "owner": {**alive, "pid": 999_999_999, key: "elsewhere"}}), key
        child.kill()
        deadline = time.monotonic() + 10
        while owner_mod._stat(child.pid)[0] != "Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        assert owner_gone(record)  # killed, not reaped yet (a zombie): it will never send anything
    finally:
        child.kill()
        child.wait()
    assert owner_gone(record) and idle_and_gone(record)
    assert not idle_and_gone({**record, "in_flight": True}) and not idle_and_gone({**record, "in_flight": None})


def test_a_forked_child_records_itself_not_its_parent():
    import multiprocessing

    from meshforge.generation.owner import current_owner

    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=lambda q: q.put(current_owner()), args=(queue,))
    child.start()
    owner = queue.get(timeout=30)
    child.join(30)
    assert owner["pid"] == child.pid != os.getpid()


def test_tripo_refusing_with_http_200_is_failed_not_unconfirmed(tmp_path, photo, monkeypatch):
    """Tripo answers "no credits" as HTTP 200 {"code": 2010}: an answer, so a rerun may submit."""
    import httpx

    from meshforge.asset import Inputs
    from meshforge.errors import InputError
    from meshforge.generation.pytest_plugin import run_provider_step
    from meshforge.generation.store import SqliteJobStore

    tripo = pytest.importorskip("meshforge_provider_tripo")
    step = tripo.meshforge_generate_steps()[0]
    store = tmp_path / "jobs.sqlite"
    with ProviderServer() as server, httpx.Client() as http:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        server.inject("tripo", "submit", status=200, body={"code": 2010, "message": "credits exhausted"})
        with pytest.raises(InputError) as err:
            run_provider_step(step, server, http, Inputs(id="sku", images=(photo,)), "tripo", store=SqliteJobStore(store))
        assert err.value.code != "generation.unconfirmed_submission"
        (record,) = [SqliteJobStore(store).load(k) for k in SqliteJobStore(store).keys()]
        assert record["state"] == "failed"
        out = run_provider_step(step, server, http, Inputs(id="sku", images=(photo,)), "tripo", store=SqliteJobStore(store))
        assert out is not None and server.submissions["tripo"] == 1


def test_force_over_an_unconfirmed_in_flight_record_records_its_own_job(tmp_path, monkeypatch):
    """force = true over a dead run's "prepared, in flight" record: the new job must be recorded (a
    kill after it would otherwise leave no trace of a paid job)."""
    import httpx

    from meshforge.generation.client import JobRunner
    from meshforge.generation.owner import current_owner
    from meshforge.generation.providers import GenerationRequest
    from meshforge.generation.store import SqliteJobStore

    meshy = pytest.importorskip("meshforge_provider_meshy")
    store = SqliteJobStore(tmp_path / "jobs.sqlite")
    dead = {**current_owner(), "pid": 2**30, "start": 1}
    store.save("K", {"key": "K", "state": "prepared", "in_flight": True, "owner": dead, "claim": "theirs",
                     "submissions": 0, "updated_at": time.time()})
    with ProviderServer() as server, httpx.Client() as http:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        params = meshy.MeshyParams(base_url=server.base("meshy"), requests_per_s=0.0, poll_initial_s=0.02, force=True)
        result = JobRunner(meshy.Meshy(params), params, http=http, store=store, key="K",
                           models_dir=tmp_path / "models").run(GenerationRequest(kind="text", prompt="a chair"))
    record = store.load("K")
    assert record["state"] == "downloaded" and record["job_id"] == result.provenance["job_id"]


def test_a_closed_http_client_sends_nothing_and_marks_nothing_in_flight(tmp_path, monkeypatch):
    """A step abandoned at its time limit finds its run's HTTP client closed: nothing is sent, and the
    record says so (failed, not in flight), so a rerun submits instead of reporting a billed job."""
    import httpx

    from meshforge.generation.client import JobRunner
    from meshforge.generation.providers import GenerationRequest, ProviderError
    from meshforge.generation.store import SqliteJobStore

    meshy = pytest.importorskip("meshforge_provider_meshy")
    store = SqliteJobStore(tmp_path / "jobs.sqlite")
    with ProviderServer() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        params = meshy.MeshyParams(base_url=server.base("meshy"), requests_per_s=0.0)
        http = httpx.Client()
        http.close()
        with pytest.raises(ProviderError) as err:
            JobRunner(meshy.Meshy(params), params, http=http, store=store, key="K",
                      models_dir=tmp_path / "models").run(GenerationRequest(kind="text", prompt="a chair"))
        assert err.value.code == "generation.unavailable" and "not sent" in err.value.message
        assert server.count("meshy", "submit") == 0
    record = store.load("K")
    assert record["state"] == "failed" and record["in_flight"] is False
