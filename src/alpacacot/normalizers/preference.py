"""Pairwise preference: one prompt, a preferred answer and a dispreferred one.

The preferred answer becomes `output`, the other `rejected` (record schema 1.1.0); the record id hashes
neither `rejected` nor `system`, so two pairs with the same prompt and preferred answer are one record
(the first pair read wins, the other is counted as a duplicate).
"""

from __future__ import annotations

import re
from typing import Any

from alpacacot.catalog import DatasetEntry
from alpacacot.normalizers import Draft, Normalize, RejectRow, register, text_field
from alpacacot.normalizers.dialogue import from_turns
from alpacacot.normalizers.fields import meta_of
from alpacacot.normalizers.transcript import pair_turns

_HH_MARKER = re.compile(r"\n\n(Human|Assistant):[ ]?")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def hh_turns(text: str, column: str) -> list[tuple[str, str]]:
    """`"\\n\\nHuman: ...\\n\\nAssistant: ..."` -> [(user, assistant), ...], ending on an answer.

    Only a marker after a blank line opens a turn: "Human:" inside a turn's text stays text."""
    parts = _HH_MARKER.split(text)
    if parts[0].strip():
        raise RejectRow(column, "text before the first '\\n\\nHuman:' turn")
    turns = [(_HH_ROLES[m], body.strip()) for m, body in zip(parts[1::2], parts[2::2], strict=True)]
    pairs, unanswered = pair_turns(turns, column)
    if unanswered is not None:
        raise RejectRow(column, "the transcript ends on a Human turn with no answer")
    if not pairs:
        raise RejectRow(column, "no Human/Assistant exchange")
    return pairs


@register("hh_rlhf")
def hh_rlhf_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """Anthropic HH-RLHF: `{"chosen", "rejected"}`, two whole transcripts that share every turn but
    the last answer. The shared turns become `history` + `instruction`, the last answer of `chosen`
    `output` and that of `rejected` `rejected`. Where the two transcripts differ before their last
    answer (a few rows upstream), the whole rejected transcript is kept in `meta`."""
    chosen_col = entry.fields.get("output", "chosen")
    rejected_col = entry.options.get("rejected_field", "rejected")

    def normalize(row: dict[str, Any]) -> Draft:
        chosen = hh_turns(text_field(row, chosen_col, required=True), chosen_col)
        rejected_text = text_field(row, rejected_col, required=True)
        rejected = hh_turns(rejected_text, rejected_col)
        meta = meta_of(row, frozenset({chosen_col, rejected_col}))
        shared = chosen[:-1] == rejected[:-1] and chosen[-1][0] == rejected[-1][0]
        if not shared:
            meta["rejected_transcript"] = rejected_text
        draft = from_turns(chosen, chosen_col, meta)
        draft["rejected"] = rejected[-1][1]
        return draft

    return normalize


@register("webgpt_comparisons")
def webgpt_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """OpenAI WebGPT comparisons: `{"question": {"full_text", ...}, "answer_0", "score_0",
    "answer_1", "score_1", "quotes_0", "quotes_1", "tokens_0", "tokens_1"}`; the rater's
    preference is the higher score.

    A tie (equal scores: the rater preferred neither) gives a record without `rejected`: `answer_0`
    is the output, `answer_1` and both scores stay in `meta`, and the record is tagged `tie`. A
    preferred answer that is empty is refused by the build (empty output)."""

    def normalize(row: dict[str, Any]) -> Draft:
        question = row.get("question")
        if isinstance(question, dict):
            prompt = question.get("full_text")
        else:
            prompt = question
        if not isinstance(prompt, str):
            raise RejectRow("question", "expected a string or an object with 'full_text'")
        answers = [text_field(row, f"answer_{i}", required=True) for i in (0, 1)]
        scores = []
        for i in (0, 1):
            score = row.get(f"score_{i}")
            if isinstance(score, bool) or not isinstance(score, int | float):
                raise RejectRow(f"score_{i}", "expected a number")
            scores.append(score)
        used = {"answer_0", "answer_1"}
        if isinstance(question, dict):
            used.add("question")
            rest = {k: v for k, v in question.items() if k != "full_text"}
        else:
            rest = {}
        meta = meta_of(row, frozenset(used | {"question"}))
        if rest:
            meta["question"] = rest
        draft: Draft = {"instruction": prompt, "input": ""}
        if scores[0] == scores[1]:
            draft["output"] = answers[0]
            meta["answer_1"] = answers[1]
            draft["tags"] = ["tie"]
        else:
            better = 0 if scores[0] > scores[1] else 1
            draft["output"], draft["rejected"] = answers[better], answers[1 - better]
            meta["preferred"] = f"answer_{better}"
        draft["meta"] = meta
        return draft

    return normalize


@register("stack_exchange_paired")
def stack_exchange_paired_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """StackLLaMA's stack-exchange-paired: `{"qid", "question", "date", "metadata", "response_j",
    "response_k"}`, where `response_j` was rated above `response_k` (more votes, or accepted)."""
    q_col = entry.fields.get("instruction", "question")
    good_col = entry.fields.get("output", "response_j")
    bad_col = entry.options.get("rejected_field", "response_k")

    def normalize(row: dict[str, Any]) -> Draft:
        draft: Draft = {
            "instruction": text_field(row, q_col, required=True),
            "input": "",
            "output": text_field(row, good_col, required=True),
            "rejected": text_field(row, bad_col, required=True),
        }
        meta = meta_of(row, frozenset({q_col, good_col, bad_col}))
        if meta:
            draft["meta"] = meta
        return draft

    return normalize
