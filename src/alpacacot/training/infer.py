"""Using a trained adapter: generate, chat, batch predict, merge into a full model.

The adapter directory's `training_manifest.json` supplies what the user did not: the base model,
the model type and the prompt template, so `generate --adapter DIR "prompt"` is enough.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alpacacot.training.config import TrainingError
from alpacacot.training.data import read_record_file, special_prefix
from alpacacot.training.models import get_spec, load_base_model, load_tokenizer
from alpacacot.training.prompts import render_segments
from alpacacot.training.train import MANIFEST

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    template: str


def _manifest(adapter: str | None) -> dict[str, Any]:
    if adapter and (Path(adapter) / MANIFEST).is_file():
        return json.loads((Path(adapter) / MANIFEST).read_text(encoding="utf-8"))
    return {}


def load_for_inference(
    model: str | None,
    adapter: str | None = None,
    *,
    model_type: str | None = None,
    prompt_template: str | None = None,
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Load the base model (from `model` or the adapter's manifest) with the adapter applied."""
    manifest = _manifest(adapter)
    model = model or manifest.get("model", {}).get("name_or_path")
    if not model:
        raise TrainingError("--model is required (the adapter has no training_manifest.json)")
    spec = get_spec(model_type or manifest.get("model", {}).get("model_type") or "llama")
    template = prompt_template or manifest.get("prompt_template") or spec.template
    tokenizer_dir = (
        adapter if adapter and (Path(adapter) / "tokenizer_config.json").is_file() else model
    )
    tokenizer = load_tokenizer(tokenizer_dir, spec, trust_remote_code=trust_remote_code)
    tokenizer.padding_side = "left"  # generation continues the right end of every row
    base = load_base_model(model, spec, trust_remote_code=trust_remote_code)
    if adapter:
        from peft import PeftModel

        base = PeftModel.from_pretrained(base, adapter)
    base.eval()
    return LoadedModel(base, tokenizer, template)


def generate(
    loaded: LoadedModel,
    records: Sequence[dict[str, Any]],
    *,
    max_new_tokens: int = 128,
    temperature: float = 0.0,
    top_p: float = 0.9,
) -> list[str]:
    """Answer each record (instruction, optional input/history); greedy when temperature is 0."""
    import torch

    tok = loaded.tokenizer
    # Tokenize exactly as in training: the prefix, then each rendered segment on its own.
    prefix = special_prefix(tok)
    rows = []
    for record in records:
        segments = render_segments(
            {"output": "", **record}, loaded.template, tok, with_answer=False
        )
        ids = list(prefix)
        for piece in tok([text for text, _ in segments], add_special_tokens=False)["input_ids"]:
            ids.extend(piece)
        rows.append(ids)
    width = max(len(r) for r in rows)
    input_ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
    attention_mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    device = loaded.model.device
    batch = {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}
    sampling = temperature > 0
    kwargs: dict[str, Any] = {"do_sample": sampling, "max_new_tokens": max_new_tokens}
    if sampling:
        kwargs.update(temperature=temperature, top_p=top_p)
    with torch.no_grad():
        out = loaded.model.generate(
            **batch, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, **kwargs
        )
    new_tokens = out[:, batch["input_ids"].shape[1] :]
    return [t.strip() for t in tok.batch_decode(new_tokens, skip_special_tokens=True)]


def predict_file(
    loaded: LoadedModel,
    input_path: str,
    output_path: str,
    *,
    batch_size: int = 8,
    **generate_kwargs: Any,
) -> int:
    """Write one JSON line per input record: the record plus its `prediction`."""
    records = read_record_file_lenient(input_path)
    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for start in range(0, len(records), batch_size):
            chunk = records[start : start + batch_size]
            for record, answer in zip(
                chunk, generate(loaded, chunk, **generate_kwargs), strict=True
            ):
                fh.write(json.dumps({**record, "prediction": answer}, ensure_ascii=False) + "\n")
            log.info("predicted %d/%d", min(start + batch_size, len(records)), len(records))
    return len(records)


def read_record_file_lenient(path: str) -> list[dict[str, Any]]:
    """Records to predict on: `output` may be missing or empty."""
    text = Path(path).read_text(encoding="utf-8") if not path.endswith(".parquet") else None
    if text is None:
        return read_record_file(path)
    rows = (
        json.loads(text)
        if text.lstrip().startswith("[")
        else [json.loads(line) for line in text.splitlines() if line.strip()]
    )
    for i, row in enumerate(rows):
        if not isinstance(row.get("instruction"), str) or not row["instruction"].strip():
            raise TrainingError(
                f"{path}, row {i}, field 'instruction': a non-empty string is needed"
            )
    return rows


def chat_turns(loaded: LoadedModel, lines: Iterator[str], **generate_kwargs: Any) -> Iterator[str]:
    """Answer each line of `lines` with the conversation so far as history."""
    history: list[dict[str, str]] = []
    for line in lines:
        answer = generate(
            loaded, [{"instruction": line, "input": "", "history": history}], **generate_kwargs
        )[0]
        history.append({"user": line, "assistant": answer})
        yield answer


def merge_adapter(
    model: str | None, adapter: str, out: str, *, trust_remote_code: bool = False
) -> Path:
    """Merge the LoRA weights into the base model and save it with the tokenizer."""
    loaded = load_for_inference(model, adapter, trust_remote_code=trust_remote_code)
    merged = loaded.model.merge_and_unload()
    out_dir = Path(out)
    merged.save_pretrained(out_dir)
    loaded.tokenizer.padding_side = "right"
    loaded.tokenizer.save_pretrained(out_dir)
    return out_dir
