"""Collectors against a scripted HTTP server on 127.0.0.1, and the Hub collector offline."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from alpacacot.catalog import load_catalog
from alpacacot.collectors import collect_file
from alpacacot.errors import CollectError

from .conftest import read_manifest, run_cli
from .helpers import entry, shard_rows, statuses, write_catalog
from .http_helpers import Reply, ScriptedServer

ROWS = [
    {"instruction": "Give an antonym of 'hot'.", "input": "", "output": "cold"},
    {"instruction": "Give an antonym of 'up'.", "input": "", "output": "down"},
]
BODY = json.dumps(ROWS, indent=2).encode()
SHA = hashlib.sha256(BODY).hexdigest()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):
    """The server, with huggingface_hub's HTTP session allowed to reach it (and only it)."""
    from huggingface_hub import constants

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    srv = ScriptedServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Backoff waits are recorded instead of slept."""
    import time

    waited: list[float] = []
    monkeypatch.setattr(time, "sleep", waited.append)
    return waited


def url_catalog(root: Path, url: str, sha256: str | None = SHA) -> Path:
    source = {"kind": "url", "url": url}
    if sha256:
        source["sha256"] = sha256
    else:
        source["unpinned"] = "test server, content changes between tests"
    return write_catalog(root / "catalog.yaml", {"remote": entry(source, fmt="json")})


def cached_files(cache: Path) -> list[Path]:
    return sorted(p for p in cache.rglob("*") if p.is_file()) if cache.exists() else []


def test_download_lands_in_the_cache_from_the_environment(server, tmp_path, monkeypatch):
    server.routes["/data/antonyms.json"] = [Reply(200, BODY)]
    url = server.url("/data/antonyms.json")
    cache = tmp_path / "env-cache"
    monkeypatch.setenv("ALPACACOT_CACHE", str(cache))
    out = tmp_path / "out"

    run_cli("build", "--catalog", url_catalog(tmp_path, url), "--out", out)

    [cached] = cached_files(cache)
    assert cached.name == "antonyms.json" and cached.read_bytes() == BODY
    rows = shard_rows(out, "remote")
    assert [r["output"] for r in rows] == ["cold", "down"]
    assert rows[0]["provenance"]["file"] == url
    assert rows[0]["provenance"]["revision"] == f"sha256:{SHA}"
    assert read_manifest(out)["sources"]["remote"]["inputs"][0]["sha256"] == SHA

    # A second build reads the cache: no new request, and nothing to rebuild.
    again = run_cli("build", "--catalog", url_catalog(tmp_path, url), "--out", out)
    assert server.requests == ["/data/antonyms.json"]
    assert statuses(again.stdout) == {"remote": "unchanged"}


def test_cache_dir_option_wins_over_the_environment(server, tmp_path, monkeypatch):
    server.routes["/a.json"] = [Reply(200, BODY)]
    monkeypatch.setenv("ALPACACOT_CACHE", str(tmp_path / "env-cache"))
    run_cli(
        "build",
        "--catalog",
        url_catalog(tmp_path, server.url("/a.json")),
        "--out",
        tmp_path / "out",
        "--cache-dir",
        tmp_path / "opt-cache",
    )
    assert [p.name for p in cached_files(tmp_path / "opt-cache")] == ["a.json"]
    assert cached_files(tmp_path / "env-cache") == []


def test_pinned_checksum_mismatch_names_url_and_both_hashes(server, tmp_path):
    changed = BODY.replace(b"cold", b"chilly")
    server.routes["/a.json"] = [Reply(200, changed)]
    url = server.url("/a.json")
    result = run_cli(
        "build", "--catalog", url_catalog(tmp_path, url), "--out", tmp_path / "out", ok=False
    )
    assert url in result.output
    assert SHA in result.output
    assert hashlib.sha256(changed).hexdigest() in result.output
    assert not (tmp_path / "out" / "remote").exists()


def test_503_then_200_is_retried(server, tmp_path, sleeps):
    server.routes["/a.json"] = [Reply(503, b"busy"), Reply(200, BODY)]
    run_cli(
        "build",
        "--catalog",
        url_catalog(tmp_path, server.url("/a.json")),
        "--out",
        tmp_path / "out",
    )
    assert server.requests == ["/a.json", "/a.json"]
    assert len(sleeps) == 1
    assert len(shard_rows(tmp_path / "out", "remote")) == 2


def test_connection_dropped_mid_body_is_retried_from_the_start(server, tmp_path, sleeps):
    server.routes["/a.json"] = [Reply(200, BODY, truncate_at=40), Reply(200, BODY)]
    run_cli(
        "build",
        "--catalog",
        url_catalog(tmp_path, server.url("/a.json"), sha256=None),
        "--out",
        tmp_path / "out",
    )
    assert len(server.requests) == 2
    [cached] = cached_files(tmp_path / "alpacacot-cache")
    assert cached.read_bytes() == BODY


@pytest.mark.parametrize(
    "reply",
    [Reply(503, b"busy"), Reply(404, b"gone"), Reply(200, BODY, truncate_at=40)],
    ids=["503-forever", "404", "dropped-body"],
)
def test_failed_download_is_a_clear_error_and_leaves_no_partial_file(
    server, tmp_path, sleeps, monkeypatch, reply
):
    import alpacacot.collectors.url as url_mod

    monkeypatch.setattr(url_mod, "MAX_RETRIES", 1)
    server.routes["/a.json"] = [reply]
    url = server.url("/a.json")
    result = run_cli(
        "build", "--catalog", url_catalog(tmp_path, url), "--out", tmp_path / "out", ok=False
    )
    assert f"downloading {url} failed" in result.output
    assert "remote" in result.output
    assert cached_files(tmp_path / "alpacacot-cache") == []


def test_offline_uses_a_warm_cache_and_explains_a_cold_one(server, tmp_path):
    server.routes["/a.json"] = [Reply(200, BODY)]
    url = server.url("/a.json")
    catalog = url_catalog(tmp_path, url)

    cold = run_cli("build", "--catalog", catalog, "--out", tmp_path / "cold", "--offline", ok=False)
    assert server.requests == []
    assert url in cold.output and "--offline" in cold.output and "not in the cache" in cold.output

    run_cli("build", "--catalog", catalog, "--out", tmp_path / "warm-up")
    run_cli("build", "--catalog", catalog, "--out", tmp_path / "offline", "--offline")
    assert server.requests == ["/a.json"]
    assert len(shard_rows(tmp_path / "offline", "remote")) == 2


def test_hub_source_offline_with_an_empty_cache_is_a_collect_error(tmp_path):
    catalog_path = write_catalog(
        tmp_path / "catalog.yaml",
        {
            "hubbed": entry(
                {
                    "kind": "hf",
                    "repo": "someone/some-dataset",
                    "revision": "main",
                    "files": ["train.jsonl"],
                    "unpinned": "test entry, never downloaded",
                }
            )
        },
    )
    catalog = load_catalog(catalog_path)
    [sf] = catalog.datasets["hubbed"].files()
    with pytest.raises(CollectError) as info:
        collect_file(sf, catalog, "hubbed", cache_dir=tmp_path / "cache", offline=True)
    message = str(info.value)
    assert "hubbed" in message
    assert "hf://datasets/someone/some-dataset/train.jsonl" in message
    assert "--offline" in message

    result = run_cli(
        "build", "--catalog", catalog_path, "--out", tmp_path / "out", "--offline", ok=False
    )
    assert "hf://datasets/someone/some-dataset/train.jsonl" in result.output
