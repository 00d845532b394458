"""Sources of several files: a normalizer per file, and Hub glob patterns (from the HF cache)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from .conftest import read_manifest, run_cli
from .helpers import entry, shard_rows, write_catalog, write_jsonl

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_one_dataset_with_files_of_two_formats(tmp_path):
    # As BELLE: single-turn sets and a multi-turn set under one key, the latter with its normalizer.
    write_jsonl(tmp_path / "single.jsonl", [{"instruction": "1+1=?", "input": "", "output": "2"}])
    write_jsonl(
        tmp_path / "multi.jsonl",
        [
            {
                "instruction": "Human:你好\nAssistant:你好！\nHuman:再见\nAssistant:",
                "input": "",
                "output": "再见！",
            }
        ],
    )
    source = {
        "kind": "local",
        "files": [
            {"path": "single.jsonl"},
            {"path": "multi.jsonl", "normalizer": "belle_multiturn"},
        ],
        "unpinned": "local test files that change with the test",
    }
    path = write_catalog(tmp_path / "catalog.yaml", {"mixed": entry(source)})
    run_cli("build", "--catalog", path, "--out", tmp_path / "out")
    rows = {r["provenance"]["file"]: r for r in shard_rows(tmp_path / "out", "mixed")}
    assert rows["single.jsonl"]["history"] == []
    assert rows["multi.jsonl"]["history"] == [{"user": "你好", "assistant": "你好！"}]
    assert rows["multi.jsonl"]["instruction"] == "再见"


def fill_hf_cache(cache: Path, repo: str, files: dict[str, bytes]) -> None:
    """huggingface_hub's cache layout: refs/main names a commit, snapshots/<commit>/ holds files."""
    root = cache / "hf" / f"datasets--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    for name, data in files.items():
        target = root / "snapshots" / COMMIT / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def parquet_bytes(path: Path, rows: list[dict]) -> bytes:
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path.read_bytes()


def test_hub_glob_pattern_expands_to_every_matching_file_offline(tmp_path):
    shard = [{"prompt": f"Say {n}.", "response": str(n), "source": "test"} for n in range(3)]
    files = {
        "data/train-00000-of-00002.parquet": parquet_bytes(tmp_path / "a.parquet", shard[:2]),
        "data/train-00001-of-00002.parquet": parquet_bytes(tmp_path / "b.parquet", shard[2:]),
        "README.md": b"# not data\n",
    }
    cache = tmp_path / "cache"
    fill_hf_cache(cache, "org/gpt4all-like", files)
    source = {
        "kind": "hf",
        "repo": "org/gpt4all-like",
        "revision": "main",
        "files": ["data/train-*.parquet"],
        "unpinned": "a test repo in a local cache only",
    }
    path = write_catalog(
        tmp_path / "catalog.yaml",
        {"g": entry(source, fmt="parquet", fields={"instruction": "prompt", "output": "response"})},
    )
    out = tmp_path / "out"
    run_cli("build", "--catalog", path, "--out", out, "--offline", "--cache-dir", cache)
    inputs = read_manifest(out)["sources"]["g"]["inputs"]
    assert [i["file"] for i in inputs] == [
        "hf://datasets/org/gpt4all-like/data/train-00000-of-00002.parquet",
        "hf://datasets/org/gpt4all-like/data/train-00001-of-00002.parquet",
    ]
    assert {i["revision"] for i in inputs} == {COMMIT}
    rows = shard_rows(out, "g")
    assert [r["output"] for r in rows] == ["0", "1", "2"]
    assert {r["meta"] for r in rows} == {'{"source": "test"}'}


def test_hub_pattern_missing_from_an_empty_cache_is_a_clear_error(tmp_path):
    source = {
        "kind": "hf",
        "repo": "org/absent",
        "files": ["data/*.parquet"],
        "unpinned": "a test repo that exists nowhere",
    }
    path = write_catalog(tmp_path / "catalog.yaml", {"g": entry(source, fmt="parquet")})
    result = run_cli(
        "build",
        "--catalog",
        path,
        "--out",
        tmp_path / "out",
        "--offline",
        "--cache-dir",
        tmp_path / "cache",
        ok=False,
    )
    assert "hf://datasets/org/absent/data/*.parquet" in result.output
    assert "--offline" in result.output
