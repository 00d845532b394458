"""FLAN chain-of-thought TSVs (question, answer, rationale) turned into instructions.

Upstream writes line breaks inside a field as the two characters `\\n`; they are restored. Each row gets
one of a few instruction/answer templates, chosen by a hash of its question so that the choice never
changes between builds. The templates are ours; the 9 FLAN CoT tasks (aqua, creak, ecqa, esnli, gsm8k,
qasc, qed, sensemaking, strategyqa) share them, and a task can add its own in TASK_TEMPLATES.
"""

from __future__ import annotations

import hashlib
from typing import Any

from alpacacot.catalog import DatasetEntry
from alpacacot.normalizers import Draft, Normalize, RejectRow, register, text_field

# (instruction, output) pairs; {question}, {answer}, {rationale} are filled in.
TEMPLATES: list[tuple[str, str]] = [
    (
        "{question}\nThink it through step by step, then give the answer.",
        "{rationale}\nSo the answer is {answer}.",
    ),
    (
        "Answer the question below. Explain your reasoning before the final answer.\n\n{question}",
        "Reasoning: {rationale}\nFinal answer: {answer}",
    ),
    (
        "Question: {question}\nWork out the answer, showing the steps that lead to it.",
        "{rationale} Therefore, the answer is {answer}.",
    ),
    (
        "{question}\nGive a short justification first, then your answer.",
        "Justification: {rationale}\nAnswer: {answer}",
    ),
]

TASK_TEMPLATES: dict[str, list[tuple[str, str]]] = {
    "gsm8k": TEMPLATES
    + [
        (
            "Solve this math word problem. Show your work.\n\n{question}",
            "{rationale}\nThe answer is {answer}.",
        ),
    ],
    "strategyqa": TEMPLATES
    + [
        ("Answer yes or no, and explain why: {question}", "{rationale} So the answer is {answer}."),
    ],
}


def restore_newlines(text: str) -> str:
    return text.replace("\\n", "\n")


def choose(templates: list[tuple[str, str]], key: str) -> tuple[str, str]:
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    return templates[int.from_bytes(digest, "big") % len(templates)]


@register("flan_cot")
def flan_cot_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    templates = TASK_TEMPLATES.get(subset, TEMPLATES)
    q_col = entry.fields.get("instruction", "question")
    a_col = entry.fields.get("output", "answer")
    r_col = entry.options.get("rationale_field", "rationale")

    def normalize(row: dict[str, Any]) -> Draft:
        question = restore_newlines(text_field(row, q_col, required=True)).strip()
        answer = restore_newlines(text_field(row, a_col, required=True)).strip()
        rationale = restore_newlines(text_field(row, r_col, required=True)).strip()
        for col, value in ((q_col, question), (a_col, answer), (r_col, rationale)):
            if not value:
                raise RejectRow(col, "empty field")
        inst, out = choose(templates, f"{subset}\x1f{question}")
        return {
            "instruction": inst.format(question=question),
            "input": "",
            "output": out.format(answer=answer, rationale=rationale),
            "meta": {"task": subset, "answer": answer},
            "tags": ["cot", f"flan:{subset}"],
        }

    return normalize
