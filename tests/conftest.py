"""Shared fixtures: the real-model corpus beside the checkout, and its MANIFEST."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("MESHFORGE_CORPUS", ROOT.parent / "shared" / "corpus"))
MODEL_FORMATS = {"stl-binary", "stl-ascii", "obj", "ply-ascii", "ply-binary-le", "off", "off-binary", "3mf", "glb", "gltf"}


def manifest() -> list[dict[str, str]]:
    """Rows of corpus/MANIFEST.tsv (empty when the corpus is absent)."""
    path = CORPUS / "MANIFEST.tsv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def model_rows() -> list[dict[str, str]]:
    return [r for r in manifest() if r["format"] in MODEL_FORMATS]


@pytest.fixture(scope="session")
def corpus() -> Path:
    if not (CORPUS / "MANIFEST.tsv").is_file():
        pytest.fail(f"the real-model corpus is missing at {CORPUS} (set MESHFORGE_CORPUS)")
    return CORPUS
