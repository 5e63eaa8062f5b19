"""meshforge-provider-3daistudio against the local provider server (meshforge.generation.testing)."""

from __future__ import annotations

import base64

import meshforge_provider_3daistudio as plugin
from meshforge.asset import Inputs
from meshforge.generation.pytest_plugin import ProviderContract, http_client, photo, provider_server, run_provider_step  # noqa: F401

STEP = plugin.meshforge_generate_steps()[0]


class TestContract(ProviderContract):
    plugin = plugin
    provider = "3daistudio"


def test_3daistudio_sends_base64_and_reads_results(provider_server, http_client, photo):
    out = run_provider_step(STEP, provider_server, http_client, Inputs(id="p", images=(photo,)), "3daistudio")
    body = provider_server.tasks[out.provenance["job_id"]].body
    assert base64.b64decode(body["image"]) == photo.read_bytes() and body["enable_pbr"] is True

