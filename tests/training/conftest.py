"""Tiny models and a locally trained tokenizer, built once per test session (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from training_helpers import _texts  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE trained on the fixture records, saved as a transformers tokenizer.

    Like llama's: a BOS added in front of every text, an unk token, and no pad token.
    """
    from alpacacot.training.tiny import build_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    build_tokenizer(_texts(), 1500, out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path):
    """tiny_model(model_type) -> directory with a random 2-layer model (hidden 64) + tokenizer."""
    from transformers import AutoTokenizer

    from alpacacot.training.tiny import build_model

    cache: dict[str, Path] = {}

    def build(model_type: str) -> Path:
        if model_type in cache:
            return cache[model_type]
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        out = tmp_path_factory.mktemp(f"tiny-{model_type}")
        # Wide init: frozen random output layers can then express a peaked distribution (at the
        # default 0.02 LoRA cannot move the loss far from log(vocab)).
        build_model(out, len(tokenizer), model_type=model_type, initializer_range=0.3,
                    max_position_embeddings=512)  # fmt: skip
        tokenizer.save_pretrained(out)
        cache[model_type] = out
        return out

    return build


@pytest.fixture(scope="session")
def seed_collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`alpacacot-data build alpaca belle cot --sample`: the seed's alpaca-belle-cot, from the
    excerpts bundled with the package."""
    from typer.testing import CliRunner

    from alpacacot.cli import app

    out = tmp_path_factory.mktemp("seed-collection")
    result = CliRunner().invoke(
        app, ["build", "alpaca", "belle", "cot", "--sample", "--out", str(out), "-j", "1"]
    )
    assert result.exit_code == 0, result.output
    return out
