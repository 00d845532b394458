"""Several answers per question: each answer becomes its own record, tagged with who wrote it."""

from __future__ import annotations

from typing import Any

from alpacacot.catalog import DatasetEntry
from alpacacot.normalizers import Draft, Normalize, RejectRow, register, text_field
from alpacacot.normalizers.fields import meta_of

# answer column -> the tag its records carry
HC3_ANSWERS = {"human_answers": "human-answer", "chatgpt_answers": "chatgpt-answer"}


@register("hc3")
def hc3_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """HC3 (English and Chinese): `{"question", "human_answers": [...], "chatgpt_answers": [...],
    ...}`. Every answer is a record of the question; `human-answer` / `chatgpt-answer` tags keep the
    two kinds apart (so a mix can take only one), and `meta` says which list and position it came
    from, next to the row's other columns (`id`, `source`, `index`)."""
    q_col = entry.fields.get("instruction", "question")
    columns = entry.options.get("answer_columns", HC3_ANSWERS)

    def normalize(row: dict[str, Any]) -> list[Draft]:
        question = text_field(row, q_col, required=True)
        rest = meta_of(row, frozenset({q_col, *columns}))
        drafts = []
        for col, tag in columns.items():
            answers = row.get(col)
            if answers is None:
                continue
            if not isinstance(answers, list) or not all(isinstance(a, str) for a in answers):
                raise RejectRow(col, "expected a list of strings")
            for n, answer in enumerate(answers):
                drafts.append(
                    {
                        "instruction": question,
                        "input": "",
                        "output": answer,
                        "tags": [tag],
                        "meta": {**rest, "answer_of": col, "answer_index": n},
                    }
                )
        if not drafts:
            raise RejectRow(None, f"no answers in {' or '.join(columns)}")
        return drafts

    return normalize
