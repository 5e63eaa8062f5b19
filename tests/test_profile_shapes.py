"""A profile with a wrong shape is a one-line ProfileError naming the profile and the key, never a
traceback; one unreadable file on the profile path does not hide the other profiles."""

from __future__ import annotations

import pytest

from meshforge import Engine
from meshforge.errors import ProfileError


@pytest.mark.parametrize(
    ("extra", "where", "says"),
    [
        ({"steps": {"closed": "print.closed"}}, "shapes: steps.closed", "must be a table of parameters"),
        ({"steps": "print.closed"}, "shapes: steps", "must be a table"),
        ({"run": 3}, "shapes: run", "must be a table ([run])"),
        ({"limits": [1]}, "shapes: limits", "must be a table ([limits])"),
        ({"chain": {"generate": ["import"], "validate": "closed"}}, "shapes: chain.validate", "must be a list of step ids"),
        ({"chain": {"generate": ["import"], "validate": [1]}}, "shapes: chain.validate", "must be a list of step ids"),
        ({"chain": ["import"]}, "shapes: chain", "must be a table"),
    ],
)
def test_wrongly_shaped_profiles_name_the_key(extra, where, says):
    profile = {"name": "shapes", "extends": "fdm-print-stl", **extra}
    with pytest.raises(ProfileError) as caught:
        Engine(profile, entry_points=False)
    assert caught.value.where == where
    assert says in caught.value.reason


def test_one_string_of_overrides_is_named_not_split_into_letters():
    with pytest.raises(ProfileError) as caught:
        Engine("fdm-print-stl", overrides="thickness.min_mm=1.0", entry_points=False)
    assert "list of STEP.PARAM=VALUE" in caught.value.reason
    assert Engine("fdm-print-stl", overrides=["thickness.min_mm=1.0"], entry_points=False).profile.overrides == {"thickness.min_mm": 1.0}


def test_a_broken_file_on_the_profile_path_does_not_hide_the_packaged_profiles(tmp_path, monkeypatch):
    (tmp_path / "broken.toml").write_text("name = \n")
    monkeypatch.setenv("MESHFORGE_PROFILE_PATH", str(tmp_path))
    assert Engine("fdm-print", entry_points=False).profile.name == "fdm-print-stl"
    with pytest.raises(ProfileError) as caught:
        Engine("no-such-profile", entry_points=False)
    assert "broken.toml" in caught.value.reason and "not valid TOML" in caught.value.reason


def test_switching_a_step_s_implementation_drops_the_previous_one_s_parameters(tmp_path):
    """docs/generation.md: image-to-glb runs Meshy by default; --set provider.uses=tripo.generate
    (or a profile extending it) must not hand Meshy's should_texture to Tripo's step."""
    pytest.importorskip("meshforge_provider_meshy")
    pytest.importorskip("meshforge_provider_tripo")
    sets = ["provider.uses=tripo.generate", "provider.base_url=http://127.0.0.1:9/v2/openapi", "provider.api_key_env=TRIPO_API_KEY"]
    provider = next(s for s in Engine("image-to-glb", overrides=sets).profile.chain if s.id == "provider")
    assert provider.spec.name == "tripo.generate" and provider.params.base_url == "http://127.0.0.1:9/v2/openapi"
    child = tmp_path / "tripo.toml"
    child.write_text('schema = 1\nname = "tripo-glb"\nextends = "image-to-glb"\n'
                     '[steps.provider]\nuses = "tripo.generate"\nbase_url = "http://127.0.0.1:9/v2/openapi"\n')
    provider = next(s for s in Engine(str(child)).profile.chain if s.id == "provider")
    assert provider.spec.name == "tripo.generate"
    # the same implementation keeps merging: only a switch starts afresh
    same = next(s for s in Engine("image-to-glb", overrides=["provider.target_polycount=5000"]).profile.chain if s.id == "provider")
    assert same.spec.name == "meshy.generate" and same.params.target_polycount == 5000 and same.params.should_texture is True


def test_a_plugin_params_class_without_a_default_is_a_profile_error_naming_the_step():
    from dataclasses import dataclass

    import meshforge
    from meshforge.types import ValidateStep

    @dataclass(frozen=True)
    class NoDefault:
        limit: float

    class Plugin:
        __name__ = "nodefault"

        @meshforge.hookimpl
        def meshforge_validate_steps(self):
            return [ValidateStep(name="nodefault.check", summary="s", params=NoDefault, codes=("nodefault.x",), check=lambda v, p, c: [])]

    with pytest.raises(ProfileError) as caught:
        Engine({"name": "n", "chain": {"generate": ["import"], "validate": ["nodefault.check"]}}, plugins=[Plugin()], entry_points=False)
    assert "nodefault.check" in caught.value.where and "needs a default" in caught.value.reason


def test_a_switch_three_profiles_down_drops_what_the_middle_one_set_for_the_old_implementation(tmp_path):
    pytest.importorskip("meshforge_provider_meshy")
    pytest.importorskip("meshforge_provider_tripo")
    (tmp_path / "middle.toml").write_text('schema = 1\nname = "middle"\nextends = "image-to-glb"\n[steps.provider]\nshould_texture = false\n')
    (tmp_path / "leaf.toml").write_text('schema = 1\nname = "leaf"\nextends = "middle.toml"\n'
                                        '[steps.provider]\nuses = "tripo.generate"\nbase_url = "http://127.0.0.1:9/v2/openapi"\n')
    provider = next(s for s in Engine(str(tmp_path / "leaf.toml")).profile.chain if s.id == "provider")
    assert provider.spec.name == "tripo.generate"
    middle = next(s for s in Engine(str(tmp_path / "middle.toml")).profile.chain if s.id == "provider")
    assert middle.spec.name == "meshy.generate" and middle.params.should_texture is False


def test_a_provider_s_own_deadline_can_be_set_beside_the_engine_s_step_limit():
    """The provider parameter was named timeout_s, the engine's reserved key: --set provider.timeout_s=5
    set the engine's thread limit and the provider kept its 3600 s deadline."""
    pytest.importorskip("meshforge_provider_meshy")
    provider = next(s for s in Engine("image-to-glb", overrides=["provider.deadline_s=5", "provider.timeout_s=900"]).profile.chain
                    if s.id == "provider")
    assert provider.params.deadline_s == 5 and provider.timeout_s == 900
