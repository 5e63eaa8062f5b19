"""Webhooks: HMAC signatures, replay window, and results handed to the waiting job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from meshforge import testing
from meshforge.asset import Inputs
from meshforge.errors import InputError
from meshforge.generation.store import SqliteJobStore
from meshforge.generation.testing import ProviderServer
from meshforge.generation.webhook import SignatureError, Verifier, WebhookReceiver, make_server, sign

rest = pytest.importorskip("meshforge_provider_rest")
SECRET = "whsec-test-0123456789"
CLI = [sys.executable, "-c", "import sys; from meshforge.cli.main import main; sys.argv[0] = 'meshforge'; main()"]


def test_signature_roundtrip_window_and_replay():
    v = Verifier(SECRET, tolerance_s=300)
    body = b'{"id": "job-1", "status": "succeeded"}'
    header = sign(SECRET, body)
    v.verify(header, body)
    with pytest.raises(SignatureError, match="replayed"):
        v.verify(header, body)
    with pytest.raises(SignatureError, match="does not match"):
        v.verify(sign(SECRET, body), body + b" ")
    with pytest.raises(SignatureError, match="does not match"):
        v.verify(sign("other-secret", body), body)
    with pytest.raises(SignatureError, match="window"):
        v.verify(sign(SECRET, body, timestamp=int(time.time()) - 301), body)
    for bad in (None, "", "v1=abc", "t=notanumber,v1=abc"):
        with pytest.raises(SignatureError):
            v.verify(bad, body)


@pytest.fixture
def receiver(tmp_path):
    store = SqliteJobStore(tmp_path / "jobs.sqlite")
    params = testing.params_for(rest.meshforge_generate_steps()[0], {})
    recv = WebhookReceiver(store, {"rest": rest.Rest(params)}, Verifier(SECRET))
    server = make_server(recv)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield recv, f"http://127.0.0.1:{server.server_address[1]}", store
    server.shutdown()
    server.server_close()


def run_rest(server, store, tmp_path, **params):
    spec = rest.meshforge_generate_steps()[0]
    p = testing.params_for(spec, {"base_url": server.base("rest"), "api_key_env": "REST_API_KEY", "poll_initial_s": 0.02,
                                  "poll_max_s": 0.05, "backoff_s": 0.01, "requests_per_s": 0.0, **params})
    with httpx.Client() as http:
        ctx = testing.step_context(spec, p, work_dir=tmp_path, http_factory=lambda: http, state=store)
        return spec.generate(Inputs(id="job", prompt="a teapot"), p, ctx)


def test_a_signed_callback_finishes_the_waiting_job_without_polling(receiver, tmp_path, monkeypatch):
    recv, url, store = receiver
    with ProviderServer(task_seconds=0.3, polls_to_finish=10**6) as server:  # polling alone would never finish
        monkeypatch.setenv("REST_API_KEY", server.keys["rest"])
        server.webhook = (url, SECRET)
        out = run_rest(server, store, tmp_path, webhook=True, webhook_poll_s=3600.0, deadline_s=20.0)
        assert out.data[:4] == b"glTF"
        assert server.webhooks_sent == [204] and recv.accepted == 1
        assert server.count("rest", "poll") == 0 and server.submissions["rest"] == 1


def test_a_callback_with_a_bad_signature_is_refused_and_the_job_falls_back_to_polling(receiver, tmp_path, monkeypatch):
    recv, url, store = receiver
    with ProviderServer(task_seconds=0.2, polls_to_finish=0) as server:
        monkeypatch.setenv("REST_API_KEY", server.keys["rest"])
        server.webhook = (url, SECRET)
        server.webhook_bad_signature = True
        out = run_rest(server, store, tmp_path, webhook=True, webhook_poll_s=1.0, deadline_s=20.0)
        assert out.data[:4] == b"glTF"
        deadline = time.monotonic() + 5
        while not server.webhooks_sent and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.webhooks_sent == [401] and recv.rejected == 1 and recv.accepted == 0
        assert server.count("rest", "poll") >= 1


def test_receiver_rejects_unknown_providers_garbage_and_oversized_bodies(receiver):
    recv, url, _ = receiver
    body = json.dumps({"id": "x", "status": "done"}).encode()
    assert httpx.post(f"{url}/webhook/nobody", content=body, headers={"X-Meshforge-Signature": sign(SECRET, body)}).status_code == 404
    junk = b"not json"
    assert httpx.post(f"{url}/webhook/rest", content=junk, headers={"X-Meshforge-Signature": sign(SECRET, junk)}).status_code == 400
    assert httpx.post(f"{url}/webhook/rest", content=b"x" * (1024 * 1024 + 1)).status_code == 413
    assert httpx.post(f"{url}/webhook/rest", content=body).status_code == 401


def test_a_timed_out_webhook_job_reports_cleanly(receiver, tmp_path, monkeypatch):
    _, url, store = receiver
    with ProviderServer(task_seconds=30, polls_to_finish=10**6) as server:
        monkeypatch.setenv("REST_API_KEY", server.keys["rest"])
        with pytest.raises(InputError) as err:
            run_rest(server, store, tmp_path, webhook=True, webhook_poll_s=3600.0, deadline_s=0.5)
        assert err.value.code == "generation.timeout"


def test_cli_webhook_serve_answers_and_refuses_to_start_without_a_secret(tmp_path):
    env = {**os.environ, "MESHFORGE_WEBHOOK_SECRET": ""}
    proc = subprocess.run([*CLI, "webhook", "serve", "--store", str(tmp_path / "s.db")],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2 and "MESHFORGE_WEBHOOK_SECRET" in proc.stderr
    env["MESHFORGE_WEBHOOK_SECRET"] = SECRET
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([*CLI, "webhook", "serve", "--store", str(tmp_path / "s.db"),
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        body = json.dumps({"id": "job-9", "status": "succeeded", "model_url": "https://cdn.test/m.glb"}).encode()
        r = httpx.post(f"http://127.0.0.1:{port}/webhook/rest", content=body, headers={"X-Meshforge-Signature": sign(SECRET, body)})
        assert r.status_code == 204
        assert SqliteJobStore(tmp_path / "s.db").load("webhook:rest:job-9")["state"] == "succeeded"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
