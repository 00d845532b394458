"""Fixtures of the hub tests: a hand-written collection and a fake Hub on 127.0.0.1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from fake_hub import FakeHub
from hub_helpers import TOKEN, default_sources, write_collection


@pytest.fixture
def collection(tmp_path: Path) -> Path:
    """A built collection of three keys (en, zh, multi-turn), with its card."""
    from alpacacot.card import write_card

    out = tmp_path / "build"
    manifest = write_collection(out, default_sources())
    write_card(out, manifest, None)
    return out


def _hub_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, endpoint: str) -> None:
    from huggingface_hub import constants

    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    # Read once at import: point downloads at the fake Hub and the cache into tmp_path.
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(
        constants,
        "HUGGINGFACE_CO_URL_TEMPLATE",
        endpoint + "/{repo_id}/resolve/{revision}/{filename}",
    )
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A fake Hub the real huggingface_hub client talks to (HF_ENDPOINT points at it)."""
    server = FakeHub().start()
    _hub_env(monkeypatch, tmp_path, server.endpoint)
    yield server
    server.stop()


@pytest.fixture
def dead_endpoint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """HF_ENDPOINT on a local port nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    _hub_env(monkeypatch, tmp_path, endpoint)
    return endpoint
