"""The real build, then every hub command on its output: stats, card, publish, export."""

from __future__ import annotations

import json

from hub_helpers import TOKEN
from huggingface_hub import DatasetCard
from typer.testing import CliRunner

from alpacacot.cli import app

KEYS = ["alpaca", "cot", "multiturn_chat"]


def run(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_build_stats_publish_export(tmp_path, hub):
    out = tmp_path / "collection"
    run("build", "--sample", "--out", str(out), *KEYS)
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(manifest["sources"]) == sorted(KEYS)

    card = DatasetCard.load(out / "README.md")
    assert [c["config_name"] for c in card.data.configs] == sorted(KEYS)

    run("stats", str(out))
    assert "](stats.png)" in (out / "README.md").read_text()

    import datasets

    ds = datasets.load_dataset(
        str(out), "multiturn_chat", split="train", cache_dir=str(tmp_path / "hf_cache")
    )
    assert ds.num_rows == manifest["sources"]["multiturn_chat"]["counts"]["written"]

    result = run("publish", str(out), "--repo", "org/alpaca-cot")
    files = hub.head_files("org/alpaca-cot")
    assert "stats.png" in files and "cot/train-00000-of-00001.parquet" in files
    assert 'load_dataset("org/alpaca-cot", "cot"' in files["README.md"].decode()
    assert TOKEN not in result.output

    # A rebuild of the same inputs publishes nothing new.
    run("build", "--sample", "--out", str(out), *KEYS)
    run("stats", str(out))
    result = run("publish", str(out), "--repo", "org/alpaca-cot", "--dry-run")
    changed = [
        line
        for line in result.output.splitlines()
        if line.startswith(("add ", "change ", "delete "))
    ]
    # Only the build date differs: the manifest and the card that shows it.
    assert {line.split()[1] for line in changed} <= {"manifest.json", "README.md"}

    dest = tmp_path / "lf"
    run("export", str(out), "--to", "llamafactory", "--out", str(dest))
    info = json.loads((dest / "dataset_info.json").read_text())
    assert sorted(info) == sorted(KEYS)
    multi = [json.loads(line) for line in (dest / "multiturn_chat.jsonl").open(encoding="utf-8")]
    assert any(row["history"] for row in multi)


def test_a_published_collection_loads_by_repo_id(tmp_path, hub):
    # What users and the trainer do after `publish`: alpacacot.load(..., collection="ORG/NAME").
    import alpacacot

    out = tmp_path / "collection"
    run("build", "--sample", "--out", str(out), "alpaca", "cot")
    run("publish", str(out), "--repo", "org/alpaca-cot")

    remote = alpacacot.load("alpaca-cot", collection="org/alpaca-cot")
    local = alpacacot.load("alpaca-cot", collection=out)
    assert remote["id"] == local["id"] and len(remote) > 0
    downloads = [r.path for r in hub.requests if "/resolve/" in r.path and r.method == "GET"]
    assert any(p.endswith("manifest.json") for p in downloads)
    assert any(p.endswith("cot/train-00000-of-00001.parquet") for p in downloads)
