"""LoRA/QLoRA fine-tuning with transformers' Trainer, one process or many (torchrun).

Read top to bottom: check the setup, read the records, load the model, encode, train, save the
adapter, tokenizer and `training_manifest.json` (rank 0 only).
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from alpacacot.training.checkpoints import Resume, completion_callback, resolve_resume
from alpacacot.training.config import TrainConfig, TrainingError
from alpacacot.training.data import (
    IGNORE_INDEX,
    PaddingCollator,
    encode_records,
    ids_sha256,
    load_records,
    pack_examples,
    split_records,
)
from alpacacot.training.evaluate import RECORD_IDS
from alpacacot.training.models import (
    MODELS,
    ModelSpec,
    get_spec,
    load_model_for_training,
    load_tokenizer,
    require_cuda_for_dtype,
    require_cuda_for_quantization,
)
from alpacacot.training.peft_methods import adalora_callback
from alpacacot.training.prompts import template_names

log = logging.getLogger(__name__)

MANIFEST = "training_manifest.json"
LIBRARIES = ("alpacacot", "torch", "transformers", "peft", "accelerate", "datasets", "bitsandbytes")


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _make_dataset(examples: list[dict[str, Any]]) -> Any:
    from datasets import Dataset

    columns = [k for k in examples[0] if k != "id"] if examples else ["input_ids", "labels"]
    data = {k: [e[k] for e in examples] for k in columns}
    if "length" not in data:
        data["length"] = [len(e["input_ids"]) for e in examples]
    return Dataset.from_dict(data)


def _peft_summary(model: Any) -> dict[str, Any]:
    """The adapter's peft config as plain JSON values (what `adapter_config.json` holds)."""
    config = model.peft_config["default"]
    out = {}
    for key, value in config.to_dict().items():
        if isinstance(value, set):
            value = sorted(value)
        try:
            json.dumps(value)
        except TypeError:
            value = str(value)
        out[key] = value
    return out


def planned_steps(cfg: TrainConfig, rows: int, world_size: int) -> int:
    """Optimizer updates this configuration runs (what AdaLoRA's schedule is laid over)."""
    if cfg.max_steps > 0:
        return cfg.max_steps
    per_update = cfg.per_gpu_train_batch_size * cfg.gradient_accumulation_steps * world_size
    return max(1, math.ceil(math.ceil(rows / per_update) * cfg.epochs))


def finished(resume: Resume, cfg: TrainConfig) -> bool:
    """True when the checkpoint already holds every update the run asks for."""
    target = cfg.max_steps if cfg.max_steps > 0 else resume.max_steps
    return target > 0 and resume.global_step >= target


def _already_finished(resume: Resume, cfg: TrainConfig, output_dir: str) -> dict[str, Any]:
    """Resuming a finished run: say so, train nothing, write nothing (the adapter stays)."""
    target = cfg.max_steps if cfg.max_steps > 0 else resume.max_steps
    log.warning(
        "nothing to do: %s is at step %d and the run asks for %d updates (--max_steps or "
        "--epochs); the adapter and manifest in %s are left as they are. Raise --max_steps to "
        "train further.",
        resume.checkpoint,
        resume.global_step,
        target,
        output_dir,
    )
    path = Path(output_dir) / MANIFEST
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    return {"training": {"global_step": resume.global_step, "resumed_from": str(resume.checkpoint)}}


def _all_reduce(values: list[int]) -> list[int]:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return values
    t = torch.tensor(values, dtype=torch.long)
    dist.all_reduce(t)
    return t.tolist()


def _step_recorder() -> Any:
    from transformers import TrainerCallback

    class StepRecorder(TrainerCallback):
        """Remembers the first optimizer step this run executed (shows where a resume started)."""

        first_step: int | None = None

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.first_step is None:
                self.first_step = state.global_step

    return StepRecorder()


