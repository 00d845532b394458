"""`alpacacot-data build --sample` end to end: every key written, readable, and accounted for."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from alpacacot.record import ARROW_SCHEMA, record_id

from .conftest import read_manifest
from .helpers import reject_lines, shard_rows

RECORD_COLUMNS = [
    "id",
    "instruction",
    "input",
    "output",
    "history",
    "source",
    "lang",
    "tags",
    "provenance",
    "meta",
    "system",
    "rejected",
]


def test_sample_build_writes_every_catalog_key(sample_build, sampled, bundled_catalog):
    manifest = read_manifest(sample_build)
    assert set(manifest["sources"]) == set(sampled)
    # The keys without a real excerpt are named in the manifest with the catalog's reason.
    waived = {k: e.no_sample for k, e in bundled_catalog.datasets.items() if not e.sample}
    assert manifest.get("no_sample", {}) == waived
    assert "errors" not in manifest
    assert manifest["sample"] is True
    for key in sampled:
        assert (sample_build / key).is_dir(), key
        assert (sample_build / "rejects" / f"{key}.jsonl").is_file(), key
        assert manifest["sources"][key]["counts"]["written"] > 0, key
    card = (sample_build / "README.md").read_text("utf-8")
    for key in sampled:
        assert f"config_name: {key}" in card


def test_counts_add_up_and_match_shards_and_rejects(sample_build):
    for key, src in read_manifest(sample_build)["sources"].items():
        c = src["counts"]
        assert c["read"] == c["written"] + c["duplicates"] + c["rejected"], key
        assert sum(s["records"] for s in src["shards"]) == c["written"], key
        parquet_rows = sum(
            pq.ParquetFile(sample_build / s["path"]).metadata.num_rows for s in src["shards"]
        )
        assert parquet_rows == c["written"], key
        assert len(reject_lines(sample_build, key)) == c["rejected"], key
        assert sum(src["lang_counts"].values()) == c["written"], key


def test_records_follow_the_contract(sample_build, sampled):
    for key, entry in sampled.items():
        rows = shard_rows(sample_build, key)
        ids = [r["id"] for r in rows]
        assert len(ids) == len(set(ids)), f"{key}: duplicate ids were written"
        for r in rows:
            assert r["source"] == key
            assert r["instruction"] and r["output"]
            assert r["id"] == record_id(r["instruction"], r["input"], r["output"], r["history"])
            assert r["tags"][:3] == entry.record_tags[:3]
            assert r["provenance"]["license"] == entry.license
            assert r["provenance"]["revision"].startswith("sha256:")
            assert r["provenance"]["file"] in entry.sample
            assert isinstance(json.loads(r["meta"]), dict)


def test_shards_carry_the_arrow_schema(sample_build):
    shard = next((sample_build / "alpaca").glob("train-*.parquet"))
    schema = pq.read_schema(shard)
    assert schema.names == ARROW_SCHEMA.names
    assert schema.field("history").type == ARROW_SCHEMA.field("history").type
    assert schema.metadata[b"alpacacot.schema_version"] == b"1.1.0"


def test_load_dataset_reads_every_key(sample_build, sampled, hf_datasets_tmp):
    datasets = pytest.importorskip("datasets")
    manifest = read_manifest(sample_build)
    for key in sampled:
        ds = datasets.load_dataset(
            str(sample_build), key, split="train", cache_dir=str(hf_datasets_tmp)
        )
        assert ds.column_names == RECORD_COLUMNS, key
        assert len(ds) == manifest["sources"][key]["counts"]["written"], key
        assert set(ds["source"]) == {key}


def test_provenance_row_points_at_the_upstream_row(sample_build):
    """Row numbers are 0-based array indexes: the record can be traced back to its upstream row."""
    upstream = json.loads((bundled_sample("alpaca_gpt4_en")).read_text("utf-8"))
    for r in shard_rows(sample_build, "alpaca_gpt4_en")[:20]:
        row = upstream[r["provenance"]["row"]]
        assert r["instruction"] == row["instruction"].strip()
        assert r["output"] == row["output"].strip()


def bundled_sample(key: str):
    from alpacacot.catalog import load_catalog

    cat = load_catalog()
    return cat.local_path(cat.datasets[key].sample[0])
