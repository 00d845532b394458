"""With several workers, a source's units run while its files are still being hashed: the merge
waits for the hash and puts each file's revision in the records (and in the reject lines of
records the schema refuses). The files written are those of a build that hashed first."""

from __future__ import annotations

import hashlib
import json
import threading
import time

import pyarrow.parquet as pq
import yaml
from scaleout_helpers import UNIT_BYTES, UNIT_ROWS, fingerprint, run_build

import alpacacot.collectors
from alpacacot.build import BuildRequest, build
from alpacacot.catalog import load_catalog
from alpacacot.outdir import staging_dir

BELLE = "Belle_open_source_1M.json"


def _hash_after_a_unit_spilled(monkeypatch, out, key, name, seen):
    """sha256_file that, for the file `name`, first waits (at most 60 s) for a unit of source
    `key` to leave its records in the staging folder, and notes whether one did."""
    real = alpacacot.collectors.sha256_file

    def slow(path, *args):
        if path.name == name:
            units = staging_dir(out, key) / "units"
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not any(units.glob("*.arrow")):
                time.sleep(0.01)
            seen.append(any(units.glob("*.arrow")))
        return real(path, *args)

    monkeypatch.setattr(alpacacot.collectors, "sha256_file", slow)


def test_units_run_before_their_file_is_hashed_and_the_files_are_one_pass_s(
    catalog, one_process, tmp_path, monkeypatch
):
    out = tmp_path / "j2"
    seen: list[bool] = []
    _hash_after_a_unit_spilled(monkeypatch, out, "belle", BELLE, seen)
    run_build(catalog, out, workers=2)
    assert seen == [True]  # a unit of belle had finished before its first file was hashed
    assert fingerprint(out) == one_process
    digest = hashlib.sha256((catalog.parent / "data" / BELLE).read_bytes()).hexdigest()
    revisions = set()
    for shard in sorted((out / "belle").glob("*.parquet")):
        provenance = pq.read_table(shard, columns=["provenance"]).column(0).to_pylist()
        revisions |= {(p["file"], p["revision"]) for p in provenance}
    assert (f"data/{BELLE}", f"sha256:{digest}") in revisions
    assert not any("pending" in r for _, r in revisions)


def test_a_record_the_schema_refuses_is_rejected_with_its_files_revision(
    catalog, tmp_path, monkeypatch
):
    """A language tag the record schema refuses (forced on the first record of every unit of
    belle's columnar steps): its reject line holds the record as written, with the file's revision,
    whether the unit ran before the hash (two workers) or after it (one)."""
    import alpacacot.columnar

    real = alpacacot.columnar._languages

    def bad_first(tagger, instruction, input_, output):
        langs = real(tagger, instruction, input_, output)
        return ["not a language", *langs[1:]] if langs else langs

    monkeypatch.setattr(alpacacot.columnar, "_languages", bad_first)
    run_build(catalog, tmp_path / "j1", workers=1)
    seen: list[bool] = []
    _hash_after_a_unit_spilled(monkeypatch, tmp_path / "j2", "belle", BELLE, seen)
    run_build(catalog, tmp_path / "j2", workers=2)
    assert seen == [True]
    assert fingerprint(tmp_path / "j2") == fingerprint(tmp_path / "j1")
    lines = (tmp_path / "j2" / "rejects" / "belle.jsonl").read_text("utf-8").splitlines()
    refused = [json.loads(line) for line in lines if "lang" in json.loads(line)["reason"]]
    assert len(refused) >= 2  # one per unit
    digest = hashlib.sha256((catalog.parent / "data" / BELLE).read_bytes()).hexdigest()
    first_file = [r for r in refused if r["file"] == f"data/{BELLE}"]
    assert first_file and all(f'"revision": "sha256:{digest}"' in r["raw"] for r in first_file)
    assert not any("pending" in line for line in lines)


