"""`curate` on `build --sample` output: files, manifest, card, incremental reruns, recipes, mix."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from alpacacot.cli import app

from .helpers import KEYS, WIDE


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args], env=WIDE, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text("utf-8"))


def test_curate_writes_files_keyed_by_id_and_leaves_shards_alone(curated: Path) -> None:
    manifest = _manifest(curated)
    for key in KEYS:
        shard = manifest["sources"][key]["shards"][0]
        data = (curated / shard["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shard["sha256"]
        signals = pq.read_table(curated / "curation" / "signals" / f"{key}.parquet")
        ids = pq.read_table(curated / shard["path"], columns=["id"]).column("id")
        assert signals.column("id").to_pylist() == ids.to_pylist()
    hits = pq.read_table(curated / "curation" / "contamination.parquet")
    assert {"id", "source", "benchmark", "item", "match"} <= set(hits.column_names)
    cur = manifest["curation"]
    assert cur["parameters"]["neardup"]["bands"] == 14 and cur["parameters"]["neardup"]["rows"] == 8
    assert cur["parameters"]["decontamination"]["n"] == 13
    assert set(cur["benchmarks"]) >= {"gsm8k_test", "cmmlu", "humaneval"}


def test_gpt4all_excerpt_is_found_inside_codealpaca(curated: Path) -> None:
    # The gpt4all sample is made of 60 CodeAlpaca records: every one is a cross-source duplicate.
    overlap = _manifest(curated)["curation"]["summary"]["near_duplicates"]["prompt"]["overlap"]
    assert overlap["gpt4all"]["codealpaca"] == 60
    clusters = pq.read_table(curated / "curation" / "clusters.parquet").to_pandas()
    pairs = clusters[clusters.source.isin(["gpt4all", "codealpaca"])]
    assert (pairs.groupby("prompt_cluster").source.nunique() == 2).sum() == 60


def test_card_declares_curation_configs_and_sections(curated: Path, hf_datasets_tmp) -> None:
    import datasets

    card = (curated / "README.md").read_text("utf-8")
    for section in (
        "## Curation",
        "### Near-duplicates across sources",
        "### Contamination",
        "### Quality signals",
        "curation/overlap.png",
    ):
        assert section in card
    assert (curated / "curation" / "overlap.png").is_file()
    signals = datasets.load_dataset(str(curated), "curation_signals", split="train")
    total = sum(s["shards"][0]["records"] for s in _manifest(curated)["sources"].values())
    assert signals.num_rows == total


def test_rerun_redoes_only_the_changed_source(curated: Path) -> None:
    again = json.loads(_cli("curate", curated, "--json"))
    assert again["redone"] == {} and sorted(again["reused"]) == sorted(KEYS)
    manifest = _manifest(curated)
    manifest["sources"]["cot"]["fingerprint"] = "rebuilt"  # what a rebuild of `cot` changes
    (curated / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    changed = json.loads(_cli("curate", curated, "--json"))
    assert list(changed["redone"]) == ["cot"]
    assert "cot" not in changed["reused"] and len(changed["reused"]) == len(KEYS) - 1


def test_recipe_loads_mixes_and_exports_the_same_records(curated: Path, tmp_path: Path) -> None:
    import alpacacot

    out = _cli("mix", "alpaca-gpt4-curated", "--collection", curated, "--out", tmp_path / "mix")
    assert "alpaca_gpt4_en: kept" in out
    mix = json.loads((tmp_path / "mix" / "manifest.json").read_text("utf-8"))
    table = pq.read_table(tmp_path / "mix" / mix["files"][0])
    assert table.column("id").to_pylist() == mix["ids"]
    gpt4 = mix["sources"]["alpaca_gpt4_en"]
    assert gpt4["removed"]["refusal"] >= 1  # real "As an AI language model" answers
    assert mix["sources"]["alpaca"]["removed"]["near_duplicate"] >= 1  # the shared prompt
    loaded = alpacacot.load("alpaca-gpt4-curated", collection=curated)
    assert loaded["id"] == mix["ids"]
    # The plain mix of the same keys is unchanged by all this.
    plain = alpacacot.load("alpaca_gpt4_en-alpaca_cleaned-alpaca", collection=curated)
    assert len(plain) > len(loaded)
    _cli("export", curated, "--to", "jsonl", "alpaca-gpt4-curated", "--out", tmp_path / "exp")
    lines = (tmp_path / "exp" / "alpaca-gpt4-curated.jsonl").read_text("utf-8").splitlines()
    assert len(lines) == len(mix["ids"])


def test_the_trainer_reads_a_recipe_by_name(curated: Path) -> None:
    from alpacacot.training.config import TrainConfig
    from alpacacot.training.data import load_records

    records = load_records(TrainConfig(data=["alpaca-gpt4-curated"], collection=str(curated)))
    import alpacacot

    expected = alpacacot.load("alpaca-gpt4-curated", collection=curated)["id"]
    assert [r["id"] for r in records.records] == expected


def test_publish_uploads_the_curation_files(curated: Path) -> None:
    from alpacacot.hub.publish import MANAGED, local_files

    files = local_files(curated, _manifest(curated), "org/name")
    for rel in (
        "curation/manifest.json",
        "curation/clusters.parquet",
        "curation/contamination.parquet",
        "curation/signals/alpaca.parquet",
    ):
        assert rel in files
        assert MANAGED.match(rel) or rel == "curation/manifest.json"
    assert not any(rel.startswith("curation/cache/") for rel in files)


def test_copies_get_what_computing_each_record_gives(curated: Path) -> None:
    """A record found again in a later source (same content id) is computed once; the files hold
    what computing every record of every source gives."""
    import numpy as np

    from alpacacot.curation.neardup import VIEWS
    from alpacacot.curation.run import PASSES, CurationParams, Unit, run_unit
    from alpacacot.curation.signals import COLUMNS
    from alpacacot.hub.collection import shard_paths

    manifest = _manifest(curated)
    index = next((curated.parent / "cache" / "curation").glob("benchmarks-*.pkl"))
    params = CurationParams()
    seen: set[str] = set()
    copies = 0
    for key in KEYS:
        parts = [
            run_unit(Unit(key, str(shard), PASSES, params, str(index)))
            for shard in shard_paths(curated, manifest, key)
        ]
        ids = [i for p in parts for i in p["ids"].to_pylist()]
        copies += sum(i in seen for i in ids)
        seen.update(ids)
        signals = pq.read_table(curated / "curation" / "signals" / f"{key}.parquet")
        assert signals.column("id").to_pylist() == ids
        for c in COLUMNS:
            each = [v for p in parts for v in list(p["signals"][c])]
            assert signals.column(c).to_pylist() == each
        bands = pq.read_table(curated / "curation" / "cache" / f"{key}.neardup.parquet")
        for v in VIEWS:
            written = bands.column(f"{v}_bands").combine_chunks().values.to_numpy()
            each = np.concatenate([p["keys"][v] for p in parts]).reshape(-1)
            assert np.array_equal(written, each)
        hits = pq.read_table(curated / "curation" / "cache" / f"{key}.contamination.parquet")
        rows, at = [], 0
        for p in parts:
            h = p["hits"]
            rows += [
                (ids[at + r], b, i, m, s)
                for r, b, i, m, s in zip(
                    h["row"], h["benchmark"], h["item"], h["match"], h["share"], strict=True
                )
            ]
            at += len(p["ids"])
        assert [
            tuple(r[c] for c in ("id", "benchmark", "item", "match", "share"))
            for r in hits.to_pylist()
        ] == rows
    assert copies  # the excerpts share records (gpt4all's are CodeAlpaca's): the copy path ran


def test_clusters_equal_clustering_every_record(curated: Path) -> None:
    """The join clusters first occurrences only and gives each exact copy its original's cluster:
    clusters.parquet holds what clustering every record of every source gives."""
    import numpy as np

    from alpacacot.curation.neardup import VIEWS, clusters
    from alpacacot.hub.collection import source_keys

    manifest = _manifest(curated)
    keys = [k for k in source_keys(manifest) if manifest["sources"][k].get("split") != "eval"]
    tables = [pq.read_table(curated / "curation" / "cache" / f"{k}.neardup.parquet") for k in keys]
    ids = [i for t in tables for i in t.column("id").to_pylist()]
    sources = [k for k, t in zip(keys, tables, strict=True) for _ in range(t.num_rows)]
    assert len(set(ids)) < len(ids)  # copies across sources: the shortcut is exercised
    expected: dict[tuple[str, str], dict[str, object]] = {}
    for v in VIEWS:
        bands = np.concatenate(
            [t.column(f"{v}_bands").combine_chunks().values.to_numpy() for t in tables]
        ).reshape(len(ids), -1)
        labels = clusters(bands)
        sizes = np.bincount(labels, minlength=len(ids))
        for row, label in enumerate(labels):
            entry = expected.setdefault((sources[row], ids[row]), {})
            entry[f"{v}_cluster"] = ids[label]
            entry[f"{v}_cluster_size"] = int(sizes[label])
    expected = {k: e for k, e in expected.items() if any(e[f"{v}_cluster_size"] > 1 for v in VIEWS)}
    written = {
        (r.pop("source"), r.pop("id")): r
        for r in pq.read_table(curated / "curation" / "clusters.parquet").to_pylist()
    }
    assert written == expected and expected


def test_units_are_dispatched_heaviest_first_after_the_units_they_copy_from(
    tmp_path: Path,
) -> None:
    """A unit's copies read the results of the units holding their originals, so those come
    first in the order the workers get (and the results come back in); otherwise the heaviest
    unit first, and units made only of copies are not sent to the workers."""
    import pyarrow as pa

    from alpacacot.curation.run import CurationParams, Unit, _plan_copies

    shards = {
        "small": ["a", "b"],  # holds the original of "a"
        "copies": ["a", "b"],  # copies only
        "big": [f"x{i}" for i in range(300)] + ["a"],  # heaviest, one copy of "small"'s
        "middle": [f"y{i}" for i in range(100)],
    }
    units = []
    for key, ids in shards.items():
        path = tmp_path / f"{key}.parquet"
        pq.write_table(pa.table({"id": ids}), path)
        units.append(Unit(key, str(path), ("signals",), CurationParams(), None))
    units, slots, _, plan = _plan_copies(units, 14)
    assert plan.computed == [2, 0, 300, 100]
    assert plan.deps == [set(), {0}, {0}, set()]
    assert units[0].rows is None and units[1].rows is not None
    assert plan.dispatch_order() == [0, 2, 3]


def test_overlap_matrix_counts_records_with_a_near_duplicate_in_each_source() -> None:
    """_overlap (distinct rows of the cluster x source counts, weighted) against the definition,
    with few distinct rows (replicas) and with many (every row its own)."""
    import numpy as np

    from alpacacot.curation.run import _overlap

    rng = np.random.default_rng(3)
    for n, n_src, spread in ((3000, 5, 40), (3000, 40, 1500)):
        labels = np.sort(rng.integers(0, spread, n))
        labels = np.searchsorted(labels, labels)  # each record's label: its cluster's first row
        src = rng.integers(0, n_src, n).astype(np.int32)
        keys = [f"s{i}" for i in range(n_src)]
        expected = {k: {} for k in keys}
        for a in range(n_src):
            for b in range(n_src):
                count = 0
                for r in np.flatnonzero(src == a):
                    others = np.flatnonzero((labels == labels[r]) & (src == b))
                    count += bool(len(others[others != r]))
                if count:
                    expected[keys[a]][keys[b]] = count
        assert _overlap(labels, src, keys) == expected
