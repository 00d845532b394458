"""Shared constants of the trainer tests (imported by conftest and the tests)."""

from __future__ import annotations

import json
from pathlib import Path

from alpacacot.training.tiny import TINY_CONFIGS  # noqa: F401 - the tests' model types

FIXTURES = Path(__file__).parent / "fixtures"
RECORDS = FIXTURES / "records.jsonl"


def train_data_args() -> list[str]:
    """The `--data` part of every training test: swap this one line for a built collection,
    e.g. ["--data", "alpaca_cot", "--collection", str(collection_dir)]."""
    return ["--data", str(RECORDS)]


def _texts() -> list[str]:
    texts = []
    for line in RECORDS.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        texts.extend([r["instruction"], r["input"], r["output"]])
        for turn in r.get("history", []):
            texts.extend([turn["user"], turn["assistant"]])
    return texts
