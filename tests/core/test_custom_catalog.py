"""A contributor's new local source is a catalog entry only: `build --catalog my.yaml`."""

from __future__ import annotations

import csv
import gzip
import io
import json

from .conftest import read_manifest, run_cli
from .helpers import reject_lines, shard_rows, write_jsonl

# Three rows in the layout of databricks-dolly-15k (instruction, context, response, category).
DOLLY = [
    {
        "instruction": "When did Virgin Australia start operating?",
        "context": "Virgin Australia commenced services on 31 August 2000 as Virgin Blue.",
        "response": "Virgin Australia commenced services on 31 August 2000 as Virgin Blue.",
        "category": "closed_qa",
    },
    {
        "instruction": "Which is a species of fish? Tope or Rope",
        "context": "",
        "response": "Tope",
        "category": "classification",
    },
    {
        "instruction": "Why can camels survive for long without water?",
        "context": "",
        "response": "Camels use the fat in their humps to keep them filled with energy.",
        "category": "open_qa",
    },
]

CATALOG = """\
version: 1
datasets:
  dolly:
    description: Dolly-style instructions written by people
    license: cc-by-sa-3.0
    languages: [en]
    tags: {lang: EN, task: MT, gen: HG}
    source: {kind: local, path: data/x.jsonl}
    format: jsonl
    fields: {instruction: instruction, input: context, output: response}
  trivia:
    description: Trivia questions, a gzip'd csv with a header
    license: mit
    languages: [en]
    tags: {lang: EN, task: TS, gen: HG}
    source: {kind: local, path: data/trivia.csv.gz}
    format: csv
    fields: {instruction: question, output: answer}
mixes:
  mine: [dolly, trivia]
"""


def _write_trivia(path):
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["question", "answer", "difficulty"])
    writer.writerow(["What is the capital of France?", "Paris", "easy"])
    writer.writerow(['Who wrote "Hamlet"?', "William Shakespeare,\nin about 1600", "easy"])
    writer.writerow(["How many moons does Mars have?", "Two: Phobos and Deimos", "medium"])
    path.write_bytes(gzip.compress(buf.getvalue().encode("utf-8"), mtime=0))


def test_build_with_a_catalog_of_local_sources(tmp_path, monkeypatch):
    root = tmp_path / "project"
    write_jsonl(root / "data" / "x.jsonl", DOLLY)
    _write_trivia(root / "data" / "trivia.csv.gz")
    (root / "my.yaml").write_text(CATALOG, encoding="utf-8")
    # Paths are relative to the catalog file, not to the working directory.
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"

    run_cli("build", "--catalog", "project/my.yaml", "--out", out)

    manifest = read_manifest(out)
    assert set(manifest["sources"]) == {"dolly", "trivia"}
    assert manifest["mixes"] == {"mine": ["dolly", "trivia"]}
    dolly = shard_rows(out, "dolly")
    assert [(r["instruction"], r["input"], r["output"]) for r in dolly] == [
        (d["instruction"], d["context"], d["response"]) for d in DOLLY
    ]
    assert [json.loads(r["meta"]) for r in dolly] == [{"category": d["category"]} for d in DOLLY]
    assert [r["provenance"]["row"] for r in dolly] == [0, 1, 2]
    assert dolly[0]["provenance"]["file"] == "data/x.jsonl"
    assert dolly[0]["tags"] == ["EN", "MT", "HG"]
    assert {r["lang"] for r in dolly} == {"en"}

    trivia = shard_rows(out, "trivia")
    assert [(r["instruction"], r["input"], r["output"]) for r in trivia] == [
        ("What is the capital of France?", "", "Paris"),
        ('Who wrote "Hamlet"?', "", "William Shakespeare,\nin about 1600"),
        ("How many moons does Mars have?", "", "Two: Phobos and Deimos"),
    ]
    assert json.loads(trivia[2]["meta"]) == {"difficulty": "medium"}
    # The header is line 0, so the first data row is row 1 of the file.
    assert trivia[0]["provenance"]["row"] == 1
    assert reject_lines(out, "trivia") == []


def test_a_missing_local_file_names_the_path_and_the_catalog(tmp_path):
    (tmp_path / "my.yaml").write_text(CATALOG, encoding="utf-8")
    result = run_cli(
        "build", "--catalog", tmp_path / "my.yaml", "--out", tmp_path / "out", "dolly", ok=False
    )
    assert "data/x.jsonl" in result.output
    assert "dolly" in result.output
    assert str(tmp_path / "my.yaml") in result.output
