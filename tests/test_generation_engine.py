"""Generation through the engine: image -> provider -> storefront GLB, regeneration, clean failures."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
from pathlib import Path

import pytest

import meshforge
from meshforge import Engine
from meshforge.generation.pytest_plugin import provider_server  # noqa: F401
from meshforge.generation.store import MemoryJobStore, SqliteJobStore
from meshforge.types import Severity, ValidateStep

meshy = pytest.importorskip("meshforge_provider_meshy")
PHOTO = "gltf/glTF-Transform/BoxTextured_glTF/CesiumLogoFlat.png"
FAST = ["provider.poll_initial_s=0.02", "provider.poll_max_s=0.05", "provider.backoff_s=0.01", "provider.requests_per_s=0.0"]


@pytest.mark.referee
def test_photo_to_storefront_glb_against_the_local_provider(provider_server, corpus, tmp_path):
    from referees import gltf_validator

    overrides = [f"provider.base_url={provider_server.base('meshy')}", *FAST]
    with Engine("image-to-glb", overrides=overrides) as engine:
        report = engine.run(corpus / PHOTO, out_dir=tmp_path, metadata={"title": "Cesium crate"},
                            state=SqliteJobStore(tmp_path / "jobs.sqlite"))
    assert str(report.status) == "pass", [f.to_dict() for f in report.findings]
    glb = next(Path(o.path) for o in report.outputs if o.format == "glb")
    assert gltf_validator(glb)["issues"]["numErrors"] == 0
    (attempt,) = report.attempts
    assert attempt["provenance"]["provider"] == "meshy" and attempt["provenance"]["cost"]["unit"] == "credits"
    assert attempt["provenance"]["job_id"] in provider_server.tasks and provider_server.submissions["meshy"] == 1
    # the request carried the *normalized* image (PNG data URI, padded square), not the original file
    task = provider_server.tasks[attempt["provenance"]["job_id"]]
    assert task.body["image_url"].startswith("data:image/png;base64,")
    dumped = json.dumps(report.to_dict(), default=str)
    assert provider_server.keys["meshy"] not in dumped


class Flaky:
    """A validate step that rejects the first generation attempt only."""

    __name__ = "flaky_plugin"

    @meshforge.hookimpl
    def meshforge_validate_steps(self):
        def check(view, params, ctx):
            if ctx.attempt == 1:
                yield ctx.finding("test.ugly", Severity.ERROR, "first attempt looks wrong")

        return [ValidateStep(name="test.flaky", summary="fails attempt 1", codes=("test.ugly",), check=check)]


def regen_profile(server) -> dict:
    """Meshy against the local server, then the Flaky check; attempt 1's test.ugly asks for attempt 2."""
    return {
        "name": "regen",
        "chain": {"generate": ["provider"], "validate": ["flaky"]},
        "steps": {"provider": {"uses": "meshy.generate", "base_url": server.base("meshy"), "poll_initial_s": 0.02,
                               "backoff_s": 0.01, "requests_per_s": 0.0},
                  "flaky": {"uses": "test.flaky"}},
        "run": {"regenerate_attempts": 2, "regenerate_on": ["test.ugly"]},
    }


def test_an_unacceptable_result_is_regenerated_and_every_attempt_is_recorded(provider_server, corpus):
    profile = regen_profile(provider_server)
    engine = Engine(profile, plugins=[meshy, Flaky()], entry_points=False)
    report = engine.run(corpus / PHOTO, state=MemoryJobStore())
    assert str(report.status) == "pass"
    assert [a["status"] for a in report.attempts] == ["fail", "pass"]
    first, second = (a["provenance"] for a in report.attempts)
    assert first["job_id"] != second["job_id"] and (first["attempt"], second["attempt"]) == (1, 2)
    assert first["cost"]["amount"] == second["cost"]["amount"] == 30
    assert provider_server.submissions["meshy"] == 2


