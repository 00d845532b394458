"""Bad rows become rejects with file, row and reason; a malformed file fails only its own source."""

from __future__ import annotations

import json

from .conftest import read_manifest, run_cli
from .helpers import entry, reject_lines, shard_rows, statuses, write_catalog, write_jsonl

GOOD = {"instruction": "Name a primary colour.", "input": "", "output": "Red."}
LINES = [
    json.dumps(GOOD).encode(),  # 0 written
    b'{"instruction": "Count to three.", "output": "1, 2',  # 1 unparsable
    json.dumps({"instruction": "No answer here."}).encode(),  # 2 output missing
    json.dumps(
        {"instruction": "List two fruits.", "output": ["apple", "pear"]}
    ).encode(),  # 3 a list
    json.dumps(
        {"instruction": "Say nothing.", "output": "  \n\t "}
    ).encode(),  # 4 empty after cleaning
    b'{"instruction": "caf\xe9 au lait?", "output": "yes"}',  # 5 latin-1 byte
    json.dumps(GOOD).encode(),  # 6 duplicate of 0
    json.dumps({"instruction": "Broken \ud800 text", "output": "x"}).encode(),  # 7 lone surrogate
    json.dumps({"instruction": "Is null an answer?", "output": None}).encode(),  # 8 null
    json.dumps(
        {"instruction": "  What is 2 + 2?\r\n", "output": "4", "note": "kept"}
    ).encode(),  # 9
]


def _catalog(root, **more):
    return write_catalog(
        root / "catalog.yaml",
        {
            "messy": entry({"kind": "local", "path": "data/messy.jsonl"}),
            **more,
        },
    )


def test_each_bad_row_lands_in_rejects_and_the_rest_is_written(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "messy.jsonl").write_bytes(b"\n".join(LINES) + b"\n")
    out = tmp_path / "out"
    run_cli("build", "--catalog", _catalog(tmp_path), "--out", out)

    counts = read_manifest(out)["sources"]["messy"]["counts"]
    assert counts == {"read": 10, "written": 2, "duplicates": 1, "rejected": 7}
    rows = shard_rows(out, "messy")
    assert [(r["instruction"], r["output"], r["provenance"]["row"]) for r in rows] == [
        ("Name a primary colour.", "Red.", 0),
        ("What is 2 + 2?", "4", 9),
    ]
    assert json.loads(rows[1]["meta"]) == {"note": "kept"}

    rejects = {r["row"]: r for r in reject_lines(out, "messy")}
    assert sorted(rejects) == [1, 2, 3, 4, 5, 7, 8]
    assert {r["file"] for r in rejects.values()} == {"data/messy.jsonl"}
    assert {r["source"] for r in rejects.values()} == {"messy"}
    assert "unparsable JSON" in rejects[1]["reason"]
    assert rejects[1]["raw"].startswith('{"instruction": "Count to three."')
    assert rejects[2]["field"] == "output" and "missing" in rejects[2]["reason"]
    assert rejects[3]["field"] == "output" and "list" in rejects[3]["reason"]
    assert rejects[4]["field"] == "output" and "empty" in rejects[4]["reason"]
    assert "UTF-8" in rejects[5]["reason"]
    assert "caf" in rejects[5]["raw"]
    assert rejects[7]["field"] == "instruction" and "surrogate" in rejects[7]["reason"]
    assert rejects[8]["field"] == "output" and "null" in rejects[8]["reason"]


def test_csv_row_with_wrong_column_count_is_rejected(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "qa.tsv").write_text(
        "What is 1 + 1?\t2\nA row with one cell\nWhat is 3 + 3?\t6\n", encoding="utf-8"
    )
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        {
            "qa": entry(
                {"kind": "local", "path": "data/qa.tsv"},
                fmt="tsv",
                columns=["question", "answer"],
                fields={"instruction": "question", "output": "answer"},
            )
        },
    )
    run_cli("build", "--catalog", catalog, "--out", tmp_path / "out")
    assert [r["output"] for r in shard_rows(tmp_path / "out", "qa")] == ["2", "6"]
    [reject] = reject_lines(tmp_path / "out", "qa")
    assert reject["row"] == 1 and "expected 2 columns" in reject["reason"]


ARRAY = [
    {"instruction": f"Spell the number {n}.", "input": "", "output": word}
    for n, word in enumerate(["zero", "one", "two", "three"])
]


def test_malformed_json_array_fails_its_source_only_and_keeps_its_old_output(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    array = data / "array.json"
    array.write_text(json.dumps(ARRAY, indent=2), encoding="utf-8")
    write_jsonl(data / "messy.jsonl", [GOOD])
    catalog = _catalog(
        tmp_path, array=entry({"kind": "local", "path": "data/array.json"}, fmt="json")
    )
    out = tmp_path / "out"
    run_cli("build", "--catalog", catalog, "--out", out)
    old_entry = read_manifest(out)["sources"]["array"]
    old_shards = {p.name: p.read_bytes() for p in (out / "array").iterdir()}

    # Truncate the array in the middle of its third object; change the other source too.
    text = array.read_text("utf-8")
    cut = text.index('"two"')
    array.write_text(text[:cut], encoding="utf-8")
    bad_line = text[:cut].count("\n") + 1
    write_jsonl(data / "messy.jsonl", [GOOD, {"instruction": "Name a planet.", "output": "Mars."}])

    result = run_cli("build", "--catalog", catalog, "--out", out, ok=False)

    assert statuses(result.stdout) == {"messy": "built", "array": "failed"}
    assert f"data/array.json, line {bad_line}" in result.output
    manifest = read_manifest(out)
    assert "array" in manifest["errors"] and "messy" not in manifest["errors"]
    assert manifest["sources"]["array"] == old_entry
    assert {p.name: p.read_bytes() for p in (out / "array").iterdir()} == old_shards
    assert manifest["sources"]["messy"]["counts"]["written"] == 2
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary output left behind"


def test_a_non_object_row_of_a_json_array_is_rejected(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "array.json").write_text(
        json.dumps([ARRAY[0], "just a string", ARRAY[1]]), encoding="utf-8"
    )
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        {"array": entry({"kind": "local", "path": "data/array.json"}, fmt="json")},
    )
    run_cli("build", "--catalog", catalog, "--out", tmp_path / "out")
    assert len(shard_rows(tmp_path / "out", "array")) == 2
    [reject] = reject_lines(tmp_path / "out", "array")
    assert reject["row"] == 1 and "expected a JSON object" in reject["reason"]


def test_malformed_file_in_a_parallel_build_fails_only_its_source(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "array.json").write_text(
        '[{"instruction": "a", "output": "b"}, {"in', encoding="utf-8"
    )
    write_jsonl(tmp_path / "data" / "messy.jsonl", [GOOD])
    catalog = _catalog(
        tmp_path, array=entry({"kind": "local", "path": "data/array.json"}, fmt="json")
    )
    out = tmp_path / "out"
    result = run_cli("build", "--catalog", catalog, "--out", out, "--workers", "2", ok=False)
    assert statuses(result.stdout) == {"messy": "built", "array": "failed"}
    assert "data/array.json, line 1" in result.output
    assert read_manifest(out)["sources"]["messy"]["counts"]["written"] == 1
