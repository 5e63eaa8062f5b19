"""Keeps the project honest: packaging complete, imports pointing down, every hook, code and step
documented and tested."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

import pytest

from meshforge import hookspecs
from meshforge.plugins import load_plugins
from meshforge.types import Stage, ValidateStep

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "meshforge"


def _registry():
    return load_plugins()


def test_every_package_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {"meshforge." + ".".join(p.parent.relative_to(SRC).parts) if p.parent != SRC else "meshforge"
             for p in SRC.rglob("__init__.py")}
    assert found - listed == set(), "add these to [tool.setuptools] packages"


def test_every_builtin_plugin_keeps_the_step_contract():
    import importlib

    from meshforge import testing
    from meshforge.plugins import BUILTIN_PLUGINS

    problems = {name: testing.check_plugin(importlib.import_module(name)) for name in BUILTIN_PLUGINS}
    assert {k: v for k, v in problems.items() if v} == {}


def test_every_builtin_plugin_loads():
    failed = {r.name: r.reason for r in _registry().records if r.status != "active"}
    assert failed == {}


def _module_imports(path: Path) -> list[str]:
    """Imports executed at import time (ignores `if TYPE_CHECKING:` blocks and function bodies)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, (ast.FunctionDef, ast.ClassDef)) else ():
            if isinstance(sub, ast.Import):
                names += [a.name for a in sub.names]
            elif isinstance(sub, ast.ImportFrom) and sub.module and sub.level == 0:
                names.append(sub.module)
    return names


@pytest.mark.parametrize("path", sorted((SRC / "ops").glob("*.py")), ids=lambda p: p.name)
def test_ops_are_pure_geometry(path):
    own = [m for m in _module_imports(path) if m.startswith("meshforge")]
    allowed = ("meshforge.ops", "meshforge.errors", "meshforge.types")
    assert [m for m in own if not m.startswith(allowed)] == [], "ops/ must not import the engine, plugins or steps"


@pytest.mark.parametrize("name", ["types.py", "asset.py", "context.py", "errors.py", "params.py", "hookspecs.py"])
def test_contract_modules_do_not_import_the_engine(name):
    bad = [m for m in _module_imports(SRC / name)
           if m.startswith(("meshforge.engine", "meshforge.plugins", "meshforge.cli", "meshforge.builtin"))]
    assert bad == []


def test_every_hookspec_is_documented_for_plugin_authors():
    doc = (ROOT / "docs" / "plugins.md").read_text()
    specs = [name for name in dir(hookspecs) if name.startswith("meshforge_")]
    assert specs and [s for s in specs if s not in doc] == []


def test_every_declared_finding_code_is_documented():
    documented = "\n".join(p.read_text() for p in (ROOT / "docs" / "findings").glob("*.md"))
    missing = []
    for entry in _registry().entries(Stage.VALIDATE):
        if isinstance(entry.spec, ValidateStep):
            missing += [f"{entry.qualified}: {code}" for code in entry.spec.codes if f"`{code}`" not in documented]
    assert missing == [], "document these in docs/findings/*.md (as `code`)"


def test_every_code_raised_in_the_source_is_documented():
    """Readers and the engine emit input.* codes without declaring them on a step: scan the source."""
    documented = "\n".join(p.read_text() for p in (ROOT / "docs" / "findings").glob("*.md"))
    raised = set()
    for path in SRC.rglob("*.py"):
        raised |= set(re.findall(r"code=\"([a-z]+\.[a-z0-9_.]+)\"", path.read_text(encoding="utf-8")))
    assert sorted(c for c in raised if f"`{c}`" not in documented) == []


def test_every_builtin_step_is_named_in_a_test():
    tests = "\n".join(p.read_text(errors="ignore") for p in (ROOT / "tests").glob("test_*.py"))
    registry = _registry()
    untested = [e.qualified for stage in Stage for e in registry.entries(stage)
                if e.plugin.startswith("builtin.") and not re.search(rf"['\"]{re.escape(e.name)}['\"]", tests)]
    assert untested == [], "every built-in step needs a test that names it"


def test_every_profile_resolves_and_cites_sources():
    from meshforge.profiles import available_profiles, resolve

    registry = _registry()
    for item in available_profiles():
        resolve(item["name"], registry)  # raises ProfileError on any unknown step or parameter
    for path in (ROOT / "profiles").glob("*.toml"):
        text = path.read_text()
        values = [line for line in text.splitlines() if re.match(r"^\s*\w+\s*=\s*(-?\d|\[\s*-?\d)", line)]
        uncited = [line for line in values if "#" not in line and not line.startswith(("schema", "max_file_bytes"))]
        assert uncited == [], f"{path.name}: cite the source of each default in a comment"


def test_readme_profile_table_lists_every_profile_with_its_aliases():
    import tomllib

    readme = (ROOT / "README.md").read_text()
    for path in sorted((ROOT / "profiles").glob("*.toml")):
        data = tomllib.loads(path.read_text())
        row = next((line for line in readme.splitlines() if line.startswith(f"| `{data['name']}` |")), None)
        assert row is not None, f"README has no row for {data['name']}"
        cell = row.split("|")[2]
        assert sorted(a.strip(" `") for a in cell.split(",") if a.strip()) == sorted(data.get("aliases", [])), data["name"]
