"""The generation client against a real local HTTP server speaking each provider's protocol, with faults."""

from __future__ import annotations

import logging

import pytest

from meshforge import testing
from meshforge.asset import Inputs
from meshforge.errors import InputError
from meshforge.generation.client import Api, Limiter, retry_after_seconds
from meshforge.generation.providers import ProviderError
from meshforge.generation.pytest_plugin import http_client, photo, provider_server, run_provider_step  # noqa: F401
from meshforge.generation.store import SqliteJobStore

meshy = pytest.importorskip("meshforge_provider_meshy")
tripo = pytest.importorskip("meshforge_provider_tripo")
studio = pytest.importorskip("meshforge_provider_3daistudio")
stability = pytest.importorskip("meshforge_provider_stability")
rest = pytest.importorskip("meshforge_provider_rest")

FAST = {"poll_initial_s": 0.01, "poll_max_s": 0.05, "backoff_s": 0.01, "backoff_cap_s": 3.0, "request_timeout_s": 2.0,
        "deadline_s": 20.0, "requests_per_s": 0.0}
STEPS = {
    "meshy": (meshy, "meshy"),
    "tripo": (tripo, "tripo"),
    "3daistudio": (studio, "3daistudio"),
    "stability": (stability, "stability"),
    "rest": (rest, "rest"),
}


def step_of(module):
    return module.meshforge_generate_steps()[0]


def generate(module, server, http, inputs, *, store=None, tmp_path=None, attempt=1, **params):
    provider = {"meshforge_provider_meshy": "meshy", "meshforge_provider_tripo": "tripo",
                "meshforge_provider_3daistudio": "3daistudio", "meshforge_provider_stability": "stability",
                "meshforge_provider_rest": "rest"}[module.__name__]
    return run_provider_step(step_of(module), server, http, inputs, provider, store=store, work_dir=tmp_path,
                             attempt=attempt, **{**FAST, **params})


@pytest.mark.parametrize("name", sorted(STEPS))
def test_each_provider_generates_a_glb_with_one_paid_submission(name, provider_server, http_client, photo):
    module, provider = STEPS[name]
    out = generate(module, provider_server, http_client, Inputs(id="sku", images=(photo,)))
    assert out is not None and out.data[:4] == b"glTF"
    assert provider_server.submissions[provider] == 1
    assert out.provenance["provider"] in (provider, "threedaistudio")
    assert out.provenance["submissions"] == 1
    if name != "stability":
        assert out.provenance["job_id"] in provider_server.tasks


def test_provider_steps_pass_the_plugin_contract():
    for module, _ in STEPS.values():
        assert testing.check_plugin(module) == []


def test_inputs_without_image_or_prompt_are_not_for_a_provider(provider_server, http_client):
    assert generate(meshy, provider_server, http_client, Inputs(id="x")) is None
    assert provider_server.requests == []


def test_429_with_retry_after_is_honoured_and_submits_once(provider_server, http_client, photo):
    provider_server.inject("meshy", "submit", status=429, retry_after=1, body={"message": "RateLimitExceeded"})
    out = generate(meshy, provider_server, http_client, Inputs(id="sku", images=(photo,)))
    assert provider_server.count("meshy", "submit") == 2
    assert provider_server.submissions["meshy"] == 1
    assert out.provenance["retries"] >= 1




def test_retry_after_is_honoured_exactly(provider_server, http_client):
    provider_server.inject("rest", "submit", status=503, retry_after=1)
    params = testing.params_for(step_of(rest), {**FAST, "base_url": provider_server.base("rest")})
    api = Api(http_client, rest.Rest(params), params, limiter=Limiter(1, 0), deadline=1e18, key=None)
    provider_server.require_auth = False
    answer = api.request("POST", "/jobs", phase="submit", json={"prompt": "x"})
    assert answer["id"] in provider_server.tasks
    assert api.stats.sleeps == [1.0]


def test_poll_survives_5xx_malformed_json_and_a_slow_answer(provider_server, http_client, photo):
    provider_server.polls_to_finish = 2
    provider_server.inject("tripo", "poll", status=500)
    provider_server.inject("tripo", "poll", kind="malformed")
    provider_server.inject("tripo", "poll", kind="slow", delay=2.5)  # longer than request_timeout_s below
    out = generate(tripo, provider_server, http_client, Inputs(id="sku", images=(photo,)), request_timeout_s=1.0)
    assert out.data[:4] == b"glTF"
    assert provider_server.submissions["tripo"] == 1
    assert out.provenance["retries"] >= 3


def test_tripo_concurrency_code_2000_is_retried(provider_server, http_client, photo):
    provider_server.inject("tripo", "submit", status=429, body={"code": 2000, "message": "concurrency limit"})
    out = generate(tripo, provider_server, http_client, Inputs(id="sku", images=(photo,)))
    assert out is not None and provider_server.submissions["tripo"] == 1


