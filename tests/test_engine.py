"""The engine on its own: a test plugin registered on one Engine, dict profiles, no built-in checks needed."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import trimesh

import meshforge
from meshforge import Engine, Finding, RepairResult, Severity, Status, testing
from meshforge.errors import ProfileError
from meshforge.params import field
from meshforge.report import schema
from meshforge.types import ExportStep, Generated, GenerateStep, RepairStep, ValidateStep


@dataclass(frozen=True, kw_only=True)
class HeightParams:
    max_height: float = field(100.0, "tallest allowed, in scene units")


class ToyPlugin:
    """A third party's plugin as an object: one check, two repairs, a crashing check, a slow check, an exporter."""

    __name__ = "toy"

    @staticmethod
    def check_height(view, params, ctx):
        height = float(view.mesh.extents[2])
        if height > params.max_height:
            yield ctx.finding("toy.too_tall", Severity.ERROR, f"{height:.1f} tall", measured=height, threshold=params.max_height)

    @staticmethod
    def check_crash(view, params, ctx):
        raise ValueError("boom")

    @staticmethod
    def check_slow(view, params, ctx):
        time.sleep(2.0)
        return []

    @staticmethod
    def halve(view, params, ctx):
        mesh = view.mesh.copy()
        mesh.apply_scale(0.5)
        return RepairResult(scene=mesh, note="halved")

    @staticmethod
    def noop(view, params, ctx):
        return RepairResult.unchanged()

    @staticmethod
    def write_marker(view, params, ctx):
        path = ctx.out_dir / f"{view.out_name}.txt"
        path.write_text(f"{len(view.mesh.faces)} faces")
        return [path]

    @meshforge.hookimpl
    def meshforge_validate_steps(self):
        return [
            ValidateStep(name="toy.height", summary="height limit", params=HeightParams, codes=("toy.too_tall",), check=self.check_height),
            ValidateStep(name="toy.crash", summary="always raises", codes=("toy.never",), check=self.check_crash),
            ValidateStep(name="toy.slow", summary="sleeps", codes=("toy.never",), check=self.check_slow),
        ]

    @meshforge.hookimpl
    def meshforge_repair_steps(self):
        return [
            RepairStep(name="toy.halve", summary="scale by 0.5", fixes=("toy.too_tall",), apply=self.halve),
            RepairStep(name="toy.noop", summary="does nothing", fixes=("toy.unrelated",), apply=self.noop),
        ]

    @meshforge.hookimpl
    def meshforge_export_steps(self):
        return [ExportStep(name="toy.marker", summary="text file", formats=("txt",), write=self.write_marker)]


def profile(**chain: list[str]) -> dict:
    return {"name": "toy", "chain": {"generate": ["import"], **chain}}


@pytest.fixture()
def engine_factory():
    def make(prof: dict, **kw) -> Engine:
        return Engine(prof, plugins=[ToyPlugin()], entry_points=False, **kw)

    return make


def tall_box() -> trimesh.Trimesh:
    return testing.box((10.0, 10.0, 150.0))


def test_passing_asset_has_no_findings_and_exit_zero(engine_factory):
    report = engine_factory(profile(validate=["toy.height"])).validate(testing.cube(20))
    assert report.status is Status.PASS
    assert report.findings == ()
    assert report.exit_code == 0


def test_error_finding_fails_validate_and_names_the_step(engine_factory):
    report = engine_factory(profile(validate=["toy.height"])).validate(tall_box())
    assert report.status is Status.FAIL and report.exit_code == 1
    (finding,) = report.findings
    assert finding.code == "toy.too_tall"
    assert finding.step == "toy.height"
    assert finding.measured == pytest.approx(150.0)
    assert finding.threshold == 100.0


def test_repair_runs_only_for_its_codes_and_revalidation_decides(engine_factory, tmp_path):
    eng = engine_factory(profile(validate=["toy.height"], repair=["toy.halve", "toy.noop"], export=["toy.marker"]))
    report = eng.run(tall_box(), out_dir=tmp_path)
    assert report.status is Status.PASS
    assert [f.code for f in report.initial_findings] == ["toy.too_tall"]
    assert report.initial_findings[0].fixable_by == ("toy.halve",)
    steps = {s.step_id: s for s in report.steps}
    assert steps["toy.halve"].outcome == "ok"
    assert steps["toy.halve"].before.bounds[1][2] == pytest.approx(75.0)
    assert steps["toy.halve"].after.bounds[1][2] == pytest.approx(37.5)
    assert steps["toy.noop"].outcome == "skipped"
    (out,) = report.outputs
    assert Path(out.path) == tmp_path / "mesh.txt" and not out.rejected
    assert (tmp_path / "mesh.report.json").is_file()


