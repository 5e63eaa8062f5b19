"""Meshy (https://docs.meshy.ai) image-to-3D and text-to-3D, as a meshforge generate step ``meshy.generate``.

Protocol (shared/PROVIDERS.md 2.1): ``POST /v1/image-to-3d`` JSON with ``image_url`` (a data URI: Meshy
takes no multipart) -> ``202 {"result": id}``; ``GET /v1/image-to-3d/{id}`` -> ``status`` PENDING |
IN_PROGRESS | SUCCEEDED | FAILED | CANCELED, ``progress``, ``model_urls.glb``. Text: ``POST /v2/text-to-3d``
``mode: preview``. Webhooks are account-level: every task update is POSTed with the task object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from meshforge.generation.step import (GenerationRequest, JobHandle, JobStatus, OutputRef, Provider, ProviderParams,
                                       number, provider_hook)
from meshforge.params import field

__version__ = "0.1.0"

STATES = {"PENDING": "queued", "IN_PROGRESS": "running", "SUCCEEDED": "succeeded", "FAILED": "failed", "CANCELED": "canceled"}


@dataclass(frozen=True, kw_only=True)
class MeshyParams(ProviderParams):
    base_url: str = field("https://api.meshy.ai/openapi", "Meshy API base URL")
    api_key_env: str = field("MESHY_API_KEY", "environment variable holding the Meshy key (msy_...)")
    concurrency: int = field(10, "tasks in flight: Meshy Pro allows 10 queued tasks per account")
    requests_per_s: float = field(20.0, "Meshy allows 20 requests/s per account")
    ai_model: Literal["meshy-5", "meshy-6", "latest"] = field("latest", "Meshy model")
    topology: Literal["triangle", "quad"] = field("triangle", "mesh topology")
    target_polycount: int = field(30000, "target polygon count (100-300,000; Meshy default 30,000)")
    should_texture: bool = field(True, "generate textures")
    enable_pbr: bool = field(True, "generate PBR maps (metallic, roughness, normal)")


class Meshy(Provider):
    name = "meshy"
    kinds = ("image", "text")

    def options(self) -> dict[str, Any]:
        p = self.params
        return {"ai_model": p.ai_model, "topology": p.topology, "target_polycount": p.target_polycount,
                "should_texture": p.should_texture, "enable_pbr": p.enable_pbr}

    def submit(self, req: GenerationRequest, api: Any) -> JobHandle:
        opts = {k: v for k, v in req.options.items() if k != "seed"}
        if req.kind == "image":
            image = req.images[0]
            body = {"image_url": image.url or image.data_uri(), **opts}
            answer = api.request("POST", "/v1/image-to-3d", phase="submit", json=body)
            kind = "image"
        else:
            body = {"mode": "preview", "prompt": req.prompt, "ai_model": opts.get("ai_model", "latest"),
                    "topology": opts.get("topology"), "target_polycount": opts.get("target_polycount")}
            answer = api.request("POST", "/v2/text-to-3d", phase="submit", json=body)
            kind = "text"
        return self.handle(answer.get("result") if isinstance(answer, Mapping) else None, "Meshy answered without a task id",
                           kind=kind)

    def poll(self, handle: JobHandle, api: Any) -> JobStatus:
        path = "/v1/image-to-3d/" if handle.extra.get("kind", "image") == "image" else "/v2/text-to-3d/"
        return self.status_of(api.request("GET", path + handle.job_id, phase="poll"))

    def status_of(self, task: Any) -> JobStatus:
        if not isinstance(task, Mapping):
            return JobStatus(state="running", raw_state="?")
        raw = str(task.get("status", ""))
        urls = task.get("model_urls") or {}
        outputs = tuple(OutputRef(format=fmt, url=url) for fmt, url in urls.items() if isinstance(url, str) and url and fmt in ("glb", "obj", "fbx", "usdz", "stl"))
        error = (task.get("task_error") or {}).get("message") if isinstance(task.get("task_error"), Mapping) else None
        return JobStatus(state=STATES.get(raw, "running"), raw_state=raw, outputs=outputs, error=error or None,  # type: ignore[arg-type]
                         progress=number(task.get("progress")))

    def parse_webhook(self, payload: Mapping[str, Any]) -> tuple[str, JobStatus] | None:
        if "id" not in payload or "status" not in payload:
            return None
        return str(payload["id"]), self.status_of(payload)

    def cost(self, req: GenerationRequest) -> dict[str, Any]:
        # meshy.ai/api pricing (PROVIDERS.md 2.1): Meshy-6 image-to-3D 20 untextured / 30 textured; text preview 20.
        amount = 20 if req.kind == "text" else (30 if self.params.should_texture else 20)
        return {"amount": amount, "unit": "credits", "estimated": True}


meshforge_generate_steps = provider_hook(Meshy, name="meshy.generate", params=MeshyParams,
                                          summary="Meshy image-to-3D / text-to-3D (async job API, polling or webhook)")
