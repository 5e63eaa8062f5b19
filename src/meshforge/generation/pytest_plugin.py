"""pytest fixtures for provider-plugin tests, over :class:`~meshforge.generation.testing.ProviderServer`.

Not registered globally: a test module imports what it uses, by name, so pytest finds the fixtures::

    from meshforge.generation.pytest_plugin import ProviderContract, http_client, photo, provider_server  # noqa: F401

    class TestContract(ProviderContract):  # the tests every provider distribution passes
        plugin = meshforge_provider_meshy
        provider = "meshy"

    def test_text_to_3d(provider_server, http_client):
        out = run_provider_step(STEP, provider_server, http_client, Inputs(id="t", prompt="a teapot"), "meshy")
        assert provider_server.tasks[out.provenance["job_id"]].body["mode"] == "preview"

``provider`` is the server's route name (``meshy``, ``tripo``, ``3daistudio``, ``stability``, ``rest``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import httpx
import pytest

from meshforge import testing
from meshforge.asset import Inputs
from meshforge.generation.store import MemoryJobStore
from meshforge.generation.testing import KEY_ENV, ProviderServer
from meshforge.types import Generated, GenerateStep

# Poll and back off in hundredths of a second, no request pacing: a job against the local server takes milliseconds.
FAST_PARAMS: dict[str, Any] = {"poll_initial_s": 0.01, "poll_max_s": 0.05, "backoff_s": 0.01, "requests_per_s": 0.0}


@pytest.fixture
def provider_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProviderServer]:
    """A started ProviderServer; each provider's API-key variable holds the server's test key."""
    with ProviderServer() as srv:
        for key, value in srv.env().items():
            monkeypatch.setenv(key, value)
        yield srv


@pytest.fixture
def http_client() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A 32 x 32 PNG, the image a generate step sends."""
    from PIL import Image

    path = tmp_path / "p.png"
    Image.new("RGB", (32, 32), (10, 200, 30)).save(path)
    return path


def run_provider_step(step: GenerateStep, server: ProviderServer, http: httpx.Client, inputs: Inputs, provider: str,
                      *, store: Any = None, work_dir: Path | None = None, attempt: int = 1,
                      **params: Any) -> Generated | None:
    """Run a provider's generate step against ``server``'s ``provider`` routes, with :data:`FAST_PARAMS`.

    ``params`` override the step's parameters; ``store`` is the job store (a fresh in-memory one by default).
    The key variable is the server's for that provider (the REST step's default is none).
    """
    values = {**FAST_PARAMS, "base_url": server.base(provider), **params}
    values.setdefault("api_key_env", KEY_ENV[provider])
    p = testing.params_for(step, values)
    ctx = testing.step_context(step, p, work_dir=work_dir, http_factory=lambda: http,
                               state=store if store is not None else MemoryJobStore(), attempt=attempt)
    return step.generate(inputs, p, ctx)


class ProviderContract:
    """Tests every provider distribution passes; subclass it as ``Test...`` and name the plugin and its routes::

        class TestContract(ProviderContract):
            plugin = meshforge_provider_meshy
            provider = "meshy"

    The test module must import the fixtures above (``provider_server``, ``http_client``, ``photo``).
    """

    plugin: ClassVar[ModuleType]
    provider: ClassVar[str]

    def test_contract(self) -> None:
        problems = testing.check_plugin(self.plugin)
        assert problems == [], problems

    def test_image_to_glb_with_one_submission_despite_a_5xx(self, provider_server: ProviderServer,
                                                            http_client: httpx.Client, photo: Path) -> None:
        step = self.plugin.meshforge_generate_steps()[0]
        provider_server.inject(self.provider, "submit", status=503, retry_after=0)
        out = run_provider_step(step, provider_server, http_client, Inputs(id="p", images=(photo,)), self.provider)
        assert out is not None and out.data[:4] == b"glTF", out
        assert provider_server.submissions[self.provider] == 1, provider_server.submissions
        assert out.provenance["retries"] == 1, out.provenance


__all__ = ["FAST_PARAMS", "ProviderContract", "http_client", "photo", "provider_server", "run_provider_step"]