def test_failing_asset_is_written_to_rejected_with_its_report(engine_factory, tmp_path):
    prof = profile(validate=["toy.height"], export=["toy.marker"])
    prof["steps"] = {"toy.height": {"max_height": 5.0}}
    report = engine_factory(prof).run(testing.cube(20), out_dir=tmp_path)
    assert report.status is Status.FAIL
    assert report.outputs[0].rejected
    assert (tmp_path / "rejected" / "mesh.txt").read_text() == "12 faces"
    saved = json.loads((tmp_path / "rejected" / "mesh.report.json").read_text())
    assert saved["status"] == "fail"
    assert not (tmp_path / "mesh.txt").exists()


def test_a_crashing_step_becomes_an_error_finding_naming_plugin_step_and_file(engine_factory, corpus):
    path = corpus / "stl/trimesh/20mm-xyz-cube.stl"
    report = engine_factory(profile(validate=["toy.crash", "toy.height"])).validate(path)
    codes = [f.code for f in report.findings]
    assert codes == ["engine.step_failed"]
    message = report.findings[0].message
    assert "toy" in message and "toy.crash" in message and "20mm-xyz-cube.stl" in message and "ValueError: boom" in message
    # the chain went on after the crash
    assert [s.step_id for s in report.steps if s.stage == "validate"] == ["toy.crash", "toy.height"]


def test_step_time_limit_becomes_a_timeout_finding(engine_factory):
    prof = profile(validate=["toy.slow"])
    prof["steps"] = {"toy.slow": {"timeout_s": 0.2}}
    started = time.perf_counter()
    report = engine_factory(prof).validate(testing.cube())
    assert time.perf_counter() - started < 1.9  # did not wait for the 2 s sleep
    assert [f.code for f in report.findings] == ["engine.step_timeout"]
    assert report.steps[-1].outcome == "timeout"


def test_unknown_step_lists_the_choices(engine_factory):
    with pytest.raises(ProfileError) as err:
        engine_factory(profile(validate=["toy.heigth"]))
    assert "no validate step 'toy.heigth'" in str(err.value)
    assert err.value.choices[0] == "toy.height"


def test_unknown_parameter_and_wrong_type_are_profile_errors(engine_factory):
    prof = profile(validate=["toy.height"])
    prof["steps"] = {"toy.height": {"max_heigth": 3}}
    with pytest.raises(ProfileError, match=r"unknown parameter 'max_heigth'.*valid: max_height"):
        engine_factory(prof)
    prof["steps"] = {"toy.height": {"max_height": "tall"}}
    with pytest.raises(ProfileError, match=r"steps\.toy\.height\.max_height: expected a number"):
        engine_factory(prof)


def test_step_table_outside_the_chain_is_an_error(engine_factory):
    prof = profile(validate=["toy.height"])
    prof["steps"] = {"toy.heihgt": {"max_height": 3.0}}
    with pytest.raises(ProfileError, match="not in the chain"):
        engine_factory(prof)


def test_overrides_from_the_command_line_syntax(engine_factory):
    eng = engine_factory(profile(validate=["toy.height"]), overrides=["toy.height.max_height=200"])
    (step,) = eng.profile.stage(meshforge.Stage.VALIDATE)
    assert step.params.max_height == 200.0
    assert eng.validate(tall_box()).status is Status.PASS


def test_extends_merges_tables_and_replaces_chain_lists(tmp_path, monkeypatch, engine_factory):
    (tmp_path / "base.toml").write_text(
        'name = "base"\n[chain]\ngenerate = ["import"]\nvalidate = ["toy.height"]\nrepair = ["toy.halve"]\n'
        '[steps."toy.height"]\nmax_height = 10.0\n'
    )
    (tmp_path / "child.toml").write_text(
        'name = "child"\naliases = ["kid"]\nextends = "base"\n[chain]\nrepair = []\n[steps."toy.height"]\nmax_height = 50.0\n'
    )
    monkeypatch.setenv("MESHFORGE_PROFILE_PATH", str(tmp_path))
    eng = engine_factory("kid")
    assert eng.profile.name == "child"
    assert [s.id for s in eng.profile.chain] == ["import", "toy.height"]
    assert eng.profile.stage(meshforge.Stage.VALIDATE)[0].params.max_height == 50.0
    assert [Path(s).name for s in eng.profile.sources] == ["base.toml", "child.toml"]


