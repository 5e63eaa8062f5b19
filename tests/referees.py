"""The external referees for what meshforge reads and writes: Khronos glTF-Validator, admesh, PrusaSlicer.

Each function runs the real tool and parses its output. A missing tool skips the calling test
(CI installs all of them through scripts/setup.sh, so there they always run).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
GLTF_VALIDATE = ROOT / "scripts" / "gltf-validate.mjs"


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (scripts/setup.sh installs it)")
    return path


def gltf_validator(path: Path, timeout: float = 120) -> dict[str, Any]:
    """The Khronos glTF-Validator's JSON report for ``path``."""
    node = _need("node")
    if not (ROOT / "node_modules" / "gltf-validator").is_dir() or not GLTF_VALIDATE.is_file():
        pytest.skip("gltf-validator is not installed (npm ci)")
    proc = subprocess.run([node, str(GLTF_VALIDATE), str(path)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode not in (0, 3):  # 3: the validator refused the bytes; stdout still holds its report
        raise AssertionError(f"gltf-validate.mjs failed on {path}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def gltf_errors(report: dict[str, Any]) -> list[str]:
    """Codes of the validator's Error-severity messages."""
    return [m["code"] for m in report.get("issues", {}).get("messages", []) if m.get("severity") == 0]


_ADMESH_ORIG_FINAL = re.compile(r"^(?P<key>[A-Za-z][A-Za-z0-9 ]+?)\s*:\s*(?P<orig>-?\d+)\s+(?P<final>-?\d+)\s*$")
_ADMESH_ONE = re.compile(r"(?P<key>[A-Za-z][A-Za-z ]+?)\s*:\s*(?P<value>-?[\d.]+)")


def admesh(path: Path, *args: str, timeout: float = 300) -> dict[str, Any]:
    """admesh's statistics for ``path`` (by default admesh also repairs, in memory, and reports both)."""
    exe = _need("admesh")
    # admesh echoes the binary STL header, which may be any bytes
    proc = subprocess.run([exe, *args, str(path)], capture_output=True, text=True, errors="replace", timeout=timeout)
    out: dict[str, Any] = {"returncode": proc.returncode}
    for line in proc.stdout.splitlines():
        m = _ADMESH_ORIG_FINAL.match(line.strip())
        if m:
            key = m["key"].strip().lower().replace(" ", "_")
            out[f"{key}_original"] = int(m["orig"])
            out[f"{key}_final"] = int(m["final"])
            continue
        for m in _ADMESH_ONE.finditer(line):
            key = m["key"].strip().lower().replace(" ", "_")
            value = float(m["value"])
            out[key] = int(value) if value.is_integer() and "." not in m["value"] else value
    return out


def admesh_open_edges(stats: dict[str, Any]) -> int:
    """Disconnected facet edges in the input as admesh sees it (after its exact/nearby matching)."""
    return int(
        stats.get("facets_with_1_disconnected_edge_original", 0)
        + 2 * stats.get("facets_with_2_disconnected_edges_original", 0)
        + 3 * stats.get("facets_with_3_disconnected_edges_original", 0)
    )


def prusa_info(path: Path, timeout: float = 300) -> dict[str, Any]:
    """``prusa-slicer --info`` parsed into a dict (manifold as bool, numbers as numbers)."""
    exe = _need("prusa-slicer")
    proc = subprocess.run([exe, "--info", str(path)], capture_output=True, text=True, timeout=timeout)
    out: dict[str, Any] = {"returncode": proc.returncode}
    for line in proc.stdout.splitlines():
        if line.startswith("[") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if value in ("yes", "no"):
            out[key] = value == "yes"
            continue
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out


def prusa_slice(path: Path, out_gcode: Path, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Slice ``path`` with PrusaSlicer's default settings (+ ``extra``) into ``out_gcode``."""
    exe = _need("prusa-slicer")
    return subprocess.run(
        [exe, "--export-gcode", "--output", str(out_gcode), *extra, str(path)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
