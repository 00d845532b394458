"""Build a tiny random model + byte-level BPE tokenizer to try the trainer without downloads.

    python bench/train_tiny_model.py --out /tmp/tiny-llama [--data RECORDS] [--model_type llama]

The tokenizer is trained on the records' text (default: the trainer tests' fixture records); the
model is random (hidden 64, 2 layers), so what it learns is only a smoke test of the pipeline.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULT_RECORDS = Path(__file__).resolve().parents[1] / "tests/training/fixtures/records.jsonl"
CONFIGS = {
    "llama": ("LlamaConfig", {}),
    "chatglm": ("GlmConfig", {"head_dim": 16, "partial_rotary_factor": 0.5}),
    "bloom": ("BloomConfig", {"n_layer": 2, "n_head": 4}),
    "qwen2": ("Qwen2Config", {}),
    "mistral": ("MistralConfig", {"head_dim": 16}),
    "gemma": ("GemmaConfig", {"head_dim": 16}),
}


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


def build_tokenizer(texts: list[str], vocab_size: int, out: Path) -> None:
    """Byte-level BPE with llama-like specials: <s> before every text, </s>, <unk>, no pad."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(out)


def build_model(
    out: Path, vocab_size: int, *, model_type: str = "llama", hidden: int = 64, layers: int = 2
) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    class_name, extra = CONFIGS[model_type]
    extra = {**extra, "n_layer": layers} if "n_layer" in extra else extra
    config = getattr(transformers, class_name)(
        vocab_size=vocab_size + 12,  # room for a pad token some tokenizer classes add
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=2048,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=False,
        **extra,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="directory to write the model to")
    parser.add_argument("--data", default=str(DEFAULT_RECORDS), help="records to train BPE on")
    parser.add_argument("--model_type", default="llama", choices=sorted(CONFIGS), help="[llama]")
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