def test_uses_falls_back_to_the_next_available_candidate(engine_factory):
    class Needy:
        __name__ = "needy"

        @meshforge.hookimpl
        def meshforge_validate_steps(self):
            return [ValidateStep(name="needy.check", summary="needs a missing module", requires=("no_such_module_xyz",),
                                 codes=("needy.x",), check=lambda v, p, c: [])]

    prof = profile(validate=["height"])
    prof["steps"] = {"height": {"uses": ["absent.plugin_step", "needy.check", "toy.height"], "max_height": 10.0}}
    eng = Engine(prof, plugins=[ToyPlugin(), Needy()], entry_points=False)
    (step,) = eng.profile.stage(meshforge.Stage.VALIDATE)
    assert step.spec.name == "toy.height"
    assert step.fallback_from[0] == "absent.plugin_step: no installed plugin offers it"
    assert "no_such_module_xyz cannot be imported" in step.fallback_from[1]
    prof["steps"] = {"height": {"uses": ["absent.one", "absent.two"]}}
    with pytest.raises(ProfileError, match="is offered by an installed plugin"):
        Engine(prof, plugins=[ToyPlugin()], entry_points=False)
    record = next(r for r in eng.plugins if r.name == "needy")
    listed = record.to_dict()
    assert listed["steps"]["validate"][0]["available"] is False
    assert listed["status"] == "unavailable" and "no_such_module_xyz" in listed["reason"]


def test_plugin_with_a_misspelt_hook_is_marked_failed_and_the_rest_loads():
    class Typo:
        __name__ = "typo"

        @meshforge.hookimpl
        def meshforge_validate_step(self):  # missing "s"
            return []

    eng = Engine(profile(), plugins=[Typo(), ToyPlugin()], entry_points=False)
    typo = next(r for r in eng.plugins if r.name == "typo")
    assert typo.status == "failed" and "meshforge_validate_step" in typo.reason
    assert next(r for r in eng.plugins if r.name == "toy").status == "active"


