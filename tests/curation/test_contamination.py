"""The decontamination matcher on real benchmark excerpts planted in real training records."""

from __future__ import annotations

import csv
import json

import pytest

from alpacacot.curation.contamination import DecontamParams, build_index, match_text

from .helpers import BENCH, jsonl, sample_records


@pytest.fixture(scope="module")
def gsm8k() -> list[str]:
    return [r["question"] for r in jsonl(BENCH / "gsm8k_test" / "test.jsonl")]


@pytest.fixture(scope="module")
def index(gsm8k):
    with open(BENCH / "cmmlu" / "agronomy.csv", encoding="utf-8") as fh:
        cmmlu = [row["Question"] for row in csv.DictReader(fh)]
    mmcu = [r["题目"] for r in json.loads((BENCH / "mmcu" / "test.json").read_text("utf-8"))]
    items = [("gsm8k_test", i, q) for i, q in enumerate(gsm8k)]
    items += [("cmmlu", i, q) for i, q in enumerate(cmmlu)]
    items += [("mmcu", i, q) for i, q in enumerate(mmcu)]
    return build_index(items, DecontamParams())


def reword_first_sentence(question: str) -> str:
    """The first half of the first sentence replaced by other words (bench uses the same)."""
    first, sep, rest = question.partition(". ")
    words = first.split()
    half = (len(words) + 1) // 2
    return " ".join(["Consider", "the", "following", "case:", *words[half:]]) + sep + rest


def _plant(question: str) -> list[str]:
    """The question as is, respaced, upper-cased, and with its first sentence reworded."""
    return [
        question,
        "  ".join(question.split(" ")).replace(", ", " ,"),
        question.upper(),
        reword_first_sentence(question),
    ]


def test_every_planted_gsm8k_question_is_found(index, gsm8k) -> None:
    host = sample_records("alpaca/alpaca_data.json")[5]
    for i, question in enumerate(gsm8k):
        for variant in _plant(question):
            text = f"{host['instruction']}\n{variant}\n{host['output']}"
            hits = match_text(text, index)
            assert ("gsm8k_test", i) in {(h.benchmark, h.item) for h in hits}, variant


def test_the_match_column_holds_the_copied_text(index, gsm8k) -> None:
    [hit] = match_text(f"Solve this: {gsm8k[0]} Show your work.", index)
    assert hit.share == 1.0
    assert "16 eggs per day" in hit.match


def test_no_hit_on_unrelated_real_records(index) -> None:
    records = (
        sample_records("alpaca/alpaca_data.json")
        + sample_records("alpaca_gpt4_en/alpaca_gpt4_data.json")
        + sample_records("alpaca_gpt4_zh/alpaca_gpt4_data_zh.json")
    )
    for r in records:
        assert match_text(f"{r['instruction']}\n{r['input']}\n{r['output']}", index) == []


def test_cjk_items_match_by_characters(index) -> None:
    with open(BENCH / "cmmlu" / "agronomy.csv", encoding="utf-8") as fh:
        question = next(csv.DictReader(fh))["Question"]
    text = f"请回答下面的问题：{question}？请给出理由。"
    assert ("cmmlu", 0) in {(h.benchmark, h.item) for h in match_text(text, index)}
    # The short MMCU item (8 characters) must appear whole, not one gram of it.
    assert any(h.benchmark == "mmcu" for h in match_text("题目：＿不是社会化的载体。", index))
    assert not any(h.benchmark == "mmcu" for h in match_text("家庭是社会化的重要场所之一。", index))


def test_items_too_short_to_match_are_counted_not_indexed() -> None:
    index = build_index([("b", 0, "What is 2 + 2?"), ("b", 1, "x " * 20)])
    assert index.skipped == {"b": 1}
    assert match_text("Tell me: what is 2 + 2? It is 4, of course, said the teacher.", index) == []
