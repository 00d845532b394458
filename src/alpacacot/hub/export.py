"""Export a built collection for training tools: LLaMA-Factory (alpaca or sharegpt), OpenAI-style
`messages` JSON Lines, and the preference layouts (LLaMA-Factory ranking datasets, TRL's DPO
`prompt`/`chosen`/`rejected`). Shards are streamed batch by batch; one JSON line per record.

Each format writes `<key>.jsonl` per key plus a `dataset_info.json` that LLaMA-Factory reads
(copy the folder to its `data/` or pass `dataset_dir`). The preference layouts take only the
records that have a `rejected` answer (record schema 1.1.0); a key with none is left out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from alpacacot.hub.collection import iter_batches, read_manifest, select_keys, shard_paths

FORMATS = ("llamafactory", "sharegpt", "jsonl", "llamafactory_ranking", "dpo")
COLUMNS = ["instruction", "input", "output", "history"]
PREFERENCE_COLUMNS = [*COLUMNS, "system", "rejected"]
PREFERENCE_FORMATS = frozenset({"llamafactory_ranking", "dpo"})


def user_turn(record: dict[str, Any]) -> str:
    """The user's last message: the instruction, then its input after a blank line."""
    if record["input"]:
        return f"{record['instruction']}\n\n{record['input']}"
    return record["instruction"]


def to_alpaca(record: dict[str, Any]) -> dict[str, Any]:
    """LLaMA-Factory's alpaca format; history as [[user, assistant], ...]."""
    return {
        "instruction": record["instruction"],
        "input": record["input"],
        "output": record["output"],
        "history": [[t["user"], t["assistant"]] for t in record["history"] or []],
    }


def to_sharegpt(record: dict[str, Any]) -> dict[str, Any]:
    """ShareGPT: alternating human/gpt turns, earlier turns first."""
    turns = []
    for t in record["history"] or []:
        turns += [{"from": "human", "value": t["user"]}, {"from": "gpt", "value": t["assistant"]}]
    turns += [
        {"from": "human", "value": user_turn(record)},
        {"from": "gpt", "value": record["output"]},
    ]
    return {"conversations": turns}


def to_messages(record: dict[str, Any]) -> dict[str, Any]:
    """OpenAI chat format: user/assistant messages, earlier turns first."""
    messages = []
    for t in record["history"] or []:
        messages += [
            {"role": "user", "content": t["user"]},
            {"role": "assistant", "content": t["assistant"]},
        ]
    messages += [
        {"role": "user", "content": user_turn(record)},
        {"role": "assistant", "content": record["output"]},
    ]
    return {"messages": messages}


def to_ranking(record: dict[str, Any]) -> dict[str, Any]:
    """LLaMA-Factory's alpaca-format preference example: `chosen` / `rejected` answers to the
    same instruction, with its history and system prompt."""
    return {
        "instruction": record["instruction"],
        "input": record["input"],
        "chosen": record["output"],
        "rejected": record["rejected"],
        "history": [[t["user"], t["assistant"]] for t in record["history"] or []],
        "system": record.get("system") or "",
    }


def to_dpo(record: dict[str, Any]) -> dict[str, Any]:
    """TRL's conversational preference example: `prompt` (system, earlier turns, the user's
    message), `chosen` and `rejected` (one assistant message each)."""
    prompt = [{"role": "system", "content": record["system"]}] if record.get("system") else []
    prompt += to_messages(record)["messages"][:-1]
    return {
        "prompt": prompt,
        "chosen": [{"role": "assistant", "content": record["output"]}],
        "rejected": [{"role": "assistant", "content": record["rejected"]}],
    }


CONVERTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "llamafactory": to_alpaca,
    "sharegpt": to_sharegpt,
    "jsonl": to_messages,
    "llamafactory_ranking": to_ranking,
    "dpo": to_dpo,
}


def dataset_info_entry(fmt: str, file_name: str) -> dict[str, Any]:
    """The `dataset_info.json` entry LLaMA-Factory needs to read one exported file."""
    if fmt == "llamafactory":
        return {
            "file_name": file_name,
            "formatting": "alpaca",
            "columns": {
                "prompt": "instruction",
                "query": "input",
                "response": "output",
                "history": "history",
            },
        }
    if fmt == "llamafactory_ranking":
        return {
            "file_name": file_name,
            "formatting": "alpaca",
            "ranking": True,
            "columns": {
                "prompt": "instruction",
                "query": "input",
                "chosen": "chosen",
                "rejected": "rejected",
                "history": "history",
                "system": "system",
            },
        }
    if fmt == "dpo":  # TRL reads the file itself; LLaMA-Factory can read it as sharegpt-style
        return {
            "file_name": file_name,
            "formatting": "sharegpt",
            "ranking": True,
            "columns": {"messages": "prompt", "chosen": "chosen", "rejected": "rejected"},
            "tags": {
                "role_tag": "role",
                "content_tag": "content",
                "user_tag": "user",
                "assistant_tag": "assistant",
                "system_tag": "system",
            },
        }
    if fmt == "sharegpt":
        return {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations"},
            "tags": {
                "role_tag": "from",
                "content_tag": "value",
                "user_tag": "human",
                "assistant_tag": "gpt",
            },
        }
    return {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "messages"},
        "tags": {
            "role_tag": "role",
            "content_tag": "content",
            "user_tag": "user",
            "assistant_tag": "assistant",
        },
    }


