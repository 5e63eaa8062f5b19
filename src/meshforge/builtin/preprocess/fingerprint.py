"""``input.fingerprint``: one hash for "the same input" (normalized pixels + normalized prompt).

Generate steps add the provider and its parameters (:func:`meshforge.generation.fingerprint.job_key`)
so the same job is never paid for twice. Registered by :mod:`meshforge.builtin.preprocess.prompts`.
"""

from __future__ import annotations

from dataclasses import replace

from meshforge.asset import Inputs
from meshforge.context import StepContext
from meshforge.errors import InputError
from meshforge.generation.fingerprint import bytes_digest, input_fingerprint
from meshforge.types import NoParams, PreprocessStep


def fingerprint(inputs: Inputs, params: NoParams, ctx: StepContext) -> Inputs:
    digests = list(inputs.prepared.get("image_digests") or ())
    if not digests:
        for path in inputs.images:
            try:
                digests.append(bytes_digest(path.read_bytes()))
            except OSError as exc:
                raise InputError(path, f"cannot read the image ({exc.strerror or exc})", code="input.unreadable") from None
    prompt = inputs.prepared.get("prompt") or inputs.prompt
    return replace(inputs, prepared={**inputs.prepared, "fingerprint": input_fingerprint(digests, prompt)})


STEP = PreprocessStep(
    name="input.fingerprint",
    summary="hash of the normalized images and prompt: the same input is generated once",
    apply=fingerprint,
)
