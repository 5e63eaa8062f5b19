"""A third party's plugin that gets the contract wrong costs its own step, never the run.

Each case is a plugin mistake the engine once let escape as an "internal error" (losing the other
files' reports) or as a silent PASS: a check yielding a dict, a repair returning a string for a
scene, an observer or a format sniffer that raises, an export step that fails or hands back a path
it did not write.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import meshforge
from meshforge import Engine, RepairResult, Severity, Status, testing
from meshforge.types import ExportStep, RepairStep, ValidateStep


class Careless:
    __name__ = "careless"

    def __init__(self) -> None:
        self.seen: list[str] = []

    @staticmethod
    def yields_dict(view, params, ctx):
        yield ctx.finding("careless.tall", Severity.WARNING, "fine")
        yield {"code": "careless.tall"}

    @staticmethod
    def always_flags(view, params, ctx):
        yield ctx.finding("careless.flag", Severity.ERROR, "flagged for the repair below")

    @staticmethod
    def returns_text_scene(view, params, ctx):
        return RepairResult(scene="not a mesh", note="oops")

    @staticmethod
    def write_ok(view, params, ctx):
        path = ctx.out_dir / f"{view.out_name}.txt"
        path.write_text("ok")
        return [path]

    @staticmethod
    def write_fails(view, params, ctx):
        raise OSError("disk full")

    @staticmethod
    def write_elsewhere(view, params, ctx):
        return [Path("/etc/hostname")]

    @meshforge.hookimpl
    def meshforge_validate_steps(self):
        return [
            ValidateStep(name="careless.dict", summary="yields a dict", codes=("careless.tall",), check=self.yields_dict),
            ValidateStep(name="careless.flag", summary="always an error", codes=("careless.flag",), check=self.always_flags),
        ]

    @meshforge.hookimpl
    def meshforge_repair_steps(self):
        return [RepairStep(name="careless.text", summary="returns text", fixes=("careless.flag",), apply=self.returns_text_scene)]

    @meshforge.hookimpl
    def meshforge_export_steps(self):
        return [
            ExportStep(name="careless.ok", summary="writes a file", formats=("txt",), write=self.write_ok),
            ExportStep(name="careless.fails", summary="raises", formats=("txt",), write=self.write_fails),
            ExportStep(name="careless.elsewhere", summary="returns a path it did not write", formats=("txt",), write=self.write_elsewhere),
        ]


class NoisyObserver:
    __name__ = "noisy"

    @meshforge.hookimpl
    def meshforge_step_finished(self, record):
        raise RuntimeError("observer bug")

    @meshforge.hookimpl
    def meshforge_run_finished(self, report):
        raise RuntimeError("observer bug")

    @meshforge.hookimpl
    def meshforge_detect_format(self, head, filename):
        raise RuntimeError("sniffer bug")


class QuietObserver:
    __name__ = "quiet"

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.reports: list[str] = []

    @meshforge.hookimpl
    def meshforge_step_finished(self, record):
        self.steps.append(record.step_id)

    @meshforge.hookimpl
    def meshforge_run_finished(self, report):
        self.reports.append(report.status.value)


def engine(chain: dict, *plugins) -> Engine:
    return Engine({"name": "careless", "chain": {"generate": ["import"], **chain}}, plugins=[Careless(), *plugins], entry_points=False)


def test_a_check_yielding_a_non_finding_fails_that_step_only():
    report = engine({"validate": ["careless.dict"]}).validate(testing.cube(20))
    (finding,) = report.findings
    assert finding.code == "engine.step_failed" and finding.severity is Severity.ERROR
    assert "careless.dict" in finding.message and "yielded dict, not Finding" in finding.message
    assert report.status is Status.FAIL


def test_a_repair_returning_a_non_scene_fails_that_step_and_keeps_the_geometry(tmp_path):
    cube = testing.cube(20)
    report = engine({"validate": ["careless.flag"], "repair": ["careless.text"]}).run(cube, out_dir=tmp_path)
    failed = [f for f in report.findings if f.code == "engine.step_failed"]
    assert len(failed) == 1 and "careless.text" in failed[0].message and "str" in failed[0].message
    step = next(s for s in report.steps if s.step_id == "careless.text")
    assert step.outcome == "failed"
    assert report.metrics is not None and report.metrics.triangles == len(cube.faces)


def test_an_observer_that_raises_is_logged_and_the_run_and_other_observers_go_on(tmp_path, caplog):
    quiet = QuietObserver()
    eng = engine({"validate": ["careless.flag"], "export": ["careless.ok"]}, NoisyObserver(), quiet)
    with caplog.at_level(logging.WARNING, logger="meshforge.engine"):
        report = eng.run(testing.cube(20), out_dir=tmp_path)
    assert report.status is Status.FAIL  # the flag, not the observer
    assert quiet.steps == ["import", "careless.flag", "careless.ok"] and quiet.reports == ["fail"]
    assert "observer bug" not in json.dumps(report.to_dict(), default=str)
    assert any("meshforge_step_finished raised" in r.getMessage() for r in caplog.records)


def test_a_format_sniffer_that_raises_does_not_make_files_unreadable(tmp_path):
    path = tmp_path / "cube.stl"
    path.write_bytes(testing.cube(20).export(file_type="stl"))
    report = engine({"validate": []}, NoisyObserver()).validate(path)
    assert report.status is Status.PASS
    assert report.input["format"] == "stl"


def test_a_failed_export_step_fails_the_asset_and_publishes_nothing_as_accepted(tmp_path):
    report = engine({"validate": [], "export": ["careless.ok", "careless.fails"]}).run(testing.cube(20), out_dir=tmp_path)
    assert report.status is Status.FAIL and report.exit_code == 1
    (finding,) = report.findings
    assert finding.code == "engine.step_failed" and "careless.fails" in finding.message and "disk full" in finding.message
    # the other export's file goes with the asset into rejected/, never beside accepted assets
    assert not (tmp_path / "mesh.txt").exists()
    assert (tmp_path / "rejected" / "mesh.txt").read_text() == "ok"
    assert [o.rejected for o in report.outputs] == [True]
    assert json.loads((tmp_path / "rejected" / "mesh.report.json").read_text())["status"] == "fail"


def test_an_export_step_returning_a_path_it_did_not_write_is_a_failure_not_a_silent_drop(tmp_path):
    report = engine({"validate": [], "export": ["careless.elsewhere"]}).run(testing.cube(20), out_dir=tmp_path)
    assert report.status is Status.FAIL
    (finding,) = report.findings
    assert "careless.elsewhere" in finding.message and "/etc/hostname" in finding.message
    assert report.outputs == ()


def test_a_relative_output_folder_gets_the_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    report = engine({"validate": [], "export": ["careless.ok"]}).run(testing.cube(20), out_dir="out")
    assert report.status is Status.PASS
    (output,) = report.outputs
    assert Path(output.path) == Path("out") / "mesh.txt"
    assert (tmp_path / "out" / "mesh.txt").read_text() == "ok"


def test_an_installed_plugin_calling_sys_exit_at_import_is_a_failed_row_not_the_end_of_every_command(tmp_path, monkeypatch):
    import importlib.metadata

    (tmp_path / "quitter_plugin.py").write_text("import sys\nsys.exit('this plugin refuses to load')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    real = importlib.metadata.entry_points

    def entry_points(**kw):
        found = list(real(**kw))
        if kw.get("group") == "meshforge":
            found.append(importlib.metadata.EntryPoint(name="quitter", value="quitter_plugin", group="meshforge"))
        return found

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    eng = Engine("fdm-print-stl")
    row = next(p for p in eng.plugins if p.name == "quitter")
    assert row.status == "failed" and "this plugin refuses to load" in (row.reason or "")
    assert eng.validate(testing.cube(20)).status is Status.PASS


def test_findings_need_a_message_and_a_non_negative_count():
    import pytest

    from meshforge import Finding

    with pytest.raises(ValueError, match="needs a message"):
        Finding(code="careless.empty", severity=Severity.WARNING, message=" ")
    with pytest.raises(ValueError, match="negative"):
        Finding(code="careless.count", severity=Severity.WARNING, message="m", count=-1)


def test_numpy_values_in_a_repair_s_details_leave_the_report_plain_json(tmp_path):
    import numpy as np

    class Detailed:
        __name__ = "detailed"

        @staticmethod
        def apply(view, params, ctx):
            return RepairResult(scene=None, note="measured", details={"moved": np.array([1.5, 2.0]), "faces": np.int64(12),
                                                                       "ok": np.bool_(True), "where": tmp_path})

        @meshforge.hookimpl
        def meshforge_repair_steps(self):
            return [RepairStep(name="detailed.note", summary="details only", fixes=("careless.flag",), apply=self.apply)]

    eng = Engine({"name": "d", "chain": {"generate": ["import"], "validate": ["careless.flag"], "repair": ["detailed.note"]}},
                 plugins=[Careless(), Detailed()], entry_points=False)
    report = eng.run(testing.cube(20), out_dir=tmp_path)
    step = next(s for s in report.to_dict()["steps"] if s["id"] == "detailed.note")
    assert json.loads(json.dumps(step["details"])) == {"targets": ["careless.flag"], "moved": [1.5, 2.0], "faces": 12, "ok": True,
                                                       "where": str(tmp_path)}


def test_a_model_path_given_as_text_is_read_as_a_path(tmp_path):
    from meshforge import Inputs

    path = tmp_path / "cube.stl"
    path.write_bytes(testing.cube(20).export(file_type="stl"))
    report = engine({"validate": []}).validate(Inputs(id="x", model=str(path)))
    assert report.status is Status.PASS and report.input["format"] == "stl"


def test_a_plugin_step_named_like_a_built_in_one_leaves_the_packaged_profiles_working():
    class Shadow:
        __name__ = "shadow"

        @staticmethod
        def check(view, params, ctx):
            yield ctx.finding("shadow.seen", Severity.WARNING, "the shadow step ran")

        @meshforge.hookimpl
        def meshforge_validate_steps(self):
            return [ValidateStep(name="print.closed", summary="same name as the built-in", codes=("shadow.seen",), check=self.check)]

    eng = Engine("fdm-print-stl", plugins=[Shadow()], entry_points=False)
    closed = next(s for s in eng.profile.chain if s.id == "closed")
    assert closed.plugin.startswith("builtin.")
    chosen = Engine({"name": "s", "chain": {"generate": ["import"], "validate": ["shadow:print.closed"]}}, plugins=[Shadow()], entry_points=False)
    assert [f.code for f in chosen.validate(testing.cube(20)).findings] == ["shadow.seen"]


def test_a_failure_between_the_steps_is_that_asset_s_unusable_report_and_the_next_input_runs(tmp_path):
    """A scene the engine's own figures cannot measure (2-D vertices) once escaped as an internal
    error that ended a multi-file command and lost every report."""
    import numpy as np
    import trimesh

    from meshforge.types import Generated, GenerateStep

    class Flat:
        __name__ = "flat"

        @staticmethod
        def generate(inputs, params, ctx):
            if inputs.id != "flat":
                return None
            return Generated(scene=trimesh.Trimesh(vertices=np.zeros((3, 2)), faces=[[0, 1, 2]], process=False), filename="flat.obj")

        @meshforge.hookimpl
        def meshforge_generate_steps(self):
            return [GenerateStep(name="flat.make", summary="2-D vertices", generate=self.generate)]

    eng = Engine({"name": "f", "chain": {"generate": ["flat.make", "import"], "validate": []}}, plugins=[Flat()], entry_points=False)
    broken = eng.validate(testing.cube(20), id="flat")
    assert broken.status is Status.UNUSABLE and broken.exit_code == 2
    (finding,) = broken.findings
    assert finding.code == "engine.internal_error" and finding.message.startswith("flat: could not be processed (")
    assert eng.validate(testing.cube(20), id="next").status is Status.PASS


def test_a_model_piped_in_is_read_whole(tmp_path):
    import os
    import threading

    data = testing.cube(20).export(file_type="stl")
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    threading.Thread(target=lambda: fifo.write_bytes(data), daemon=True).start()
    reports = []
    # in a thread: reopening a pipe that was already drained waits for a writer that never comes
    reader = threading.Thread(target=lambda: reports.append(engine({"validate": []}).validate(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=60)
    assert reports, "the pipe was opened twice: the second open waits forever"
    (report,) = reports
    assert report.status is Status.PASS, [f.message for f in report.findings]
    assert report.input["bytes"] == len(data) and report.metrics.triangles == 12


def test_an_export_step_returning_a_file_twice_or_a_non_path_fails_alone(tmp_path):
    class Twice:
        __name__ = "twice"

        @staticmethod
        def write_twice(view, params, ctx):
            path = ctx.out_dir / "mesh.txt"
            path.write_text("x")
            return [path, path]

        @staticmethod
        def write_none(view, params, ctx):
            return [None]

        @meshforge.hookimpl
        def meshforge_export_steps(self):
            return [ExportStep(name="twice.dup", summary="same path twice", formats=("txt",), write=self.write_twice),
                    ExportStep(name="twice.none", summary="None for a path", formats=("txt",), write=self.write_none)]

    for step, says in (("twice.dup", "already returned"), ("twice.none", "not a path")):
        out = tmp_path / step
        eng = Engine({"name": "t", "chain": {"generate": ["import"], "validate": [], "export": [step]}}, plugins=[Twice()], entry_points=False)
        report = eng.run(testing.cube(20), out_dir=out)
        assert report.status is Status.FAIL
        (finding,) = report.findings
        assert finding.code == "engine.step_failed" and says in finding.message
        assert sorted(p.name for p in out.iterdir()) == ["rejected"]  # nothing published beside accepted assets


def test_hook_implementations_taking_some_of_the_arguments_are_called_with_those():
    class Partial:
        __name__ = "partial"

        def __init__(self) -> None:
            self.finished = 0

        @meshforge.hookimpl
        def meshforge_detect_format(self, filename):
            return "stl" if filename and filename.endswith(".weird") else None

        @meshforge.hookimpl
        def meshforge_run_finished(self):
            self.finished += 1

    partial = Partial()
    eng = engine({"validate": []}, partial)
    assert eng.detect_format(b"\\0" * 84, "part.weird") == "stl"
    eng.validate(testing.cube(20))
    assert partial.finished == 1


def test_a_plugin_named_like_a_built_in_module_is_not_taken_for_one():
    class Impostor:
        __name__ = "builtin.extras"

        @staticmethod
        def check(view, params, ctx):
            return []

        @meshforge.hookimpl
        def meshforge_validate_steps(self):
            return [ValidateStep(name="print.closed", summary="same name", codes=("impostor.x",), check=self.check)]

    closed = next(s for s in Engine("fdm-print-stl", plugins=[Impostor()], entry_points=False).profile.chain if s.id == "closed")
    assert closed.plugin == "builtin.validate.printing"  # the real one: the impostor's name made the lookup ambiguous


def test_sets_and_enums_in_details_are_plain_and_stable():
    from enum import Enum

    from meshforge.report import json_safe

    class Colour(Enum):
        RED = 1

    assert json_safe({"ids": {3, 1, 2}, "colour": Colour.RED, "where": Path("/x")}) == {"ids": [1, 2, 3], "colour": 1, "where": "/x"}
