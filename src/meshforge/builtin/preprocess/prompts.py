"""``prompt.template``: a generation prompt filled from product metadata (title, category, material...).

The template is Jinja2 in a sandbox (a customer-supplied template can read the metadata and nothing
else). The profile supplies one (``template``); a job may bring its own in
``metadata["prompt_template"]`` when ``allow_job_template`` is on. A field the template *prints* but
the job lacks is an :class:`~meshforge.errors.InputError` ``prompt.missing_field`` naming every
missing field; fields used only in ``{% if %}`` tests or with ``| default(...)`` are optional.

Also registers ``input.fingerprint`` (:mod:`meshforge.builtin.preprocess.fingerprint`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from meshforge.asset import Inputs
from meshforge.builtin.preprocess.fingerprint import STEP as FINGERPRINT_STEP
from meshforge.context import StepContext
from meshforge.errors import InputError
from meshforge.generation.fingerprint import normalize_prompt
from meshforge.hookspecs import hookimpl
from meshforge.params import field
from meshforge.types import PreprocessStep

DEFAULT_TEMPLATE = (
    "{{ title }}"
    "{% if category %}, a {{ category }}{% endif %}"
    "{% if material %}, made of {{ material }}{% endif %}"
    "{% if colour %}, {{ colour }}{% endif %}"
    "{% if dimensions %}, about {{ dimensions | dims }}{% endif %}"
    ". Single product, whole object visible, realistic proportions, neutral studio background."
)


@dataclass(frozen=True, kw_only=True)
class PromptParams:
    template: str = field(DEFAULT_TEMPLATE, "Jinja2 template over the job's metadata (title, category, material, colour, dimensions...)")
    allow_job_template: bool = field(True, "a job's metadata['prompt_template'] replaces the profile's template")
    keep_given_prompt: bool = field(True, "a job that brings its own prompt keeps it (the template is not applied)")
    optional_with_image: bool = field(True, "when the job has an image, missing fields mean 'no prompt' instead of a rejection")
    max_chars: int = field(600, "reject longer prompts (Meshy text-to-3D limit is 600 characters [unconfirmed])")


def _dims(value: Any) -> str:
    """``{"width": 30, "height": 20, "depth": 10, "unit": "cm"}`` or ``[30, 20, 10]`` -> ``30 x 20 x 10 cm``."""
    if isinstance(value, Mapping):
        unit = value.get("unit", "")
        parts = [value[k] for k in ("width", "depth", "height", "length", "diameter") if k in value]
        return " x ".join(f"{p:g}" if isinstance(p, (int, float)) else str(p) for p in parts) + (f" {unit}" if unit else "")
    if isinstance(value, (list, tuple)):
        return " x ".join(f"{p:g}" if isinstance(p, (int, float)) else str(p) for p in value)
    return str(value)


def render(template: str, metadata: Mapping[str, Any], *, name: str) -> str:
    """The filled template; InputError naming every field it printed but the metadata lacks."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    missing: list[str] = []

    class Missing(jinja2.Undefined):
        def __str__(self) -> str:
            if self._undefined_name and self._undefined_name not in missing:
                missing.append(self._undefined_name)
            return ""

        def __iter__(self):  # type: ignore[no-untyped-def]
            str(self)
            return iter(())

    env = SandboxedEnvironment(undefined=Missing, autoescape=False, trim_blocks=True, lstrip_blocks=True)
    env.filters["dims"] = _dims
    context = {k: v for k, v in metadata.items() if v not in (None, "", [], {})}
    if "color" in context and "colour" not in context:
        context["colour"] = context["color"]
    if "colour" in context and "color" not in context:
        context["color"] = context["colour"]
    try:
        text = env.from_string(template).render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(name, f"prompt template line {exc.lineno}: {exc.message}", code="prompt.bad_template") from None
    except jinja2.exceptions.SecurityError as exc:
        raise InputError(name, f"prompt template is not allowed: {exc}", code="prompt.bad_template") from None
    except jinja2.TemplateError as exc:
        raise InputError(name, f"prompt template failed: {exc}", code="prompt.bad_template") from None
    if missing:
        raise InputError(name, f"the prompt template needs {', '.join(repr(m) for m in missing)}, missing from the "
                               "job's metadata", code="prompt.missing_field")
    return normalize_prompt(text)


def fill_prompt(inputs: Inputs, params: PromptParams, ctx: StepContext) -> Inputs:
    if inputs.prompt and params.keep_given_prompt:
        prompt, source = normalize_prompt(inputs.prompt), "job"
    else:
        template, source = params.template, "profile"
        job_template = inputs.metadata.get("prompt_template")
        if params.allow_job_template and isinstance(job_template, str) and job_template.strip():
            template, source = job_template, "job template"
        try:
            prompt = render(template, inputs.metadata, name=inputs.display_name)
        except InputError as exc:
            if exc.code == "prompt.missing_field" and inputs.images and params.optional_with_image:
                ctx.log.info("prompt.template: no prompt (%s); the image drives generation", exc.reason)
                return inputs
            raise
    if not prompt:
        raise InputError(inputs.display_name, "the prompt is empty after filling the template", code="prompt.empty")
    if len(prompt) > params.max_chars:
        raise InputError(inputs.display_name, f"the prompt is {len(prompt)} characters, over {params.max_chars} "
                                              "(prompt.max_chars)", code="prompt.too_long")
    return replace(inputs, prepared={**inputs.prepared, "prompt": prompt, "prompt_source": source})


@hookimpl
def meshforge_preprocess_steps() -> list[PreprocessStep]:
    return [
        PreprocessStep(
            name="prompt.template",
            summary="fill the generation prompt from product metadata (sandboxed Jinja2); name missing fields",
            params=PromptParams,
            apply=fill_prompt,
        ),
        FINGERPRINT_STEP,
    ]