def test_tripo_out_of_credits_fails_cleanly_without_retry(provider_server, http_client, photo):
    provider_server.inject("tripo", "submit", status=403, body={"code": 2010, "message": "credits exhausted"})
    with pytest.raises(InputError) as err:
        generate(tripo, provider_server, http_client, Inputs(id="sku", images=(photo,)))
    assert err.value.code == "generation.rejected"
    assert provider_server.count("tripo", "submit") == 1


def test_a_lost_submit_answer_is_not_resent(provider_server, http_client, photo):
    provider_server.inject("meshy", "submit", kind="drop")
    with pytest.raises(InputError) as err:
        generate(meshy, provider_server, http_client, Inputs(id="sku", images=(photo,)))
    assert err.value.code == "generation.unavailable"
    assert "not resent" in err.value.reason
    assert provider_server.count("meshy", "submit") == 1


def test_a_restart_after_a_lost_submit_answer_reports_it_instead_of_paying_again(provider_server, http_client, photo,
                                                                                tmp_path):
    # the same situation as a kill -9 between sending the submit and recording its answer
    store = tmp_path / "jobs.sqlite"
    provider_server.inject("meshy", "submit", kind="drop")
    with pytest.raises(InputError):
        generate(meshy, provider_server, http_client, Inputs(id="sku", images=(photo,)), store=SqliteJobStore(store))
    with pytest.raises(InputError) as err:  # "the process restarts"
        generate(meshy, provider_server, http_client, Inputs(id="sku", images=(photo,)), store=SqliteJobStore(store))
    assert err.value.code == "generation.unconfirmed_submission"
    assert "may have been accepted and billed" in err.value.reason
    assert provider_server.count("meshy", "submit") == 1
    out = generate(meshy, provider_server, http_client, Inputs(id="sku", images=(photo,)), store=SqliteJobStore(store),
                   force=True)  # a person checked the dashboard and asks for a new one
    assert out.data == provider_server.model and provider_server.count("meshy", "submit") == 2


def test_a_submit_the_provider_refused_may_be_submitted_again_later(provider_server, http_client, photo, tmp_path):
    store = tmp_path / "jobs.sqlite"
    provider_server.inject("meshy", "submit", status=400, body={"message": "bad image"})
    with pytest.raises(InputError):
        generate(meshy, provider_server, http_client, Inputs(id="sku", images=(photo,)), store=SqliteJobStore(store))
    out = generate(meshy, provider_server, http_client, Inputs(id="sku", images=(photo,)), store=SqliteJobStore(store))
    assert out.data == provider_server.model and provider_server.submissions["meshy"] == 1


def test_truncated_download_is_retried(provider_server, http_client, photo):
    provider_server.inject("meshy", "download", kind="truncated")
    out = generate(meshy, provider_server, http_client, Inputs(id="sku", images=(photo,)))
    assert out.data == provider_server.model
    assert provider_server.count("meshy", "download") == 2


def test_html_instead_of_a_model_fails_cleanly(provider_server, http_client, photo):
    provider_server.inject("rest", "download", kind="html", times=10)
    with pytest.raises(InputError) as err:
        generate(rest, provider_server, http_client, Inputs(id="sku", images=(photo,)), max_retries=2)
    assert err.value.code == "generation.bad_download"
    assert "HTML" in err.value.reason
    assert provider_server.submissions["rest"] == 1


def test_download_over_the_size_cap_is_refused(provider_server, http_client, photo):
    with pytest.raises(InputError) as err:
        generate(meshy, provider_server, http_client, Inputs(id="sku", images=(photo,)), max_download_mb=0.0001)
    assert err.value.code == "generation.bad_download"


def test_failed_task_is_a_clean_failure_and_can_be_resubmitted(provider_server, http_client, photo):
    provider_server.fail_next_task("3daistudio", reason="could not segment the object")
    with pytest.raises(InputError) as err:
        generate(studio, provider_server, http_client, Inputs(id="sku", images=(photo,)))
    assert err.value.code == "generation.failed"
    assert "could not segment" in err.value.reason
    provider_server.fail_next_task("3daistudio")
    out = generate(studio, provider_server, http_client, Inputs(id="sku2", images=(photo,)), resubmit_failed=1)
    assert out.provenance["submissions"] == 2


