"""Helpers of the edge tests (tests/faults/test_edges_*.py): catalogs written into tmp_path, the
CLI run in-process, caches kept in tmp_path and the Hub unreachable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from alpacacot.cli import app

WIDE = {"COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"}


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """ALPACACOT_CACHE in tmp_path; huggingface_hub offline. Returns the cache folder."""
    from huggingface_hub import constants

    cache = tmp_path / "alpacacot-cache"
    monkeypatch.setenv("ALPACACOT_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def entry(source: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A minimal valid dataset entry around `source` (jsonl, the default field mapping)."""
    data = {
        "description": "test source",
        "license": "cc-by-4.0",
        "languages": ["en"],
        "tags": {"lang": "EN", "task": "MT", "gen": "HG"},
        "source": source,
        "format": "jsonl",
    }
    data.update(extra)
    return data


def write_catalog(path: Path, datasets: dict[str, Any], **top: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        yaml.safe_dump({"version": 1, "datasets": datasets, **top}, sort_keys=False),
        encoding="utf-8",
    )
    return path


def run_cli(*args: object, ok: bool = True):
    """`alpacacot-data ARGS` in-process; asserts the exit code (0 when ok, else non-zero)."""
    result = CliRunner().invoke(app, [str(a) for a in args], env=WIDE, catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result
