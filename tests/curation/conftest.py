"""Fixtures of the curation tests: real excerpts shipped in the package, no network."""

from __future__ import annotations

from pathlib import Path

import pytest

from .helpers import KEYS, WIDE


def _offline(mp: pytest.MonkeyPatch, cache: Path) -> None:
    from huggingface_hub import constants

    mp.setenv("ALPACACOT_CACHE", str(cache))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_DATASETS_OFFLINE", "1")
    mp.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _offline(monkeypatch, tmp_path / "alpacacot-cache")


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`build --sample` of a few keys, then `curate`, both through the CLI (once per module)."""
    from typer.testing import CliRunner

    from alpacacot.cli import app

    out = tmp_path_factory.mktemp("curated") / "out"
    with pytest.MonkeyPatch.context() as mp:
        _offline(mp, out.parent / "cache")
        runner = CliRunner()
        build = runner.invoke(
            app,
            ["build", *KEYS, "--sample", "--out", str(out), "-j", "1"],
            env=WIDE,
            catch_exceptions=False,
        )
        assert build.exit_code == 0, build.output
        result = runner.invoke(
            app, ["curate", str(out), "--json"], env=WIDE, catch_exceptions=False
        )
        assert result.exit_code == 0, result.output
    return out


@pytest.fixture
def hf_datasets_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """`datasets` caches in tmp_path and stays offline."""
    import datasets

    cache = tmp_path / "hf-datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    return cache
