"""The model registry: one small entry per `--model_type`, and the code that loads any of them.

An entry says which modules get LoRA, which prompt template to use, and the tokenizer's padding
quirks. Model differences live here, never in branches of the trainer. An unknown type loads with
the Auto classes and LoRA on every linear layer.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from alpacacot.training.config import TrainConfig, TrainingError

log = logging.getLogger(__name__)

ALL_LINEAR = "all-linear"


@dataclass(frozen=True)
class ModelSpec:
    """How one model family is fine-tuned.

    `lora_targets` lists alternatives, the first whose module names all exist in the loaded model
    wins (the Hub's remote-code ChatGLM names its attention `query_key_value`, transformers' native
    GLM `q_proj`/`v_proj`). `pad_token` is the special token used for padding when the tokenizer has
    none. `packing` is True where positions come from position ids (rotary), so packed examples can
    be kept apart; ALiBi models (bloom) cannot. `targets_only_logits` lets the trainer apply the LM
    head to labelled positions only (see train.TargetsOnlyLoss): right for a model whose logits are
    its head applied to its last hidden state, with no scaling or soft-capping after it.
    """

    name: str
    lora_targets: tuple[tuple[str, ...], ...] = ((ALL_LINEAR,),)
    template: str = "alpaca"
    pad_token: tuple[str, ...] = ("unk", "eos")
    trust_remote_code: bool = False
    packing: bool = True
    targets_only_logits: bool = False


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


register_model(ModelSpec("llama", lora_targets=(("q_proj", "v_proj"),), targets_only_logits=True))
register_model(
    ModelSpec(
        "chatglm",
        lora_targets=(("query_key_value",), ("q_proj", "v_proj")),
        template="chatglm",
        pad_token=("eos", "unk"),
        targets_only_logits=True,
    )
)
register_model(
    ModelSpec(
        "bloom",
        lora_targets=(("query_key_value",),),
        pad_token=("pad", "eos"),
        packing=False,
        targets_only_logits=True,
    )
)
register_model(
    ModelSpec(
        "qwen2",
        lora_targets=(("q_proj", "v_proj"),),
        template="chatml",
        pad_token=("pad", "eos"),
        targets_only_logits=True,
    )
)
register_model(ModelSpec("mistral", lora_targets=(("q_proj", "v_proj"),), targets_only_logits=True))
register_model(
    ModelSpec(
        "gemma",
        lora_targets=(("q_proj", "v_proj"),),
        pad_token=("pad", "eos"),
        targets_only_logits=True,
    )
)
register_model(
    ModelSpec(
        "internlm",
        lora_targets=(("wqkv",), ("q_proj", "v_proj")),
        trust_remote_code=True,
        pad_token=("pad", "eos"),
    )
)
# The seed's remote-code families: the checkpoint ships its own modeling file (auto_map in its
# config.json), loaded with trust_remote_code. Targets are the attention projections of that code.
register_model(
    ModelSpec(
        "chatglm2",
        lora_targets=(("query_key_value",), ("q_proj", "v_proj")),
        template="chatglm",
        pad_token=("pad", "eos", "unk"),
        trust_remote_code=True,
    )
)
register_model(
    ModelSpec(
        "chatglm3",
        lora_targets=(("query_key_value",), ("q_proj", "v_proj")),
        template="chatglm3",
        pad_token=("pad", "eos", "unk"),
        trust_remote_code=True,
    )
)
register_model(
    ModelSpec(
        "moss",
        lora_targets=(("qkv_proj",), ("q_proj", "v_proj")),
        template="moss",
        pad_token=("pad", "eos", "unk"),
        trust_remote_code=True,
        packing=False,
    )
)
register_model(
    ModelSpec(
        "baichuan",
        lora_targets=(("W_pack",),),
        trust_remote_code=True,
        pad_token=("pad", "unk", "eos"),
    )
)


def get_spec(model_type: str) -> ModelSpec:
    """The registry entry for `model_type`, or the Auto-class fallback for an unknown one."""
    if model_type in MODELS:
        return MODELS[model_type]
    log.warning(
        "model_type %r is not in the registry (%s): loading with the Auto classes, LoRA on %s",
        model_type,
        ", ".join(MODELS),
        ALL_LINEAR,
    )
    return ModelSpec(model_type)


def require_cuda_for_quantization(cfg: TrainConfig) -> None:
    """Stop at once when 8/4-bit loading is asked for without CUDA (bitsandbytes needs a GPU)."""
    if not (cfg.load_in_8bit or cfg.load_in_4bit):
        return
    import torch

    if not torch.cuda.is_available():
        flag = "--load_in_8bit" if cfg.load_in_8bit else "--load_in_4bit"
        if cfg.quantization_bit:
            flag = f"--quantization_bit {cfg.quantization_bit}"
        raise TrainingError(
            f"{flag} needs a CUDA GPU (bitsandbytes quantized training), and none is visible here "
            "(torch.cuda.is_available() is False). Drop the flag to train LoRA in full precision "
            "on this machine, or run on a GPU machine."
        )


def require_cuda_for_dtype(cfg: TrainConfig) -> None:
    """fp16 training needs CUDA (CPU kernels and the gradient scaler are not there for it)."""
    if cfg.compute_dtype != "fp16":
        return
    import torch

    if not torch.cuda.is_available():
        raise TrainingError(
            "--compute_dtype fp16 needs a CUDA GPU, and none is visible here; use bf16 or fp32 "
            "(the default on CPU)"
        )


def linear_module_names(model: Any) -> list[str]:
    """The distinct last-name parts of the model's linear layers (what LoRA can target)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    names = set()
    for full_name, module in model.named_modules():
        if isinstance(module, (torch.nn.Linear, Conv1D)) and full_name:
            names.add(full_name.rsplit(".", 1)[-1])
    return sorted(names)


