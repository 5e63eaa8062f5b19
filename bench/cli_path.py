"""Where the ``meshforge`` console script is, for benchmarks that time the command as a user runs it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def meshforge_cli() -> str | None:
    """The console script installed beside the interpreter running the benchmark, else the one on PATH.

    Not simply PATH first: under pyenv, PATH holds a shim (a bash script that runs ``pyenv exec``)
    that costs 0.1-0.2 s per call, which would be charged to meshforge while the reference tools
    (admesh, node) run directly. A pip install into a venv puts the script beside the interpreter.
    """
    beside = Path(sys.executable).with_name("meshforge")
    return str(beside) if beside.is_file() else shutil.which("meshforge")
