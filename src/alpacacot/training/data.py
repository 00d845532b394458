"""Training data: records in, token ids with masked labels out, batched with little padding.

Records come from the built collection by catalog key (`alpacacot.load`) or from local
json/jsonl/parquet files with at least instruction/input/output (optional history, id, and the
system prompt of record schema 1.1). Masking of
the prompt (label -100) happens here and only here (`encode_example`).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alpacacot.training.config import TrainConfig, TrainingError
from alpacacot.training.prompts import render_segments

log = logging.getLogger(__name__)

IGNORE_INDEX = -100
RECORD_FILE_SUFFIXES = (".json", ".jsonl", ".parquet")
DEFAULT_COLLECTION = "out"  # alpacacot.load's default: the `build --out` folder
# Every `--data` name of the Alpaca-CoT seed's trainer; each resolves through the catalog (keys and
# mixes), and one the catalog lacks gets an error that says so instead of a bare "unknown key".
SEED_DATA_NAMES = (
    "alpaca", "belle", "alpaca-belle", "cot", "alpaca-cot", "alpaca-belle-cot", "belle1.5m",
    "finance", "multiturn_chat", "gpt4all", "cot_zh",
)  # fmt: skip


# --------------------------------------------------------------------------------------- records
def is_record_file(name: str) -> bool:
    return name.lower().endswith(RECORD_FILE_SUFFIXES) or Path(name).is_file()


def record_id(record: Mapping[str, Any]) -> str:
    """The collection's content id, for local records that come without one."""
    from alpacacot.record import record_id as content_id

    return content_id(
        record["instruction"], record.get("input") or "", record["output"], record["history"]
    )