def resolve_lora_targets(model: Any, spec: ModelSpec, requested: list[str]) -> list[str] | str:
    """Check the requested LoRA targets against the model, or pick the registry's default."""
    available = linear_module_names(model)
    all_names = {name for name, _ in model.named_modules() if name}
    leaf_names = {n.rsplit(".", 1)[-1] for n in all_names}
    if requested:
        if requested == [ALL_LINEAR]:
            return ALL_LINEAR
        missing = [
            t
            for t in requested
            if t not in leaf_names and not any(n == t or n.endswith("." + t) for n in all_names)
        ]
        if missing:
            raise TrainingError(
                f"--lora_target_modules: no module named {', '.join(missing)} in "
                f"{type(model).__name__}; its linear modules are: {', '.join(available)} "
                f"(or use '{ALL_LINEAR}')"
            )
        return list(requested)
    for alternative in spec.lora_targets:
        if alternative == (ALL_LINEAR,):
            return ALL_LINEAR
        if all(t in available for t in alternative):
            return list(alternative)
    log.warning(
        "none of the registry's LoRA targets %s exist in %s; using %s (linear modules: %s)",
        spec.lora_targets,
        type(model).__name__,
        ALL_LINEAR,
        ", ".join(available),
    )
    return ALL_LINEAR


def load_tokenizer(path: str, spec: ModelSpec, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(
        path, trust_remote_code=trust_remote_code or spec.trust_remote_code
    )
    if tokenizer.pad_token_id is None:
        for kind in spec.pad_token:
            token = getattr(tokenizer, f"{kind}_token", None)
            if token is not None:
                tokenizer.pad_token = token
                break
        else:
            raise TrainingError(
                f"the tokenizer of {path} has no pad, unk or eos token to pad with; add one"
            )
    tokenizer.padding_side = "right"
    return tokenizer


def torch_dtype(cuda: bool, compute_dtype: str | None = None) -> Any:
    """`--compute_dtype` as a torch dtype; by default bf16 (else fp16) on CUDA, fp32 on CPU."""
    import torch

    if compute_dtype:
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[compute_dtype]
    if not cuda:
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def load_base_model(
    path: str, spec: ModelSpec, cfg: TrainConfig | None = None, *, trust_remote_code: bool = False
) -> Any:
    """Load the base model (quantized when cfg asks for it, which needs CUDA)."""
    import os

    import torch
    from transformers import AutoModelForCausalLM

    cuda = torch.cuda.is_available()
    kwargs: dict[str, Any] = {
        "dtype": torch_dtype(cuda, cfg.compute_dtype if cfg is not None else None),
        "trust_remote_code": trust_remote_code or spec.trust_remote_code,
    }
    if cfg is not None and (cfg.load_in_8bit or cfg.load_in_4bit):
        require_cuda_for_quantization(cfg)
        from transformers import BitsAndBytesConfig

        if cfg.load_in_4bit:
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=kwargs["dtype"],
            )
        else:
            kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except ValueError as err:
        if "trust_remote_code" in str(err):
            raise TrainingError(
                f"{path} ships its own model code: add --trust_remote_code"
            ) from err
        raise
    return model


def load_model_for_training(
    cfg: TrainConfig, spec: ModelSpec, *, tokenizer: Any = None, total_steps: int = 0
) -> tuple[Any, Any, Any]:
    """Load tokenizer (unless given) and base model and wrap the model with `--peft_type`.

    `total_steps` (the number of optimizer updates) is needed by AdaLoRA's budget schedule.
    Returns (peft model, tokenizer, resolved LoRA targets or None for prompt learning).
    """
    from peft import get_peft_model, prepare_model_for_kbit_training

    from alpacacot.training.peft_methods import build_peft_config, uses_modules

    require_cuda_for_quantization(cfg)
    path = str(cfg.model_name_or_path)
    if tokenizer is None:
        tokenizer = load_tokenizer(path, spec, trust_remote_code=cfg.trust_remote_code)
    model = load_base_model(path, spec, cfg, trust_remote_code=cfg.trust_remote_code)
    vocab = model.get_input_embeddings().num_embeddings
    if tokenizer.pad_token_id >= vocab:
        # Some tokenizer classes add a pad token the checkpoint has no embedding for.
        fallback = tokenizer.eos_token if tokenizer.eos_token_id < vocab else tokenizer.unk_token
        log.warning(
            "pad token id %d is outside the vocabulary (%d); padding with %s",
            tokenizer.pad_token_id,
            vocab,
            fallback,
        )
        tokenizer.pad_token = fallback
    if getattr(model.config, "pad_token_id", None) is None:  # remote-code configs may lack it
        model.config.pad_token_id = tokenizer.pad_token_id
    # No KV cache while training: transformers only separates packed examples (by position ids)
    # when no cache is passed, and a cache is useless for training anyway.
    model.config.use_cache = False
    if cfg.load_in_8bit or cfg.load_in_4bit:
        model = prepare_model_for_kbit_training(model)
    targets = None
    if uses_modules(cfg.peft_type):
        targets = resolve_lora_targets(model, spec, cfg.lora_target_modules)
    elif cfg.lora_target_modules:
        log.warning("--lora_target_modules is ignored by --peft_type %s", cfg.peft_type)
    model = get_peft_model(model, build_peft_config(cfg, targets, max(total_steps, 1)))
    return model, tokenizer, targets
