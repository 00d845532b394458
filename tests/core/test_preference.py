"""Pairwise preference normalizers: HH-RLHF on its real excerpt; WebGPT and StackLLaMA rows in their
documented upstream shapes (no real copy of those files could be found, see samples/README.md)."""

from __future__ import annotations

import json

import pytest

from alpacacot.catalog import load_catalog
from alpacacot.normalizers import RejectRow, get_normalizer
from alpacacot.normalizers.preference import hh_turns

from .test_normalizers import raw_rows, sample_drafts

CATALOG = load_catalog()


def normalizer(name: str):
    return get_normalizer(CATALOG.datasets["hh_rlhf"], "test", name)


def test_hh_rlhf_shared_dialogue_is_history_and_the_two_last_answers_differ():
    raw = raw_rows("hh_rlhf")
    drafts = {row: d for _, row, d in sample_drafts("hh_rlhf") if isinstance(d, dict)}
    assert len(drafts) >= 30
    for row, draft in drafts.items():
        chosen = hh_turns(raw[row]["chosen"], "chosen")
        rejected = hh_turns(raw[row]["rejected"], "rejected")
        assert (draft["instruction"], draft["output"]) == chosen[-1]
        assert [(t["user"], t["assistant"]) for t in draft["history"]] == chosen[:-1]
        assert draft["rejected"] == rejected[-1][1]
        assert raw[row]["chosen"].endswith(draft["output"])
        assert raw[row]["rejected"].endswith(draft["rejected"])
    assert any(d["history"] for d in drafts.values()), "the excerpt has multi-turn pairs"


def test_hh_rlhf_a_turn_marker_without_its_blank_line_is_a_reject_naming_the_column():
    """Upstream writes a few transcripts with 'Human:' run into the previous answer (excerpt rows
    30 and 32, from lines 1950 and 1952 of harmless-base/test): two answers in a row then, which
    the normalizer refuses rather than guess where the user's turn was."""
    rejects = {row: d for _, row, d in sample_drafts("hh_rlhf") if isinstance(d, RejectRow)}
    assert {row: r.field for row, r in rejects.items()} == {30: "rejected", 32: "chosen"}
    assert all("answer with no user turn" in r.reason for r in rejects.values())


def test_hh_rlhf_keeps_the_whole_rejected_dialogue_when_it_diverges_earlier():
    row = raw_rows("hh_rlhf")[0]
    first_user = hh_turns(row["rejected"], "rejected")[0][0]
    diverged = {**row, "rejected": row["rejected"].replace(first_user, "Something else entirely")}
    draft = normalizer("hh_rlhf")(diverged)
    assert draft["meta"]["rejected_transcript"] == diverged["rejected"]
    assert draft["rejected"] == hh_turns(row["rejected"], "rejected")[-1][1]


WEBGPT_ROW = {
    "question": {"dataset": "eli5", "id": "q1", "full_text": "Why is the sky blue?"},
    "quotes_0": {
        "title": ["Rayleigh scattering"],
        "extract": ["Shorter wavelengths scatter more."],
    },
    "answer_0": "Blue light scatters more than red light [1].",
    "tokens_0": {"prompt": [1, 2], "answer": [3]},
    "score_0": -1.0,
    "quotes_1": {"title": [], "extract": []},
    "answer_1": "Because of Rayleigh scattering of sunlight by the air [1].",
    "tokens_1": {"prompt": [1, 2], "answer": [4]},
    "score_1": 1.0,
}


def test_webgpt_the_higher_score_is_the_output_and_nothing_is_lost():
    draft = normalizer("webgpt_comparisons")(WEBGPT_ROW)
    assert draft["instruction"] == "Why is the sky blue?"
    assert draft["output"] == WEBGPT_ROW["answer_1"]
    assert draft["rejected"] == WEBGPT_ROW["answer_0"]
    assert draft["meta"]["preferred"] == "answer_1"
    assert draft["meta"]["question"] == {"dataset": "eli5", "id": "q1"}
    assert {"quotes_0", "quotes_1", "tokens_0", "tokens_1", "score_0", "score_1"} <= set(
        draft["meta"]
    )


def test_webgpt_a_tie_has_no_rejected_answer_and_says_so():
    draft = normalizer("webgpt_comparisons")({**WEBGPT_ROW, "score_0": 0.0, "score_1": 0.0})
    assert "rejected" not in draft
    assert draft["output"] == WEBGPT_ROW["answer_0"]
    assert draft["meta"]["answer_1"] == WEBGPT_ROW["answer_1"]
    assert draft["tags"] == ["tie"]


@pytest.mark.parametrize(("field", "value"), [("score_1", "1"), ("answer_0", None)])
def test_webgpt_a_broken_row_is_a_reject_naming_the_field(field, value):
    with pytest.raises(RejectRow) as exc:
        normalizer("webgpt_comparisons")({**WEBGPT_ROW, field: value})
    assert exc.value.field == field


def test_stack_exchange_paired_response_j_is_preferred():
    row = {
        "qid": 7,
        "question": "How do I reverse a list in Python?",
        "date": "2010/01/01",
        "metadata": ["https://stackoverflow.com/questions/7"],
        "response_j": "Use `reversed(xs)` or `xs[::-1]`.",
        "response_k": "Write a loop.",
    }
    draft = normalizer("stack_exchange_paired")(row)
    assert (draft["instruction"], draft["output"], draft["rejected"]) == (
        row["question"],
        row["response_j"],
        row["response_k"],
    )
    assert json.loads(json.dumps(draft["meta"])) == {
        "qid": 7,
        "date": "2010/01/01",
        "metadata": ["https://stackoverflow.com/questions/7"],
    }


def test_preference_records_reach_the_shard_with_rejected(sample_build):
    from .helpers import shard_rows

    rows = shard_rows(sample_build, "hh_rlhf")
    assert rows and all(r["rejected"] for r in rows)
    assert all(r["system"] is None for r in rows)
    assert all("preference" in r["tags"] for r in rows)