def test_a_file_that_fails_its_pin_fails_its_source_after_its_units_ran(
    catalog, tmp_path, monkeypatch
):
    """A wrong sha256 pinned for belle's first file: belle fails with the pin's error (its units
    ran meanwhile; nothing of them is kept), every other source is built."""
    data = yaml.safe_load(catalog.read_text("utf-8"))
    data["datasets"]["belle"]["source"]["files"][0]["sha256"] = "0" * 64
    pinned = catalog.with_name("pinned.yaml")  # beside the files it names
    pinned.write_text(yaml.safe_dump(data, sort_keys=False), "utf-8")
    out = tmp_path / "out"
    seen: list[bool] = []
    _hash_after_a_unit_spilled(monkeypatch, out, "belle", BELLE, seen)
    cat = load_catalog(pinned)
    report = build(cat, BuildRequest(keys=list(cat.datasets), out_dir=out, workers=2,
                                     unit_bytes=UNIT_BYTES, unit_rows=UNIT_ROWS))  # fmt: skip
    manifest = report.manifest
    assert seen == [True]
    assert report.failed.keys() == {"belle"}
    assert "changed upstream" in manifest["errors"]["belle"]
    assert "belle" not in manifest["sources"]
    assert len(manifest["sources"]) == len(data["datasets"]) - 1
    assert not (out / "belle").exists()
    assert not list(out.glob(".tmp-*"))


class _Watching:
    """An executor that notes every unit as it is handed on (source, merged by its worker?, its
    file's revision): it hands on none before `ready` is set, and sets `handed[key]` as it hands
    on a unit of that source."""

    def __init__(self, inner, ready: threading.Event, handed: dict[str, threading.Event]):
        self.inner, self.ready, self.handed = inner, ready, handed
        self.name, self.workers = inner.name, inner.workers
        self.seen: list[tuple[str, bool, str]] = []

    def map(self, fn, units, *, progress=None):
        def watched():
            assert self.ready.wait(60)
            for unit in units:
                self.seen.append((unit.key, unit.merge_into is not None, unit.file.revision))
                if unit.key in self.handed:
                    self.handed[unit.key].set()
                yield unit

        return self.inner.map(fn, watched(), progress=progress)


def test_a_one_unit_source_is_merged_by_its_worker_once_hashed_and_here_before(
    catalog, one_process, tmp_path, monkeypatch
):
    """Each file one unit. A one-file source whose hash is ready when its unit is handed on is
    merged by its worker, with its file's revision; hh_rlhf, whose hash waits until its unit is
    handed on, is not waited for: its unit runs with the pending revision and the build process
    merges it."""
    from alpacacot.collectors import PENDING_REVISION
    from alpacacot.executors import LocalExecutor

    others = {"alpaca_data.json", "sharegpt_zh_1K_format.jsonl", "gsm8k_header.tsv",
              "internal_medicine_sample.csv"}  # fmt: skip
    hashed: set[str] = set()
    ready, hh_handed = threading.Event(), threading.Event()
    real = alpacacot.collectors.sha256_file

    def hash_in_turn(path, *args):
        if path.name == "harmless-base_test.jsonl":
            assert hh_handed.wait(60)
        digest = real(path, *args)
        hashed.add(path.name)
        if others <= hashed:
            ready.set()
        return digest

    monkeypatch.setattr(alpacacot.collectors, "sha256_file", hash_in_turn)
    executor = _Watching(LocalExecutor(2), ready, {"hh_rlhf": hh_handed})
    run_build(catalog, tmp_path / "out", executor=executor, cut_small=False)
    assert fingerprint(tmp_path / "out") == one_process
    one_file = {"alpaca", "sharegpt_zh", "cot_header", "hh_rlhf", "medical"}
    units = {key: (merged, revision) for key, merged, revision in executor.seen if key in one_file}
    assert units.pop("hh_rlhf") == (False, PENDING_REVISION)
    assert len(units) == 4 and all(merged for merged, _ in units.values())
    assert all(revision.startswith("sha256:") and revision != PENDING_REVISION
               for _, revision in units.values())  # fmt: skip
