"""meshforge-provider-tripo against the local provider server (meshforge.generation.testing)."""

from __future__ import annotations

import meshforge_provider_tripo as plugin
from meshforge.asset import Inputs
from meshforge.generation.pytest_plugin import ProviderContract, http_client, photo, provider_server, run_provider_step  # noqa: F401

STEP = plugin.meshforge_generate_steps()[0]


class TestContract(ProviderContract):
    plugin = plugin
    provider = "tripo"


def test_tripo_uploads_then_creates_an_image_task(provider_server, http_client, photo):
    out = run_provider_step(STEP, provider_server, http_client, Inputs(id="p", images=(photo,)), "tripo")
    assert provider_server.count("tripo", "upload") == 1
    body = provider_server.tasks[out.provenance["job_id"]].body
    assert body["type"] == "image_to_model" and body["file"]["file_token"]

