"""A source cut into many units, built in this process or in worker processes (one of them killed
mid-unit), gives the files a single pass gives, byte for byte."""

from __future__ import annotations

import json
import multiprocessing

from scaleout_helpers import Killing, fingerprint, run_build

from alpacacot.executors import LocalExecutor


def test_the_catalog_is_cut_into_many_units_of_every_kind(catalog, one_process):
    """The reference build has what the comparisons need: cross-unit duplicates and rejects."""
    from scaleout_helpers import UNIT_BYTES, UNIT_ROWS

    from alpacacot.build import BuildRequest
    from alpacacot.catalog import load_catalog
    from alpacacot.collectors import collect_files
    from alpacacot.units import cut_source

    cat = load_catalog(catalog)
    request = BuildRequest(keys=[], out_dir=catalog.parent)
    kinds = {}
    for key, entry in cat.datasets.items():
        files = [cf for sf in entry.files() for cf in collect_files(sf, cat, key)]
        units = list(cut_source(entry, files, request.options, UNIT_BYTES, UNIT_ROWS))
        assert len(units) >= 2, key
        kinds[key] = {"span" if u.span else "rows" if u.rows is not None else "file" for u in units}
    assert kinds["sharegpt_zh"] == kinds["belle"] == kinds["cot"] == {"span"}
    assert kinds["alpaca"] == kinds["twice"] == {"rows"}
    _, manifest = one_process
    counts = {k: s["counts"] for k, s in manifest["sources"].items()}
    assert counts["twice"]["duplicates"] >= counts["twice"]["written"]  # the second copy
    assert counts["alpaca"]["rejected"] > 0  # Alpaca's <nooutput> rows


def test_local_one_and_two_workers_write_the_same_files_as_one_pass(catalog, one_process, tmp_path):
    run_build(catalog, tmp_path / "j1", workers=1)
    assert fingerprint(tmp_path / "j1") == one_process
    run_build(catalog, tmp_path / "j2", workers=2)
    assert fingerprint(tmp_path / "j2") == one_process
    # Each file one unit: a source of one file is merged by its worker, the others here.
    run_build(catalog, tmp_path / "j2-whole", workers=2, cut_small=False)
    assert fingerprint(tmp_path / "j2-whole") == one_process


def test_many_row_groups_and_shards_merged_from_workers_are_one_process_s(
    catalog, tmp_path, monkeypatch
):
    """Row groups of 40 records and shards of 20 KB of text: the merge cuts groups and closes
    shards inside and across units, and two workers give the files one process gives."""
    monkeypatch.setattr("alpacacot.units.ROW_GROUP", 40)
    small = 20_000  # bytes of record text: several shards per source
    reference = run_build(catalog, tmp_path / "j1", workers=1, max_shard_bytes=small)
    assert max(len(s["shards"]) for s in reference["sources"].values()) >= 3
    run_build(catalog, tmp_path / "j2", workers=2, max_shard_bytes=small)
    assert fingerprint(tmp_path / "j2") == fingerprint(tmp_path / "j1")


def test_a_worker_killed_mid_unit_is_replaced_and_its_unit_rerun(catalog, one_process, tmp_path):
    """SIGKILL of the worker process holding unit 3 of sharegpt_zh, half-way through it: the
    unit runs again on a new worker; no record is lost or doubled, and no worker is left."""
    marker = tmp_path / "killed"
    executor = Killing(LocalExecutor(2), "sharegpt_zh", 3, marker)
    run_build(catalog, tmp_path / "out", executor=executor)
    assert marker.exists()  # a worker did die
    assert fingerprint(tmp_path / "out") == one_process
    assert multiprocessing.active_children() == []


def test_the_cli_builds_with_the_local_executor(catalog, tmp_path):
    from typer.testing import CliRunner

    from alpacacot.cli import app

    out = tmp_path / "out"
    args = ["build", "--catalog", str(catalog), "--out", str(out), "--executor", "local", "-j", "2"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert sorted(manifest["sources"]) == sorted(
        ["alpaca", "belle", "cot", "cot_header", "hh_rlhf", "medical", "sharegpt_zh", "twice"]
    )
    bad = CliRunner().invoke(app, [*args[:5], "--executor", "spark"])
    assert bad.exit_code != 0 and "--executor must be one of local, ray" in bad.output
