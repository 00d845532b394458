"""Tiny models and a locally trained tokenizer, built once per test session (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft")

from training_helpers import TINY_CONFIGS, _texts  # noqa: E402


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE trained on the fixture records, saved as a transformers tokenizer.

    Like llama's: a BOS added in front of every text, an unk token, and no pad token.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=1500,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(_texts(), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    out = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path):
    """tiny_model(model_type) -> directory with a random 2-layer model (hidden 64) + tokenizer."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cache: dict[str, Path] = {}

    def build(model_type: str) -> Path:
        if model_type in cache:
            return cache[model_type]
        tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        class_name, extra = TINY_CONFIGS[model_type]
        config = getattr(transformers, class_name)(
            vocab_size=len(tokenizer) + 12,  # room for pad tokens some classes add
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=512,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=None,
            tie_word_embeddings=False,
            # Wide enough init that frozen random output layers can express a peaked
            # distribution (at the default 0.02 LoRA cannot move the loss far from log(vocab)).
            initializer_range=0.3,
            **extra,
        )
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config)
        out = tmp_path_factory.mktemp(f"tiny-{model_type}")
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        cache[model_type] = out
        return out

    return build
