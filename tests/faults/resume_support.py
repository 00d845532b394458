"""A tiny llama and short training runs for the resume fault tests (no network, CPU)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

RECORDS = Path(__file__).parents[1] / "training" / "fixtures" / "records.jsonl"


def build_tiny_llama(out: Path) -> Path:
    """A random 2-layer llama with a tokenizer trained on the trainer's fixture records."""
    from transformers import AutoTokenizer

    from alpacacot.training.tiny import build_model, build_tokenizer

    texts = []
    for line in RECORDS.read_text(encoding="utf-8").splitlines():
        r = json.loads(line)
        texts += [r["instruction"], r["input"], r["output"]]
    build_tokenizer(texts, 1000, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    build_model(out, len(tokenizer), initializer_range=0.3, max_position_embeddings=512)
    tokenizer.save_pretrained(out)
    return out


def train_args(model: Path, out: Path, *extra: str) -> list[str]:
    """40 of the fixture records, 2 examples x 4 accumulated per update: 5 updates per epoch."""
    return [
        "train", "--model_type", "llama", "--model_name_or_path", str(model),
        "--data", str(RECORDS), "--max_records", "40", "--per_gpu_train_batch_size", "2",
        "--gradient_accumulation_steps", "4", "--cutoff_len", "96", "--logging_steps", "1",
        "--lora_dropout", "0.1", "--save_total_limit", "10", "--output_dir", str(out), *extra,
    ]  # fmt: skip


def run_train(args: list[str]) -> tuple[int, str]:
    from alpacacot.cli import app

    result = CliRunner().invoke(app, args)
    return result.exit_code, result.output + (repr(result.exception) if result.exception else "")


def manifest(out: Path) -> dict:
    return json.loads((out / "training_manifest.json").read_text(encoding="utf-8"))


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
