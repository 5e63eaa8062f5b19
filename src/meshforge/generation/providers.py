"""The generic job API every provider adapter speaks (shared/PROVIDERS.md 2.9), and its base class.

A provider adapter is small: it turns a :class:`GenerationRequest` into its service's submit call,
reads its status payload into the generic :class:`JobStatus`, and names where the model is. HTTP,
retries, rate limits, polling, webhooks, persistence and downloads belong to
:mod:`meshforge.generation.client`, so every adapter gets them the same way.

Generic states (``JobState``)::

    prepared -> submitted -> queued -> running -> succeeded -> downloaded
                                  \\-> failed | canceled | expired
    synchronous providers (Stability): prepared -> downloaded in one call
    prepared -> stopped: the run ended before its submit request was sent (a rerun submits)
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from meshforge.params import field as pfield

if TYPE_CHECKING:
    from meshforge.generation.client import Api

JobState = Literal["prepared", "submitted", "queued", "running", "succeeded", "downloaded", "failed", "canceled", "expired",
                   "stopped"]
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "canceled", "expired"})


@dataclass(frozen=True, kw_only=True)
class ImageRef:
    """One input image as bytes (already normalized by ``image.normalize`` when the chain has it)."""

    data: bytes
    mime: str = "image/png"
    name: str = "image.png"
    url: str | None = None  # a public URL, when the caller has one (Meshy, Tripo accept URLs)

    def base64(self) -> str:
        return base64.b64encode(self.data).decode("ascii")

    def data_uri(self) -> str:
        return f"data:{self.mime};base64,{self.base64()}"

    @property
    def suffix(self) -> str:
        return {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}.get(self.mime, "png")


@dataclass(frozen=True, kw_only=True)
class GenerationRequest:
    kind: Literal["image", "text"]
    prompt: str | None = None
    images: tuple[ImageRef, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)  # provider options from the step's params


@dataclass(frozen=True, kw_only=True)
class JobHandle:
    """What must survive a crash: enough to poll the job again without paying twice."""

    provider: str
    job_id: str
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class OutputRef:
    format: str = "glb"
    url: str | None = None
    data: bytes | None = None  # synchronous providers return the bytes themselves


@dataclass(frozen=True, kw_only=True)
class JobStatus:
    state: JobState
    raw_state: str = ""  # the provider's own word, for the report
    progress: float | None = None
    eta_s: float | None = None  # provider hint for the next poll (Tripo running_left_time)
    outputs: tuple[OutputRef, ...] = ()
    error: str | None = None
    cost: Mapping[str, Any] | None = None  # when the provider reports what it charged

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL


class ProviderError(Exception):
    """A provider call that did not work. ``retryable`` decides between retry and a clean failure.

    ``code`` is the finding code the run reports when it gives up (``generation.<x>``).
    Messages never contain credentials: adapters build them from status codes and body messages only.
    """

    def __init__(self, message: str, *, retryable: bool, code: str = "generation.unavailable", status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.code = code
        self.status = status
        self.retry_after = retry_after


@dataclass(frozen=True, kw_only=True)
class ProviderParams:
    """Parameters every provider step takes; adapters subclass this and add their own options.

    Defaults: polling 2 s -> 30 s with jitter and a 60 min deadline (PROVIDERS.md 2.9 rule 4, Meshy's
    "allow up to 60 min"); the API key is read only from the environment variable named here.
    """

    base_url: str = pfield("", "service base URL (point it at a proxy, a staging host or the local test server)")
    api_key_env: str = pfield("", "environment variable holding the API key (keys never go in profiles or reports)")
    deadline_s: float = pfield(3600.0, "overall deadline for one job, submit to download (s)")
    request_timeout_s: float = pfield(60.0, "timeout of one HTTP request (s)")
    max_retries: int = pfield(5, "retries of one request on 429, 5xx and connection errors")
    backoff_s: float = pfield(1.0, "first retry delay (s), doubled per retry, with jitter")
    backoff_cap_s: float = pfield(60.0, "longest delay between retries, Retry-After included (s)")
    poll_initial_s: float = pfield(2.0, "first poll interval (s)")
    poll_max_s: float = pfield(30.0, "longest poll interval (s)")
    concurrency: int = pfield(4, "jobs in flight at once for this provider and base URL, in this process")
    requests_per_s: float = pfield(10.0, "API requests per second for this provider (0: unlimited)")
    max_download_mb: float = pfield(200.0, "refuse a model larger than this (MB)")
    store: str = pfield("", "job store (SQLite) path; empty: the batch runner's store, $MESHFORGE_JOB_STORE, or per run")
    force: bool = pfield(False, "submit a new job even when this input was generated before")
    webhook: bool = pfield(False, "wait for the webhook receiver (`meshforge webhook serve`) instead of polling")
    webhook_poll_s: float = pfield(300.0, "with webhook: poll the provider anyway this often, in case a callback is lost (s)")
    resubmit_failed: int = pfield(0, "submit again this many times when the provider reports the task failed")
    seed: int = pfield(-1, "seed sent to providers that take one (-1: provider's choice); attempt n uses seed + n - 1")


class Provider:
    """Base class of adapters. Subclasses set ``name`` and implement ``submit`` and ``poll``."""

    name: ClassVar[str] = "provider"
    kinds: ClassVar[tuple[str, ...]] = ("image",)
    default_base_url: ClassVar[str] = ""
    default_key_env: ClassVar[str] = ""
    needs_key: ClassVar[bool] = True

    def __init__(self, params: Any) -> None:
        self.params = params

    # --- what an adapter implements ----------------------------------------------------------

    def options(self) -> dict[str, Any]:
        """Provider options taken from the params: they enter the job's fingerprint."""
        return {}

    def submit(self, req: GenerationRequest, api: Api) -> JobHandle | JobStatus:
        raise NotImplementedError

    def poll(self, handle: JobHandle, api: Api) -> JobStatus:
        raise NotImplementedError

    def parse_webhook(self, payload: Mapping[str, Any]) -> tuple[str, JobStatus] | None:
        """(job id, status) from a callback body, or None when the body is not for this provider."""
        return None

    def cost(self, req: GenerationRequest) -> dict[str, Any] | None:
        """The published price of one submission, for the report (None when unknown)."""
        return None

    def auth_headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}

    def error_from(self, status: int, body: Any) -> ProviderError:
        """Classify an HTTP error response (PROVIDERS.md 2.9 rule 2). ``body`` is parsed JSON or text."""
        message = _message(body) or f"HTTP {status}"
        if status == 429 or status >= 500:
            return ProviderError(f"HTTP {status}: {message}", retryable=True, status=status)
        if status in (401, 403):
            return ProviderError(f"HTTP {status}: {message} (check the API key)", retryable=False, code="generation.auth", status=status)
        if status == 402:
            return ProviderError(f"HTTP 402: {message} (out of credits)", retryable=False, code="generation.rejected", status=status)
        return ProviderError(f"HTTP {status}: {message}", retryable=False, code="generation.rejected", status=status)

    # --- shared ------------------------------------------------------------------------------

    def handle(self, job_id: Any, missing: str, **extra: str) -> JobHandle:
        """The handle of the job a submit answer names; ``ProviderError(missing)`` when it names none."""
        if job_id in (None, ""):
            raise ProviderError(missing, retryable=False)
        return JobHandle(provider=self.name, job_id=str(job_id), extra=extra)

    @property
    def base_url(self) -> str:
        return (getattr(self.params, "base_url", "") or self.default_base_url).rstrip("/")

    @property
    def key_env(self) -> str:
        return getattr(self.params, "api_key_env", "") or self.default_key_env


