"""Tiny random models and a locally trained tokenizer: the trainer runs end to end with no download.

Used by the tests, the benchmarks and `bench/train_tiny_model.py` (the README's "try it" model). What
such a model learns means nothing; it exercises loading, LoRA, masking and saving for real.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

# transformers config class and its extra settings, per registered native model type.
TINY_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", {}),
    "chatglm": ("GlmConfig", {"head_dim": 16, "partial_rotary_factor": 0.5}),
    "bloom": ("BloomConfig", {"n_layer": 2, "n_head": 4}),
    "qwen2": ("Qwen2Config", {}),
    "mistral": ("MistralConfig", {"head_dim": 16}),
    "gemma": ("GemmaConfig", {"head_dim": 16}),
}


def build_tokenizer(texts: Iterable[str], vocab_size: int, out: Path) -> None:
    """Byte-level BPE saved as a transformers tokenizer, with llama's habits: `<s>` before every
    text, `</s>`, `<unk>` (ids 0-2), and no pad token."""
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
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(out)


def build_model(
    out: Path,
    vocab_size: int,
    *,
    model_type: str = "llama",
    hidden: int = 64,
    layers: int = 2,
    **overrides: Any,
) -> None:
    """Save a random `model_type` model (4 heads) for a tokenizer of `vocab_size` tokens into `out`.

    `overrides` go to the config (e.g. `initializer_range`, `max_position_embeddings`).
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM

    class_name, extra = TINY_CONFIGS[model_type]
    extra = {**extra, "n_layer": layers} if "n_layer" in extra else extra
    settings = {
        "vocab_size": vocab_size + 12,  # room for a pad token some tokenizer classes add
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 2048,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pad_token_id": None,  # some configs default to an id outside a tiny vocabulary
        "tie_word_embeddings": False,
        **extra,
        **overrides,
    }
    config = getattr(transformers, class_name)(**settings)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(out)
