"""The training configuration: one table of options shared by the CLI, YAML files and the manifest.

Importing this module never imports torch or transformers. Precedence: defaults <
`--config FILE.yaml` < command-line flags. Flag names keep the Alpaca-CoT seed's spelling
(underscores).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alpacacot.errors import AlpacacotError


class TrainingError(AlpacacotError):
    """A user error in the training setup: the message says what is wrong and how to fix it."""


def _opt(default: Any, help: str, **extra: Any) -> Any:
    meta = {"help": help, **extra}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Every option of `alpacacot-data train`; the field order is the order of `--help`."""

    model_type: str = _opt(
        "llama",
        "Model family from the registry (llama, chatglm, chatglm2, chatglm3, moss, bloom, qwen2, "
        "mistral, gemma, internlm, baichuan; chatglm2/3, moss, internlm and baichuan run the "
        "checkpoint's own code with trust_remote_code); an unknown type loads with the Auto "
        "classes and LoRA on all linear layers.",
    )
    model_name_or_path: str | None = _opt(
        None, "Base model: a local directory or a Hub id (required)."
    )
    data: list[str] = _opt(
        [],
        "Training data: catalog keys joined by '-' (alpaca-belle-cot), a mix name, or local "
        ".json/.jsonl/.parquet record files; several values (--data alpaca belle cot) or the flag "
        "repeated (required).",
    )
    collection: str | None = _opt(
        None,
        "Built collection to read catalog keys from: a directory made by `alpacacot-data build` "
        "or a Hub dataset repo (default: out, the build's default --out).",
    )
    lora_target_modules: list[str] = _opt(
        [],
        "Module names that get LoRA adapters: space- or comma-separated (q_proj v_proj), or "
        "'all-linear' "
        "(default: the registry's targets for --model_type).",
    )
    peft_type: str = _opt(
        "lora",
        "Parameter-efficient method: lora, dora (LoRA with weight decomposition), adalora, "
        "prompt (prompt tuning), p_tuning, prefix (prefix tuning).",
    )
    lora_r: int = _opt(8, "LoRA rank.")
    lora_alpha: int = _opt(16, "LoRA scaling alpha.")
    lora_dropout: float = _opt(0.05, "Dropout on the LoRA input.")
    adalora_init_r: int = _opt(12, "AdaLoRA: initial rank of every matrix (pruned to --lora_r).")
    adalora_tinit: int = _opt(0, "AdaLoRA: steps of warm-up before the rank budget shrinks.")
    adalora_tfinal: int = _opt(0, "AdaLoRA: final steps trained at the final budget.")
    adalora_delta_t: int = _opt(1, "AdaLoRA: steps between two rank reallocations.")
    num_virtual_tokens: int = _opt(
        20, "prompt, p_tuning, prefix: virtual tokens put in front of every example."
    )
    prompt_encoder_hidden_size: int = _opt(
        128, "p_tuning: hidden size of the prompt encoder (an MLP)."
    )
    per_gpu_train_batch_size: int = _opt(4, "Examples per device per step.")
    gradient_accumulation_steps: int = _opt(8, "Steps whose gradients add up before an update.")
    learning_rate: float = _opt(3e-4, "Peak learning rate (linear decay).")
    epochs: float = _opt(3.0, "Passes over the training data (ignored when --max_steps > 0).")
    max_steps: int = _opt(-1, "Optimizer updates to run; overrides --epochs when > 0.")
    cutoff_len: int = _opt(256, "Maximum tokens per example; longer examples are truncated.")
    val_set_size: float = _opt(
        0, "Held-out examples for evaluation: a count (>= 1) or a fraction (< 1); 0 for none."
    )
    train_on_inputs: bool = _opt(
        False, "Also train on the prompt tokens (by default they are masked from the loss)."
    )
    load_in_8bit: bool = _opt(False, "Load the base model in 8 bit (bitsandbytes; needs CUDA).")
    load_in_4bit: bool = _opt(
        False, "QLoRA: load the base model in 4 bit NF4 (bitsandbytes; needs CUDA)."
    )
    quantization_bit: int | None = _opt(
        None, "The seed's name for quantized loading: 4 (= --load_in_4bit) or 8 (= --load_in_8bit)."
    )
    compute_dtype: str | None = _opt(
        None,
        "Weights and compute precision: fp32, fp16 or bf16 (default: bf16 or fp16 on CUDA, "
        "fp32 on CPU).",
    )
    output_dir: str | None = _opt(
        None, "Where the adapter, tokenizer and manifest go (default: saved_models/TYPE_DATA)."
    )
    resume_from_checkpoint: str | None = _opt(
        None,
        "A checkpoint-N directory to continue from, or 'latest' (also the flag alone) for the "
        "newest complete checkpoint in output_dir.",
    )
    seed: int = _opt(42, "Random seed (data split, shuffling, LoRA init).")
    report_to: str = _opt("none", "Where to log metrics: none, tensorboard, wandb, ...")
    prompt_template: str | None = _opt(
        None,
        "Prompt template name (alpaca, chatml, chatglm, tokenizer = the tokenizer's chat "
        "template; default: the registry's choice for --model_type).",
    )
    group_by_length: bool = _opt(
        True, "Batch examples of similar length together (dynamic padding, little waste)."
    )
    packing: bool = _opt(
        False,
        "Pack several examples into each row of cutoff_len tokens, kept apart by position ids "
        "(rotary-position models only).",
    )
    max_records: int = _opt(0, "Use only the first N records after shuffling (0 = all).")
    logging_steps: int = _opt(10, "Log loss every N updates.")
    save_steps: int = _opt(200, "Save a checkpoint every N updates.")
    save_total_limit: int = _opt(2, "Keep at most N checkpoints.")
    warmup_steps: int = _opt(0, "Linear warm-up updates.")
    trust_remote_code: bool = _opt(
        False, "Allow the model's own code from the Hub (internlm, baichuan, THUDM chatglm)."
    )

    def resolved_output_dir(self) -> str:
        if self.output_dir:
            return self.output_dir
        data = "-".join(Path(d).stem for d in self.data) or "data"
        return str(Path("saved_models") / f"{self.model_type}_{data}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}
PEFT_TYPES = ("lora", "dora", "adalora", "prompt", "p_tuning", "prefix")
PROMPT_LEARNING = ("prompt", "p_tuning", "prefix")
COMPUTE_DTYPES = ("fp32", "fp16", "bf16")
LIST_FIELDS = {"data", "lora_target_modules"}


def field_default(name: str) -> Any:
    f = FIELDS[name]
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return f.default


def _split_list(values: Any) -> list[str]:
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    out: list[str] = []
    for v in values:
        out.extend(p.strip() for p in str(v).split(",") if p.strip())
    return out


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"config file {path} does not exist")
    loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(loaded, dict):
        raise TrainingError(f"{path}: the top level must be a mapping of option names to values")
    unknown = sorted(set(loaded) - set(FIELDS))
    if unknown:
        raise TrainingError(
            f"{path}: unknown option(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}"
        )
    return loaded


