"""Task files: Natural Instructions (Super-NaturalInstructions) `tasks/taskNNN_*.json`.

A task file is one JSON object: the task's `Definition` (a list of strings), its examples and
metadata, and `Instances` (`{id, input, output: [answers]}`). The catalog entry sets
`records: Instances` so the reader streams the instances one by one, each carrying the fields of the
task read before it under `_file`. Every instance becomes one record: the definition is the
instruction, the instance input the input, its first answer the output (the other acceptable
answers go to `meta.other_outputs`). The task's positive/negative examples are not copied into
each record: they belong to the task file, which `provenance.file` names.
"""

from __future__ import annotations

from typing import Any

from alpacacot.catalog import DatasetEntry
from alpacacot.normalizers import Draft, Normalize, RejectRow, register, text_field

# Task fields copied into each record's meta (short ones; the examples stay in the file).
TASK_META = ("Categories", "Domains", "Source", "Input_language", "Output_language", "Reasoning")


def _definition(task: dict[str, Any]) -> str:
    value = task.get("Definition")
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "\n".join(value)
    raise RejectRow("Definition", "the task has no Definition (a string or a list of strings)")


@register("natural_instructions")
def natural_instructions_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    def normalize(row: dict[str, Any]) -> Draft:
        task = row.get("_file") or {}
        outputs = row.get("output")
        if isinstance(outputs, str):
            outputs = [outputs]
        if not isinstance(outputs, list) or not outputs:
            raise RejectRow("output", "an instance needs at least one answer in `output`")
        if not all(isinstance(o, str) for o in outputs):
            raise RejectRow("output", "every answer in `output` must be a string")
        meta: dict[str, Any] = {"task": subset}
        meta.update({k: task[k] for k in TASK_META if k in task})
        meta.update({k: v for k, v in row.items() if k not in {"input", "output", "_file"}})
        if len(outputs) > 1:
            meta["other_outputs"] = outputs[1:]
        return {
            "instruction": _definition(task),
            "input": text_field(row, "input", required=True),
            "output": outputs[0],
            "meta": meta,
            "tags": [f"ni:{subset}"],
        }

    return normalize


@register("seed_tasks")
def seed_tasks_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """Self-instruct seed tasks (Stanford Alpaca, BELLE, Code Alpaca): one row is a task
    `{id, name, instruction, instances: [{input, output}], is_classification}`; each instance
    becomes one record with the task's instruction."""

    def normalize(row: dict[str, Any]) -> list[Draft]:
        instruction = text_field(row, "instruction", required=True)
        instances = row.get("instances")
        if not isinstance(instances, list) or not instances:
            raise RejectRow("instances", "a seed task needs a non-empty list of instances")
        meta = {k: v for k, v in row.items() if k not in {"instruction", "instances"}}
        drafts = []
        for n, instance in enumerate(instances):
            if not isinstance(instance, dict):
                raise RejectRow("instances", f"instance {n} is not an object")
            drafts.append(
                {
                    "instruction": instruction,
                    "input": text_field(instance, "input", required=False),
                    "output": text_field(instance, "output", required=True),
                    "meta": {**meta, "instance": n} if len(instances) > 1 else meta,
                }
            )
        return drafts

    return normalize