class TargetsOnlyLoss:
    """Causal-LM loss with the LM head applied only where a label is learned.

    The prompt (unless --train_on_inputs) and the padding carry no label, yet a model's own loss
    projects every position onto the whole vocabulary: on a small model that projection and its
    softmax are most of the step. Here the model returns its final hidden states (and one position
    of logits), and the head runs on the labelled positions alone. The value is the model's own
    loss (same shift, same sum over `num_items_in_batch` or mean), tested against it.
    """

    def __init__(self, head: Any) -> None:
        self.head = head

    @staticmethod
    def model_kwargs() -> dict[str, Any]:
        return {"logits_to_keep": 1, "output_hidden_states": True}

    def __call__(self, outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        import torch.nn.functional as F

        hidden = outputs.hidden_states[-1][:, :-1]
        target = labels[:, 1:].to(hidden.device)
        keep = target != IGNORE_INDEX
        logits = self.head(hidden[keep]).float()
        loss = F.cross_entropy(logits, target[keep], reduction="sum")
        if num_items_in_batch is None:
            return loss / keep.sum().clamp(min=1)
        return loss / num_items_in_batch


def targets_only_loss(
    model: Any, spec: ModelSpec, peft_type: str = "lora"
) -> TargetsOnlyLoss | None:
    """The loss above when the model supports it (its forward takes `logits_to_keep`), else None.

    LoRA and DoRA only: prompt learning puts virtual tokens in front of the hidden states, and
    AdaLoRA adds its orthogonality penalty to the model's own loss.
    """
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not spec.targets_only_logits or peft_type not in ("lora", "dora"):
        return None
    if "logits_to_keep" not in inspect.signature(base.forward).parameters:
        return None
    return TargetsOnlyLoss(base.get_output_embeddings())


def epoch_seeded_sampler(lengths: list[int], batch_size: int, seed: int) -> Any:
    """transformers' length-grouped order, drawn from a generator seeded with (seed, epoch).

    transformers draws it from the global torch RNG at the start of each epoch, whose state then
    depends on everything the run did before (dropout included); a run resumed in a later epoch
    draws another order. Seeded per epoch, the order is a function of the seed and the epoch
    alone, so a resumed run sees exactly the batches of an uninterrupted one, and every process
    of a distributed run the same permutation.
    """
    import torch
    from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

    class EpochSeededLengthGroupedSampler(LengthGroupedSampler):
        epoch = 0

        def set_epoch(self, epoch: int) -> None:
            self.epoch = epoch

        def __iter__(self) -> Any:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + self.epoch)
            return iter(
                get_length_grouped_indices(self.lengths, self.batch_size, generator=generator)
            )

    return EpochSeededLengthGroupedSampler(batch_size, lengths=list(lengths))


