"""meshforge-provider-stability against the local provider server (meshforge.generation.testing)."""

from __future__ import annotations

import pytest

import meshforge_provider_stability as plugin
from meshforge.asset import Inputs
from meshforge.errors import InputError
from meshforge.generation.pytest_plugin import ProviderContract, http_client, photo, provider_server, run_provider_step  # noqa: F401

STEP = plugin.meshforge_generate_steps()[0]


class TestContract(ProviderContract):
    plugin = plugin
    provider = "stability"


def test_stability_html_answer_is_a_failed_generation(provider_server, http_client, photo):
    provider_server.inject("stability", "submit", kind="html")
    with pytest.raises(InputError) as err:
        run_provider_step(STEP, provider_server, http_client, Inputs(id="p", images=(photo,)), "stability")
    assert err.value.code == "generation.bad_download"

