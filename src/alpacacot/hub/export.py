"""Export a built collection for training tools: LLaMA-Factory (alpaca or sharegpt) and
OpenAI-style `messages` JSON Lines. Shards are streamed batch by batch; one JSON line per record.

Each format writes `<key>.jsonl` per key plus a `dataset_info.json` that LLaMA-Factory reads
(copy the folder to its `data/` or pass `dataset_dir`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from alpacacot.hub.collection import iter_batches, read_manifest, select_keys

FORMATS = ("llamafactory", "sharegpt", "jsonl")
COLUMNS = ["instruction", "input", "output", "history"]


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


CONVERTERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "llamafactory": to_alpaca,
    "sharegpt": to_sharegpt,
    "jsonl": to_messages,
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


def iter_records(out_dir: Path, manifest: dict[str, Any], key: str) -> Iterator[list[dict]]:
    """Batches of records (dicts of the exported columns) of one key."""
    for batch in iter_batches(out_dir, manifest, key, columns=COLUMNS, batch_size=2048):
        yield batch.to_pylist()


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
        to: one of `llamafactory`, `sharegpt`, `jsonl`.
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
    for key in selected:
        file_name = f"{key}.jsonl"
        tmp = dest / f".{file_name}.partial"
        with open(tmp, "w", encoding="utf-8") as fh:
            for batch in iter_records(out_dir, manifest, key):
                fh.writelines(json.dumps(convert(r), ensure_ascii=False) + "\n" for r in batch)
                if progress:
                    progress(key, len(batch))
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
