"""`alpacacot-data new`: a catalog entry, a sample and optionally a normalizer, no Python needed."""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import json
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from alpacacot.catalog import PACKAGE_CATALOG, load_catalog
from alpacacot.cli import app

DOLLY = [
    {
        "instruction": f"Tell me about topic {i}.",
        "context": f"Some context {i}." if i % 2 else "",
        "response": f"Topic {i} matters because of reason {i}.",
        "category": "open_qa" if i % 3 else "summarization",
    }
    for i in range(30)
]


def run(*args: str):
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def dolly_file(tmp_path: Path) -> Path:
    path = tmp_path / "upstream" / "databricks-dolly-15k.jsonl"
    path.parent.mkdir()
    path.write_text("".join(json.dumps(r) + "\n" for r in DOLLY), encoding="utf-8")
    return path


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    """The bundled catalog, copied (a catalog's samples live next to it)."""
    path = tmp_path / "catalog.yaml"
    shutil.copy(PACKAGE_CATALOG, path)
    shutil.copytree(PACKAGE_CATALOG.parent / "samples", tmp_path / "samples")
    return path


def new_dolly(catalog: Path, dolly_file: Path, *extra: str):
    return run(
        "new",
        "mydolly",
        "--format",
        "jsonl",
        "--path",
        str(dolly_file),
        "--fields",
        "instruction=instruction,input=context,output=response",
        "--license",
        "cc-by-sa-3.0",
        "--catalog",
        str(catalog),
        "--language",
        "en",
        "--gen",
        "HG",
        "--description",
        "Databricks Dolly 15k",
        *extra,
    )


def test_new_dolly_layout_validates_and_builds(catalog_copy, dolly_file, tmp_path):
    original = catalog_copy.read_text()
    result = new_dolly(catalog_copy, dolly_file)
    assert result.exit_code == 0, result.output

    text = catalog_copy.read_text()
    assert text.startswith(original.split("\nmixes:")[0])  # comments and entries kept
    assert text.index("  mydolly:") < text.index("\nmixes:")  # inside datasets:, not after
    catalog = load_catalog(catalog_copy)
    assert catalog.mixes  # still there
    entry = catalog.datasets["mydolly"]
    assert entry.fields == {"instruction": "instruction", "input": "context", "output": "response"}
    assert entry.source == {
        "kind": "local",
        "path": "upstream/databricks-dolly-15k.jsonl",
        "sha256": hashlib.sha256(dolly_file.read_bytes()).hexdigest(),
    }
    assert entry.tags == {"lang": "EN", "task": "MT", "gen": "HG"}
    assert entry.license == "cc-by-sa-3.0" and entry.languages == ["en"]
    sample = catalog_copy.parent / entry.sample[0]
    assert sample == tmp_path / "samples/mydolly/databricks-dolly-15k.jsonl"
    assert [json.loads(line) for line in sample.read_text().splitlines()] == DOLLY[:20]

    result = run("validate", "--catalog", str(catalog_copy), "mydolly")
    assert result.exit_code == 0, result.output

    out = tmp_path / "built"
    result = run("build", "--catalog", str(catalog_copy), "--out", str(out), "mydolly")
    assert result.exit_code == 0, result.output
    table = pq.read_table(next((out / "mydolly").glob("train-*.parquet")))
    assert table.num_rows == 30
    first = table.slice(1, 1).to_pylist()[0]
    assert first["input"] == "Some context 1." and first["source"] == "mydolly"
    assert json.loads(first["meta"]) == {"category": "open_qa"}


def test_new_creates_a_catalog_and_guesses_usual_columns(tmp_path):
    upstream = tmp_path / "pairs.csv"
    with open(upstream, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "prompt", "completion"])
        for i in range(25):
            writer.writerow([i, f"Say hello number {i}, please.", f"Hello, this is number {i}!"])
    catalog = tmp_path / "my.yaml"
    result = run(
        "new",
        "pairs",
        "--format",
        "csv",
        "--path",
        str(upstream),
        "--catalog",
        str(catalog),
        "--license",
        "mit",
        "--language",
        "en",
    )
    assert result.exit_code == 0, result.output
    entry = load_catalog(catalog).datasets["pairs"]
    assert entry.fields == {"instruction": "prompt", "output": "completion"}
    rows = list(csv.reader((tmp_path / "samples/pairs/pairs.csv").open(encoding="utf-8")))
    assert rows[0] == ["id", "prompt", "completion"] and len(rows) == 21
    assert run("validate", "--catalog", str(catalog)).exit_code == 0


