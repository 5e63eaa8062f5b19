"""A provider adapter -> a generate step. Provider distributions import what they need from here::

    from meshforge.generation.step import GenerationRequest, JobHandle, JobStatus, Provider, ProviderParams, provider_hook

    meshforge_generate_steps = provider_hook(Meshy, name="meshy.generate", params=MeshyParams, summary="...")

The step builds a :class:`GenerationRequest` from the (preprocessed) inputs, finds the job store
(``ctx.state`` when the caller passes one, else ``params.store``, ``$MESHFORGE_JOB_STORE`` or a store
in the run's scratch folder), keys the job by its fingerprint, and runs it. A failure the user must
act on becomes an :class:`~meshforge.errors.InputError` with a ``generation.<x>`` code: the report
shows it as a finding, never as a traceback.
"""

from __future__ import annotations

import mimetypes
import os
from dataclasses import fields
from collections.abc import Callable
from pathlib import Path
from typing import Any

from meshforge.asset import Inputs
from meshforge.context import StepContext
from meshforge.errors import GenerationError, InputError
from meshforge.generation.fingerprint import bytes_digest, input_fingerprint, job_key
from meshforge.generation.providers import (
    GenerationRequest,
    ImageRef,
    JobHandle,
    JobStatus,
    OutputRef,
    Provider,
    ProviderError,
    ProviderParams,
    dig,
    number,
    url_format,
)
from meshforge.generation.store import JobStore, SqliteJobStore, is_job_store
from meshforge.hookspecs import hookimpl
from meshforge.types import Generated, GenerateStep

STORE_ENV = "MESHFORGE_JOB_STORE"


def request_from_inputs(inputs: Inputs, provider: Provider, params: Any, attempt: int = 1) -> tuple[GenerationRequest, str] | None:
    """The request and the input fingerprint, or None when the inputs hold nothing this provider takes."""
    prepared = inputs.prepared
    images: list[ImageRef] = []
    digests: list[str] = []
    paths = [Path(p) for p in prepared.get("images", ())] or list(inputs.images)
    if "image" in provider.kinds:
        for i, path in enumerate(paths):
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise InputError(path, f"cannot read the image ({exc.strerror})", code="input.unreadable") from None
            mime = mimetypes.guess_type(path.name)[0] or "image/png"
            images.append(ImageRef(data=data, mime=mime, name=path.name))
            pixel_digests = prepared.get("image_digests") or ()
            digests.append(pixel_digests[i] if i < len(pixel_digests) else bytes_digest(data))
    prompt = prepared.get("prompt") or inputs.prompt
    if images:
        kind = "image"
    elif prompt and "text" in provider.kinds:
        kind = "text"
    else:
        return None
    options = dict(provider.options())
    if getattr(params, "seed", -1) >= 0:
        options["seed"] = int(params.seed) + attempt - 1
    req = GenerationRequest(kind=kind, prompt=prompt, images=tuple(images), options=options)  # type: ignore[arg-type]
    fp = prepared.get("fingerprint") or input_fingerprint(digests, prompt)
    return req, str(fp)


def resolve_store(params: Any, ctx: StepContext) -> JobStore:
    if is_job_store(ctx.state):
        return ctx.state  # type: ignore[no-any-return]
    path = params.store or os.environ.get(STORE_ENV, "")
    if path:
        return SqliteJobStore(Path(path).expanduser())
    if ctx.work_dir is None:
        raise RuntimeError("no job store: pass state=, set params.store or $MESHFORGE_JOB_STORE")
    return SqliteJobStore(ctx.work_dir / "generation" / "jobs.sqlite")


def _models_dir(store: JobStore, ctx: StepContext) -> Path:
    path = getattr(store, "path", None)
    if path:
        return Path(path).parent / "models"
    if ctx.work_dir is not None:
        return ctx.work_dir / "generation" / "models"
    import tempfile

    return Path(tempfile.gettempdir()) / "meshforge-generation" / "models"  # never the current folder


def run_provider(provider: Provider, inputs: Inputs, params: Any, ctx: StepContext) -> Generated | None:
    built = request_from_inputs(inputs, provider, params, ctx.attempt)
    if built is None:
        return None
    req, fp = built
    store = resolve_store(params, ctx)
    key = job_key(fp, provider.name, {"base_url": provider.base_url, **req.options, "kind": req.kind}, ctx.attempt)

    from meshforge.generation.client import JobRunner  # httpx (0.1 s to import) only when a job runs

    runner = JobRunner(provider, params, http=ctx.http, store=store, key=key, models_dir=_models_dir(store, ctx),
                       logger=ctx.log, attempt=ctx.attempt)
    try:
        result = runner.run(req)
    except ProviderError as exc:
        # a job the provider took (and may have billed) is named, so the report says which one to look up
        record = store.load(key) or {}
        job = f" (provider job {record['job_id']}, {record.get('state')})" if record.get("job_id") else ""
        provenance = {"provider": provider.name, "job_id": record.get("job_id"), "job_key": key, "attempt": ctx.attempt,
                      "provider_state": record.get("raw_state") or record.get("state"),
                      "submissions": int(record.get("submissions", 0)), "input_fingerprint": fp}
        raise GenerationError(inputs.display_name, f"{provider.name}: {exc.message}{job}", code=exc.code,
                              provenance=provenance) from None
    return Generated(data=result.data, filename=f"{inputs.id}.{result.format}",
                     provenance={**result.provenance, "input_fingerprint": fp})


def provider_step(provider_cls: type[Provider], *, name: str, summary: str,
                  params: type[ProviderParams] = ProviderParams, requires: tuple[str, ...] = ()) -> GenerateStep:
    """The GenerateStep for an adapter class (its params dataclass subclasses ProviderParams)."""
    names = {f.name for f in fields(params)}
    missing = {f.name for f in fields(ProviderParams)} - names
    if missing:
        raise TypeError(f"{params.__name__} must subclass ProviderParams (missing {sorted(missing)})")

    def generate(inputs: Inputs, p: Any, ctx: StepContext) -> Generated | None:
        return run_provider(provider_cls(p), inputs, p, ctx)

    generate.__name__ = f"generate_{provider_cls.name}"
    generate.provider_cls = provider_cls  # type: ignore[attr-defined]  # found by `meshforge webhook serve`
    return GenerateStep(name=name, summary=summary, params=params, requires=requires, generate=generate)


def provider_hook(provider_cls: type[Provider], *, name: str, summary: str,
                  params: type[ProviderParams] = ProviderParams, requires: tuple[str, ...] = ()) -> Callable[[], list[GenerateStep]]:
    """A distribution's whole hook: ``meshforge_generate_steps = provider_hook(Adapter, name=..., summary=...)``."""

    @hookimpl
    def meshforge_generate_steps() -> list[GenerateStep]:
        return [provider_step(provider_cls, name=name, summary=summary, params=params, requires=requires)]

    return meshforge_generate_steps


# The step machinery, then the adapter API re-exported for provider distributions (one import line each).
__all__ = ["STORE_ENV", "provider_hook", "provider_step", "request_from_inputs", "resolve_store", "run_provider",
           "GenerationRequest", "ImageRef", "JobHandle", "JobStatus", "OutputRef", "Provider", "ProviderError",
           "ProviderParams", "dig", "number", "url_format"]
