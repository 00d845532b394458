"""Shared helpers of the curation tests: the bundled real excerpts."""

from __future__ import annotations

import json
from pathlib import Path

from alpacacot.catalog import PACKAGE_CATALOG

SAMPLES = PACKAGE_CATALOG.parent / "samples"
BENCH = SAMPLES / "benchmarks"
WIDE = {"COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"}
KEYS = [
    "alpaca",
    "alpaca_cleaned",
    "alpaca_gpt4_en",
    "alpaca_gpt4_zh",
    "alpaca_zh",
    "cot",
    "codealpaca",
    "gpt4all",
]


def sample_records(relpath: str) -> list[dict]:
    """The records of a bundled JSON-array excerpt, with an empty history."""
    rows = json.loads((SAMPLES / relpath).read_text("utf-8"))
    return [{**r, "history": []} for r in rows]


def jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