def test_new_from_a_url_pins_its_sha256(tmp_path, monkeypatch):
    served = tmp_path / "www"
    served.mkdir()
    data = served / "data.parquet"
    pq.write_table(
        pa.Table.from_pylist(
            [{"question": f"What is {i}+{i}?", "answer": f"It is {2 * i}."} for i in range(30)]
        ),
        data,
    )
    handler = partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/data.parquet"
        catalog = tmp_path / "cat" / "catalog.yaml"
        result = run(
            "new",
            "sums",
            "--format",
            "parquet",
            "--url",
            url,
            "--catalog",
            str(catalog),
            "--license",
            "cc-by-4.0",
            "--language",
            "en",
            "--rows",
            "5",
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.exit_code == 0, result.output
    entry = load_catalog(catalog).datasets["sums"]
    assert entry.source == {
        "kind": "url",
        "url": url,
        "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
    }
    assert entry.homepage == url
    assert entry.fields == {"instruction": "question", "output": "answer"}
    assert pq.read_table(catalog.parent / "samples/sums/data.parquet").num_rows == 5
    assert run("validate", "--catalog", str(catalog)).exit_code == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["Bad-Key", "--format", "jsonl"], "is not valid"),
        (
            ["dolly2", "--format", "jsonl", "--fields", "instruction=instruction,output=answer"],
            "does not have (output=answer)",
        ),
        (
            ["dolly2", "--format", "jsonl", "--fields", "prompt=instruction"],
            "'prompt' is not a record field",
        ),
        (["alpaca", "--format", "jsonl"], "already has a dataset 'alpaca'"),
        (["dolly2", "--format", "jsonl", "--language", "english"], "ISO 639-1"),
    ],
)
def test_new_errors_leave_the_catalog_unchanged(catalog_copy, dolly_file, args, expected):
    before = catalog_copy.read_text()
    result = run("new", *args, "--path", str(dolly_file), "--catalog", str(catalog_copy))
    assert result.exit_code == 1
    assert expected in result.output, result.output
    assert catalog_copy.read_text() == before
    assert not (catalog_copy.parent / "samples" / "dolly2").exists()


def test_unguessable_columns_ask_for_fields(tmp_path):
    path = tmp_path / "odd.jsonl"
    path.write_text(json.dumps({"q": "a question", "a": "an answer"}) + "\n")
    result = run(
        "new",
        "odd",
        "--format",
        "jsonl",
        "--path",
        str(path),
        "--catalog",
        str(tmp_path / "c.yaml"),
        "--language",
        "en",
    )
    assert result.exit_code == 1
    assert "columns: q, a" in result.output and "--fields instruction=COL" in result.output
    assert not (tmp_path / "c.yaml").exists()


def test_normalizer_skeleton_and_its_test(catalog_copy, dolly_file, tmp_path):
    code_root = tmp_path / "checkout"
    result = new_dolly(catalog_copy, dolly_file, "--normalizer", "--code-root", str(code_root))
    assert result.exit_code == 0, result.output
    module = code_root / "src/alpacacot/normalizers/mydolly.py"
    test = code_root / "tests/normalizers/test_mydolly.py"
    assert module.is_file() and test.is_file()
    assert "@register" in result.output
    entry = yaml.safe_load(catalog_copy.read_text())["datasets"]["mydolly"]
    assert entry["normalizer"] == "mydolly"
    compile(test.read_text(), str(test), "exec")

    from alpacacot.catalog import load_catalog as load
    from alpacacot.normalizers import NORMALIZERS, get_normalizer

    spec = importlib.util.spec_from_file_location("alpacacot_test_dolly_skeleton", module)
    try:
        spec.loader.exec_module(importlib.util.module_from_spec(spec))
        normalize = get_normalizer(load(catalog_copy).datasets["mydolly"], "mydolly")
        draft = normalize(DOLLY[1])
        assert draft["instruction"] == "Tell me about topic 1."
        assert draft["input"] == "Some context 1."
        assert draft["meta"] == {"category": "open_qa"}
    finally:
        NORMALIZERS.pop("mydolly", None)


def test_dolly_layout_is_guessed_and_language_detected(tmp_path, dolly_file):
    catalog = tmp_path / "guess.yaml"
    result = run(
        "new",
        "dolly",
        "--format",
        "jsonl",
        "--path",
        str(dolly_file),
        "--catalog",
        str(catalog),
        "--license",
        "cc-by-sa-3.0",
    )
    assert result.exit_code == 0, result.output
    entry = load_catalog(catalog).datasets["dolly"]
    assert entry.fields == {"instruction": "instruction", "input": "context", "output": "response"}
    assert entry.languages == ["en"] and entry.tags["lang"] == "EN"