def test_two_engines_side_by_side_in_threads_do_not_interfere(engine_factory):
    strict = profile(validate=["toy.height"])
    strict["steps"] = {"toy.height": {"max_height": 5.0}}
    lenient = profile(validate=["toy.height"])
    a, b = engine_factory(strict), engine_factory(lenient)
    results: dict[str, list[Status]] = {"a": [], "b": []}

    def work(name: str, eng: Engine) -> None:
        for _ in range(5):
            results[name].append(eng.validate(testing.cube(20)).status)

    threads = [threading.Thread(target=work, args=("a", a)), threading.Thread(target=work, args=("b", b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"a": [Status.FAIL] * 5, "b": [Status.PASS] * 5}
    # a plugin registered on one engine is not on another
    assert "toy" not in {r.name for r in Engine(profile(), entry_points=False).plugins}


def test_regeneration_retries_until_the_asset_passes(engine_factory):
    class Gen:
        __name__ = "gen"

        @staticmethod
        def generate(inputs, params, ctx):
            height = 150.0 if ctx.attempt == 1 else 50.0
            return Generated(scene=testing.box((10.0, 10.0, height)), provenance={"seed": ctx.attempt, "cost": 0.5})

        @meshforge.hookimpl
        def meshforge_generate_steps(self):
            return [GenerateStep(name="gen.box", summary="boxes", generate=self.generate)]

    prof = {"name": "regen", "chain": {"generate": ["gen.box"], "validate": ["toy.height"]}, "run": {"regenerate_attempts": 2}}
    eng = Engine(prof, plugins=[ToyPlugin(), Gen()], entry_points=False)
    report = eng.run(meshforge.Inputs(id="sku-1", prompt="a box"))
    assert report.status is Status.PASS
    assert [a["status"] for a in report.attempts] == ["fail", "pass"]
    assert [a["provenance"]["seed"] for a in report.attempts] == [1, 2]


def test_unusable_input_is_a_report_not_an_exception(engine_factory, tmp_path):
    missing = tmp_path / "nope.stl"
    report = engine_factory(profile()).validate(missing)
    assert report.status is Status.UNUSABLE and report.exit_code == 2
    assert report.findings[0].code == "input.unreadable"
    assert str(missing) in report.findings[0].message
    garbage = tmp_path / "junk.bin"
    garbage.write_bytes(b"\x00\x01\x02 definitely not a model")
    report = engine_factory(profile()).validate(garbage)
    assert report.status is Status.UNUSABLE
    assert report.findings[0].code.startswith("input.")


def test_reports_validate_against_the_shipped_schema(engine_factory, tmp_path):
    eng = engine_factory(profile(validate=["toy.height", "toy.crash"], repair=["toy.halve"], export=["toy.marker"]))
    reports = [eng.run(tall_box(), out_dir=tmp_path), eng.validate(tmp_path / "missing.stl")]
    for rep in reports:
        jsonschema.validate(rep.to_dict(), schema())
    run = meshforge.RunResult(assets=tuple(reports))
    jsonschema.validate(run.to_dict(), schema())
    assert run.exit_code == 2


def test_non_finite_measurements_stay_valid_json(engine_factory):
    mesh = testing.cube(20)
    verts = mesh.vertices.copy()
    verts[0] = [np.nan, 0, 0]
    broken = trimesh.Trimesh(verts, mesh.faces, process=False)
    rep = engine_factory(profile(validate=["toy.height"])).validate(broken)
    text = json.dumps(rep.to_dict(), allow_nan=False)
    jsonschema.validate(json.loads(text), schema())


def test_measure_agrees_with_trimesh_on_closed_open_and_overused_edges():
    from meshforge.engine import measure
    from meshforge.types import Units

    closed = trimesh.creation.icosphere(subdivisions=2, radius=10.0)
    cases = {
        "closed": closed,
        "open": trimesh.Trimesh(closed.vertices, closed.faces[1:], process=False),  # odd number of faces: 3n keys
        "two holes": trimesh.Trimesh(closed.vertices, closed.faces[2:], process=False),
        "an edge used three times": trimesh.Trimesh(closed.vertices, np.vstack([closed.faces, closed.faces[:1]]), process=False),
    }
    for name, mesh in cases.items():
        metrics = measure(trimesh.Scene(mesh), Units("mm"))
        assert metrics.watertight == mesh.is_watertight, name
        assert metrics.triangles == len(mesh.faces) and metrics.vertices == len(mesh.vertices), name
    assert measure(trimesh.Scene(closed), Units("mm")).volume == pytest.approx(closed.volume, rel=1e-12)
    # a vertex per UV-seam side (as a GLB stores a textured box) is no hole: positions are welded first
    seams = closed.copy()
    seams.unmerge_vertices()
    assert not seams.is_watertight and measure(trimesh.Scene(seams), Units("mm")).watertight is True
    seams_open = trimesh.Trimesh(seams.vertices, seams.faces[1:], process=False)
    assert measure(trimesh.Scene(seams_open), Units("mm")).watertight is False
    # an open mesh's figure does not move with the origin (the tetrahedra meet at the centroid)
    opened = cases["two holes"]
    moved = opened.copy()
    moved.apply_translation([1000.0, -50.0, 7.0])
    assert measure(trimesh.Scene(moved), Units("mm")).volume == pytest.approx(measure(trimesh.Scene(opened), Units("mm")).volume, rel=1e-9)


def test_finding_codes_are_checked():
    with pytest.raises(ValueError):
        Finding(code="NotACode", severity=Severity.ERROR, message="x")
    f = Finding(code="a.b", severity="warning", message="x", samples=range(50))
    assert f.severity is Severity.WARNING and len(f.samples) == 10


def test_a_missing_system_library_makes_only_that_step_unavailable(tmp_path, monkeypatch, engine_factory):
    # how open3d fails without Debian's libusb-1.0-0: the wheel is there, its import raises OSError
    (tmp_path / "needs_libusb.py").write_text(
        'raise OSError("libusb-1.0.so.0: cannot open shared object file: No such file or directory")\n')
    monkeypatch.syspath_prepend(str(tmp_path))

    class Native:
        __name__ = "native"

        @meshforge.hookimpl
        def meshforge_validate_steps(self):
            return [ValidateStep(name="native.check", summary="needs a system library", requires=("needs_libusb",),
                                 codes=("native.x",), check=lambda v, p, c: [])]

    eng = Engine(profile(validate=["toy.height"]), plugins=[ToyPlugin(), Native()], entry_points=False)
    listed = next(r for r in eng.plugins if r.name == "native").to_dict()
    assert listed["status"] == "unavailable"
    assert "libusb-1.0.so.0: cannot open shared object file" in listed["reason"]
    assert eng.validate(testing.cube()).status is Status.PASS  # everything else still runs
    with pytest.raises(ProfileError, match="libusb"):
        Engine(profile(validate=["native.check"]), plugins=[Native()], entry_points=False)
