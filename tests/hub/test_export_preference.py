"""`export --to llamafactory_ranking|dpo`: the preference pairs of a collection, read back the way
LLaMA-Factory (dataset_info.json + a json file) and TRL (`datasets.load_dataset("json")`) read them."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hub_helpers import make_records, write_collection
from typer.testing import CliRunner

from alpacacot.cli import app
from alpacacot.record import ARROW_SCHEMA

PAIRS = [
    ("Is it safe to eat raw cookie dough?", "", "Not really: raw flour and eggs can carry germs."),
    (
        "And after a day in the fridge?",
        "",
        "Still no; cold does not kill them.",
        [{"user": "Can I freeze cookie dough?", "assistant": "Yes, for up to three months."}],
    ),
    ("Name a prime.", "", "Seven."),
]


def preference_collection(tmp_path):
    records = make_records("pairs", PAIRS, "en")
    records[0]["rejected"] = "Sure, it is perfectly safe."
    records[1]["rejected"] = "Yes, the fridge makes it safe."
    records[1]["system"] = "You are a careful food-safety assistant."
    # records[2] has no rejected answer: not a pair
    out = tmp_path / "build"
    write_collection(
        out,
        {
            "pairs": {"records": records, "lang": "en"},
            "plain": {"records": make_records("plain", PAIRS[:1], "en"), "lang": "en"},
        },
    )
    return out


def export(*args):
    result = CliRunner().invoke(app, ["export", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result


def test_llamafactory_ranking_dataset_reads_back_through_its_dataset_info(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    out = tmp_path / "lf"
    export(preference_collection(tmp_path), "--to", "llamafactory_ranking", "--out", out)
    info = json.loads((out / "dataset_info.json").read_text("utf-8"))
    assert set(info) == {"pairs"}  # "plain" has no pair
    entry = info["pairs"]
    assert entry["ranking"] is True and entry["formatting"] == "alpaca"
    ds = datasets.load_dataset("json", data_files=str(out / entry["file_name"]), split="train")
    cols = entry["columns"]
    assert set(cols.values()) <= set(ds.column_names)
    rows = ds.to_list()
    assert [r[cols["chosen"]] for r in rows] == [PAIRS[0][2], PAIRS[1][2]]
    assert [r[cols["rejected"]] for r in rows] == [
        "Sure, it is perfectly safe.",
        "Yes, the fridge makes it safe.",
    ]
    assert rows[1][cols["history"]] == [
        ["Can I freeze cookie dough?", "Yes, for up to three months."]
    ]
    assert [r[cols["system"]] for r in rows] == ["", "You are a careful food-safety assistant."]


def test_dpo_jsonl_has_prompt_chosen_rejected_as_trl_reads_it(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")
    out = tmp_path / "dpo"
    export(preference_collection(tmp_path), "--to", "dpo", "--out", out, "pairs")
    ds = datasets.load_dataset("json", data_files=str(out / "pairs.jsonl"), split="train")
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    first, second = ds.to_list()
    assert first["prompt"] == [{"role": "user", "content": PAIRS[0][0]}]
    assert first["chosen"] == [{"role": "assistant", "content": PAIRS[0][2]}]
    assert first["rejected"] == [{"role": "assistant", "content": "Sure, it is perfectly safe."}]
    assert [m["role"] for m in second["prompt"]] == ["system", "user", "assistant", "user"]
    assert second["prompt"][-1]["content"] == PAIRS[1][0]


def test_shards_older_than_schema_1_1_have_no_pairs(tmp_path):
    out = preference_collection(tmp_path)
    old = pa.schema([f for f in ARROW_SCHEMA if f.name not in ("system", "rejected")])
    for shard in (out / "pairs").glob("*.parquet"):
        pq.write_table(pq.read_table(shard).select(old.names), shard)
    dest = tmp_path / "dpo"
    result = export(out, "--to", "dpo", "--out", dest)
    assert json.loads((dest / "dataset_info.json").read_text()) == {}
    assert "Wrote 0 file(s)" in result.output


def test_the_hh_rlhf_excerpt_exports_every_pair(tmp_path, monkeypatch):
    monkeypatch.setenv("ALPACACOT_CACHE", str(tmp_path / "cache"))
    build = tmp_path / "build"
    result = CliRunner().invoke(
        app, ["build", "--sample", "-j", "1", "--out", str(build), "hh_rlhf"]
    )
    assert result.exit_code == 0, result.output
    written = json.loads((build / "manifest.json").read_text())["sources"]["hh_rlhf"]["counts"]
    export(build, "--to", "dpo", "--out", tmp_path / "dpo")
    lines = (tmp_path / "dpo" / "hh_rlhf.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == written["written"] > 0
    pair = json.loads(lines[0])
    assert pair["prompt"][-1]["role"] == "user" and pair["chosen"] != pair["rejected"]
