"""meshforge batch: catalogs, durable state, crash isolation, kill -9 and resume, Dask, the CLI."""

from __future__ import annotations

import collections

import csv
import hashlib
import json
import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import model_rows

from meshforge.batch import Batch, StateStore, read_catalog, status
from meshforge.batch.store import BatchStore

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # workers import the support plugin by module name
from test_batch_support import PROFILE, PROFILE_TOML  # noqa: E402

PLUGIN = "test_batch_support"


def corpus_jobs(corpus: Path, n: int = 30, max_bytes: int = 200_000) -> list[dict[str, str]]:
    rows = [r for r in model_rows() if int(r["bytes"]) <= max_bytes and r["format"] != "gltf"]
    rows.sort(key=lambda r: r["path"])
    out = []
    for r in rows[:n]:
        job_id = re.sub(r"[^A-Za-z0-9._-]", "_", r["path"])
        out.append({"id": job_id, "model": str(corpus / r["path"]), "title": Path(r["path"]).stem, "category": r["format"]})
    assert len(out) == n, f"corpus has only {len(out)} small model files"
    return out


def write_csv(path: Path, rows: list[dict[str, object]]) -> Path:
    cols: list[str] = []
    for r in rows:
        cols += [c for c in r if c not in cols]
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_outputs_valid(out: Path) -> None:
    """Every recorded output exists with its recorded hash, loads, and nothing half-written is left."""
    import trimesh

    store = BatchStore(out, create=False)
    try:
        for job in store.jobs(status="done"):
            for o in job.outputs:
                p = Path(o["path"])
                assert p.is_file(), p
                assert sha256(p) == o["sha256"]
                if p.suffix == ".stl":  # complete binary STL: 80-byte header, count, 50 bytes per facet
                    data = p.read_bytes()
                    assert len(data) == 84 + 50 * int.from_bytes(data[80:84], "little"), p
                trimesh.load(p)
    finally:
        store.close()
    leftovers = [p for p in (out / "jobs").rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []


# --- catalogs -------------------------------------------------------------------------------------


def test_csv_catalog_reports_bad_rows_with_row_numbers(tmp_path: Path, corpus: Path) -> None:
    cube = corpus / "stl/trimesh/20mm-xyz-cube.stl"
    text = (
        "id,model,prompt,title,height_mm\n"
        f"ok,{cube},,Cube,20\n"                       # line 2
        ",{cube},,No id,\n"                           # line 3: missing id
        f"ok,{cube},,Again,\n"                        # line 4: duplicate id
        "gone,missing.stl,,Gone,\n"                   # line 5: file not found
        f"both,{cube},a chair,Both,\n"                # line 6: model and prompt
        f"tall,{cube},,Tall,-3\n"                     # line 7: bad value
        f"../up,{cube},,Bad id,\n"                    # line 8: unsafe id
        "short,x\n"                                   # line 9: wrong field count
        "chair,,a wooden chair,Chair,450\n"           # line 10: ok (prompt)
    ).replace("{cube}", str(cube))
    cat = read_catalog(write_text(tmp_path / "c.csv", text))
    assert [j.id for j in cat.jobs] == ["ok", "chair"]
    assert cat.jobs[0].metadata == {"title": "Cube", "height_mm": 20}
    assert cat.jobs[1].kind == "prompt" and cat.jobs[1].generates
    found = {p.row: p.reason for p in cat.problems}
    assert sorted(found) == [3, 4, 5, 6, 7, 8, 9]
    assert "missing id" in found[3]
    assert "duplicate id" in found[4] and "row 2" in found[4]
    assert "not found" in found[5]
    assert "exactly one" in found[6]
    assert "height_mm" in found[7]
    assert "id must be" in found[8]
    assert "fields" in found[9]


def write_text(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_jsonl_catalog_relative_paths_and_bad_lines(tmp_path: Path, corpus: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "cube.stl").write_bytes((corpus / "stl/trimesh/20mm-xyz-cube.stl").read_bytes())
    lines = [
        json.dumps({"id": "a", "model": "m/cube.stl", "dimensions": {"w": 20}}),
        "{not json",
        json.dumps(["a", "list"]),
        json.dumps({"id": "b", "image": ["m/cube.stl"]}),
        json.dumps({"id": "c"}),
    ]
    cat = read_catalog(write_text(tmp_path / "c.jsonl", "\n".join(lines) + "\n"))
    assert [j.id for j in cat.jobs] == ["a", "b"]
    assert cat.jobs[0].model == str(tmp_path / "m" / "cube.stl")
    assert cat.jobs[0].metadata["dimensions"] == {"w": 20}
    assert cat.jobs[1].images == (str(tmp_path / "m" / "cube.stl"),)
    assert {p.row for p in cat.problems} == {2, 3, 5}


def test_catalog_without_id_column_is_unusable(tmp_path: Path) -> None:
    from meshforge.errors import InputError

    with pytest.raises(InputError, match="'id'"):
        read_catalog(write_text(tmp_path / "c.csv", "name,model\nx,y.stl\n"))


def test_state_store_survives_processes_and_pickling(tmp_path: Path) -> None:
    BatchStore(tmp_path).close()
    store = StateStore(tmp_path / "batch.sqlite")
    store.save("gen:chair", {"provider": "local", "job_id": "j-1"})
    clone = pickle.loads(pickle.dumps(store))
    assert clone.load("gen:chair") == {"provider": "local", "job_id": "j-1"}
    code = (
        "import sys; from meshforge.batch import StateStore;"
        "s = StateStore(sys.argv[1]); r = s.load('gen:chair'); s.save('gen:chair', {**r, 'status': 'done'})"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "batch.sqlite")], check=True)
    assert store.load("gen:chair") == {"provider": "local", "job_id": "j-1", "status": "done"}
    assert store.load("nothing") is None


