"""Exam items: GAOKAO-Bench (`{year, category, question, answer, analysis, index, score}`).

The question (with its options) is the instruction; the answer is the worked analysis followed by
the final answer, so the record teaches the reasoning and not only the letter. A file is one JSON
object whose `example` list holds the items (catalog: `records: example`); its `keywords` (the
subject) go to each record's meta.

Options: `analysis_field` (default `analysis`), `answer_label` (default `答案：`), `tags` (default
`[exam]`). Auto-CoT's demonstrations (question, rationale, answer) use it too.
"""

from __future__ import annotations

from typing import Any

from alpacacot.catalog import DatasetEntry
from alpacacot.normalizers import Draft, Normalize, RejectRow, register, text_field


def _answer(row: dict[str, Any], column: str) -> str:
    value = row.get(column)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return "".join(value) if all(len(v) == 1 for v in value) else "；".join(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return text_field(row, column, required=True)


@register("exam")
def exam_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    q_col = entry.fields.get("instruction", "question")
    a_col = entry.fields.get("output", "answer")
    r_col = entry.options.get("analysis_field", "analysis")
    label = entry.options.get("answer_label", "答案：")
    tags = list(entry.options.get("tags", ["exam"]))
    used = {q_col, a_col, r_col, "_file"}

    def normalize(row: dict[str, Any]) -> Draft:
        question = text_field(row, q_col, required=True)
        answer = _answer(row, a_col).strip()
        if not answer:
            raise RejectRow(a_col, "the item has no answer")
        analysis = text_field(row, r_col, required=False).strip()
        meta = {k: v for k, v in row.items() if k not in used}
        task = row.get("_file") or {}
        if "keywords" in task:
            meta["keywords"] = task["keywords"]
        meta["answer"] = answer
        return {
            "instruction": question,
            "input": "",
            "output": f"{analysis}\n{label}{answer}" if analysis else f"{label}{answer}",
            "meta": meta,
            "tags": tags,
        }

    return normalize
