"""Issue 12, item 9: a download has a stall timeout and a deadline, never leaves a `.part` file,
and a file that fails its sha256 pin never stays in the cache.

Before: a server sending 1 byte every 0.5 s was never cut off, SIGTERM left a `.part` file, and a
file that failed its pin stayed in the cache under its final name (then `--offline` said only
"not in the cache").
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from threading import Thread

import pytest

from alpacacot.catalog import SourceFile
from alpacacot.collectors.url import cache_path, fetch_url
from alpacacot.errors import CollectError

from .edges_support import entry, isolated, run_cli, write_catalog  # noqa: F401 - a fixture
from .trickle_server import TrickleServer

pytestmark = pytest.mark.usefixtures("isolated", "loopback")

ROWS = b'{"instruction": "Say hi.", "input": "", "output": "Hi."}\n'


@pytest.fixture
def loopback(monkeypatch):
    """huggingface_hub's HTTP client may reach 127.0.0.1 (and only that: no proxies)."""
    from huggingface_hub import constants

    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def trickle():
    server = TrickleServer(piece=1, every=0.5).start()
    yield server
    server.stop()


@pytest.fixture
def fast_limits(monkeypatch):
    monkeypatch.setenv("ALPACACOT_DOWNLOAD_STALL", "1")
    monkeypatch.setenv("ALPACACOT_DOWNLOAD_DEADLINE", "3")


def _parts(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*.part")] if cache.exists() else []


def test_a_trickling_server_is_cut_off(trickle, fast_limits, tmp_path):
    cache = tmp_path / "cache"
    sf = SourceFile(kind="url", location=trickle.url, sha256=None, subset="slow")
    with pytest.raises(CollectError) as info:
        fetch_url(sf, "slow", cache_dir=cache, offline=False)
    message = str(info.value)
    assert "'slow'" in message and trickle.url in message
    assert "stalled" in message and "ALPACACOT_DOWNLOAD_STALL" in message
    assert "partial download was removed" in message
    assert not _parts(cache)
    assert not cache_path(trickle.url, cache).exists()


def test_a_slow_but_steady_download_meets_the_deadline(fast_limits, tmp_path):
    """2 KiB every 0.2 s is not a stall (over 1 KiB per second), but it passes the deadline."""
    server = TrickleServer(piece=2048, every=0.2).start()
    try:
        cache = tmp_path / "cache"
        sf = SourceFile(kind="url", location=server.url, sha256=None, subset="slow")
        with pytest.raises(CollectError) as info:
            fetch_url(sf, "steady", cache_dir=cache, offline=False)
    finally:
        server.stop()
    assert "deadline of 3 s" in str(info.value)
    assert "ALPACACOT_DOWNLOAD_DEADLINE" in str(info.value)
    assert server.requests == 1  # the deadline is not retried
    assert not _parts(cache)


def test_a_bad_limit_is_a_clear_error(trickle, monkeypatch, tmp_path):
    monkeypatch.setenv("ALPACACOT_DOWNLOAD_DEADLINE", "soon")
    sf = SourceFile(kind="url", location=trickle.url, sha256=None, subset="slow")
    with pytest.raises(CollectError, match="ALPACACOT_DOWNLOAD_DEADLINE='soon'"):
        fetch_url(sf, "slow", cache_dir=tmp_path / "cache", offline=False)


DOWNLOADER = """
import sys
from pathlib import Path
from alpacacot.collectors.url import cache_path, download
url, cache = sys.argv[1], Path(sys.argv[2])
download(url, cache_path(url, cache), "slow")
"""


def _start_download(url: str, cache: Path) -> subprocess.Popen:
    """A separate process downloading `url`; returns once its `.part` file exists."""
    proc = subprocess.Popen([sys.executable, "-c", DOWNLOADER, url, str(cache)])
    give_up = time.monotonic() + 60
    while not _parts(cache):
        assert proc.poll() is None, "the downloader ended before writing anything"
        assert time.monotonic() < give_up, "no .part file appeared"
        time.sleep(0.05)
    return proc


def test_sigterm_removes_the_part_file(trickle, tmp_path):
    cache = tmp_path / "cache"
    proc = _start_download(trickle.url, cache)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM
    assert not _parts(cache)


def test_a_killed_download_leaves_a_part_the_next_download_removes(trickle, tmp_path):
    cache = tmp_path / "cache"
    proc = _start_download(trickle.url, cache)
    proc.kill()  # SIGKILL: no handler runs
    proc.wait(timeout=30)
    [left] = _parts(cache)
    trickle.stop()
    with _serving(ROWS) as url:
        # the same cache folder: a catalog pinned to a file at this URL path
        target = cache_path(trickle.url, cache)
        from alpacacot.collectors.url import download

        download(url, target, "slow")
    assert not left.exists()
    assert target.read_bytes() == ROWS


class _serving:
    """A loopback server answering every GET with `body` (a context manager giving its URL)."""

    def __init__(self, body: bytes):
        self.body = body

    def __enter__(self) -> str:
        body = self.body

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}/remote/rows.jsonl"

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def cache() -> Path:
    """The download cache the CLI uses (ALPACACOT_CACHE, in tmp_path)."""
    return Path(os.environ["ALPACACOT_CACHE"])