def split_recipes(keys: list[str] | None) -> dict[str, Any]:
    """The names among `keys` that are recipes (catalog recipes or recipe .yaml files)."""
    from alpacacot.recipes import find_recipe

    found = {k: find_recipe(k) for k in keys or []}
    return {k: r for k, r in found.items() if r is not None}


def iter_records(
    out_dir: Path, manifest: dict[str, Any], key: str, preference: bool = False
) -> Iterator[list[dict]]:
    """Batches of records (dicts of the exported columns) of one key; with `preference`, only the
    records that have a `rejected` answer (none from shards older than record schema 1.1.0)."""
    if not preference:
        for batch in iter_batches(out_dir, manifest, key, columns=COLUMNS, batch_size=2048):
            yield batch.to_pylist()
        return
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    for path in shard_paths(out_dir, manifest, key):
        parquet = pq.ParquetFile(path)
        if "rejected" not in parquet.schema_arrow.names:
            continue
        for batch in parquet.iter_batches(batch_size=2048, columns=PREFERENCE_COLUMNS):
            kept = batch.filter(pc.is_valid(batch.column("rejected")))
            if kept.num_rows:
                yield kept.to_pylist()


def export_collection(
    out_dir: Path,
    to: str,
    dest: Path,
    keys: list[str] | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Write `<key>.jsonl` for each key and `dataset_info.json` into `dest`; return the info.

    Args:
        out_dir: the built collection.
        to: one of `llamafactory`, `sharegpt`, `jsonl`, `llamafactory_ranking`, `dpo` (the last
            two take the records with a `rejected` answer; a key with none is left out).
        dest: the folder to write into (created; existing files of the same names are replaced).
        keys: keys to export, default all; a recipe name (see alpacacot.recipes) exports the
            records it selects as `<recipe>.jsonl`.
        progress: called with (key, records written in the batch).
    """
    if to not in CONVERTERS:
        raise ValueError(f"unknown format {to!r}; choose one of {', '.join(FORMATS)}")
    manifest = read_manifest(out_dir)
    recipes = split_recipes(keys)
    plain = [k for k in keys or [] if k not in recipes]
    selected = select_keys(manifest, plain) if plain or not recipes else []
    convert = CONVERTERS[to]
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    info: dict[str, Any] = {}
    preference = to in PREFERENCE_FORMATS
    for key in selected:
        file_name = f"{key}.jsonl"
        tmp = dest / f".{file_name}.partial"
        written = 0
        with open(tmp, "w", encoding="utf-8") as fh:
            for batch in iter_records(out_dir, manifest, key, preference):
                fh.writelines(json.dumps(convert(r), ensure_ascii=False) + "\n" for r in batch)
                written += len(batch)
                if progress:
                    progress(key, len(batch))
        if preference and not written:
            tmp.unlink()  # no preference pairs in this key
            continue
        tmp.replace(dest / file_name)
        info[key] = dataset_info_entry(to, file_name)
    for name, recipe in recipes.items():
        from alpacacot.loading import load_recipe

        file_name = f"{name}.jsonl"
        tmp = dest / f".{file_name}.partial"
        ds = load_recipe(recipe, out_dir).select_columns(COLUMNS)
        with open(tmp, "w", encoding="utf-8") as fh:
            for batch in ds.iter(batch_size=2048):
                rows = [
                    dict(zip(batch, values, strict=True))
                    for values in zip(*batch.values(), strict=True)
                ]
                fh.writelines(json.dumps(convert(r), ensure_ascii=False) + "\n" for r in rows)
                if progress:
                    progress(name, len(rows))
        tmp.replace(dest / file_name)
        info[name] = dataset_info_entry(to, file_name)
    info_path = dest / "dataset_info.json"
    existing = {}
    if info_path.is_file():
        try:
            existing = json.loads(info_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            existing = {}
    existing.update(info)
    info_path.write_text(
        json.dumps(existing, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return info
