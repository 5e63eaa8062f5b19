"""meshforge-provider-tripo against the local provider server (meshforge's tests/provider_server.py)."""

from __future__ import annotations

import base64
import sys
from pathlib import Path

import httpx
import pytest

import meshforge_provider_tripo as plugin
from meshforge import testing
from meshforge.asset import Inputs
from meshforge.errors import InputError
from meshforge.generation.store import MemoryJobStore

CORE_TESTS = Path(__file__).resolve().parents[3] / "tests"
if not (CORE_TESTS / "provider_server.py").is_file():
    pytest.skip("needs meshforge's tests/provider_server.py (run from the meshforge checkout)", allow_module_level=True)
sys.path.insert(0, str(CORE_TESTS))
from provider_server import ProviderServer  # noqa: E402

STEP = plugin.meshforge_generate_steps()[0]


@pytest.fixture
def server(monkeypatch):
    with ProviderServer() as srv:
        for key, value in srv.env().items():
            monkeypatch.setenv(key, value)
        yield srv


@pytest.fixture
def http():
    with httpx.Client() as client:
        yield client


@pytest.fixture
def photo(tmp_path):
    from PIL import Image

    path = tmp_path / "p.png"
    Image.new("RGB", (32, 32), (10, 200, 30)).save(path)
    return path


def run(server, http, inputs, **params):
    values = {"base_url": server.base("tripo"), "poll_initial_s": 0.01, "poll_max_s": 0.05, "backoff_s": 0.01,
              "requests_per_s": 0.0, **params}
    if "tripo" == "rest":
        values.setdefault("api_key_env", "REST_API_KEY")
    p = testing.params_for(STEP, values)
    ctx = testing.step_context(STEP, p, http_factory=lambda: http, state=MemoryJobStore())
    return STEP.generate(inputs, p, ctx)


def test_contract():
    assert testing.check_plugin(plugin) == []


def test_image_to_glb_with_one_submission_despite_a_5xx(server, http, photo):
    server.inject("tripo", "submit", status=503, retry_after=0)
    out = run(server, http, Inputs(id="p", images=(photo,)))
    assert out.data[:4] == b"glTF" and server.submissions["tripo"] == 1
    assert out.provenance["retries"] == 1

def test_tripo_uploads_then_creates_an_image_task(server, http, photo):
    out = run(server, http, Inputs(id="p", images=(photo,)))
    assert server.count("tripo", "upload") == 1
    body = server.tasks[out.provenance["job_id"]].body
    assert body["type"] == "image_to_model" and body["file"]["file_token"]

