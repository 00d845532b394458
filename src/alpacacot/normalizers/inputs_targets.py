"""`inputs`/`targets` pairs: xP3, FLAN-Muffin (Muennighoff/flan), pCLUE (`input`/`target`).

The prompt is already rendered upstream (a template applied to a task's example), so it becomes the
instruction as it is and the target the answer. The file's subset (an xP3 language, a pCLUE part)
is kept in `meta.subset`; every other column (task name, answer choices, ...) stays in `meta`.
"""

from __future__ import annotations

from typing import Any

from alpacacot.catalog import DatasetEntry
from alpacacot.normalizers import Draft, Normalize, RejectRow, register, text_field
from alpacacot.normalizers.fields import meta_of


def _target(row: dict[str, Any], column: str) -> str:
    """A target is a string; a list holding one string (some xP3 tasks) is that string."""
    value = row.get(column)
    if isinstance(value, list):
        if len(value) == 1 and isinstance(value[0], str):
            return value[0]
        raise RejectRow(column, f"expected one target, got a list of {len(value)}")
    return text_field(row, column, required=True)


@register("inputs_targets")
def inputs_targets_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    inputs_col = entry.fields.get("instruction", "inputs")
    targets_col = entry.fields.get("output", "targets")
    used = frozenset({inputs_col, targets_col})

    def normalize(row: dict[str, Any]) -> Draft:
        draft: Draft = {
            "instruction": text_field(row, inputs_col, required=True),
            "input": "",
            "output": _target(row, targets_col),
        }
        draft["meta"] = {**meta_of(row, used), "subset": subset}
        return draft

    return normalize
