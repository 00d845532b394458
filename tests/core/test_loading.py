"""`alpacacot.load`: keys and mixes of a built collection as one `datasets.Dataset`."""

from __future__ import annotations

import pytest

import alpacacot
from alpacacot.catalog import load_catalog
from alpacacot.errors import AlpacacotError

from .conftest import read_manifest, run_cli
from .helpers import entry, shard_rows, write_catalog, write_jsonl

pytestmark = pytest.mark.usefixtures("hf_datasets_tmp")

SHARED = {"instruction": "What is the largest planet?", "input": "", "output": "Jupiter."}


def test_load_a_mix_concatenates_in_order(sample_build):
    ds = alpacacot.load("alpaca-cot", collection=sample_build)
    alpaca, cot = shard_rows(sample_build, "alpaca"), shard_rows(sample_build, "cot")
    assert len(ds) == len(alpaca) + len(cot)
    assert ds["id"] == [r["id"] for r in alpaca + cot]
    assert ds.column_names[:4] == ["id", "instruction", "input", "output"]
    assert ds[0]["history"] == [] and isinstance(ds[0]["provenance"], dict)


def test_load_a_catalog_mix_by_name(sample_build):
    ds = alpacacot.load("gpt4", collection=sample_build)
    assert set(ds["source"]) == {"alpaca_gpt4_en", "alpaca_gpt4_zh"}
    parts = alpacacot.load("gpt4", collection=sample_build, as_dict=True)
    assert list(parts) == ["alpaca_gpt4_en", "alpaca_gpt4_zh"]


def test_shared_records_of_real_sources_are_kept_once(sample_build):
    # The multiturn_chat stand-in is cut from the ShareGPT-zh dialogues that sharegpt_zh's excerpt
    # holds too (samples/README.md): the same examples under two keys.
    belle = {r["id"] for r in shard_rows(sample_build, "multiturn_chat")}
    sharegpt = [r["id"] for r in shard_rows(sample_build, "sharegpt_zh")]
    shared = [i for i in sharegpt if i in belle]
    assert shared
    ds = alpacacot.load("multiturn_chat-sharegpt_zh", collection=sample_build)
    assert len(ds) == len(belle) + len(sharegpt) - len(shared)
    assert len(set(ds["id"])) == len(ds)


@pytest.fixture
def two_sources(tmp_path):
    write_jsonl(
        tmp_path / "a.jsonl",
        [SHARED]
        + [{"instruction": f"What is {n} squared?", "output": str(n * n)} for n in range(1, 20)],
    )
    write_jsonl(
        tmp_path / "b.jsonl",
        [
            {"instruction": "Name a gas giant.", "output": "Saturn."},
            SHARED,
            {"instruction": "Name an ice giant.", "output": "Neptune."},
        ],
    )
    path = write_catalog(
        tmp_path / "catalog.yaml",
        {
            "first": entry({"kind": "local", "path": "a.jsonl"}),
            "second": entry({"kind": "local", "path": "b.jsonl"}),
        },
        mixes={"both": ["first", "second"]},
    )
    out = tmp_path / "out"
    run_cli("build", "--catalog", path, "--out", out)
    return load_catalog(path), out


def test_a_record_shared_by_two_sources_is_loaded_once(two_sources):
    catalog, out = two_sources
    ds = alpacacot.load("first-second", collection=out, catalog=catalog)
    assert len(ds) == 20 + 2
    assert ds["output"].count("Jupiter.") == 1
    # First source of the mix wins.
    assert ds[0]["source"] == "first" and ds[0]["output"] == "Jupiter."
    assert ds["output"][-2:] == ["Saturn.", "Neptune."]
    assert len(alpacacot.load("both", collection=out, catalog=catalog)) == 22
    # Reversed order: the second source keeps it.
    reverse = alpacacot.load("second-first", collection=out, catalog=catalog)
    assert [r for r in reverse if r["output"] == "Jupiter."][0]["source"] == "second"
    # dedupe=False keeps both copies.
    assert len(alpacacot.load("both", collection=out, catalog=catalog, dedupe=False)) == 23


