"""`publish` uploads only the files a build declares, from inside the collection folder.

A collection folder may hold other things (notes, a `.env`, a stray parquet), or come from someone
else with a manifest that names `../secret` or a symbolic link: none of it may reach the Hub.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from .edges_support import isolated, run_cli  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("isolated", "dead_hub")

DECLARED = {
    "README.md",
    "manifest.json",
    "alpaca/train-00000-of-00001.parquet",
    "rejects/alpaca.jsonl",
}


@pytest.fixture
def dead_hub(monkeypatch):
    """HF_ENDPOINT on a loopback port nothing listens on: a dry run lists every file as `add`."""
    from huggingface_hub import constants

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HF_TOKEN", "hf_edgesTestTokenNotReal")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """`build --sample alpaca`, once for the module (copied by each test)."""
    out = tmp_path_factory.mktemp("edges-publish") / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALPACACOT_CACHE", str(out.parent / "cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        run_cli("build", "--sample", "--lang-backend", "none", "--out", out, "alpaca")
    return out


@pytest.fixture
def collection(built, tmp_path) -> Path:
    import shutil

    out = tmp_path / "collection"
    shutil.copytree(built, out, symlinks=True)
    return out


def _dry_run(out: Path, ok: bool = True):
    return run_cli("publish", out, "--repo", "org/alpaca", "--dry-run", ok=ok)


def _uploads(output: str) -> set[str]:
    return {line.split()[1] for line in output.splitlines() if line.startswith("add ")}


def test_only_declared_files_are_uploaded(collection, tmp_path):
    assert _uploads(_dry_run(collection).output) == DECLARED
    # things a folder may also hold: none is uploaded
    (collection / ".env").write_text("HF_TOKEN=hf_secret\n")
    (collection / "notes.txt").write_text("private notes\n")
    (collection / "alpaca" / "train-00001-of-00001.parquet").write_bytes(b"PAR1 stray")
    (collection / "rejects" / "belle.jsonl").write_text("{}\n")
    (collection / "curation").mkdir()
    (collection / "curation" / "scores.parquet").write_bytes(b"PAR1 undeclared")
    (collection / "secret").symlink_to(tmp_path / "elsewhere")
    assert _uploads(_dry_run(collection).output) == DECLARED


def _tamper(out: Path, **changes) -> None:
    path = out / "manifest.json"
    manifest = json.loads(path.read_text("utf-8"))
    source = manifest["sources"]["alpaca"]
    for field, value in changes.items():
        if field == "shard_path":
            source["shards"][0]["path"] = value
        elif field == "shard_sha256":
            source["shards"][0]["sha256"] = value
        else:
            source[field] = value
    path.write_text(json.dumps(manifest), encoding="utf-8")


@pytest.mark.parametrize(
    "changes",
    [
        {"shard_path": "../secret.txt"},
        {"shard_path": "/etc/hostname"},
        {"shard_path": "alpaca/../../secret.txt"},
        {"shard_path": "belle/train-00000-of-00001.parquet"},  # another source's name
        {"rejects": "../secret.txt"},
        {"rejects": "rejects/../../secret.txt"},
    ],
)
def test_a_manifest_naming_another_file_is_refused(collection, changes):
    (collection.parent / "secret.txt").write_text("do not upload\n")
    _tamper(collection, **changes)
    result = _dry_run(collection, ok=False)
    assert "not a file a build writes" in result.output
    assert "sources/alpaca" in result.output
    assert "do not upload" not in result.output


def test_a_shard_without_its_checksum_is_refused(collection):
    _tamper(collection, shard_sha256=None)
    assert "has no sha256" in _dry_run(collection, ok=False).output


def test_a_declared_file_that_is_a_symlink_is_refused(collection, tmp_path):
    secret = tmp_path / "token"
    secret.write_text("hf_secret\n")
    card = collection / "README.md"
    card.unlink()
    card.symlink_to(secret)
    result = _dry_run(collection, ok=False)
    assert "README.md is a symbolic link" in result.output

    card.unlink()
    card.write_text("# card\n")
    rejects = collection / "rejects" / "alpaca.jsonl"
    rejects.unlink()
    rejects.symlink_to(secret)
    assert "rejects/alpaca.jsonl is a symbolic link" in _dry_run(collection, ok=False).output


def test_a_source_folder_that_is_a_symlink_is_refused(collection, tmp_path):
    real = tmp_path / "real-alpaca"
    (collection / "alpaca").rename(real)
    (collection / "alpaca").symlink_to(real)
    assert "is a symbolic link" in _dry_run(collection, ok=False).output


def test_stats_and_export_read_only_declared_shards(collection, tmp_path):
    """`stats` writes stats.png, which publish uploads; `export` writes training files: a manifest
    naming a parquet file outside the folder makes both stop."""
    import shutil

    outside = tmp_path / "someone-elses.parquet"
    shutil.copy(collection / "alpaca" / "train-00000-of-00001.parquet", outside)
    _tamper(collection, shard_path=str(outside))
    for command in (["stats", collection], ["export", collection, "--to", "jsonl"]):
        result = run_cli(*command, ok=False)
        assert "not a file a build writes" in result.output, command
    assert not (collection / "stats.png").exists()


def test_load_reads_only_declared_shards(collection, tmp_path):
    import shutil

    import alpacacot
    from alpacacot.errors import AlpacacotError

    assert len(alpacacot.load("alpaca", collection)) > 0
    outside = tmp_path / "someone-elses.parquet"
    shutil.copy(collection / "alpaca" / "train-00000-of-00001.parquet", outside)
    _tamper(collection, shard_path=f"alpaca/../../{outside.name}")
    with pytest.raises(AlpacacotError, match="not a file a build writes"):
        alpacacot.load("alpaca", collection)