def test_same_input_is_reused_and_force_submits_again(provider_server, http_client, photo, tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite")
    first = generate(meshy, provider_server, http_client, Inputs(id="a", images=(photo,)), store=store)
    again = generate(meshy, provider_server, http_client, Inputs(id="b", images=(photo,)), store=store)
    assert provider_server.submissions["meshy"] == 1
    assert again.provenance["reused"] is True and again.data == first.data
    forced = generate(meshy, provider_server, http_client, Inputs(id="b", images=(photo,)), store=store, force=True)
    assert provider_server.submissions["meshy"] == 2 and forced.provenance["reused"] is False
    regenerated = generate(meshy, provider_server, http_client, Inputs(id="b", images=(photo,)), store=store, attempt=2)
    assert provider_server.submissions["meshy"] == 3 and regenerated.provenance["attempt"] == 2


def test_a_restart_polls_the_persisted_job_instead_of_paying_again(provider_server, http_client, photo, tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite")
    provider_server.task_seconds = 1.5
    with pytest.raises(InputError) as err:
        generate(meshy, provider_server, http_client, Inputs(id="sku", images=(photo,)), store=store, deadline_s=0.3)
    assert err.value.code == "generation.timeout"
    assert provider_server.submissions["meshy"] == 1
    # "the process restarts": a new store object on the same file
    out = generate(meshy, provider_server, http_client, Inputs(id="sku", images=(photo,)), store=SqliteJobStore(tmp_path / "jobs.sqlite"))
    assert provider_server.submissions["meshy"] == 1
    assert out.provenance["job_id"] in provider_server.tasks and out.provenance["submissions"] == 1


def test_missing_key_and_wrong_key_fail_cleanly_without_leaking(provider_server, http_client, photo, monkeypatch, caplog):
    monkeypatch.delenv("MESHY_API_KEY")
    with pytest.raises(InputError) as err:
        generate(meshy, provider_server, http_client, Inputs(id="sku", images=(photo,)))
    assert err.value.code == "generation.no_api_key" and "MESHY_API_KEY" in err.value.reason
    secret = "msy_super_secret_value"
    monkeypatch.setenv("MESHY_API_KEY", secret)
    with caplog.at_level(logging.DEBUG), pytest.raises(InputError) as err:
        generate(meshy, provider_server, http_client, Inputs(id="sku", images=(photo,)))
    assert err.value.code == "generation.auth"
    assert secret not in str(err.value) and secret not in caplog.text


def test_the_key_goes_only_to_the_provider_origin(http_client):
    params = testing.params_for(step_of(meshy), {"base_url": "https://api.example.test/openapi"})
    api = Api(http_client, meshy.Meshy(params), params, limiter=Limiter(1, 0), deadline=1e18, key="k")
    assert api._headers("https://api.example.test/openapi/v1/x", None) == {"Authorization": "Bearer k"}
    assert api._headers("https://cdn.example-bucket.test/model.glb?sig=1", None) == {}


def test_limiter_caps_jobs_in_flight():
    import threading
    import time

    limiter = Limiter(3, 0)
    inside, peak, lock = [0], [0], threading.Lock()

    def job():
        with limiter.slot():
            with lock:
                inside[0] += 1
                peak[0] = max(peak[0], inside[0])
            time.sleep(0.02)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=job) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak[0] == 3


def test_retry_after_parses_seconds_and_http_dates():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 25 Nov 2026 10:00:30 GMT", now=1795600800.0) == pytest.approx(30.0)
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_provider_error_classes():
    p = meshy.Meshy(meshy.MeshyParams())
    assert p.error_from(429, {"message": "NoMoreConcurrentTasks"}).retryable
    assert p.error_from(502, "bad gateway").retryable
    assert p.error_from(402, {"message": "Insufficient credits"}).code == "generation.rejected"
    assert p.error_from(401, {}).code == "generation.auth"
    with pytest.raises(ProviderError):
        raise p.error_from(400, {"message": "bad image"})


def test_the_same_input_started_twice_at_once_is_submitted_once(provider_server, http_client, photo, tmp_path):
    import threading

    provider_server.task_seconds = 0.3
    store = SqliteJobStore(tmp_path / "jobs.sqlite")
    results = []
    threads = [threading.Thread(target=lambda i=i: results.append(
        generate(meshy, provider_server, http_client, Inputs(id=f"dup{i}", images=(photo,)), store=store))) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 3 and provider_server.submissions["meshy"] == 1
    assert sorted(r.provenance["reused"] for r in results) == [False, True, True]


def test_sqlite_claim_lets_one_process_submit(tmp_path):
    a = SqliteJobStore(tmp_path / "jobs.sqlite")
    b = SqliteJobStore(tmp_path / "jobs.sqlite")  # another process's connection
    assert a.claim("k", {"state": "prepared"}) is True
    assert b.claim("k", {"state": "prepared"}) is False
    a.save("k", {"state": "failed"})
    assert b.claim("k", {"state": "prepared"}) is True
    assert a.claim("k", {"state": "prepared"}, stale_s=-1) is True  # a stale "prepared" is taken over


def test_adapter_helpers_shared_by_the_provider_distributions():
    from meshforge.generation.providers import number, url_format

    assert url_format("https://cdn.test/m/model.OBJ?sig=a.b") == "obj"
    assert url_format("https://cdn.test/m/model?sig=a.b") == "glb"  # a dot in the query names no format
    assert number(42) == 42.0 and number("42") is None and number(None) is None
    handle = meshy.Meshy(meshy.MeshyParams()).handle("t-1", "no id", kind="text")
    assert (handle.provider, handle.job_id, dict(handle.extra)) == ("meshy", "t-1", {"kind": "text"})
    for missing in (None, ""):
        with pytest.raises(ProviderError, match="no id") as err:
            tripo.Tripo(tripo.TripoParams()).handle(missing, "no id")
        assert err.value.retryable is False and err.value.code == "generation.unavailable"
