"""Training throughput on CPU: our batching against the alpaca-lora recipe, on the same records.

    python bench/train_throughput.py [--data PATH] [--cutoff_len 256] [--batch_size 8]

Builds a byte-level BPE tokenizer on the records and a tiny random llama (hidden 64, 2 layers),
encodes the records once with the trainer's own code (alpaca template, prompt masked), then trains
LoRA (q_proj, v_proj) for one epoch over the same examples with transformers' Trainer in three ways:

- baseline: the alpaca-lora recipe, every example padded to cutoff_len, random order, a plain
  Trainer computing the model's own loss (logits at every position);
- group_by_length: the trainer's default, dynamic padding with length-grouped batches, and its
  Trainer with the LM head applied to labelled positions only (train.TargetsOnlyLoss);
- packing: examples packed into rows of cutoff_len tokens (--packing), same Trainer.

Reports the share of non-padding tokens and real (non-padding) tokens per second of each, best of
--repeats runs. Needs the `[train]` extra; reads no network.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from alpacacot.training.tiny import build_model, build_tokenizer

DEFAULT_DATA = "/work/shared/real-data/alpaca-gpt4-en/alpaca_en_demo.json"


def run_mode(mode: str, model_dir: Path, examples: list[dict], args, workdir: Path) -> dict:
    from datasets import Dataset
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class StepTimer(TrainerCallback):
        """Seconds between consecutive step ends: a median robust to a noisy shared machine."""

        def __init__(self) -> None:
            self.last: float | None = None
            self.intervals: list[float] = []

        def on_train_begin(self, *a, **k) -> None:
            self.last = time.perf_counter()

        def on_step_end(self, *a, **k) -> None:
            now = time.perf_counter()
            self.intervals.append(now - self.last)
            self.last = now

    from alpacacot.training.config import TrainConfig
    from alpacacot.training.data import PaddingCollator, pack_examples
    from alpacacot.training.models import MODELS, load_model_for_training
    from alpacacot.training.train import _trainer_class, targets_only_loss

    cfg = TrainConfig(model_name_or_path=str(model_dir), data=["bench"], seed=0)
    model, tokenizer, _ = load_model_for_training(cfg, MODELS["llama"])
    if mode == "packing":
        rows = pack_examples(examples, args.cutoff_len, seed=0)
    else:
        rows = [{k: e[k] for k in ("input_ids", "labels")} for e in examples]
    data = {k: [r[k] for r in rows] for k in rows[0] if k != "length"}
    data["length"] = [len(r["input_ids"]) for r in rows]
    collator = PaddingCollator(
        tokenizer.pad_token_id, pad_to_length=args.cutoff_len if mode == "baseline" else None
    )
    targs = TrainingArguments(
        output_dir=str(workdir / mode),
        per_device_train_batch_size=args.batch_size,
        num_train_epochs=1,
        learning_rate=3e-4,
        logging_steps=10_000,
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=0,
        train_sampling_strategy="group_by_length" if mode == "group_by_length" else "random",
        remove_unused_columns=False,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    common = dict(
        model=model,
        args=targs,
        data_collator=collator,
        train_dataset=Dataset.from_dict(data),
        processing_class=tokenizer,
        callbacks=[timer := StepTimer()],
    )
    if mode == "baseline":  # the alpaca-lora recipe: a plain Trainer, the model's own loss
        trainer = Trainer(**common)
    else:  # what `alpacacot-data train` runs: its Trainer class and loss
        trainer = _trainer_class()(
            **common,
            eval_collator=collator,
            compute_loss_func=targets_only_loss(model, MODELS["llama"]),
        )
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    # The collator also saw the batch the dataloader fetched ahead; count only trained examples.
    real = sum(len(r["input_ids"]) for r in rows)
    share = collator.real_tokens / collator.total_tokens
    median = sorted(timer.intervals)[len(timer.intervals) // 2]
    return {
        "mode": mode,
        "rows": len(rows),
        "steps": trainer.state.global_step,
        "seconds": round(seconds, 3),
        "real_tokens": real,
        "non_padding_share": round(share, 4),
        "real_tokens_per_s": round(real / seconds, 1),
        "all_tokens_per_s": round(real / share / seconds, 1),
        "median_step_s": round(median, 4),
        "real_tokens_per_s_at_median_step": round(real / (median * len(timer.intervals)), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=DEFAULT_DATA, help=f"record file [{DEFAULT_DATA}]")
    parser.add_argument("--cutoff_len", type=int, default=256, help="[256]")
    parser.add_argument("--batch_size", type=int, default=8, help="[8]")
    parser.add_argument("--vocab_size", type=int, default=8000, help="BPE vocabulary [8000]")
    parser.add_argument("--hidden", type=int, default=64, help="model width [64]")
    parser.add_argument("--layers", type=int, default=2, help="model depth [2]")
    parser.add_argument("--repeats", type=int, default=2, help="runs per mode, best kept [2]")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers

    from alpacacot.training.data import encode_records, read_record_file
    from alpacacot.training.models import MODELS, load_tokenizer

    transformers.logging.set_verbosity_error()
    records = read_record_file(args.data)
    texts = [t for r in records for t in (r["instruction"], r["input"], r["output"])]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_tokenizer(texts, args.vocab_size, work / "model")
        build_model(work / "model", args.vocab_size, hidden=args.hidden, layers=args.layers)
        tokenizer = load_tokenizer(str(work / "model"), MODELS["llama"])
        examples, stats = encode_records(records, tokenizer, "alpaca", args.cutoff_len)
        results: dict[str, dict] = {}
        for _ in range(args.repeats):
            for mode in ("baseline", "group_by_length", "packing"):
                r = run_mode(mode, work / "model", examples, args, work)
                if mode not in results or r["seconds"] < results[mode]["seconds"]:
                    results[mode] = r
    base = results["baseline"]
    summary = {
        "machine": f"{platform.machine()} {platform.processor() or ''} "
        f"{os.cpu_count()} cores, torch {torch.__version__} threads {torch.get_num_threads()}, "
        f"transformers {transformers.__version__}, python {platform.python_version()}",
        "data": args.data,
        "records": len(records),
        "examples": len(examples),
        "truncated": stats.truncated,
        "cutoff_len": args.cutoff_len,
        "batch_size": args.batch_size,
        "model": f"llama hidden {args.hidden}, {args.layers} layers, vocab {args.vocab_size}, "
        "LoRA q_proj,v_proj r=8",
        "runs": list(results.values()),
        "speedup_real_tokens_per_s": {
            m: round(r["real_tokens_per_s"] / base["real_tokens_per_s"], 2)
            for m, r in results.items()
        },
        "speedup_at_median_step": {
            m: round(
                r["real_tokens_per_s_at_median_step"] / base["real_tokens_per_s_at_median_step"],
                2,
            )
            for m, r in results.items()
        },
    }
    print(json.dumps(summary, indent=2))
    header = (
        f"{'mode':<16}{'rows':>6}{'steps':>7}{'seconds':>9}{'non-pad':>9}"
        f"{'real tok/s':>12}{'x base':>8}{'median step':>13}{'x base':>8}"
    )
    print(header, file=sys.stderr)
    for m, r in results.items():
        print(
            f"{m:<16}{r['rows']:>6}{r['steps']:>7}{r['seconds']:>9.2f}"
            f"{100 * r['non_padding_share']:>8.1f}%{r['real_tokens_per_s']:>12.0f}"
            f"{summary['speedup_real_tokens_per_s'][m]:>8.2f}"
            f"{1000 * r['median_step_s']:>10.1f} ms{summary['speedup_at_median_step'][m]:>8.2f}",
            file=sys.stderr,
        )
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
