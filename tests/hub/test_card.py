"""The dataset card: Hub-valid YAML, one config per key, readable offline by `datasets`."""

from __future__ import annotations

import json

from hub_helpers import default_sources, write_collection
from huggingface_hub import DatasetCard

from alpacacot.card import hub_license, render_card, size_category, write_card


def test_card_metadata_parses_with_huggingface_hub(collection):
    card = DatasetCard.load(collection / "README.md")
    data = card.data.to_dict()
    assert data["configs"] == [
        {"config_name": key, "data_files": [{"split": "train", "path": f"{key}/train-*.parquet"}]}
        for key in ("alpaca", "belle", "dialog")
    ]
    assert data["license"] == ["apache-2.0", "cc-by-nc-4.0", "gpl-3.0"]
    assert data["language"] == ["en", "zh"]
    assert data["size_categories"] == ["n<1K"]
    assert "text-generation" in data["task_categories"]
    assert data["pretty_name"]


def test_card_body_tables_every_dataset_and_the_build(collection):
    text = (collection / "README.md").read_text()
    assert (
        "| `belle` | 2 | zh | CN | MT | SI | gpl-3.0 | [link](https://example.org/belle) " in text
    )
    assert "| `dialog` | 1 | en |" in text
    assert 'load_dataset("ORG/NAME", "alpaca", split="train")' in text
    assert "code version: `0.1.0`" in text and "built at: 2026-11-25T18:00:00Z" in text
    assert "https://example.org/alpaca.json" in text and "a" * 64 in text  # input checksums
    assert "@misc{belle2023," in text  # the full citation
    assert "stats.png" not in text  # no figure yet


def test_card_shows_the_statistics_figure_when_present(collection):
    (collection / "stats.png").write_bytes(b"\x89PNG fake")
    manifest = json.loads((collection / "manifest.json").read_text())
    text = write_card(collection, manifest, None).read_text()
    assert "![records, languages and lengths per dataset](stats.png)" in text


def test_card_is_deterministic_apart_from_the_build_date(tmp_path):
    one = write_collection(tmp_path / "one", default_sources())
    two = write_collection(tmp_path / "two", default_sources(), built_at="2027-01-01T00:00:00Z")
    assert render_card(one) == render_card(one)
    lines_one = render_card(one).splitlines()
    lines_two = render_card(two).splitlines()
    differing = [(a, b) for a, b in zip(lines_one, lines_two, strict=True) if a != b]
    assert len(lines_one) == len(lines_two)
    assert len(differing) == 1 and "built at" in differing[0][0]


def test_mixes_from_the_manifest_or_the_catalog(collection):
    manifest = json.loads((collection / "manifest.json").read_text())
    manifest["mixes"] = {"en_all": ["alpaca", "dialog"]}
    assert "| `en_all` | `alpaca`, `dialog` |" in render_card(manifest)

    class Catalog:
        mixes = {"zh_all": ["belle"]}

    del manifest["mixes"]
    assert "| `zh_all` | `belle` |" in render_card(manifest, Catalog())


def test_datasets_loads_each_config_offline(collection, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    ds = datasets.load_dataset(
        str(collection), "dialog", split="train", cache_dir=str(tmp_path / "cache")
    )
    assert ds.num_rows == 1
    assert ds[0]["history"] == [
        {"user": "What should I wear in summer?", "assistant": "Light clothes."}
    ]
    belle = datasets.load_dataset(
        str(collection), "belle", split="train", cache_dir=str(tmp_path / "cache")
    )
    assert belle.num_rows == 2 and set(belle["source"]) == {"belle"}


def test_licence_and_size_helpers():
    assert hub_license("CC-BY-NC-4.0") == "cc-by-nc-4.0"
    assert hub_license("research-only") == "other"
    assert hub_license("") == "unknown"
    assert size_category(999) == "n<1K"
    assert size_category(1000) == "1K<n<10K"
    assert size_category(2_500_000) == "1M<n<10M"
