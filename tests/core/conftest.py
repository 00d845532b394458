"""Fixtures of the core tests: no network, caches in tmp_path, one shared `build --sample`."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alpacacot.catalog import PACKAGE_CATALOG, load_catalog
from alpacacot.cli import app

SAMPLES = PACKAGE_CATALOG.parent / "samples"
WIDE = {"COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"}  # rich tables must not fold the keys


def _offline_hub(mp: pytest.MonkeyPatch) -> None:
    """Refuse every Hub/datasets request (huggingface_hub reads HF_HUB_OFFLINE at import)."""
    from huggingface_hub import constants

    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("HF_DATASETS_OFFLINE", "1")
    mp.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    mp.setattr(constants, "HF_HUB_OFFLINE", True)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALPACACOT_CACHE", str(tmp_path / "alpacacot-cache"))
    _offline_hub(monkeypatch)


@pytest.fixture
def hf_datasets_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """`datasets` caches in tmp_path and stays offline."""
    import datasets

    cache = tmp_path / "hf-datasets"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True, raising=False)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True, raising=False)
    return cache


def run_cli(*args: str, ok: bool = True):
    """Run `alpacacot-data ARGS` in-process; assert the exit code (0 when ok, else non-zero)."""
    result = CliRunner().invoke(app, [str(a) for a in args], env=WIDE, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code != 0, result.output
    return result


@pytest.fixture
def cli() -> Callable[..., object]:
    return run_cli


def read_manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text("utf-8"))


@pytest.fixture(scope="session")
def sample_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`build --sample` of the bundled catalog, built once per session; read it, never modify it."""
    out = tmp_path_factory.mktemp("sample") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALPACACOT_CACHE", str(out.parent / "cache"))
        _offline_hub(mp)
        run_cli("build", "--sample", "--out", out)
    return out


@pytest.fixture
def sample_copy(sample_build: Path, tmp_path: Path) -> Path:
    """A private copy of the sample build, for tests that build into it again."""
    out = tmp_path / "copy"
    shutil.copytree(sample_build, out)
    return out


@pytest.fixture(scope="session")
def bundled_catalog():
    return load_catalog()


@pytest.fixture(scope="session")
def sampled(bundled_catalog):
    """The bundled entries that `build --sample` builds: those with a real excerpt (the others
    waive it with `no_sample:` and are skipped)."""
    return {k: e for k, e in bundled_catalog.datasets.items() if e.sample}
