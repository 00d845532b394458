"""The curation passes run on the build's executors: the same files whatever runs them."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alpacacot.cli import app

from .helpers import WIDE

CURATION_FILES = ["clusters.parquet", "contamination.parquet"]


def _digests(out: Path) -> dict[str, str]:
    cur = out / "curation"
    files = [cur / f for f in CURATION_FILES] + sorted((cur / "signals").glob("*.parquet"))
    return {
        p.relative_to(cur).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in files
    }


def _curate(base: Path, where: Path, *args: str) -> dict[str, str]:
    shutil.copytree(base, where)
    shutil.rmtree(where / "curation", ignore_errors=True)
    result = CliRunner().invoke(
        app, ["curate", str(where), "--force", *args], env=WIDE, catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return _digests(where)


def test_local_workers_write_what_one_process_writes(curated: Path, tmp_path: Path) -> None:
    one = _curate(curated, tmp_path / "j1", "-j", "1")
    assert len(one) > len(CURATION_FILES)  # signals of every source too
    assert _curate(curated, tmp_path / "j2", "-j", "2", "--executor", "local") == one


def test_ray_writes_what_one_process_writes(curated: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    one = _curate(curated, tmp_path / "j1", "-j", "1")
    assert _curate(curated, tmp_path / "ray", "-j", "2", "--executor", "ray") == one
