"""HC3: several answers per question, each its own record, kept apart by a tag."""

from __future__ import annotations

import json

import pytest

from alpacacot.catalog import load_catalog
from alpacacot.normalizers import RejectRow, get_normalizer

from .helpers import shard_rows
from .test_normalizers import raw_rows, sample_drafts

CATALOG = load_catalog()


def test_hc3_every_answer_is_a_record_tagged_by_its_author():
    [row] = raw_rows("hc3")
    drafts = [d for _, _, d in sample_drafts("hc3")]
    expected = [(a, "human-answer") for a in row["human_answers"]] + [
        (a, "chatgpt-answer") for a in row["chatgpt_answers"]
    ]
    assert [(d["output"], d["tags"][0]) for d in drafts] == expected
    assert {d["instruction"] for d in drafts} == {row["question"]}


def test_hc3_records_say_which_list_and_position_they_came_from():
    normalize = get_normalizer(CATALOG.datasets["hc3"], "zh")
    row = {
        "id": "3",
        "question": "什么是硬盘安装",
        "human_answers": ["从硬盘安装系统。", "不用光盘安装。"],
        "chatgpt_answers": ["将操作系统安装到硬盘上的过程。"],
        "source": "open_qa",
    }
    drafts = normalize(row)
    assert [(d["meta"]["answer_of"], d["meta"]["answer_index"]) for d in drafts] == [
        ("human_answers", 0),
        ("human_answers", 1),
        ("chatgpt_answers", 0),
    ]
    assert all(d["meta"]["source"] == "open_qa" and d["meta"]["id"] == "3" for d in drafts)


def test_hc3_answers_that_are_not_strings_reject_the_row():
    normalize = get_normalizer(CATALOG.datasets["hc3"], "en")
    with pytest.raises(RejectRow) as exc:
        normalize({"question": "q?", "human_answers": "one answer", "chatgpt_answers": []})
    assert exc.value.field == "human_answers"


def test_hc3_shard_rows_can_be_split_by_tag(sample_build):
    rows = shard_rows(sample_build, "hc3")
    kinds = {tag for r in rows for tag in r["tags"] if tag.endswith("-answer")}
    assert kinds == {"human-answer", "chatgpt-answer"}
    assert all(
        json.loads(r["meta"])["answer_of"] in ("human_answers", "chatgpt_answers") for r in rows
    )
