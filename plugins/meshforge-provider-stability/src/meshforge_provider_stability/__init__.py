"""Stability AI Stable Fast 3D (synchronous): multipart image in, GLB bytes out. Step ``stability.fast3d``.

Protocol (shared/PROVIDERS.md 2.5): ``POST /v2beta/3d/stable-fast-3d`` multipart ``image`` +
``texture_resolution``, ``foreground_ratio``, ``remesh``, ``vertex_count`` -> ``200 model/gltf-binary``.
No job id, no polling: the job goes prepared -> downloaded in one call. A 200 whose body is not a GLB is
a failed generation (not retried: it may have been charged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from meshforge.generation.step import GenerationRequest, JobStatus, OutputRef, Provider, ProviderParams, provider_hook
from meshforge.params import field

__version__ = "0.1.0"


@dataclass(frozen=True, kw_only=True)
class StabilityParams(ProviderParams):
    base_url: str = field("https://api.stability.ai", "Stability API base URL")
    api_key_env: str = field("STABILITY_API_KEY", "environment variable holding the Stability key (sk-...)")
    requests_per_s: float = field(15.0, "150 requests / 10 s (Stability REST limit)")
    request_timeout_s: float = field(180.0, "one synchronous generation (s)")
    endpoint: str = field("/v2beta/3d/stable-fast-3d", "endpoint (SPAR3D: /v2beta/3d/stable-point-aware-3d)")
    texture_resolution: Literal[512, 1024, 2048] = field(1024, "texture size (px)")
    foreground_ratio: float = field(0.85, "object size in frame, 0.1-1")
    remesh: Literal["none", "triangle", "quad"] = field("none", "remeshing")
    vertex_count: int = field(-1, "target vertex count (-1: no limit, max 20000)")


class Stability(Provider):
    name = "stability"
    kinds = ("image",)

    def options(self) -> dict[str, Any]:
        p = self.params
        return {"endpoint": p.endpoint, "texture_resolution": p.texture_resolution, "foreground_ratio": p.foreground_ratio,
                "remesh": p.remesh, "vertex_count": p.vertex_count}

    def submit(self, req: GenerationRequest, api: Any) -> JobStatus:
        image = req.images[0]
        p = self.params
        fields = {"texture_resolution": str(p.texture_resolution), "foreground_ratio": str(p.foreground_ratio),
                  "remesh": p.remesh, "vertex_count": str(p.vertex_count)}
        if "seed" in req.options:
            fields["seed"] = str(req.options["seed"])
        response = api.request("POST", p.endpoint, phase="submit", parse=False, data=fields,
                               files={"image": (image.name, image.data, image.mime)}, headers={"Accept": "model/gltf-binary"})
        return JobStatus(state="downloaded", raw_state=f"HTTP {response.status_code}",
                         outputs=(OutputRef(format="glb", data=response.content),))


meshforge_generate_steps = provider_hook(Stability, name="stability.fast3d", params=StabilityParams,
                                          summary="Stability Stable Fast 3D: one synchronous multipart call, GLB back")