def _trainer_class() -> Any:
    from transformers import Trainer

    class CollectionTrainer(Trainer):
        """A Trainer whose evaluation batches use their own collator, so the padding share
        counted by the training collator covers training batches only, and that asks the model
        for what a `TargetsOnlyLoss` needs."""

        def __init__(self, *args: Any, eval_collator: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.eval_collator = eval_collator

        def compute_loss(self, model: Any, inputs: dict, *args: Any, **kwargs: Any) -> Any:
            if isinstance(self.compute_loss_func, TargetsOnlyLoss):
                inputs = {**inputs, **TargetsOnlyLoss.model_kwargs()}
            return super().compute_loss(model, inputs, *args, **kwargs)

        def _get_train_sampler(self, train_dataset: Any = None) -> Any:
            if self.args.train_sampling_strategy != "group_by_length":
                return super()._get_train_sampler(train_dataset)
            dataset = train_dataset if train_dataset is not None else self.train_dataset
            return epoch_seeded_sampler(
                dataset["length"],
                self.args.train_batch_size * self.args.gradient_accumulation_steps,
                self.args.data_seed if self.args.data_seed is not None else self.args.seed,
            )

        def get_eval_dataloader(self, eval_dataset: Any = None) -> Any:
            train_collator = self.data_collator
            self.data_collator = self.eval_collator
            try:
                return super().get_eval_dataloader(eval_dataset)
            finally:
                self.data_collator = train_collator

    return CollectionTrainer


def run_training(cfg: TrainConfig) -> dict[str, Any]:
    """Train a LoRA adapter as configured; returns the manifest (written by rank 0)."""
    require_cuda_for_quantization(cfg)
    require_cuda_for_dtype(cfg)
    if not cfg.model_name_or_path:
        raise TrainingError("--model_name_or_path is required (a local directory or a Hub id)")
    spec = get_spec(cfg.model_type)
    template = cfg.prompt_template or spec.template
    if template not in template_names():
        raise TrainingError(
            f"--prompt_template {template}: unknown; known: {', '.join(template_names())}"
        )
    if cfg.packing and not spec.packing:
        raise TrainingError(
            f"--packing is not supported for model_type {spec.name} (its positions are not "
            "position ids); use the default --group_by_length instead"
        )
    output_dir = cfg.resolved_output_dir()
    resume = resolve_resume(cfg.resume_from_checkpoint, output_dir)
    if resume is not None and finished(resume, cfg):
        return _already_finished(resume, cfg, output_dir)

    import torch
    from transformers import TrainingArguments, set_seed

    set_seed(cfg.seed)
    recordset = load_records(cfg)
    train_records, val_records = split_records(
        recordset.records, cfg.val_set_size, cfg.seed, cfg.max_records
    )
    tokenizer = load_tokenizer(
        str(cfg.model_name_or_path), spec, trust_remote_code=cfg.trust_remote_code
    )
    train_examples, train_stats = encode_records(
        train_records, tokenizer, template, cfg.cutoff_len, cfg.train_on_inputs
    )
    val_examples, _ = encode_records(
        val_records, tokenizer, template, cfg.cutoff_len, cfg.train_on_inputs
    )
    if not train_examples:
        raise TrainingError("no training example is left after encoding; raise --cutoff_len")
    used_ids = [e["id"] for e in train_examples] + [e["id"] for e in val_examples]
    if cfg.packing:
        train_rows = pack_examples(train_examples, cfg.cutoff_len, cfg.seed)
        log.info("packed %d examples into %d rows", len(train_examples), len(train_rows))
    else:
        train_rows = train_examples
    train_dataset = _make_dataset(train_rows)
    eval_dataset = _make_dataset(val_examples) if val_examples else None

    cuda = torch.cuda.is_available()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world_size > 1
    total_steps = planned_steps(cfg, len(train_rows), world_size)
    model, tokenizer, targets = load_model_for_training(
        cfg, spec, tokenizer=tokenizer, total_steps=total_steps
    )
    if int(os.environ.get("LOCAL_RANK", "0")) == 0:
        model.print_trainable_parameters()
    dtype = cfg.compute_dtype
    sampling = "group_by_length" if cfg.group_by_length and not cfg.packing else "random"
    args = TrainingArguments(
        output_dir=output_dir,
        per_device_train_batch_size=cfg.per_gpu_train_batch_size,
        per_device_eval_batch_size=cfg.per_gpu_train_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        warmup_steps=cfg.warmup_steps,
        lr_scheduler_type="linear",
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        eval_strategy="steps" if eval_dataset is not None else "no",
        eval_steps=cfg.save_steps if eval_dataset is not None else None,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=[] if cfg.report_to in ("none", "") else cfg.report_to.split(","),
        train_sampling_strategy=sampling,
        remove_unused_columns=False,
        bf16=cuda and (dtype == "bf16" or (dtype is None and torch.cuda.is_bf16_supported())),
        fp16=cuda and (dtype == "fp16" or (dtype is None and not torch.cuda.is_bf16_supported())),
        use_cpu=not cuda,
        ddp_backend=("nccl" if cuda else "gloo") if distributed else None,
        ddp_find_unused_parameters=False if distributed else None,
        dataloader_num_workers=0,
        disable_tqdm=False,
    )
    collator = PaddingCollator(tokenizer.pad_token_id)
    recorder = _step_recorder()
    trainer = _trainer_class()(
        eval_collator=PaddingCollator(tokenizer.pad_token_id),
        model=model,
        args=args,
        data_collator=collator,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        callbacks=[recorder, completion_callback()]
        + ([adalora_callback()] if cfg.peft_type == "adalora" else []),
        compute_loss_func=targets_only_loss(model, spec, cfg.peft_type),
    )
    if resume is not None:
        log.info("resuming from %s (step %d)", resume.checkpoint, resume.global_step)
    result = trainer.train(resume_from_checkpoint=str(resume.checkpoint) if resume else None)
    real, total = _all_reduce([collator.real_tokens, collator.total_tokens])
    share = real / total if total else None
    if share is not None:
        log.info(
            "non-padding share of training batches: %.1f%% (%d of %d tokens)",
            100 * share,
            real,
            total,
        )
    trainer.save_model(output_dir)

    manifest = {
        "format": "alpacacot-training-manifest",
        "format_version": 1,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": {
            "model_type": cfg.model_type,
            "name_or_path": cfg.model_name_or_path,
            "config_model_type": getattr(model.config, "model_type", None),
            "class": type(model.get_base_model()).__name__,
            "registered": cfg.model_type in MODELS,
        },
        "arguments": cfg.to_dict(),
        "prompt_template": template,
        "peft": {
            "type": cfg.peft_type,
            "config": _peft_summary(model),
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        },
        "lora_target_modules": targets,
        "data": {
            "inputs": recordset.inputs,
            "catalog_keys": recordset.catalog_keys,
            "collection": recordset.collection,
            "records_read": len(recordset.records) + recordset.duplicates,
            "duplicates_dropped": recordset.duplicates,
            "train_examples": len(train_examples),
            "val_examples": len(val_examples),
            "truncated": train_stats.truncated,
            "dropped_prompt_too_long": train_stats.dropped,
            "record_ids_used": len(used_ids),
            "record_ids_sha256": ids_sha256(used_ids),
        },
        "batching": {
            "mode": "packing" if cfg.packing else sampling,
            "non_padding_share": share,
            "real_tokens": real,
            "total_tokens": total,
        },
        "training": {
            "global_step": trainer.state.global_step,
            "first_step_this_run": recorder.first_step,
            "resumed_from": str(resume.checkpoint) if resume else None,
            "resumed_at_step": resume.global_step if resume else None,
            "train_loss": result.training_loss,
            "loss_history": [
                [h["step"], h["loss"]] for h in trainer.state.log_history if "loss" in h
            ],
            "metrics": result.metrics,
            "world_size": args.world_size,
            "device": "cuda" if cuda else "cpu",
        },
        "versions": library_versions(),
    }
    if trainer.is_world_process_zero():
        path = Path(output_dir) / MANIFEST
        path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        # The ids themselves (sorted, gzip): `eval` checks them against curation's contamination.
        ids = "\n".join(sorted(set(used_ids))).encode("utf-8")
        (Path(output_dir) / RECORD_IDS).write_bytes(gzip.compress(ids, mtime=0))
        log.info("adapter, tokenizer and %s written to %s", MANIFEST, output_dir)
    return manifest
