"""Builds are deterministic and incremental: unchanged sources are skipped, changed ones rebuilt."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import read_manifest, run_cli
from .helpers import entry, shard_rows, shard_stats, statuses, write_catalog, write_jsonl


def test_two_builds_give_byte_identical_shards(sample_build, tmp_path):
    out = tmp_path / "again"
    run_cli("build", "--sample", "--out", out)
    first, second = read_manifest(sample_build)["sources"], read_manifest(out)["sources"]
    assert first.keys() == second.keys()
    for key in first:
        assert [s["sha256"] for s in first[key]["shards"]] == [
            s["sha256"] for s in second[key]["shards"]
        ]
        assert first[key]["fingerprint"] == second[key]["fingerprint"]
        for shard in first[key]["shards"]:
            assert (sample_build / shard["path"]).read_bytes() == (out / shard["path"]).read_bytes()
        rejects = f"rejects/{key}.jsonl"
        assert (sample_build / rejects).read_bytes() == (out / rejects).read_bytes()


def test_second_build_skips_every_source_and_keeps_the_files(sample_copy, sampled):
    before = {key: shard_stats(sample_copy, key) for key in sampled}
    result = run_cli("build", "--sample", "--out", sample_copy)
    assert statuses(result.stdout) == {key: "unchanged" for key in sampled}
    for key in sampled:
        assert shard_stats(sample_copy, key) == before[key], f"{key} was rewritten"
    assert set(read_manifest(sample_copy)["sources"]) == set(sampled)


def test_force_rebuilds_to_the_same_bytes(sample_copy):
    before = shard_stats(sample_copy, "cot")
    result = run_cli("build", "--sample", "--out", sample_copy, "--force", "cot", "alpaca")
    assert statuses(result.stdout) == {"cot": "built", "alpaca": "built"}
    after = shard_stats(sample_copy, "cot")
    assert after.keys() == before.keys()
    for name in before:
        assert after[name][2] == before[name][2]  # same bytes
        assert after[name][:2] != before[name][:2]  # but a new file
    # Building a subset keeps the other sources of the collection in the manifest.
    assert "multiturn_chat" in read_manifest(sample_copy)["sources"]


def test_a_damaged_shard_is_rebuilt(sample_copy):
    shard = next((sample_copy / "multiturn_chat").glob("train-*.parquet"))
    shard.write_bytes(b"not parquet")
    result = run_cli("build", "--sample", "--out", sample_copy, "multiturn_chat")
    assert statuses(result.stdout) == {"multiturn_chat": "built"}
    assert (
        len(shard_rows(sample_copy, "multiturn_chat"))
        == read_manifest(sample_copy)["sources"]["multiturn_chat"]["counts"]["written"]
    )


def _two_local_sources(root: Path) -> Path:
    write_jsonl(
        root / "data" / "a.jsonl",
        [
            {"instruction": "Name a primary colour.", "output": "Red."},
            {"instruction": "What is 2 + 2?", "output": "4"},
        ],
    )
    write_jsonl(
        root / "data" / "b.jsonl",
        [
            {"instruction": "Translate 'cat' to French.", "output": "chat"},
        ],
    )
    return write_catalog(
        root / "catalog.yaml",
        {
            "src_a": entry({"kind": "local", "path": "data/a.jsonl"}),
            "src_b": entry({"kind": "local", "path": "data/b.jsonl"}),
        },
    )


def test_editing_a_local_file_rebuilds_only_that_source(tmp_path):
    catalog = _two_local_sources(tmp_path)
    out = tmp_path / "out"
    first = run_cli("build", "--catalog", catalog, "--out", out)
    assert statuses(first.stdout) == {"src_a": "built", "src_b": "built"}
    b_before = shard_stats(out, "src_b")

    with (tmp_path / "data" / "a.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"instruction": "Name a planet.", "output": "Mars."}\n')
    second = run_cli("build", "--catalog", catalog, "--out", out)

    assert statuses(second.stdout) == {"src_a": "built", "src_b": "unchanged"}
    assert shard_stats(out, "src_b") == b_before
    sources = read_manifest(out)["sources"]
    assert sources["src_a"]["counts"]["written"] == 3
    assert [r["output"] for r in shard_rows(out, "src_a")] == ["Red.", "4", "Mars."]


def test_editing_the_catalog_entry_rebuilds_that_source(tmp_path):
    catalog = _two_local_sources(tmp_path)
    out = tmp_path / "out"
    run_cli("build", "--catalog", catalog, "--out", out)
    text = catalog.read_text("utf-8")
    # A new licence changes every record's provenance of src_b, and nothing of src_a.
    head, tail = text.split("src_b:", 1)
    catalog.write_text(head + "src_b:" + tail.replace("cc-by-4.0", "mit", 1), encoding="utf-8")
    result = run_cli("build", "--catalog", catalog, "--out", out)
    assert statuses(result.stdout) == {"src_a": "unchanged", "src_b": "built"}
    assert {r["provenance"]["license"] for r in shard_rows(out, "src_b")} == {"mit"}


def test_parallel_build_writes_the_same_bytes(sample_build, tmp_path):
    out = tmp_path / "parallel"
    run_cli(
        "build",
        "--sample",
        "--out",
        out,
        "--workers",
        "3",
        "alpaca",
        "cot",
        "multiturn_chat",
        "firefly",
    )
    first, second = read_manifest(sample_build)["sources"], read_manifest(out)["sources"]
    assert set(second) == {"alpaca", "cot", "multiturn_chat", "firefly"}
    for key, src in second.items():
        assert [s["sha256"] for s in src["shards"]] == [s["sha256"] for s in first[key]["shards"]]
        assert src["counts"] == first[key]["counts"]


def test_worker_processes_report_progress_to_the_parent(tmp_path):
    """With --workers the progress bars still move: each worker sends its counts back."""
    from alpacacot.build import BuildRequest, build
    from alpacacot.catalog import load_catalog
    from alpacacot.pipeline import BuildOptions

    catalog = load_catalog(_two_local_sources(tmp_path))
    started: dict[str, int] = {}
    progressed: dict[str, int] = {}
    report = build(
        catalog,
        BuildRequest(
            keys=["src_a", "src_b"],
            out_dir=tmp_path / "out",
            workers=2,
            options=BuildOptions(progress_every=1),
        ),
        on_start=lambda key, nbytes: started.__setitem__(key, nbytes),
        on_progress=lambda key, n: progressed.__setitem__(key, progressed.get(key, 0) + n),
    )
    assert sorted(report.built) == ["src_a", "src_b"]
    sources = report.manifest["sources"]
    assert started == {k: sum(f["bytes"] for f in sources[k]["inputs"]) for k in sources}
    assert progressed == {k: sources[k]["counts"]["read"] for k in sources}


def _three_sources(root: Path) -> Path:
    _two_local_sources(root)
    write_jsonl(root / "data" / "c.jsonl", [{"instruction": "Name a planet.", "output": "Mars."}])
    return write_catalog(
        root / "catalog.yaml",
        {
            key: entry({"kind": "local", "path": f"data/{name}.jsonl"})
            for key, name in (("src_a", "a"), ("src_b", "b"), ("src_c", "c"))
        },
    )


def test_ctrl_c_keeps_what_finished_and_the_next_build_does_the_rest(tmp_path, monkeypatch):
    """In-process build: Ctrl-C while src_b is built. src_a is recorded as built, src_b keeps its
    previous output, nothing half-written is left, and the command says what to do (exit 130)."""
    import alpacacot.build

    catalog = _two_local_sources(tmp_path)
    out = tmp_path / "out"
    run_cli("build", "--catalog", catalog, "--out", out, "-j", "1")
    before = shard_stats(out, "src_b")
    (tmp_path / "data" / "b.jsonl").write_text(
        '{"instruction": "Translate \'dog\' to French.", "output": "chien"}\n', encoding="utf-8"
    )
    (tmp_path / "data" / "a.jsonl").write_text(
        '{"instruction": "Name a primary colour.", "output": "Blue."}\n', encoding="utf-8"
    )
    real = alpacacot.build.run_unit

    def interrupted_on_b(unit, *args, **kwargs):
        if unit.entry.key == "src_b":
            raise KeyboardInterrupt
        return real(unit, *args, **kwargs)

    monkeypatch.setattr(alpacacot.build, "run_unit", interrupted_on_b)
    result = run_cli("build", "--catalog", catalog, "--out", out, "-j", "1", ok=False)
    assert result.exit_code == 130
    assert "interrupted" in result.output and "run the same command again" in result.output
    manifest = read_manifest(out)
    assert manifest["errors"] == {"src_b": "interrupted"}
    assert [r["output"] for r in shard_rows(out, "src_a")] == ["Blue."]  # recorded as built
    assert shard_stats(out, "src_b") == before  # the previous build, untouched
    assert manifest["sources"]["src_b"]["counts"]["read"] == 1
    assert not list(out.glob(".tmp-*"))

    monkeypatch.setattr(alpacacot.build, "run_unit", real)
    result = run_cli("build", "--catalog", catalog, "--out", out, "-j", "1")
    assert statuses(result.stdout) == {"src_a": "unchanged", "src_b": "built"}
    assert [r["output"] for r in shard_rows(out, "src_b")] == ["chien"]


def test_ctrl_c_stops_the_worker_processes_at_once(tmp_path):
    """Parallel build: Ctrl-C in the parent once the first source is done. The workers are
    stopped (none is left running), unfinished output is removed, and only the finished source
    is recorded."""
    import multiprocessing

    from alpacacot.build import BuildRequest, build
    from alpacacot.catalog import load_catalog

    catalog = load_catalog(_three_sources(tmp_path))
    finished: list[str] = []

    def on_done(key: str, status: str) -> None:
        finished.append(key)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build(
            catalog,
            BuildRequest(keys=["src_a", "src_b", "src_c"], out_dir=tmp_path / "out", workers=2),
            on_done=on_done,
        )
    assert multiprocessing.active_children() == []
    manifest = read_manifest(tmp_path / "out")
    assert list(manifest["sources"]) == finished
    assert manifest["errors"] == {
        k: "interrupted" for k in ("src_a", "src_b", "src_c") if k not in finished
    }
    assert not list((tmp_path / "out").glob(".tmp-*"))


def test_sample_build_skips_an_entry_without_excerpt_with_a_note(tmp_path):
    rows = [{"instruction": "Name a colour.", "output": "Red."}]
    write_jsonl(tmp_path / "data" / "a.jsonl", rows)
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        {
            "src_a": entry({"kind": "local", "path": "data/a.jsonl"}, sample="data/a.jsonl"),
            "far": entry(
                {"kind": "url", "url": "https://example.org/far.jsonl"},
                no_sample="no real copy of far.jsonl was found",
            ),
        },
    )
    out = tmp_path / "out"
    result = run_cli("build", "--sample", "--catalog", catalog, "--out", out)
    assert statuses(result.stdout) == {"src_a": "built"}
    assert (
        "note: far skipped: no bundled excerpt (no real copy of far.jsonl was found); build it "
        "from upstream, without --sample" in result.output
    )
    manifest = read_manifest(out)
    assert set(manifest["sources"]) == {"src_a"}
    assert manifest["no_sample"] == {"far": "no real copy of far.jsonl was found"}
    assert "errors" not in manifest
