"""meshforge-provider-rest against the local provider server (meshforge.generation.testing)."""

from __future__ import annotations

import base64

import meshforge_provider_rest as plugin
from meshforge.asset import Inputs
from meshforge.generation.pytest_plugin import ProviderContract, http_client, photo, provider_server, run_provider_step  # noqa: F401

STEP = plugin.meshforge_generate_steps()[0]


class TestContract(ProviderContract):
    plugin = plugin
    provider = "rest"


def test_rest_data_uri_transport(provider_server, http_client, photo):
    out = run_provider_step(STEP, provider_server, http_client, Inputs(id="p", images=(photo,)), "rest",
                            transport="json-data-uri")
    assert provider_server.tasks[out.provenance["job_id"]].body["image"].startswith("data:image/png;base64,")