def build_config(cli: dict[str, Any], config_file: str | Path | None = None) -> TrainConfig:
    """Merge defaults, an optional YAML file and the CLI values that were given (not None)."""
    values: dict[str, Any] = {}
    if config_file:
        values.update(load_yaml(config_file))
    for name, value in cli.items():
        if value is None or (name in LIST_FIELDS and not value):
            continue
        values[name] = value
    for name in LIST_FIELDS:
        if name in values:
            values[name] = _split_list(values[name])
    if "data" in values and len(values["data"]) == 0:
        values.pop("data")
    cfg = TrainConfig(**values)
    for name in ("lora_r", "lora_alpha", "per_gpu_train_batch_size", "gradient_accumulation_steps"):
        if int(getattr(cfg, name)) < 1:
            raise TrainingError(f"--{name} must be >= 1 (got {getattr(cfg, name)})")
    if cfg.cutoff_len < 8:
        raise TrainingError(f"--cutoff_len must be >= 8 (got {cfg.cutoff_len})")
    if cfg.val_set_size < 0:
        raise TrainingError(f"--val_set_size must be >= 0 (got {cfg.val_set_size})")
    if cfg.quantization_bit is not None:
        if cfg.quantization_bit not in (4, 8):
            raise TrainingError(f"--quantization_bit must be 4 or 8 (got {cfg.quantization_bit})")
        if cfg.quantization_bit == 4:
            cfg.load_in_4bit = True
        else:
            cfg.load_in_8bit = True
    if cfg.load_in_8bit and cfg.load_in_4bit:
        raise TrainingError("choose one of --load_in_8bit and --load_in_4bit")
    if cfg.peft_type not in PEFT_TYPES:
        raise TrainingError(
            f"--peft_type {cfg.peft_type}: unknown; choose one of {', '.join(PEFT_TYPES)}"
        )
    if cfg.compute_dtype is not None and cfg.compute_dtype not in COMPUTE_DTYPES:
        raise TrainingError(
            f"--compute_dtype {cfg.compute_dtype}: unknown; choose one of {', '.join(COMPUTE_DTYPES)}"
        )
    if cfg.peft_type in PROMPT_LEARNING and cfg.packing:
        raise TrainingError(
            f"--packing cannot be used with --peft_type {cfg.peft_type} (virtual tokens go in front "
            "of each row, not of each packed example); drop --packing"
        )
    for name in ("num_virtual_tokens", "adalora_init_r", "adalora_delta_t"):
        if int(getattr(cfg, name)) < 1:
            raise TrainingError(f"--{name} must be >= 1 (got {getattr(cfg, name)})")
    return cfg
