"""docs/plugins.md, followed literally: write its files, pip-install the plugin, list it, run it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from meshforge import Engine, Status, testing

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "plugins.md"
BLOCK = re.compile(r"```(?:toml|python)\n# file: (?P<path>\S+)\n(?P<body>.*?)```", re.DOTALL)


def _write_files(dest: Path) -> list[str]:
    written = []
    for match in BLOCK.finditer(DOC.read_text(encoding="utf-8")):
        path = dest / match["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(match["body"], encoding="utf-8")
        written.append(match["path"])
    return written


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The doc's plugin installed into a private site folder (no change to this environment)."""
    work = tmp_path_factory.mktemp("walkthrough")
    written = _write_files(work)
    assert "meshforge-tallness/pyproject.toml" in written and "gantry.toml" in written
    site = work / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site),
         str(work / "meshforge-tallness")],
        check=True, capture_output=True, text=True,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return work, env


def meshforge(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "meshforge.cli", *args], capture_output=True, text=True, env=env, cwd=cwd)


def test_the_installed_plugin_is_listed_with_its_distribution(installed):
    work, env = installed
    proc = meshforge(env, "plugins", "--json", cwd=work)
    assert proc.returncode == 0, proc.stderr
    (record,) = [r for r in json.loads(proc.stdout) if r["name"] == "tallness"]
    assert record["origin"] == "entry-point"
    assert record["distribution"] == "meshforge-tallness" and record["version"] == "1.0.0"
    assert record["status"] == "active"
    assert record["steps"]["validate"][0]["name"] == "tallness.max_height"


def test_the_profile_naming_the_step_runs_it(installed):
    work, env = installed
    part = work / "part.stl"
    part.write_bytes(testing.cube(20.0).export(file_type="stl"))
    failed = meshforge(env, "validate", "--profile", "./gantry.toml", "--json", str(part), cwd=work)
    assert failed.returncode == 1, failed.stderr
    report = json.loads(failed.stdout)["assets"][0]
    assert [f["code"] for f in report["findings"]] == ["tallness.too_tall"]
    assert report["steps"][-1]["plugin"] == "tallness"
    passed = meshforge(env, "validate", "--profile", "./gantry.toml", "--set", "tallness.max_height_mm=30", str(part), cwd=work)
    assert passed.returncode == 0, passed.stdout + passed.stderr


def test_the_testing_section_works_in_process(installed):
    work, _ = installed
    sys.path.insert(0, str(work / "site"))
    try:
        import meshforge_tallness

        step = meshforge_tallness.meshforge_validate_steps()[0]
        assert testing.codes(testing.run_check(step, testing.cube(20.0), max_height_mm=15.0)) == ["tallness.too_tall"]
        assert testing.check_plugin(meshforge_tallness) == []
        eng = Engine({"chain": {"generate": ["import"], "validate": ["tallness.max_height"]}},
                     plugins=[meshforge_tallness], entry_points=False)
        assert eng.validate(testing.cube(20.0)).status is Status.PASS
    finally:
        sys.path.remove(str(work / "site"))
        sys.modules.pop("meshforge_tallness", None)