def test_a_file_that_fails_its_pin_is_not_kept_and_offline_says_why(cache, tmp_path):
    wrong = hashlib.sha256(b"what the catalog was reviewed with").hexdigest()
    with _serving(ROWS) as url:
        catalog = write_catalog(
            tmp_path / "catalog.yaml",
            {"remote": entry({"kind": "url", "url": url, "sha256": wrong})},
        )
        online = run_cli("build", "--catalog", catalog, "--out", tmp_path / "out", ok=False)
    assert "changed upstream" in online.output
    assert "removed, not kept in the cache" in online.output
    assert not cache_path(url, cache).exists()
    assert not _parts(cache)

    offline = run_cli(
        "build", "--catalog", catalog, "--out", tmp_path / "out", "--offline", ok=False
    )
    assert "not in the cache" in offline.output
    assert "failed its checksum" in offline.output
    assert hashlib.sha256(ROWS).hexdigest() in offline.output


def test_a_download_that_matches_its_pin_clears_the_note(cache, tmp_path):
    right = hashlib.sha256(ROWS).hexdigest()
    wrong = "0" * 64
    with _serving(ROWS) as url:
        for pin, ok in ((wrong, False), (right, True)):
            catalog = write_catalog(
                tmp_path / "catalog.yaml",
                {"remote": entry({"kind": "url", "url": url, "sha256": pin})},
            )
            run_cli("build", "--catalog", catalog, "--out", tmp_path / "out", ok=ok)
    assert cache_path(url, cache).read_bytes() == ROWS
    assert not list((cache / "failed-pins").glob("*.json"))
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text("utf-8"))
    assert manifest["sources"]["remote"]["counts"]["written"] == 1


def test_an_odd_url_file_name_never_becomes_a_cache_path(tmp_path):
    for url in ("https://example.org/a/..", "https://example.org/" + "n" * 300):
        target = cache_path(url, tmp_path)
        assert target.parent.parent == tmp_path / "url"
        assert target.name == "file"
    assert os.sep not in cache_path("https://example.org/x/data.json", tmp_path).name


def test_a_hub_file_that_fails_its_pin_leaves_the_hub_cache(cache, tmp_path):
    """The Hub's cache layout (a snapshot link to a blob), filled by hand at a pinned commit."""
    from alpacacot.catalog import load_catalog
    from alpacacot.collectors import collect_file

    commit = "a" * 40
    repo = cache / "hf" / "datasets--owner--name"
    blob = repo / "blobs" / "0123abcd"
    blob.parent.mkdir(parents=True)
    blob.write_bytes(ROWS)
    link = repo / "snapshots" / commit / "rows.jsonl"
    link.parent.mkdir(parents=True)
    link.symlink_to(os.path.relpath(blob, link.parent))
    source = {"kind": "hf", "repo": "owner/name", "revision": commit}
    source["files"] = [{"file": "rows.jsonl", "sha256": "0" * 64}]
    catalog = load_catalog(write_catalog(tmp_path / "catalog.yaml", {"hubbed": entry(source)}))
    [sf] = catalog.datasets["hubbed"].files()

    with pytest.raises(CollectError, match="removed from the cache"):
        collect_file(sf, catalog, "hubbed", cache_dir=cache, offline=True)
    assert not link.exists() and not blob.exists()
    with pytest.raises(CollectError) as info:
        collect_file(sf, catalog, "hubbed", cache_dir=cache, offline=True)
    assert "not in the cache" in str(info.value)
    assert "failed its checksum" in str(info.value)
