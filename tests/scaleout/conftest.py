"""Fixtures of the scale-out tests: caches in tmp_path, no network; the real-excerpt catalog and
its one-process build, made once per module."""

from __future__ import annotations

from pathlib import Path

import pytest
from scaleout_helpers import fingerprint, real_catalog, run_build


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALPACACOT_CACHE", str(tmp_path / "alpacacot-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return real_catalog(tmp_path_factory.mktemp("real"))


@pytest.fixture(scope="module")
def one_process(catalog: Path, tmp_path_factory: pytest.TempPathFactory):
    """The reference: every file one unit, in this process (what a build did before units)."""
    out = tmp_path_factory.mktemp("one") / "out"
    run_build(catalog, out, workers=1, cut_small=False)
    return fingerprint(out)
