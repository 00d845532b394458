"""Issue 12, item 3: whatever exception ends a source, that source is reported failed with its
message (a traceback only under -v), and the other sources are built and recorded; exit 1."""

from __future__ import annotations

import gzip
import json

import pytest
import yaml

from .helpers import manifest, missing_output, qa, run_build, write_sources


def _catalog_with_bad_sources(tmp_path):
    catalog = write_sources(
        tmp_path,
        {
            "good": qa("good", 5),
            # One line nested 100,000 deep: Python's JSON parser raises RecursionError.
            "deep": [qa("deep", 1)[0], '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"],
            "more": qa("more", 3),
        },
    )
    # A download cut short: gzip raises EOFError half way through the file.
    rows = "".join(json.dumps(r) + "\n" for r in qa("cut", 3000)).encode()
    packed = gzip.compress(rows)
    (tmp_path / "data" / "cut.jsonl.gz").write_bytes(packed[: len(packed) // 2])
    data = yaml.safe_load(catalog.read_text("utf-8"))
    data["datasets"]["cut"] = {
        **data["datasets"]["good"],
        "source": {"kind": "local", "path": "data/cut.jsonl.gz"},
    }
    catalog.write_text(yaml.safe_dump(data), "utf-8")
    return catalog


@pytest.mark.parametrize("workers", ["1", "2"])
def test_any_exception_fails_only_its_source(tmp_path, workers):
    catalog = _catalog_with_bad_sources(tmp_path)
    out = tmp_path / "out"
    result = run_build(catalog, out, "-j", workers)

    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "deep failed: RecursionError: maximum recursion depth exceeded" in result.stderr
    assert "cut failed: EOFError: Compressed file ended" in result.stderr
    recorded = manifest(out)
    assert set(recorded["sources"]) == {"good", "more"}
    assert recorded["sources"]["good"]["counts"]["written"] == 5
    assert recorded["sources"]["more"]["counts"]["written"] == 3
    assert set(recorded["errors"]) == {"deep", "cut"}
    assert recorded["errors"]["deep"].startswith("RecursionError: ")
    assert missing_output(out) == []
    assert not list(out.glob(".tmp-*"))


def test_verbose_shows_the_traceback_of_a_failed_source(tmp_path):
    catalog = _catalog_with_bad_sources(tmp_path)
    result = run_build(catalog, tmp_path / "out", "-j", "2", "-v", "deep", "good")
    assert result.returncode == 1
    assert "Traceback (most recent call last)" in result.stderr
    assert "RecursionError" in result.stderr
    assert "deep failed:" in result.stderr
