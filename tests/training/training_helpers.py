"""Shared constants of the trainer tests (imported by conftest and the tests)."""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
RECORDS = FIXTURES / "records.jsonl"

# Config class and extra settings per registered native model type.
TINY_CONFIGS = {
    "llama": ("LlamaConfig", {}),
    "chatglm": ("GlmConfig", {"head_dim": 16, "partial_rotary_factor": 0.5}),
    "bloom": ("BloomConfig", {"n_layer": 2, "n_head": 4}),
    "qwen2": ("Qwen2Config", {}),
    "mistral": ("MistralConfig", {"head_dim": 16}),
    "gemma": ("GemmaConfig", {"head_dim": 16}),
}


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
