"""prompt.template: prompts from product metadata, with clear rejections."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshforge import testing
from meshforge.asset import Inputs
from meshforge.builtin.preprocess import prompts
from meshforge.errors import InputError

STEP = prompts.meshforge_preprocess_steps()[0]


def fill(inputs, **params):
    p = testing.params_for(STEP, params)
    return STEP.apply(inputs, p, testing.step_context(STEP, p))


def test_step_names():
    names = [s.name for s in prompts.meshforge_preprocess_steps()]
    assert names == ["prompt.template", "input.fingerprint"]


def test_default_template_fills_from_metadata():
    meta = {"title": "Oak dining chair", "category": "chair", "material": "solid oak", "color": "natural",
            "dimensions": {"width": 45, "depth": 52, "height": 90, "unit": "cm"}}
    out = fill(Inputs(id="sku", metadata=meta)).prepared
    assert out["prompt"].startswith("Oak dining chair, a chair, made of solid oak, natural, about 45 x 52 x 90 cm.")
    assert out["prompt_source"] == "profile"


def test_optional_fields_may_be_missing_but_printed_ones_may_not():
    assert fill(Inputs(id="sku", metadata={"title": "Lamp"})).prepared["prompt"].startswith("Lamp.")
    with pytest.raises(InputError) as err:
        fill(Inputs(id="sku", metadata={"category": "lamp", "title": ""}))
    assert err.value.code == "prompt.missing_field" and "'title'" in err.value.reason
    with pytest.raises(InputError) as err:
        fill(Inputs(id="sku", metadata={}), template="{{ title }} in {{ material }} ({{ sku | default('n/a') }})")
    assert "'title', 'material'" in err.value.reason


def test_with_an_image_a_missing_field_means_no_prompt(tmp_path):
    inputs = Inputs(id="sku", images=(Path(tmp_path / "p.png"),), metadata={})
    assert "prompt" not in fill(inputs).prepared
    with pytest.raises(InputError):
        fill(inputs, optional_with_image=False)


def test_job_template_and_given_prompt():
    meta = {"title": "Vase", "prompt_template": "A {{ colour }} {{ title }}", "colour": "blue"}
    assert fill(Inputs(id="s", metadata=meta)).prepared["prompt"] == "A blue Vase"
    assert fill(Inputs(id="s", metadata=meta), allow_job_template=False).prepared["prompt"].startswith("Vase, blue.")
    assert fill(Inputs(id="s", prompt="  a   teapot ", metadata=meta)).prepared["prompt"] == "a teapot"


def test_templates_are_sandboxed_and_bounded():
    with pytest.raises(InputError) as err:
        fill(Inputs(id="s", metadata={"title": "x"}), template="{{ title.__class__.__mro__[1].__subclasses__() }}")
    assert err.value.code == "prompt.bad_template"
    with pytest.raises(InputError) as err:
        fill(Inputs(id="s", metadata={"title": "x"}), template="{% if %}")
    assert err.value.code == "prompt.bad_template"
    with pytest.raises(InputError) as err:
        fill(Inputs(id="s", metadata={"title": "word " * 200}))
    assert err.value.code == "prompt.too_long"
