"""The command line as a user meets it: exit codes, one-line errors, listings, reports on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from meshforge import testing
from meshforge.cli.main import main
from meshforge.report import schema

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The installed entry point in a subprocess: what a shell user gets (tracebacks included)."""
    return subprocess.run([sys.executable, "-m", "meshforge", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


@pytest.fixture()
def clean_stl(tmp_path: Path) -> Path:
    path = tmp_path / "cube.stl"
    path.write_bytes(testing.cube(20.0).export(file_type="stl"))
    return path


@pytest.fixture()
def open_stl(tmp_path: Path) -> Path:
    path = tmp_path / "open.stl"
    path.write_bytes(testing.open_box(20.0, holes=1).export(file_type="stl"))
    return path


def test_validate_exit_0_for_a_clean_part(clean_stl):
    proc = cli("validate", "--profile", "fdm-print", str(clean_stl))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout


def test_validate_exit_1_for_an_open_part_and_writes_nothing(open_stl, tmp_path):
    before = set(tmp_path.iterdir())
    proc = cli("validate", "--profile", "fdm-print-stl", "--json", str(open_stl))
    assert proc.returncode == 1, proc.stderr
    report = json.loads(proc.stdout)
    codes = {f["code"] for f in report["assets"][0]["findings"] if f["severity"] == "error"}
    assert "print.not_watertight" in codes
    assert set(tmp_path.iterdir()) == before


def test_run_repairs_exports_and_writes_a_schema_valid_report(open_stl, tmp_path):
    out, report_path = tmp_path / "out", tmp_path / "report.json"
    proc = cli("run", "--profile", "fdm-print", str(open_stl), "--out", str(out), "--report", str(report_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report_path.read_text())
    jsonschema.validate(data, schema())
    asset = data["assets"][0]
    assert asset["status"] == "pass"
    assert "print.not_watertight" in {f["code"] for f in asset["initial_findings"]}
    # the hole was filled by the entry-point distribution under plugins/, named by the profile
    fill = next(s for s in asset["steps"] if s["id"] == "fill_holes")
    assert (fill["plugin"], fill["outcome"]) == ("meshlab", "ok")
    assert {Path(o["path"]).suffix for o in asset["outputs"]} == {".stl", ".3mf"}
    for output in asset["outputs"]:
        assert Path(output["path"]).is_file() and Path(output["path"]).stat().st_size == output["bytes"]
    jsonschema.validate(json.loads((out / "open.report.json").read_text()), schema())


def test_exit_2_for_unreadable_input_with_one_line_and_no_traceback(tmp_path, clean_stl):
    garbage = tmp_path / "garbage.stl"
    garbage.write_bytes(b"solid x\n facet normal nonsense \x00\x01")
    missing = tmp_path / "missing.glb"
    proc = cli("validate", "--profile", "fdm-print", str(clean_stl), str(garbage), str(missing))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert any(str(garbage) in line for line in lines)
    assert any(str(missing) in line and "no such file" in line for line in lines)


def test_unknown_profile_lists_choices():
    proc = cli("validate", "--profile", "fdm-prnt", "x.stl")
    assert proc.returncode == 2
    assert proc.stderr.startswith("meshforge: fdm-prnt: unknown profile; valid: ")
    assert "fdm-print-stl" in proc.stderr and "Traceback" not in proc.stderr


def test_unknown_or_mistyped_parameter_lists_choices(clean_stl):
    proc = cli("validate", "--profile", "fdm-print", "--set", "thickness.min_m=1", str(clean_stl))
    assert proc.returncode == 2
    assert "unknown parameter 'min_m'" in proc.stderr and "min_mm" in proc.stderr
    proc = cli("validate", "--profile", "fdm-print", "--set", "thickness.min_mm=thick", str(clean_stl))
    assert proc.returncode == 2 and "expected a number" in proc.stderr
    proc = cli("validate", "--profile", "fdm-print", "--set", "thicknes.min_mm=1", str(clean_stl))
    assert proc.returncode == 2 and "not in the chain" in proc.stderr and "thickness" in proc.stderr


def test_set_overrides_change_the_verdict(clean_stl):
    # a 20 mm cube on a 15 mm bed fails; the default bed takes it
    proc = cli("validate", "--profile", "fdm-print", "--set", "build_volume.volume_mm=[15.0, 15.0, 15.0]", "--json", str(clean_stl))
    assert proc.returncode == 1
    assert "print.exceeds_build_volume" in {f["code"] for f in json.loads(proc.stdout)["assets"][0]["findings"]}


def test_profiles_list_and_show():
    runner = CliRunner()
    listed = runner.invoke(main, ["profiles", "list", "--json"])
    assert listed.exit_code == 0
    names = {p["name"] for p in json.loads(listed.output)}
    assert {"fdm-print-stl", "sla-print-stl", "ecommerce-glb"} <= names
    shown = runner.invoke(main, ["profiles", "show", "sla-print", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["name"] == "sla-print-stl"
    assert [Path(s).name for s in data["sources"]] == ["print-base.toml", "sla-print-stl.toml"]
    thickness = next(s for s in data["chain"]["validate"] if s["id"] == "thickness")
    assert thickness["params"]["min_mm"] == 0.4


def test_user_profile_by_path_and_search_path(tmp_path, clean_stl):
    mine = tmp_path / "mine.toml"
    mine.write_text('extends = "fdm-print-stl"\n[steps.build_volume]\nvolume_mm = [10.0, 10.0, 10.0]\n')
    assert cli("validate", "--profile", str(mine), str(clean_stl)).returncode == 1
    proc = cli("profiles", "list", "--json", env={"MESHFORGE_PROFILE_PATH": str(tmp_path)})
    assert "mine" in {p["name"] for p in json.loads(proc.stdout)}


def test_plugins_listing_shows_builtins_and_the_entry_point_distribution():
    result = CliRunner().invoke(main, ["plugins", "--json"])
    assert result.exit_code == 0
    records = {r["name"]: r for r in json.loads(result.output)}
    assert records["builtin.generate.load"]["origin"] == "builtin"
    meshlab = records["meshlab"]
    assert meshlab["origin"] == "entry-point"
    assert meshlab["distribution"] == "meshforge-meshlab" and meshlab["version"] == "0.1.0"
    assert all(r["status"] == "active" for r in records.values()), [r for r in records.values() if r["status"] != "active"]


def test_blocked_plugin_is_listed_as_blocked_and_its_steps_are_gone(clean_stl):
    proc = cli("plugins", "--json", env={"MESHFORGE_BLOCK": "meshlab"})
    assert {r["name"]: r["status"] for r in json.loads(proc.stdout)}["meshlab"] == "blocked"
    # the print profile still resolves: fill_holes falls back to the core step
    proc = cli("profiles", "show", "fdm-print", "--json", env={"MESHFORGE_BLOCK": "meshlab"})
    assert proc.returncode == 0, proc.stderr
    fill = next(s for s in json.loads(proc.stdout)["chain"]["repair"] if s["id"] == "fill_holes")
    assert fill["plugin"].startswith("builtin.")


def test_readme_first_command_writes_the_printable_files_into_a_relative_out(tmp_path):
    """The README's first command, as a newcomer runs it: from the checkout, with a relative --out.
    (A relative output folder once lost every exported file while the run said PASS.)"""
    readme = (ROOT / "README.md").read_text()
    first = readme.split("```console\n", 1)[1].split("\n", 1)[0]
    command = first.split("&& ", 1)[1].split()
    assert command[0] == "meshforge" and "--out" in command
    out = command[command.index("--out") + 1]
    assert not Path(out).is_absolute()
    sample = command[command.index("--profile") + 2]
    (tmp_path / sample).parent.mkdir(parents=True)
    (tmp_path / sample).write_bytes((ROOT / sample).read_bytes())
    proc = subprocess.run([sys.executable, "-m", "meshforge", *command[1:]], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stem = Path(sample).stem
    report = json.loads((tmp_path / out / f"{stem}.report.json").read_text())
    written = sorted(Path(o["path"]).name for o in report["outputs"])
    assert written == [f"{stem}.3mf", f"{stem}.stl"]
    for name in written:
        assert (tmp_path / out / name).stat().st_size > 1000
    assert sorted(p.name for p in (tmp_path / out).iterdir()) == sorted([*written, f"{stem}.report.json"])  # no staging left


def test_run_refuses_two_inputs_that_would_write_the_same_files(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "part.stl").write_bytes(testing.cube(20.0).export(file_type="stl"))
    out = tmp_path / "out"
    proc = cli("run", "--profile", "fdm-print", str(tmp_path / "a" / "part.stl"), str(tmp_path / "b" / "part.stl"), "--out", str(out))
    assert proc.returncode == 2
    assert "a/part.stl" in proc.stderr and "b/part.stl" in proc.stderr and "different --out" in proc.stderr
    assert not out.exists()