def _message(body: Any) -> str:
    if isinstance(body, Mapping):
        for key in ("message", "error", "detail", "failure_reason", "suggestion"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:300]
            if isinstance(value, Mapping):
                return _message(value)
        return ""
    if isinstance(body, str):
        return " ".join(body.split())[:200]
    return ""


def number(value: Any) -> float | None:
    """A JSON number (progress, ETA) as a float; None for anything else (absent, null, text)."""
    return float(value) if isinstance(value, (int, float)) else None


def url_format(url: str, default: str = "glb") -> str:
    """The model format a download URL names by its extension (query ignored), else ``default``."""
    name = url.rsplit("/", 1)[-1].split("?")[0]
    return name.rsplit(".", 1)[-1].lower() if "." in name else default


def dig(obj: Any, path: str, default: Any = None) -> Any:
    """``dig(payload, "data.output.model")``: a dotted path into nested dicts/lists, or ``default``."""
    cur = obj
    for part in path.split("."):
        if isinstance(cur, Mapping) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return default
    return cur


__all__ = [
    "TERMINAL",
    "GenerationRequest",
    "ImageRef",
    "JobHandle",
    "JobState",
    "JobStatus",
    "OutputRef",
    "Provider",
    "ProviderError",
    "ProviderParams",
    "dig",
    "number",
    "url_format",
]
