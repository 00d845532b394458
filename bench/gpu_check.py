"""GPU check of the trainer's quantized paths: QLoRA 4-bit, LoRA on 8-bit, and bf16 LoRA.

    python bench/gpu_check.py [--hidden 1024 --layers 8 --steps 20 --batch 8 --seq 512]

Needs a CUDA GPU (bitsandbytes' quantized layers); without one it exits with a message and
status 2. A llama-shaped model is built from its config (random weights, no download), saved
once, then loaded three times through the trainer's own loader (`load_model_for_training`,
exactly what `alpacacot-data train --quantization_bit 4|8 --compute_dtype bf16` runs), and
trained for a few steps on random token ids. Prints, per run: tokens/s over the timed steps
(after 3 warm-up steps), peak GPU memory, and the final loss (it must be finite).
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

RUNS = (
    ("qlora-4bit", {"quantization_bit": 4, "compute_dtype": "bf16"}),
    ("lora-8bit", {"quantization_bit": 8, "compute_dtype": "bf16"}),
    ("lora-bf16", {"compute_dtype": "bf16"}),
)


def build(out: Path, hidden: int, layers: int) -> None:
    from alpacacot.training.tiny import build_model, build_tokenizer

    texts = [f"token {i} of the gpu check" for i in range(200)]
    build_tokenizer(texts, 400, out)
    build_model(out, 32000, hidden=hidden, layers=layers, max_position_embeddings=4096)


def run(path: Path, name: str, flags: dict, args: argparse.Namespace) -> dict:
    import torch

    from alpacacot.training.config import build_config
    from alpacacot.training.models import MODELS, load_model_for_training

    cfg = build_config({"model_name_or_path": str(path), "data": ["unused"], **flags})
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model, _, _ = load_model_for_training(cfg, MODELS["llama"], total_steps=args.steps)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    device = next(p.device for p in params)
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 32000, (args.batch, args.seq), generator=gen).to(device)
    timed_tokens, start, loss = 0, 0.0, float("nan")
    for step in range(args.steps + 3):
        if step == 3:
            torch.cuda.synchronize()
            start = time.perf_counter()
        out = model(input_ids=ids, labels=ids)
        out.loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        loss = out.loss.item()
        if step >= 3:
            timed_tokens += ids.numel()
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    result = {
        "run": name,
        "tokens_per_s": timed_tokens / seconds,
        "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30,
        "loss": loss,
    }
    del model, optimizer
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=512)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA GPU is visible (torch.cuda.is_available() is False). QLoRA 4-bit "
            "and 8-bit need bitsandbytes on CUDA; run this on a GPU machine. Nothing was measured.",
            file=sys.stderr,
        )
        return 2
    print(f"device: {torch.cuda.get_device_name(0)}; torch {torch.__version__}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        build(path, args.hidden, args.layers)
        print(f"model: llama hidden {args.hidden}, {args.layers} layers, vocab 32000 (random)")
        print(f"{'run':<12} {'tokens/s':>10} {'peak GiB':>9} {'loss':>8}")
        failed = False
        for name, flags in RUNS:
            r = run(path, name, flags, args)
            failed |= not math.isfinite(r["loss"])
            print(
                f"{r['run']:<12} {r['tokens_per_s']:>10.0f} {r['peak_mem_gib']:>9.2f} "
                f"{r['loss']:>8.3f}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