def _normalize_history(value: Any, where: str) -> list[dict[str, str]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TrainingError(f"{where}, field 'history': expected a list of {{user, assistant}}")
    turns = []
    for turn in value:
        if isinstance(turn, Mapping) and "user" in turn and "assistant" in turn:
            turns.append({"user": str(turn["user"]), "assistant": str(turn["assistant"])})
        elif isinstance(turn, (list, tuple)) and len(turn) == 2:
            turns.append({"user": str(turn[0]), "assistant": str(turn[1])})
        else:
            raise TrainingError(
                f"{where}, field 'history': each turn must be {{user, assistant}} or a pair"
            )
    return turns


def normalize_record(row: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check one row and keep the fields training needs (id computed when missing)."""
    for name in ("instruction", "output"):
        value = row.get(name)
        if not isinstance(value, str) or not value.strip():
            raise TrainingError(
                f"{where}, field {name!r}: a non-empty string is required "
                "(records need instruction, input, output; history optional)"
            )
    input_ = row.get("input")
    if input_ is not None and not isinstance(input_, str):
        raise TrainingError(f"{where}, field 'input': expected a string")
    system = row.get("system")  # schema 1.1; the column may be absent or null
    if system is not None and not isinstance(system, str):
        raise TrainingError(f"{where}, field 'system': expected a string or null")
    record = {
        "system": system or "",
        "instruction": row["instruction"],
        "input": input_ or "",
        "output": row["output"],
        "history": _normalize_history(row.get("history"), where),
    }
    record["id"] = str(row.get("id") or record_id(record))
    record["source"] = str(row.get("source") or "")
    return record


def read_record_file(path: str | Path) -> list[dict[str, Any]]:
    """Read a local .json (array or JSON Lines), .jsonl or .parquet file of records."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"--data {path}: no such file")
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        rows: Iterable[Mapping[str, Any]] = pq.read_table(path).to_pylist()
    else:
        text = path.read_text(encoding="utf-8")
        if text.lstrip().startswith("["):
            rows = json.loads(text)
        else:
            rows = []
            for lineno, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise TrainingError(f"{path}, line {lineno}: invalid JSON ({err})") from err
    return [normalize_record(row, f"{path}, row {i}") for i, row in enumerate(rows)]


@dataclass
class RecordSet:
    """Records to train on and where they came from (for the manifest)."""

    records: list[dict[str, Any]]
    inputs: list[dict[str, Any]] = field(default_factory=list)
    catalog_keys: list[str] = field(default_factory=list)
    collection: dict[str, Any] | None = None
    duplicates: int = 0


def collection_revision(collection: str | None) -> dict[str, Any]:
    """The built collection's identity: its manifest's built_at/code_version, or a Hub commit."""
    info: dict[str, Any] = {"location": collection}
    if collection is None:
        return info
    path = Path(collection)
    if path.is_dir():
        manifest = path / "manifest.json"
        if manifest.is_file():
            data = json.loads(manifest.read_text(encoding="utf-8"))
            for key in ("format", "format_version", "schema_version", "code_version", "built_at"):
                info[key] = data.get(key)
            info["manifest_sha256"] = hashlib.sha256(manifest.read_bytes()).hexdigest()
        return info
    try:
        from huggingface_hub import HfApi

        info["hub_commit"] = HfApi().dataset_info(collection).sha
    except Exception as err:  # offline or private: the manifest says so instead of failing
        log.warning("could not read the Hub commit of %s: %s", collection, err)
        info["hub_commit"] = None
    return info


def _seed_hint(name: str, err: Exception) -> str:
    """What to do when a seed data name has no catalog key here."""
    if "unknown dataset" not in str(err):
        return ""
    parts = [name, *name.split("-")]
    seed = [p for p in dict.fromkeys(parts) if p in SEED_DATA_NAMES]
    if not seed:
        return ""
    return (
        f". {', '.join(repr(s) for s in seed)} is a data name of Alpaca-CoT's trainer that this "
        "catalog has no key or mix for yet: add the dataset to the catalog (a `datasets:` entry or "
        "a `mixes:` line, see CONTRIBUTING.md) and build it, or pass its records as a "
        ".json/.jsonl/.parquet file to --data"
    )


def load_records(cfg: TrainConfig) -> RecordSet:
    """Read every `--data` entry, concatenated in order and de-duplicated by id (first wins)."""
    if not cfg.data:
        raise TrainingError("--data is required: catalog keys, a mix name, or record files")
    result = RecordSet(records=[])
    seen: set[str] = set()
    for name in cfg.data:
        if is_record_file(name):
            rows = read_record_file(name)
            digest = hashlib.sha256(Path(name).read_bytes()).hexdigest()
            result.inputs.append({"kind": "file", "path": str(name), "sha256": digest})
        else:
            from alpacacot import load
            from alpacacot.errors import AlpacacotError

            collection = cfg.collection or DEFAULT_COLLECTION
            try:
                parts = load(name, collection=collection, as_dict=True)
            except (AlpacacotError, KeyError, FileNotFoundError, ValueError) as err:
                raise TrainingError(
                    f"--data {name} (collection {collection}): {err}{_seed_hint(name, err)}"
                ) from err
            keys = list(parts)
            rows = [
                normalize_record(row, f"{name}: {key}, row {i}")
                for key, part in parts.items()
                for i, row in enumerate(part.to_list())
            ]
            result.inputs.append({"kind": "catalog", "name": name, "keys": keys})
            result.catalog_keys.extend(k for k in keys if k not in result.catalog_keys)
            if result.collection is None:
                result.collection = collection_revision(collection)
        for row in rows:
            if row["id"] in seen:
                result.duplicates += 1
                continue
            seen.add(row["id"])
            result.records.append(row)
        log.info("data %s: %d records", name, len(rows))
    if result.duplicates:
        log.info("dropped %d records whose id was already seen", result.duplicates)
    if not result.records:
        raise TrainingError(f"--data {' '.join(cfg.data)}: no records")
    return result


def ids_sha256(ids: Iterable[str]) -> str:
    """sha256 over the sorted record ids, one per line."""
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()


def split_records(
    records: Sequence[dict[str, Any]], val_set_size: float, seed: int, max_records: int = 0
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Shuffle with `seed`, cap at `max_records`, hold out `val_set_size` (a count or fraction)."""
    shuffled = list(records)
    random.Random(seed).shuffle(shuffled)
    if max_records:
        shuffled = shuffled[:max_records]
    n_val = int(val_set_size) if val_set_size >= 1 else round(val_set_size * len(shuffled))
    if n_val >= len(shuffled):
        raise TrainingError(
            f"--val_set_size {val_set_size} leaves no training records (have {len(shuffled)})"
        )
    return shuffled[n_val:], shuffled[:n_val]


# -------------------------------------------------------------------------------------- encoding
def special_prefix(tokenizer: Any) -> list[int]:
    """Tokens the tokenizer puts before a text by itself (e.g. llama's BOS)."""
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    without = tokenizer("a", add_special_tokens=False)["input_ids"]
    for i in range(len(with_special)):
        if with_special[i : i + len(without)] == without:
            return list(with_special[:i])
    return []


def encode_example(
    segment_ids: Sequence[tuple[Sequence[int], bool]],
    *,
    prefix: Sequence[int] = (),
    cutoff_len: int,
    train_on_inputs: bool = False,
) -> dict[str, Any] | None:
    """Concatenate tokenized segments; prompt tokens get label -100 unless `train_on_inputs`.

    Truncates to `cutoff_len`; returns None when nothing is left to learn.
    """
    input_ids = list(prefix)
    labels = [IGNORE_INDEX] * len(prefix) if not train_on_inputs else list(prefix)
    for ids, is_target in segment_ids:
        input_ids.extend(ids)
        labels.extend(ids if (is_target or train_on_inputs) else [IGNORE_INDEX] * len(ids))
    truncated = len(input_ids) > cutoff_len
    input_ids, labels = input_ids[:cutoff_len], labels[:cutoff_len]
    if all(label == IGNORE_INDEX for label in labels):
        return None
    return {"input_ids": input_ids, "labels": labels, "truncated": truncated}


@dataclass
class EncodeStats:
    examples: int = 0
    truncated: int = 0
    dropped: int = 0


def encode_records(
    records: Sequence[Mapping[str, Any]],
    tokenizer: Any,
    template: str,
    cutoff_len: int,
    train_on_inputs: bool = False,
) -> tuple[list[dict[str, Any]], EncodeStats]:
    """Render and tokenize records (one batched tokenizer call), masking as `encode_example`."""
    rendered = [render_segments(r, template, tokenizer) for r in records]
    texts = [text for segments in rendered for text, _ in segments]
    flat = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    prefix = special_prefix(tokenizer)
    stats = EncodeStats()
    examples, pos = [], 0
    for record, segments in zip(records, rendered, strict=True):
        ids = [(flat[pos + j], is_target) for j, (_, is_target) in enumerate(segments)]
        pos += len(segments)
        example = encode_example(
            ids, prefix=prefix, cutoff_len=cutoff_len, train_on_inputs=train_on_inputs
        )
        if example is None:
            stats.dropped += 1
            continue
        stats.truncated += example.pop("truncated")
        example["id"] = record["id"]
        examples.append(example)
    stats.examples = len(examples)
    if stats.dropped:
        log.warning(
            "%d records dropped: their prompt alone fills --cutoff_len %d",
            stats.dropped,
            cutoff_len,
        )
    if stats.truncated:
        log.info(
            "%d of %d examples truncated to %d tokens", stats.truncated, len(examples), cutoff_len
        )
    return examples, stats


# -------------------------------------------------------------------------------------- batching
def pack_examples(
    examples: Sequence[Mapping[str, Any]], cutoff_len: int, seed: int
) -> list[dict[str, Any]]:
    """Best-fit-decreasing packing of examples into rows of at most `cutoff_len` tokens.

    Each row carries `position_ids` that restart at 0 for every example, which is how transformers
    keeps packed examples from attending to each other (no attention mask is passed).
    """
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    rows: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, row index), kept sorted
    for i in order:
        n = len(examples[i]["input_ids"])
        at = bisect.bisect_left(free, (n, -1))
        if at < len(free):
            room, row = free.pop(at)
            rows[row].append(i)
            bisect.insort(free, (room - n, row))
        else:
            rows.append([i])
            bisect.insort(free, (cutoff_len - n, len(rows) - 1))
    random.Random(seed).shuffle(rows)
    packed = []
    for members in rows:
        input_ids: list[int] = []
        labels: list[int] = []
        position_ids: list[int] = []
        for i in members:
            ids = examples[i]["input_ids"]
            input_ids.extend(ids)
            # The first token of an example is never predicted from the previous example.
            labels.extend([IGNORE_INDEX, *examples[i]["labels"][1:]])
            position_ids.extend(range(len(ids)))
        packed.append(
            {
                "input_ids": input_ids,
                "labels": labels,
                "position_ids": position_ids,
                "length": len(input_ids),
            }
        )
    return packed


class PaddingCollator:
    """Pads a batch to its longest row (or to `pad_to_length`) and counts real vs padded tokens.

    Rows with `position_ids` (packed) get no attention mask, so the model separates examples by
    position ids; padding then continues the positions from 0 and is masked from the loss.
    """

    def __init__(self, pad_token_id: int, pad_to_length: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_length = pad_to_length
        self.real_tokens = 0
        self.total_tokens = 0

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        import torch

        width = self.pad_to_length or max(len(f["input_ids"]) for f in features)
        packed = "position_ids" in features[0]
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": []}
        if packed:
            batch["position_ids"] = []
        else:
            batch["attention_mask"] = []
        for f in features:
            n = len(f["input_ids"])
            pad = width - n
            self.real_tokens += n
            self.total_tokens += width
            batch["input_ids"].append(list(f["input_ids"]) + [self.pad_token_id] * pad)
            batch["labels"].append(list(f["labels"]) + [IGNORE_INDEX] * pad)
            if packed:
                batch["position_ids"].append(list(f["position_ids"]) + list(range(pad)))
            else:
                batch["attention_mask"].append([1] * n + [0] * pad)
        if not packed and all(len(f["input_ids"]) == width for f in features):
            # No padding in this batch: without a mask the model takes its plain causal path.
            del batch["attention_mask"]
        return {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}

    @property
    def non_padding_share(self) -> float | None:
        return self.real_tokens / self.total_tokens if self.total_tokens else None
