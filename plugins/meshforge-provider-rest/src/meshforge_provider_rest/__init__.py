"""A configurable REST provider for in-house generation services: step ``rest.generate``.

Describe the service in the profile: where to submit, how the image travels, where the job id, the
state and the model URL are in the JSON answers (dotted paths), and how its state words map onto
meshforge's states. Webhooks signed with ``X-Meshforge-Signature`` are read with ``webhook_id_path``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from meshforge.generation.step import (GenerationRequest, JobHandle, JobStatus, OutputRef, Provider, ProviderError,
                                       ProviderParams, dig, number, provider_hook, url_format)
from meshforge.params import field

__version__ = "0.1.0"

DEFAULT_STATES = ("pending=queued", "queued=queued", "running=running", "processing=running", "in_progress=running",
                  "succeeded=succeeded", "success=succeeded", "done=succeeded", "completed=succeeded", "finished=succeeded",
                  "failed=failed", "error=failed", "canceled=canceled", "cancelled=canceled", "expired=expired")


@dataclass(frozen=True, kw_only=True)
class RestParams(ProviderParams):
    base_url: str = field("http://127.0.0.1:8000", "service base URL")
    api_key_env: str = field("", "environment variable with the key (empty: the service needs none)")
    auth_header: str = field("Authorization", "header carrying the key")
    auth_scheme: str = field("Bearer", "prefix before the key ('' for a bare key, as in x-api-key)")
    submit_path: str = field("/jobs", "POST here to create a job")
    transport: Literal["json-base64", "json-data-uri", "multipart"] = field("json-base64", "how the image travels")
    image_field: str = field("image", "JSON / form field of the image")
    prompt_field: str = field("prompt", "JSON / form field of the prompt")
    extra_json: str = field("", "a JSON object merged into every submit body (model names, options)")
    id_path: str = field("id", "dotted path of the job id in the submit answer")
    poll_path: str = field("/jobs/{id}", "GET this to poll; {id} is replaced")
    state_path: str = field("status", "dotted path of the job state")
    progress_path: str = field("progress", "dotted path of the progress (0-100), if any")
    model_url_path: str = field("model_url", "dotted path of the model URL when done")
    error_path: str = field("error", "dotted path of the failure reason")
    states: tuple[str, ...] = field(DEFAULT_STATES, "'service_word=meshforge_state' pairs (case-insensitive)")
    webhook_id_path: str = field("id", "dotted path of the job id in a webhook body")
    cost_credits: float = field(-1.0, "cost per job for the report (-1: unknown)")


class Rest(Provider):
    name = "rest"
    kinds = ("image", "text")

    @property
    def needs_key(self) -> bool:  # type: ignore[override]
        return bool(self.params.api_key_env)

    def _states(self) -> dict[str, str]:
        out = {}
        for pair in self.params.states:
            word, _, state = pair.partition("=")
            out[word.strip().lower()] = state.strip()
        return out

    def options(self) -> dict[str, Any]:
        return {"submit_path": self.params.submit_path, "extra_json": self.params.extra_json}

    def auth_headers(self, key: str) -> dict[str, str]:
        scheme = self.params.auth_scheme
        return {self.params.auth_header: f"{scheme} {key}" if scheme else key}

    def submit(self, req: GenerationRequest, api: Any) -> JobHandle:
        p = self.params
        extra = json.loads(p.extra_json) if p.extra_json else {}
        if p.transport == "multipart":
            files = {p.image_field: (req.images[0].name, req.images[0].data, req.images[0].mime)} if req.images else None
            form = {k: str(v) for k, v in extra.items()}
            if req.prompt:
                form[p.prompt_field] = req.prompt
            answer = api.request("POST", p.submit_path, phase="submit", data=form, files=files)
        else:
            body = dict(extra)
            if req.images:
                body[p.image_field] = req.images[0].base64() if p.transport == "json-base64" else req.images[0].data_uri()
            if req.prompt:
                body[p.prompt_field] = req.prompt
            answer = api.request("POST", p.submit_path, phase="submit", json=body)
        return self.handle(dig(answer, p.id_path), f"the service answered without a job id at {p.id_path!r}")

    def status_of(self, answer: Any) -> JobStatus:
        if not isinstance(answer, Mapping):
            raise ProviderError("the status answer is not a JSON object", retryable=True)
        p = self.params
        raw = str(dig(answer, p.state_path, ""))
        state = self._states().get(raw.lower(), "running")
        url = dig(answer, p.model_url_path)
        error = dig(answer, p.error_path)
        return JobStatus(state=state, raw_state=raw, progress=number(dig(answer, p.progress_path)),  # type: ignore[arg-type]
                         outputs=(OutputRef(format=url_format(url), url=url),) if isinstance(url, str) and url else (),
                         error=str(error) if error else None)

    def poll(self, handle: JobHandle, api: Any) -> JobStatus:
        return self.status_of(api.request("GET", self.params.poll_path.replace("{id}", handle.job_id), phase="poll"))

    def parse_webhook(self, payload: Mapping[str, Any]) -> tuple[str, JobStatus] | None:
        job_id = dig(payload, self.params.webhook_id_path)
        if job_id in (None, ""):
            return None
        return str(job_id), self.status_of(payload)

    def cost(self, req: GenerationRequest) -> dict[str, Any] | None:
        c = self.params.cost_credits
        return {"amount": c, "unit": "credits"} if c >= 0 else None


meshforge_generate_steps = provider_hook(Rest, name="rest.generate", params=RestParams,
                                          summary="any JSON job API: configurable paths, transport, state words (in-house services)")