def test_provider_failure_is_an_unusable_report_not_a_crash(provider_server, corpus):
    provider_server.inject("meshy", "download", kind="html", times=20)
    profile = {"name": "x", "chain": {"generate": ["provider"]},
               "steps": {"provider": {"uses": "meshy.generate", "base_url": provider_server.base("meshy"), "max_retries": 1,
                                      "poll_initial_s": 0.02, "backoff_s": 0.01}}}
    store = MemoryJobStore()
    report = Engine(profile, plugins=[meshy], entry_points=False).run(corpus / PHOTO, state=store)
    assert str(report.status) == "unusable" and report.exit_code == 2
    assert [f.code for f in report.findings] == ["generation.bad_download"]
    # the job the provider took (and may bill) is named in the report
    job_ids = {json.loads(raw).get("job_id") for raw in store._data.values()} - {None}
    assert len(job_ids) == 1 and f"provider job {(job_id := job_ids.pop())}" in report.findings[0].message
    # ...and in its attempts, as a report's reader (a cost reconciliation) looks for it
    (attempt,) = report.attempts
    assert attempt["status"] == "unusable" and attempt["errors"] == ["generation.bad_download"]
    assert attempt["provenance"]["job_id"] == job_id and attempt["provenance"]["provider"] == "meshy"
    assert attempt["provenance"]["submissions"] == 1


def test_a_regeneration_that_fails_is_an_attempt_of_the_report(provider_server, corpus):
    class FlakyThenFailing(Flaky):
        """Rejects attempt 1 and has the provider fail the next task: attempt 2's job fails."""

        @meshforge.hookimpl
        def meshforge_validate_steps(self):
            def check(view, params, ctx):
                if ctx.attempt == 1:
                    provider_server.fail_next_task("meshy")
                    yield ctx.finding("test.ugly", Severity.ERROR, "first attempt looks wrong")

            return [ValidateStep(name="test.flaky", summary="fails attempt 1", codes=("test.ugly",), check=check)]

    profile = regen_profile(provider_server)
    report = Engine(profile, plugins=[meshy, FlakyThenFailing()], entry_points=False).run(corpus / PHOTO, state=MemoryJobStore())
    assert str(report.status) == "unusable"
    assert [(a["attempt"], a["status"]) for a in report.attempts] == [(1, "fail"), (2, "unusable")]
    failed = report.attempts[1]
    assert failed["errors"] == ["generation.failed"] and failed["provenance"]["job_id"] in provider_server.tasks
    assert failed["provenance"]["job_id"] != report.attempts[0]["provenance"]["job_id"]


def test_a_generated_model_that_cannot_be_read_keeps_its_job_in_the_report(provider_server, corpus):
    body = b'{"asset": 5}    '  # a well-framed GLB whose JSON is not a glTF document
    provider_server.model = b"glTF" + struct.pack("<III", 2, 20 + len(body), len(body)) + b"JSON" + body
    profile = {"name": "x", "chain": {"generate": ["provider"]},
               "steps": {"provider": {"uses": "meshy.generate", "base_url": provider_server.base("meshy"),
                                      "poll_initial_s": 0.02, "backoff_s": 0.01, "requests_per_s": 0.0}}}
    report = Engine(profile, plugins=[meshy], entry_points=False).run(corpus / PHOTO, state=MemoryJobStore())
    assert str(report.status) == "unusable"
    (attempt,) = report.attempts
    assert attempt["status"] == "unusable" and attempt["errors"] == [report.findings[0].code]
    assert attempt["provenance"]["job_id"] in provider_server.tasks and attempt["provenance"]["cost"]["amount"] == 30


def test_provider_distributions_register_through_entry_points():
    proc = subprocess.run([sys.executable, "-c", "import sys; from meshforge.cli.main import main; sys.argv[0]='meshforge'; "
                           "sys.argv[1:]=['plugins','--json']; main()"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    rows = data if isinstance(data, list) else data.get("plugins", data)
    found = {r["name"]: r for r in rows if r["name"].startswith("provider_")}
    assert set(found) == {"provider_meshy", "provider_tripo", "provider_3daistudio", "provider_stability", "provider_rest"}
    for row in found.values():
        assert row["origin"] == "entry-point" and row["status"] == "active" and row["version"] == "0.1.0"
