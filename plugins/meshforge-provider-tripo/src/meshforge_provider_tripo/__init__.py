"""Tripo (https://platform.tripo3d.ai) image/text-to-model, as the generate step ``tripo.generate``.

Protocol (shared/PROVIDERS.md 2.2): images are uploaded first (``POST /upload`` multipart -> ``file_token``),
then ``POST /task {"type": "image_to_model", "file": {"type": "png", "file_token": ...}}`` ->
``{"code": 0, "data": {"task_id": ...}}``; ``GET /task/{id}`` -> ``data.status`` queued | running | success |
failed | cancelled | unknown | banned | expired, ``data.running_left_time`` (poll hint), ``data.output.pbr_model``.
Errors ``{code, message}``: 2000 concurrency limit (retry), 2008 content policy, 2010 no credits (permanent).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from meshforge.generation.step import (GenerationRequest, JobHandle, JobStatus, OutputRef, Provider, ProviderError,
                                       ProviderParams, dig, number, provider_hook)
from meshforge.params import field

__version__ = "0.1.0"

STATES = {"queued": "queued", "running": "running", "unknown": "running", "success": "succeeded", "failed": "failed",
          "banned": "failed", "cancelled": "canceled", "expired": "expired"}
RETRYABLE_CODES = {1000, 1001, 2000}  # server errors; 2000 = concurrency limit (default 10 queued + running)
CODE_NAMES = {2008: "generation.rejected", 2010: "generation.rejected", 1002: "generation.auth"}


@dataclass(frozen=True, kw_only=True)
class TripoParams(ProviderParams):
    base_url: str = field("https://api.tripo3d.ai/v2/openapi", "Tripo API base URL (China: https://api.tripo3d.com/v2/openapi)")
    api_key_env: str = field("TRIPO_API_KEY", "environment variable holding the Tripo key (tsk_...)")
    concurrency: int = field(10, "Tripo's default limit: 10 queued + running tasks")
    model_version: str = field("", "Tripo model version (empty: Tripo's default)")
    texture: bool = field(True, "generate textures")
    pbr: bool = field(True, "generate PBR materials")
    face_limit: int = field(0, "maximum faces (0: Tripo's default)")


class Tripo(Provider):
    name = "tripo"
    kinds = ("image", "text")

    def options(self) -> dict[str, Any]:
        p = self.params
        out: dict[str, Any] = {"texture": p.texture, "pbr": p.pbr}
        if p.model_version:
            out["model_version"] = p.model_version
        if p.face_limit > 0:
            out["face_limit"] = p.face_limit
        return out

    def error_from(self, status: int, body: Any) -> ProviderError:
        code = body.get("code") if isinstance(body, Mapping) else None
        message = body.get("message", "") if isinstance(body, Mapping) else ""
        if isinstance(code, int) and code in RETRYABLE_CODES:
            return ProviderError(f"Tripo {code}: {message}", retryable=True, status=status)
        if isinstance(code, int) and code in CODE_NAMES:
            return ProviderError(f"Tripo {code}: {message}", retryable=False, code=CODE_NAMES[code], status=status)
        return super().error_from(status, body)

    def _data(self, answer: Any) -> Mapping[str, Any]:
        if not isinstance(answer, Mapping):
            raise ProviderError("Tripo answered without a JSON object", retryable=True)
        if answer.get("code", 0) != 0:
            raise self.error_from(200, answer)
        data = answer.get("data")
        return data if isinstance(data, Mapping) else {}

    def submit(self, req: GenerationRequest, api: Any) -> JobHandle:
        opts = {k: v for k, v in req.options.items() if k != "seed"}
        if "seed" in req.options:
            opts["model_seed"] = req.options["seed"]
        if req.kind == "image":
            image = req.images[0]
            if image.url:
                file = {"type": image.suffix, "url": image.url}
            else:
                up = self._data(api.request("POST", "/upload", phase="upload",
                                            files={"file": (image.name, image.data, image.mime)}))
                token = up.get("file_token") or up.get("image_token")
                if not token:
                    raise ProviderError("Tripo upload answered without a file token", retryable=False)
                file = {"type": image.suffix, "file_token": token}
            body = {"type": "image_to_model", "file": file, **opts}
        else:
            body = {"type": "text_to_model", "prompt": req.prompt, **opts}
        data = self._data(api.request("POST", "/task", phase="submit", json=body))
        return self.handle(data.get("task_id"), "Tripo answered without a task id")

    def poll(self, handle: JobHandle, api: Any) -> JobStatus:
        data = self._data(api.request("GET", f"/task/{handle.job_id}", phase="poll"))
        raw = str(data.get("status", ""))
        outputs = tuple(OutputRef(format="glb", url=url) for key in ("pbr_model", "model", "base_model")
                        if isinstance(url := dig(data, f"output.{key}"), str) and url)
        eta = number(data.get("running_left_time"))
        return JobStatus(state=STATES.get(raw, "running"), raw_state=raw, outputs=outputs[:1],  # type: ignore[arg-type]
                         eta_s=eta if eta is not None and eta > 0 else None, progress=number(data.get("progress")),
                         error=("content policy" if raw == "banned" else None))

    def cost(self, req: GenerationRequest) -> dict[str, Any]:
        # docs.tripo3d.ai pricing, $1 = 100 credits: image_to_model 20 / 30 textured, text_to_model 10 / 20 (H2/H3).
        textured = self.params.texture or self.params.pbr
        amount = (30 if textured else 20) if req.kind == "image" else (20 if textured else 10)
        return {"amount": amount, "unit": "credits", "usd": amount / 100, "estimated": True}


meshforge_generate_steps = provider_hook(Tripo, name="tripo.generate", params=TripoParams,
                                          summary="Tripo image-to-model / text-to-model (upload, task, poll with Tripo's ETA hint)")
