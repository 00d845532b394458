"""Column mapping: the common case, no code per dataset (`fields:` in the catalog)."""

from __future__ import annotations

import json
from typing import Any

from alpacacot.catalog import DatasetEntry
from alpacacot.normalizers import Draft, Normalize, RejectRow, register, text_field

DEFAULT_FIELDS = {"instruction": "instruction", "input": "input", "output": "output"}


def meta_of(row: dict[str, Any], used: frozenset[str]) -> dict[str, Any]:
    """The row's fields the mapping did not use. `_file` (the fields of a file that holds its
    records in a list, see `records:`) belongs to the file, not to each row: it is left out."""
    return {k: v for k, v in row.items() if k not in used and k != "_file"}


def parse_history(value: Any, column: str) -> list[dict[str, str]]:
    """Accept `[[user, assistant], ...]` (LLaMA-Factory) or `[{"user", "assistant"}, ...]`."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise RejectRow(column, "history is a string that is not JSON") from None
    if not isinstance(value, list):
        raise RejectRow(column, f"history must be a list of turns, got {type(value).__name__}")
    turns = []
    for n, turn in enumerate(value):
        if isinstance(turn, dict) and isinstance(turn.get("user"), str):
            user, assistant = turn.get("user"), turn.get("assistant")
        elif isinstance(turn, list | tuple) and len(turn) == 2:
            user, assistant = turn
        else:
            raise RejectRow(column, f"history turn {n} is not a [user, assistant] pair")
        if not isinstance(user, str) or not isinstance(assistant, str):
            raise RejectRow(column, f"history turn {n} holds a non-string")
        turns.append({"user": user, "assistant": assistant})
    return turns


@register("fields")
def fields_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    mapping = {**DEFAULT_FIELDS, **entry.fields}
    if "input" not in entry.fields and entry.fields:
        # A mapping that names columns but not `input` means the format has none.
        mapping.pop("input")
    inst_col, out_col = mapping["instruction"], mapping["output"]
    input_col = mapping.get("input")
    history_col = mapping.get("history")
    used = frozenset(mapping.values())

    def normalize(row: dict[str, Any]) -> Draft:
        draft: Draft = {
            "instruction": text_field(row, inst_col, required=True),
            "input": text_field(row, input_col, required=False) if input_col else "",
            "output": text_field(row, out_col, required=True),
        }
        if history_col:
            draft["history"] = parse_history(row.get(history_col), history_col)
        extra = meta_of(row, used)
        if extra:
            draft["meta"] = extra
        return draft

    return normalize


@register("alpaca")
def alpaca_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """Stanford Alpaca and its descendants: `<noinput>` means no input, `<nooutput>` no answer."""
    base = fields_normalizer(entry, subset)
    out_col = {**DEFAULT_FIELDS, **entry.fields}["output"]

    def normalize(row: dict[str, Any]) -> Draft:
        draft = base(row)
        # Upstream writes the placeholder bare or quoted ('"<noinput>"'), and follows <nooutput>
        # with an explanation ("<nooutput> This type of instruction cannot be fulfilled by ...").
        if draft["input"].strip().strip("\"'") == "<noinput>":
            draft["input"] = ""
        if draft["output"].lstrip().startswith("<nooutput>"):
            raise RejectRow(out_col, "placeholder output <nooutput> (the task has no answer)")
        return draft

    return normalize
