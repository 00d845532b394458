"""Build a tiny random model + byte-level BPE tokenizer to try the trainer without downloads.

    python bench/train_tiny_model.py --out /tmp/tiny-llama [--data RECORDS] [--model_type llama]

The tokenizer is trained on the records' text (default: the trainer tests' fixture records); the
model is random (hidden 64, 2 layers), so what it learns is only a smoke test of the pipeline.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from alpacacot.training.tiny import TINY_CONFIGS, build_model, build_tokenizer

DEFAULT_RECORDS = Path(__file__).resolve().parents[1] / "tests/training/fixtures/records.jsonl"


def record_texts(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    rows = (
        json.loads(text)
        if text.lstrip().startswith("[")
        else [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    texts = []
    for r in rows:
        texts.extend(str(r.get(k) or "") for k in ("instruction", "input", "output"))
        for turn in r.get("history") or []:
            texts.extend([turn["user"], turn["assistant"]])
    return texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory to write the model to")
    parser.add_argument("--data", default=str(DEFAULT_RECORDS), help="records to train BPE on")
    parser.add_argument(
        "--model_type", default="llama", choices=sorted(TINY_CONFIGS), help="[llama]"
    )
    parser.add_argument("--vocab_size", type=int, default=2000, help="[2000]")
    parser.add_argument("--hidden", type=int, default=64, help="[64]")
    parser.add_argument("--layers", type=int, default=2, help="[2]")
    args = parser.parse_args()
    out = Path(args.out)
    build_tokenizer(record_texts(Path(args.data)), args.vocab_size, out)
    build_model(out, args.vocab_size, model_type=args.model_type, hidden=args.hidden,
                layers=args.layers)  # fmt: skip
    print(out)


if __name__ == "__main__":
    main()
