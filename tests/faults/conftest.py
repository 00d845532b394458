"""Fixtures of the fault tests: builds run as real processes, offline, with caches in tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Inherited by every build these tests start.
    monkeypatch.setenv("ALPACACOT_CACHE", str(tmp_path / "alpacacot-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.delenv("ALPACACOT_FAULT", raising=False)
    monkeypatch.delenv("ALPACACOT_FAULT_TRACE", raising=False)
