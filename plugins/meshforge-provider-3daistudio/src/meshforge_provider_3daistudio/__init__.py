"""3D AI Studio (https://www.3daistudio.com/Platform/API) as the generate step ``threedaistudio.generate``.

Protocol (shared/PROVIDERS.md 2.3): ``POST /v1/3d-models/tencent/generate/rapid/`` JSON ``{image: base64 |
prompt, enable_pbr}`` -> ``{task_id, created_at}``; ``GET /v1/generation-request/{id}/status/`` ->
``status`` PENDING | IN_PROGRESS | FINISHED | FAILED, ``progress``, ``failure_reason``, ``results[]`` of
``{asset | asset_url, asset_type}`` (the docs show both names: both are accepted). Default limit 3 requests
per minute, so the client paces itself rather than collecting 429s. (Step names cannot start with a digit.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshforge.generation.step import (GenerationRequest, JobHandle, JobStatus, OutputRef, Provider, ProviderError,
                                       ProviderParams, number, provider_hook, url_format)
from meshforge.params import field

__version__ = "0.1.0"

STATES = {"PENDING": "queued", "IN_PROGRESS": "running", "FINISHED": "succeeded", "FAILED": "failed"}


@dataclass(frozen=True, kw_only=True)
class StudioParams(ProviderParams):
    base_url: str = field("https://api.3daistudio.com", "3D AI Studio API base URL")
    api_key_env: str = field("THREEDAISTUDIO_API_KEY", "environment variable holding the 3D AI Studio key")
    requests_per_s: float = field(0.05, "3D AI Studio default limit: 3 requests per minute (raise it if your dashboard does)")
    concurrency: int = field(3, "jobs in flight")
    poll_initial_s: float = field(20.0, "first poll interval (s): at 3 requests/min, polling faster only queues")
    endpoint: str = field("/v1/3d-models/tencent/generate/rapid/", "model endpoint (Hunyuan Rapid; e.g. .../tencent/generate/pro/)")
    enable_pbr: bool = field(True, "PBR materials")


class Studio(Provider):
    name = "threedaistudio"
    kinds = ("image", "text")

    def options(self) -> dict[str, Any]:
        return {"endpoint": self.params.endpoint, "enable_pbr": self.params.enable_pbr}

    def submit(self, req: GenerationRequest, api: Any) -> JobHandle:
        body: dict[str, Any] = {"enable_pbr": self.params.enable_pbr}
        if req.kind == "image":
            body["image"] = req.images[0].base64()
        else:
            body["prompt"] = req.prompt
        answer = api.request("POST", self.params.endpoint, phase="submit", json=body)
        return self.handle(answer.get("task_id") if isinstance(answer, Mapping) else None,
                           "3D AI Studio answered without a task id")

    def poll(self, handle: JobHandle, api: Any) -> JobStatus:
        answer = api.request("GET", f"/v1/generation-request/{handle.job_id}/status/", phase="poll")
        if not isinstance(answer, Mapping):
            raise ProviderError("3D AI Studio status is not a JSON object", retryable=True)
        raw = str(answer.get("status", ""))
        outputs = []
        for result in answer.get("results") or ():
            if isinstance(result, Mapping):
                url = result.get("asset_url") or result.get("asset")
                if isinstance(url, str) and url and result.get("asset_type", "3D_MODEL") == "3D_MODEL":
                    outputs.append(OutputRef(format=url_format(url), url=url))
        return JobStatus(state=STATES.get(raw, "running"), raw_state=raw, outputs=tuple(outputs),  # type: ignore[arg-type]
                         error=answer.get("failure_reason") or None, progress=number(answer.get("progress")))

    def cost(self, req: GenerationRequest) -> dict[str, Any]:
        # Hunyuan Rapid 35 credits, +20 with PBR (third-party skill file, PROVIDERS.md 2.3).
        return {"amount": 35 + (20 if self.params.enable_pbr else 0), "unit": "credits", "estimated": True}


meshforge_generate_steps = provider_hook(Studio, name="threedaistudio.generate", params=StudioParams,
                                          summary="3D AI Studio (Hunyuan3D and others): base64 JSON in, task id, poll, GLB URL")