# --- running --------------------------------------------------------------------------------------


def test_thirty_corpus_jobs_in_worker_processes_then_rerun_skips_them(tmp_path: Path, corpus: Path) -> None:
    jobs = corpus_jobs(corpus)
    catalog = write_csv(tmp_path / "catalog.csv", jobs)
    out = tmp_path / "out"
    seen: list[str] = []
    with Batch(catalog, out_dir=out, profile=PROFILE, plugins=[PLUGIN], entry_points=False, workers=2) as batch:
        summary = batch.run(on_result=lambda r: seen.append(r.id))
    assert sorted(seen) == sorted(j["id"] for j in jobs)
    assert summary.counts["done"] == 30 and summary.counts["failed"] == 0
    assert summary.verdicts.get("pass", 0) >= 10  # some corpus files are corrupt on purpose: unusable, not crashes
    # Worker processes give what a plain loop over Engine.run gives, job for job.
    from meshforge import Engine
    from meshforge.batch import JobSpec

    engine = Engine(PROFILE, entry_points=False, plugins=[__import__(PLUGIN)])
    store = BatchStore(out, create=False)
    for job in store.jobs():
        report = engine.run(JobSpec.from_dict(job.spec.to_dict()).inputs(), out_dir=tmp_path / "seq" / job.id)
        assert job.verdict == str(report.status), job.id
        assert [o["sha256"] for o in job.outputs] == [o.sha256 for o in report.outputs], job.id
    store.close()
    assert summary.peak_worker_rss_mb and summary.peak_worker_rss_mb > 10
    assert_outputs_valid(out)
    # Two worker processes did the work, each built its engine once.
    assert len({r.worker for r in BatchStore(out, create=False).jobs()}) == 2

    data = json.loads((out / "summary.json").read_text())
    assert data["total"] == 30 and len(data["jobs"]) == 30
    with (out / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert {r["id"] for r in rows} == {j["id"] for j in jobs}
    passed = [r for r in rows if r["verdict"] == "pass"]
    assert all(r["outputs"].endswith(".stl") and len(r["sha256"]) == 64 for r in passed)
    per_job = json.loads(Path(passed[0]["report"]).read_text())
    assert per_job["status"] == "pass" and per_job["input"]["id"] == passed[0]["id"]

    # Same command again: nothing runs, nothing changes.
    with Batch(catalog, out_dir=out, profile=PROFILE, plugins=[PLUGIN], entry_points=False, workers=2) as batch:
        assert list(batch.results()) == []
    # A changed row is a new job; the others stay done.
    jobs[0]["title"] = "renamed"
    write_csv(catalog, jobs)
    with Batch(catalog, out_dir=out, profile=PROFILE, plugins=[PLUGIN], entry_points=False, workers=0) as batch:
        assert [r.id for r in batch.results()] == [jobs[0]["id"]]


def test_a_crashing_or_stuck_job_fails_alone_and_the_batch_goes_on(tmp_path: Path, corpus: Path) -> None:
    cube = str(corpus / "stl/trimesh/20mm-xyz-cube.stl")
    rows = [
        {"id": "a", "model": cube},
        {"id": "exits", "model": cube, "crash": "exit"},
        {"id": "b", "model": cube},
        {"id": "segfaults", "model": cube, "crash": "segv"},
        {"id": "stuck", "model": cube, "sleep_s": 60},
        {"id": "raises", "model": cube, "crash": "raise"},
        {"id": "c", "model": cube},
    ]
    catalog = write_csv(tmp_path / "c.csv", rows)
    out = tmp_path / "out"
    with Batch(catalog, out_dir=out, profile=PROFILE, plugins=[PLUGIN], entry_points=False, workers=2, job_timeout=4) as batch:
        results = {r.id: r for r in batch.results()}
    assert {k for k, r in results.items() if r.status == "done" and r.verdict == "pass"} == {"a", "b", "c"}
    assert results["exits"].status == "failed" and "exit code 7" in (results["exits"].error or "")
    assert results["segfaults"].status == "failed" and "SIGSEGV" in (results["segfaults"].error or "")
    assert results["stuck"].status == "failed" and "time limit" in (results["stuck"].error or "")
    # A step that raises is isolated by the engine: the job is done, its verdict says what happened.
    assert results["raises"].status == "done" and "engine.step_failed" in results["raises"].errors

    # status lists the failures with their reasons; retry runs only them again.
    res = CliRunner().invoke(cli(), ["batch", "status", str(out), "--json"])
    assert res.exit_code == 1, res.output
    data = json.loads(res.output)
    assert data["counts"]["failed"] == 3
    assert {f["id"]: f["reason"] for f in data["failures"] if f["status"] == "failed"}["stuck"].startswith("ran past")
    res = CliRunner().invoke(cli(), ["batch", "status", str(out)])
    assert "7 jobs: 4 done" in res.output and "jobs/min" not in res.output  # status runs nothing: no rate (it said 0.0)
    res = CliRunner().invoke(cli(), ["batch", "retry", str(out), "--jsonl", "-j", "1", "--job-timeout", "2"])
    lines = [json.loads(x) for x in res.output.splitlines()]
    assert sorted(x["id"] for x in lines if x["event"] == "job") == ["exits", "segfaults", "stuck"]
    assert BatchStore(out, create=False).job("a").attempts == 1  # type: ignore[union-attr]


# --- throughput: thread pools, order, early stop, CPU accounting ----------------------------------


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "GOTO_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
               "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def test_worker_thread_pools_get_their_share_of_the_cores(tmp_path: Path, corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    for var in THREAD_VARS:
        monkeypatch.delenv(var, raising=False)  # workers inherit the environment: no user setting here
    cube = str(corpus / "stl/trimesh/20mm-xyz-cube.stl")
    probe = tmp_path / "probe"
    probe.mkdir()
    with_open3d = importlib.util.find_spec("open3d") is not None
    rows = [{"id": f"j{i}", "model": cube, "probe": str(probe), "open3d": int(with_open3d)} for i in range(6)]
    catalog = write_csv(tmp_path / "c.csv", rows)
    with Batch(catalog, out_dir=tmp_path / "out", profile=PROFILE, plugins=[PLUGIN], entry_points=False, workers=2) as batch:
        assert batch.run().counts["done"] == 6
    share = max(1, len(os.sched_getaffinity(0)) // 2)
    seen = [json.loads(p.read_text()) for p in probe.glob("*.json")]
    assert len(seen) == 6
    for s in seen:
        assert s["env"] == {"OMP_NUM_THREADS": str(share), "OPENBLAS_NUM_THREADS": str(share), "MKL_NUM_THREADS": str(share)}
        assert s["openblas"] in (None, share)  # None: numpy built on another BLAS
    if with_open3d:  # open3d's pool is sized once a job has imported it: every later job in that worker
        by_pid: dict[int, list[dict]] = collections.defaultdict(list)
        for s in sorted(seen, key=lambda s: s["t"]):
            by_pid[s["pid"]].append(s)
        later = [s["open3d"] for jobs in by_pid.values() for s in jobs[1:]]
        assert later and set(later) == {share}


def test_limit_native_threads_tells_a_loaded_openblas_and_keeps_what_the_user_set() -> None:
    code = (
        "import json, numpy\n"
        "from meshforge.batch.worker import limit_native_threads\n"
        "from test_batch_support import openblas_threads\n"
        "before = openblas_threads()\n"
        "done = limit_native_threads(1)\n"
        "print(json.dumps([before, openblas_threads(), done]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])

    def run(extra: dict[str, str]) -> list:
        out = subprocess.run([sys.executable, "-c", code], env={**env, **extra}, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    before, after, done = run({})
    if before is None:
        pytest.skip("numpy is not built on OpenBLAS")
    assert after == 1 and done["openblas"]
    assert done["env"]["OMP_NUM_THREADS"] == "1" and done["env"]["OPENBLAS_NUM_THREADS"] == "1"
    # A variable the user set wins: neither it nor the loaded OpenBLAS is touched.
    before, after, done = run({"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"})
    assert after == before and done["openblas"] == []
    assert "OMP_NUM_THREADS" not in done["env"] and done["env"]["MKL_NUM_THREADS"] == "1"


def test_jobs_run_largest_input_first(tmp_path: Path, corpus: Path) -> None:
    from meshforge.batch import JobSpec
    from meshforge.batch.executors import largest_first

    files = {name: tmp_path / f"{name}.bin" for name in "abcd"}
    for name, size in zip("abcd", (10, 30, 20, 30)):
        files[name].write_bytes(b"x" * size)
    specs = [JobSpec(id=n, row=i, kind="model", model=str(files[n])) for i, n in enumerate("abcd")]
    specs.insert(1, JobSpec(id="gone", row=9, kind="model", model=str(tmp_path / "missing.stl")))
    assert [s.id for s in largest_first(specs)] == ["b", "d", "c", "a", "gone"]  # equal sizes keep catalog order

    # The local workers take them in that order (one worker: the order they finish in).
    jobs = corpus_jobs(corpus, n=6)
    catalog = write_csv(tmp_path / "c.csv", jobs)
    with Batch(catalog, out_dir=tmp_path / "out", profile=PROFILE, plugins=[PLUGIN], entry_points=False, workers=1) as batch:
        order = [r.id for r in batch.results()]
    by_size = sorted(jobs, key=lambda j: -os.path.getsize(j["model"]))
    assert order == [j["id"] for j in by_size] and order != [j["id"] for j in jobs]


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads process states from /proc")
def test_a_worker_with_nothing_left_to_do_exits_while_the_last_job_runs(tmp_path: Path, corpus: Path) -> None:
    cube = str(corpus / "stl/trimesh/20mm-xyz-cube.stl")
    catalog = write_csv(tmp_path / "c.csv", [{"id": "long", "model": cube, "sleep_s": 4}, {"id": "short", "model": cube}])

    def exited(pid: int) -> bool:  # gone, or a zombie its parent has not reaped yet
        try:
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in ("Z", "X")
        except FileNotFoundError:
            return True

    with Batch(catalog, out_dir=tmp_path / "out", profile=PROFILE, plugins=[PLUGIN], entry_points=False, workers=2) as batch:
        results = batch.results()
        short = next(results)
        long = next(results)
        assert (short.id, long.id) == ("short", "long") and short.worker != long.worker
        assert exited(int(short.worker.rpartition(":")[2]))  # stopped as soon as the queue was empty
        assert not exited(int(long.worker.rpartition(":")[2]))  # still up until the batch ends
        assert list(results) == []
        assert batch.store.counts()["done"] == 2
    assert_outputs_valid(tmp_path / "out")


def test_each_result_carries_the_cpu_time_its_job_used(tmp_path: Path, corpus: Path) -> None:
    cube = str(corpus / "stl/trimesh/20mm-xyz-cube.stl")
    catalog = write_csv(tmp_path / "c.csv", [{"id": "spins", "model": cube, "spin_s": 0.6},
                                             {"id": "sleeps", "model": cube, "sleep_s": 0.6}])
    with Batch(catalog, out_dir=tmp_path / "out", profile=PROFILE, plugins=[PLUGIN], entry_points=False, workers=1) as batch:
        res = {r.id: r for r in batch.results()}
    spins, sleeps = res["spins"], res["sleeps"]
    assert spins.cpu_seconds is not None and spins.cpu_seconds >= 0.55
    assert sleeps.cpu_seconds is not None and sleeps.seconds is not None and sleeps.cpu_seconds < sleeps.seconds - 0.4
    assert spins.to_dict()["cpu_seconds"] == spins.cpu_seconds


def cli():  # type: ignore[no-untyped-def]
    from meshforge.cli.main import main

    return main


def test_kill_9_mid_run_then_rerun_finishes_every_job_exactly_once(tmp_path: Path, corpus: Path) -> None:
    jobs = corpus_jobs(corpus)
    for j in jobs:
        j["sleep_s"] = 0.15  # slow enough that the kill lands mid-run
    catalog = write_csv(tmp_path / "catalog.csv", jobs)
    profile = write_text(tmp_path / "batch-test.toml", PROFILE_TOML)
    out = tmp_path / "out"
    cmd = [sys.executable, "-c", "from meshforge.cli.main import main; main()", "batch", str(catalog), "-p", str(profile), "--out", str(out),
           "--plugin", PLUGIN, "-j", "2", "--quiet"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    db = out / "batch.sqlite"
    done_at_kill = 0
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if db.is_file():
                try:
                    with sqlite3.connect(db, timeout=1) as conn:
                        done_at_kill = conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'done'").fetchone()[0]
                except sqlite3.OperationalError:
                    done_at_kill = 0
                if done_at_kill >= 5:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, proc.communicate()
        os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and its workers, as a crash would
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert 5 <= done_at_kill < 30
    with sqlite3.connect(db) as conn:
        counts = dict(conn.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall())
    assert counts.get("done", 0) < 30

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode in (0, 1), rerun.stderr
    store = BatchStore(out, create=False)
    done_events: dict[str, int] = {}
    for e in store.events():
        if e["event"] == "done":
            done_events[e["id"]] = done_events.get(e["id"], 0) + 1
    assert done_events == {j["id"]: 1 for j in jobs}  # every job finished exactly once over both runs
    assert store.counts()["done"] == 30
    store.close()
    assert_outputs_valid(out)


def test_cli_runs_a_catalog_and_reports_bad_rows(tmp_path: Path, corpus: Path) -> None:
    cube = corpus / "stl/trimesh/20mm-xyz-cube.stl"
    catalog = write_text(tmp_path / "c.csv", f"id,model\none,{cube}\none,{cube}\ntwo,nowhere.stl\n")
    profile = write_text(tmp_path / "p.toml", PROFILE_TOML)
    out = tmp_path / "out"
    res = CliRunner().invoke(cli(), ["batch", str(catalog), "-p", str(profile), "--plugin", PLUGIN, "--out", str(out),
                                     "-j", "0", "--jsonl"])
    assert res.exit_code == 1, res.output  # bad rows make the batch exit 1 even when every job passed
    events = [json.loads(x) for x in res.output.splitlines()]
    assert [(e["row"], e["id"]) for e in events if e["event"] == "bad_row"] == [(3, "one"), (4, "two")]
    jobs = [e for e in events if e["event"] == "job"]
    assert [(e["id"], e["verdict"]) for e in jobs] == [("one", "pass")]
    assert Path(jobs[0]["outputs"][0]["path"]).is_file()
    # Another profile into the same folder is refused (exit 2), not mixed in.
    res = CliRunner().invoke(cli(), ["batch", str(catalog), "-p", "fdm-print-stl", "--out", str(out)])
    assert res.exit_code == 2 and "holds a batch" in res.output
    assert status(out).counts["done"] == 1


# --- Dask -----------------------------------------------------------------------------------------


def test_dask_executor_gives_the_same_outputs_as_local_processes(tmp_path: Path, corpus: Path) -> None:
    distributed = pytest.importorskip("distributed")
    catalog = write_csv(tmp_path / "catalog.csv", corpus_jobs(corpus, n=8))
    profile = write_text(tmp_path / "plain.toml", "schema = 1\nname = \"plain\"\nsummary = \"s\"\n[chain]\n"
                         "generate = [\"import\"]\nexport = [\"stl\"]\n[steps.import]\n[steps.stl]\n")

    def outcome(out: Path) -> dict[str, tuple[str | None, list[str]]]:
        store = BatchStore(out, create=False)
        try:
            return {j.id: (j.verdict, [o["sha256"] for o in j.outputs]) for j in store.jobs()}
        finally:
            store.close()

    with Batch(catalog, out_dir=tmp_path / "local", profile=str(profile), entry_points=False, workers=2) as b:
        local = b.run()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  host="127.0.0.1") as cluster:
        with Batch(catalog, out_dir=tmp_path / "dask", profile=str(profile), entry_points=False, executor="dask",
                   scheduler=cluster.scheduler_address) as b:
            remote = b.run()
    assert local.counts == remote.counts and remote.counts["done"] == 8
    assert outcome(tmp_path / "local") == outcome(tmp_path / "dask")
    assert_outputs_valid(tmp_path / "dask")


# --- generation: kill -9 while provider jobs are in flight ----------------------------------------


GEN_PROFILE = """\
schema = 1
name = "batch-gen"
summary = "prompt -> meshy (local test server) -> STL"
[chain]
generate = ["gen"]
export = ["stl"]
[steps.gen]
uses = "meshy.generate"
base_url = "{base}"
poll_initial_s = 0.05
poll_max_s = 0.1
backoff_s = 0.01
request_timeout_s = 5.0
timeout_s = 60.0
requests_per_s = 0.0
[steps.stl]
"""


def test_kill_9_with_generation_in_flight_never_pays_twice(tmp_path: Path) -> None:
    pytest.importorskip("meshforge_provider_meshy")
    from provider_server import ProviderServer

    n = 16
    catalog = write_csv(tmp_path / "catalog.csv", [{"id": f"sku-{i:02d}", "prompt": f"a wooden chair, style {i}",
                                                   "title": f"Chair {i}"} for i in range(n)])
    with ProviderServer(task_seconds=0.8) as server:
        profile = write_text(tmp_path / "gen.toml", GEN_PROFILE.format(base=server.base("meshy")))
        out = tmp_path / "out"
        cmd = [sys.executable, "-c", "from meshforge.cli.main import main; main()", "batch", str(catalog), "-p", str(profile),
               "--out", str(out), "-j", "2", "--generate-concurrency", "4", "--quiet"]
        env = {**os.environ, **server.env()}
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        db = out / "batch.sqlite"
        try:
            # Kill once some jobs are done AND others are paid for but unfinished: the state under test.
            # Waiting for a fixed count alone raced on a slow machine, where the kill could land between
            # one wave of generations finishing and the next being submitted.
            deadline = time.monotonic() + 120
            done = 0
            while time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
                if db.is_file():
                    try:
                        with sqlite3.connect(db, timeout=1) as conn:
                            done = conn.execute("SELECT COUNT(*) FROM jobs WHERE status = 'done'").fetchone()[0]
                    except sqlite3.OperationalError:
                        continue
                    if done >= 2 and done < server.submissions["meshy"] < n:
                        break
            assert proc.poll() is None, proc.communicate()
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        paid_at_kill = server.submissions["meshy"]
        assert done < paid_at_kill < n  # jobs were submitted and still in flight when the batch died

        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        paid = collections.Counter(str(t.body.get("prompt")) for t in server.tasks.values() if t.provider == "meshy")
    # Never paid twice, whatever instant the kill hit.
    assert max(paid.values()) == 1, paid
    store = BatchStore(out, create=False)
    verdicts = store.verdicts()
    assert store.counts()["done"] == n
    store.close()
    # A job killed between sending its submit and recording the provider's answer cannot know whether
    # it was billed: it is reported (generation.unconfirmed_submission), not submitted again. Every
    # other job finished, each paid exactly once.
    unconfirmed = {str(p.relative_to(out)) for p in out.rglob("*.report.json")
                   if "generation.unconfirmed_submission" in {f["code"] for f in json.loads(p.read_text())["findings"]}}
    assert verdicts.get("pass", 0) == n - len(unconfirmed) and verdicts.get("unusable", 0) == len(unconfirmed)
    assert len(unconfirmed) <= 4  # at most the jobs in the middle of a submit at the kill (4 generation slots)
    assert (rerun.returncode == 0) == (not unconfirmed), rerun.stderr
    assert len(paid) >= n - len(unconfirmed)
    assert_outputs_valid(out)


def test_a_script_starting_a_batch_without_a_main_guard_is_told_how_to_fix_it(tmp_path):
    """Workers are spawned and import the main script; without the guard each one starts the batch
    again and dies. The error says what to write (docs/batch.md's example once lacked the guard)."""
    from meshforge import testing

    part = tmp_path / "cube.stl"
    part.write_bytes(testing.cube(20.0).export(file_type="stl"))
    script = tmp_path / "unguarded.py"
    script.write_text("from meshforge.batch import Batch\n"
                      f"Batch([{{'id': 'c', 'model': {str(part)!r}}}], profile='fdm-print-stl', out_dir={str(tmp_path / 'out')!r}, workers=1).run()\n")
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode != 0
    assert "batch workers die while starting" in proc.stderr and 'if __name__ == "__main__":' in proc.stderr


def test_two_rows_with_one_input_share_one_paid_job(tmp_path: Path, monkeypatch) -> None:
    """Two catalog rows with the same prompt are one provider job. While the first worker waits out a
    429, the second must follow it: it was reported "unconfirmed ... by a run that stopped"."""
    pytest.importorskip("meshforge_provider_meshy")
    from meshforge.generation.testing import ProviderServer

    catalog = write_csv(tmp_path / "catalog.csv", [{"id": "sku-a", "prompt": "a wooden chair"},
                                                   {"id": "sku-b", "prompt": "a wooden chair"}])
    with ProviderServer(task_seconds=1.0) as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        server.inject("meshy", "submit", status=429, retry_after=3)
        profile = write_text(tmp_path / "gen.toml", GEN_PROFILE.format(base=server.base("meshy")))
        with Batch(catalog, out_dir=tmp_path / "out", profile=str(profile), workers=2, generate_concurrency=2) as b:
            summary = b.run()
        assert summary.verdicts == {"pass": 2}, [f for f in summary.failures]
        assert server.submissions["meshy"] == 1


def test_retry_resubmit_submits_an_unconfirmed_generation_again_for_the_named_job_only(tmp_path: Path, monkeypatch) -> None:
    """`force = true` for one job of a batch: after lost submit answers the jobs are reported, retried
    plainly they are reported again (never paid twice), and `retry --id X --resubmit` submits X anew,
    and only X."""
    pytest.importorskip("meshforge_provider_meshy")
    from meshforge.cli.main import main as cli
    from meshforge.generation.testing import ProviderServer

    catalog = write_csv(tmp_path / "catalog.csv", [{"id": "chair", "prompt": "a wooden chair"},
                                                   {"id": "stool", "prompt": "a stool"},
                                                   {"id": "table", "prompt": "a table"}])
    out = tmp_path / "out"
    runner = CliRunner()
    with ProviderServer() as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        profile = write_text(tmp_path / "gen.toml", GEN_PROFILE.format(base=server.base("meshy")))
        server.inject("meshy", "submit", kind="drop", times=2)  # the first two submits' answers are lost
        with Batch(catalog, out_dir=out, profile=str(profile), entry_points=True, workers=0) as b:
            first = b.run()
        assert first.verdicts == {"pass": 1, "unusable": 2} and server.submissions["meshy"] == 1
        store = BatchStore(out, create=False)
        lost = sorted(j.id for j in store.jobs() if j.verdict == "unusable")
        passed = next(j.id for j in store.jobs() if j.verdict == "pass")
        store.close()

        plain = runner.invoke(cli, ["batch", "retry", str(out), "--id", lost[0], "-j", "0", "-q"])
        assert plain.exit_code != 0 and server.count("meshy", "submit") == 3  # the lost one is not sent again
        store = BatchStore(out, create=False)
        assert store.job(lost[0]).errors == ["generation.unconfirmed_submission"]  # type: ignore[union-attr]
        store.close()

        refused = runner.invoke(cli, ["batch", "retry", str(out), "--resubmit", "-j", "0", "-q"])
        assert refused.exit_code == 2 and "give --id for each" in refused.output
        nothing = runner.invoke(cli, ["batch", "retry", str(out), "--id", passed, "--resubmit", "-j", "0", "-q"])
        assert nothing.exit_code == 2 and f"{passed}: has no unconfirmed generation" in nothing.output
        again = runner.invoke(cli, ["batch", "retry", str(out), "--id", lost[0], "--resubmit", "-j", "0", "-q"])
        assert again.exit_code != 0  # the other lost job still fails the batch
        assert f"released {lost[0]}'s unconfirmed generation" in again.output
        assert server.submissions["meshy"] == 2 and server.count("meshy", "submit") == 4
    store = BatchStore(out, create=False)
    assert {j.id: j.verdict for j in store.jobs()} == {passed: "pass", lost[0]: "pass", lost[1]: "unusable"}
    store.close()

