"""meshforge-provider-meshy against the local provider server (meshforge.generation.testing)."""

from __future__ import annotations

import meshforge_provider_meshy as plugin
from meshforge.asset import Inputs
from meshforge.generation.pytest_plugin import ProviderContract, http_client, photo, provider_server, run_provider_step  # noqa: F401

STEP = plugin.meshforge_generate_steps()[0]


class TestContract(ProviderContract):
    plugin = plugin
    provider = "meshy"


def test_meshy_text_to_3d_preview(provider_server, http_client):
    out = run_provider_step(STEP, provider_server, http_client, Inputs(id="t", prompt="a red teapot"), "meshy")
    task = provider_server.tasks[out.provenance["job_id"]]
    assert task.body["mode"] == "preview" and task.body["prompt"] == "a red teapot"