def test_weight_half_keeps_a_seeded_half(two_sources):
    catalog, out = two_sources
    half = alpacacot.load("first", collection=out, catalog=catalog, weights={"first": 0.5}, seed=1)
    assert len(half) == 10
    again = alpacacot.load("first", collection=out, catalog=catalog, weights={"first": 0.5}, seed=1)
    assert half["id"] == again["id"]
    other = alpacacot.load("first", collection=out, catalog=catalog, weights={"first": 0.5}, seed=2)
    assert len(other) == 10 and other["id"] != half["id"]
    full = set(alpacacot.load("first", collection=out, catalog=catalog)["id"])
    assert set(half["id"]) <= full and len(set(half["id"])) == 10


def test_weights_in_a_mix_apply_per_source(two_sources):
    catalog, out = two_sources
    ds = alpacacot.load(
        "both", collection=out, catalog=catalog, weights={"first": 0.5, "second": 2.0}
    )
    counts = {s: ds["source"].count(s) for s in ("first", "second")}
    assert counts == {"first": 10, "second": 4}


def test_unknown_key_lists_the_known_keys(sample_build):
    with pytest.raises(AlpacacotError) as info:
        alpacacot.load("alpaka", collection=sample_build)
    message = str(info.value)
    assert "unknown dataset 'alpaka'" in message
    for key in ("alpaca", "belle", "cot", "sharegpt_zh"):
        assert key in message


def test_a_key_not_built_names_the_build_command(tmp_path, sample_build):
    import shutil

    out = tmp_path / "partial"
    out.mkdir()
    shutil.copy(sample_build / "manifest.json", out / "manifest.json")
    manifest = read_manifest(out)
    manifest["sources"] = {"cot": manifest["sources"]["cot"]}
    (out / "manifest.json").write_text(__import__("json").dumps(manifest), encoding="utf-8")
    with pytest.raises(AlpacacotError, match="alpacacot-data build multiturn_chat"):
        alpacacot.load("multiturn_chat", collection=out)


def test_a_folder_without_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(AlpacacotError, match="no manifest.json"):
        alpacacot.load("alpaca", collection=tmp_path)


def test_weights_for_a_key_outside_the_mix_are_refused(sample_build):
    with pytest.raises(AlpacacotError, match="weights name multiturn_chat"):
        alpacacot.load("cot", collection=sample_build, weights={"multiturn_chat": 0.5})


def test_a_custom_collection_loads_without_its_catalog(two_sources):
    # Users load what they built from their own catalog by key and by the mix its manifest records.
    _, out = two_sources
    assert len(alpacacot.load("first", collection=out)) == 20
    assert len(alpacacot.load("both", collection=out)) == 22
    with pytest.raises(AlpacacotError, match="unknown dataset 'third'"):
        alpacacot.load("first-third", collection=out)


def test_an_evaluation_set_is_never_loaded_for_training(tmp_path):
    write_jsonl(tmp_path / "t.jsonl", [{"instruction": "Name a colour.", "output": "Red."}])
    write_jsonl(tmp_path / "e.jsonl", [{"instruction": "Name a shape.", "output": "Circle."}])
    path = write_catalog(
        tmp_path / "catalog.yaml",
        {
            "train_set": entry({"kind": "local", "path": "t.jsonl"}),
            "eval_set": entry({"kind": "local", "path": "e.jsonl"}, split="eval"),
        },
    )
    out = tmp_path / "out"
    run_cli("build", "--catalog", path, "--out", out)
    with pytest.raises(AlpacacotError, match="eval_set: evaluation set"):
        alpacacot.load("train_set-eval_set", collection=out)
    assert len(alpacacot.load("eval_set", collection=out, allow_eval=True)) == 1
