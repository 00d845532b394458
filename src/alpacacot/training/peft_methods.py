"""The parameter-efficient methods of `--peft_type`, one small builder each (a registry by name).

Each builder turns the training configuration into a peft config: LoRA and DoRA (peft's `use_dora`),
AdaLoRA (a rank budget reallocated during training; needs the total number of updates), and the
prompt-learning methods (prompt tuning, P-tuning, prefix tuning), which train virtual tokens in front
of every example and leave the model's modules alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alpacacot.training.config import PROMPT_LEARNING, TrainConfig, TrainingError

Builder = Callable[[TrainConfig, Any, int], Any]
PEFT_BUILDERS: dict[str, Builder] = {}


def _register(name: str) -> Callable[[Builder], Builder]:
    def wrap(fn: Builder) -> Builder:
        PEFT_BUILDERS[name] = fn
        return fn

    return wrap


def uses_modules(peft_type: str) -> bool:
    """True for the methods that adapt named modules (--lora_target_modules applies)."""
    return peft_type not in PROMPT_LEARNING


@_register("lora")
def _lora(cfg: TrainConfig, targets: Any, total_steps: int) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )


@_register("dora")
def _dora(cfg: TrainConfig, targets: Any, total_steps: int) -> Any:
    config = _lora(cfg, targets, total_steps)
    config.use_dora = True
    return config


@_register("adalora")
def _adalora(cfg: TrainConfig, targets: Any, total_steps: int) -> Any:
    from peft import AdaLoraConfig

    if cfg.adalora_tinit + cfg.adalora_tfinal >= total_steps:
        raise TrainingError(
            f"--adalora_tinit {cfg.adalora_tinit} + --adalora_tfinal {cfg.adalora_tfinal} must be "
            f"less than the number of updates ({total_steps}): AdaLoRA shrinks the rank budget in "
            "between; lower them or train longer"
        )
    return AdaLoraConfig(
        init_r=cfg.adalora_init_r,
        target_r=cfg.lora_r,
        tinit=cfg.adalora_tinit,
        tfinal=cfg.adalora_tfinal,
        deltaT=cfg.adalora_delta_t,
        total_step=total_steps,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )


@_register("prompt")
def _prompt(cfg: TrainConfig, targets: Any, total_steps: int) -> Any:
    from peft import PromptTuningConfig

    return PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.num_virtual_tokens)


@_register("p_tuning")
def _p_tuning(cfg: TrainConfig, targets: Any, total_steps: int) -> Any:
    from peft import PromptEncoderConfig

    return PromptEncoderConfig(
        task_type="CAUSAL_LM",
        num_virtual_tokens=cfg.num_virtual_tokens,
        encoder_hidden_size=cfg.prompt_encoder_hidden_size,
    )


@_register("prefix")
def _prefix(cfg: TrainConfig, targets: Any, total_steps: int) -> Any:
    from peft import PrefixTuningConfig

    return PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=cfg.num_virtual_tokens)


def build_peft_config(cfg: TrainConfig, targets: Any, total_steps: int) -> Any:
    """The peft config of `cfg.peft_type` (targets are ignored by the prompt-learning methods)."""
    return PEFT_BUILDERS[cfg.peft_type](cfg, targets, total_steps)


def adalora_callback() -> Any:
    """Reallocates AdaLoRA's rank budget after every optimizer step, while gradients still exist
    (what peft asks of a training loop: `update_and_allocate(global_step)` before zero_grad)."""
    from transformers import TrainerCallback

    class AdaLoraBudget(TrainerCallback):
        def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            model = kwargs["model"]
            model = getattr(model, "module", model)  # DDP wraps the peft model
            model.base_model.update_and_allocate(state.global_step)

    return AdaLoraBudget()
