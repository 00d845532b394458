"""Normalizers on the real upstream excerpts bundled in samples/."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from alpacacot.catalog import load_catalog
from alpacacot.collectors import collect_file
from alpacacot.normalizers import RejectRow, get_normalizer
from alpacacot.pipeline import iter_drafts
from alpacacot.readers import RowError, iter_rows

from .helpers import reject_lines, shard_rows

CATALOG = load_catalog()
FLAN_TASKS = {"aqua", "creak", "ecqa", "gsm8k", "qasc", "sensemaking", "strategyqa"}


def sample_drafts(key: str) -> list[tuple[str, int, object]]:
    """(subset, row, draft | RowError | RejectRow) for every row of the key's bundled sample."""
    entry = CATALOG.datasets[key]
    out = []
    for sf in entry.sample_files():
        cf = collect_file(sf, CATALOG, key)
        out += [(sf.subset, row, item) for row, item in iter_drafts(entry, cf)]
    return out


def raw_rows(key: str, index: int = 0) -> list[dict]:
    entry = CATALOG.datasets[key]
    path = CATALOG.local_path(entry.sample[index])
    return [row for _, row in iter_rows(path, entry.format, columns=entry.columns)]


# --- alpaca ----------------------------------------------------------------------------------


def test_alpaca_noinput_placeholder_becomes_empty_input():
    raw = raw_rows("alpaca")
    placeholders = [i for i, r in enumerate(raw) if "<noinput>" in r["input"]]
    assert placeholders, "the alpaca excerpt has <noinput> rows"
    drafts = {row: d for _, row, d in sample_drafts("alpaca")}
    for i in placeholders:
        assert drafts[i]["input"] == ""
        assert drafts[i]["output"] == raw[i]["output"]


@pytest.mark.parametrize("key", ["alpaca", "alpaca_zh"])
def test_alpaca_nooutput_placeholder_is_rejected(key, sample_build):
    raw = raw_rows(key)
    placeholders = {i for i, r in enumerate(raw) if r["output"].startswith("<nooutput>")}
    assert placeholders, "the excerpt has <nooutput> rows"
    rejected = {r["row"]: r for r in reject_lines(sample_build, key)}
    for i in placeholders:
        assert rejected[i]["field"] == "output"
        assert "<nooutput>" in rejected[i]["reason"]
    assert not any("<nooutput>" in r["output"] for r in shard_rows(sample_build, key))


def test_alpaca_keeps_a_real_input():
    entry = CATALOG.datasets["alpaca"]
    draft = get_normalizer(entry, "alpaca")(
        {
            "instruction": "Translate to French.",
            "input": "I have no input.",
            "output": "Je n'ai pas.",
        }
    )
    assert draft["input"] == "I have no input."


# --- FLAN chain of thought ---------------------------------------------------------------------


def test_flan_cot_covers_the_seven_task_files(sample_build):
    rows = shard_rows(sample_build, "cot")
    tasks = [json.loads(r["meta"])["task"] for r in rows]
    assert set(tasks) == FLAN_TASKS
    assert all(tasks.count(t) == 25 for t in FLAN_TASKS)
    for r in rows:
        task = json.loads(r["meta"])["task"]
        assert r["tags"] == ["EN", "MT", "COL", "cot", f"flan:{task}"]
        assert r["provenance"]["file"] == f"samples/cot/{task}_train.tsv"


def test_flan_cot_restores_escaped_newlines():
    drafts = [d for subset, _, d in sample_drafts("cot") if subset == "aqua"]
    assert len(drafts) == 25
    first = drafts[0]
    assert "\nOptions:\n(A) 300\n(B) 992" in first["instruction"]
    assert "\\n" not in first["instruction"]
    assert all("\\n" not in d["instruction"] + d["output"] for d in drafts)
    assert first["output"].startswith("1/7:1/7:1/14 = 2:2:1\n1/5*5600 = 1120")
    assert first["meta"]["answer"] in first["output"]


def test_flan_cot_template_choice_is_fixed_across_runs_and_varied_across_rows():
    drafts = [d for _, _, d in sample_drafts("cot")]
    again = [d for _, _, d in sample_drafts("cot")]
    assert drafts == again
    # The choice does not depend on Python's per-process hash seed.
    code = (
        "from tests.core.test_normalizers import sample_drafts;"
        "print(sample_drafts('cot')[75][2]['instruction'])"
    )
    for seed in ("1", "2"):
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            cwd=_repo_root(),
        )
        assert proc.stdout.rstrip("\n") == drafts[75]["instruction"]
    # Several templates are in use (the excerpt has 175 rows).
    openings = {d["instruction"][:12] for d in drafts}
    assert len(openings) >= 4


def test_flan_cot_known_row_gets_its_known_template():
    """A golden record: a change of templates or of the choice changes the published data."""
    gsm8k = [d for subset, _, d in sample_drafts("cot") if subset == "gsm8k"]
    assert gsm8k[0]["instruction"] == (
        "Solve this math word problem. Show your work.\n\n"
        "Natalia sold clips to 48 of her friends in April, and then she sold half as many "
        "clips in May. How many clips did Natalia sell altogether in April and May?"
    )
    assert gsm8k[0]["output"] == (
        "Natalia sold 48 / 2 = 24 clips in May. "
        "Natalia sold 48 + 24 = 72 clips altogether in April and May.\nThe answer is 72."
    )


def test_flan_cot_rejects_an_empty_rationale():
    normalize = get_normalizer(CATALOG.datasets["cot"], "creak")
    with pytest.raises(RejectRow) as info:
        normalize({"question": "Is the sky blue?", "answer": "yes", "rationale": "  "})
    assert info.value.field == "rationale"


# --- dialogues ---------------------------------------------------------------------------------


def test_belle_multiturn_turns_become_history(sample_build):
    record = next(
        r
        for r in shard_rows(sample_build, "multiturn_chat")
        if r["provenance"]["file"].endswith("multiturn_chat_0.8M.json")
        and r["provenance"]["row"] == 0
    )
    first_answer = (
        "俄语中的单词“свинья”意为“猪”，而“свинец”是“свинья”的爱称形式，"
        "意为“小猪”。这两个词之间有联系，因为“свинец”是由“свинья”演变而来，"
        "指的是幼年的猪。"
    )
    second_answer = (
        "我是由OpenAI训练的语言模型，因此我没有个人经验或直接了解世界。"
        "相反，我能够根据我接收到的输入和我接受培训的信息生成回答。"
        "在这种情况下，我接受了大量俄文文本的训练，其中包括“свинья”和"
        "“свинец”这些词，因此我有信心提供的信息是准确的。但是，我无法浏览"
        "互联网或以其他方式验证此信息，因此我的答案可能不正确或不完整。"
    )
    assert record["history"] == [
        {"user": '"свинья" 和 "свинец" 这两个词有什么联系？', "assistant": first_answer},
        {"user": "你有多确定那件事？", "assistant": second_answer},
    ]
    assert record["instruction"] == '忽略之前的问题。 "свинья" 和 "свинец" 这两个词没有联系吗？'
    assert record["input"] == ""
    assert record["output"].startswith("对不起，我不明白问题是什么。")
    assert record["tags"] == ["CN", "MT", "SI", "multi-turn"]
    assert record["lang"] == "zh"


def test_belle_multiturn_rejects_a_dialogue_that_does_not_end_with_assistant():
    normalize = get_normalizer(CATALOG.datasets["multiturn_chat"], "multiturn_chat_0.8M")
    with pytest.raises(RejectRow) as info:
        normalize(
            {
                "instruction": "Human:你好\nAssistant:你好！\nHuman:再见",
                "input": "",
                "output": "再见",
            }
        )
    assert info.value.field == "instruction"


@pytest.mark.parametrize(
    "key,min_share",
    [
        ("multiturn_chat", 1.0),
        ("sharegpt_zh", 0.5),
        ("firefly", 1.0),
        ("chinese_vicuna_chat", 1.0),
    ],
)
def test_dialogue_formats_produce_history(key, min_share, sample_build):
    drafts = [d for _, _, d in sample_drafts(key)]
    assert not [d for d in drafts if isinstance(d, RowError | RejectRow)]
    with_history = [d for d in drafts if d.get("history")]
    assert len(with_history) >= min_share * len(drafts)
    for d in with_history:
        assert d["tags"] == ["multi-turn"]
        assert all(
            set(t) == {"user", "assistant"} and t["user"] and t["assistant"] for t in d["history"]
        )
    written = shard_rows(sample_build, key)
    assert sum(1 for r in written if r["history"]) == len(with_history)


def test_sharegpt_keeps_every_exchange():
    raw = raw_rows("sharegpt_zh")
    drafts = [d for _, _, d in sample_drafts("sharegpt_zh")]
    for row, d in zip(raw, drafts, strict=True):
        turns = row["conversations"]
        assert len(d["history"]) + 1 == len(turns) // 2
        assert d["instruction"] == turns[-2]["value"] and d["output"] == turns[-1]["value"]


def test_sharegpt_system_prompt_goes_to_meta_and_unknown_roles_are_rejected():
    normalize = get_normalizer(CATALOG.datasets["sharegpt_zh"], "x")
    draft = normalize(
        {
            "conversations": [
                {"from": "system", "value": "You are terse."},
                {"from": "human", "value": "Hi"},
                {"from": "gpt", "value": "Hello."},
                {"from": "human", "value": "Bye"},
                {"from": "gpt", "value": "Bye."},
            ]
        }
    )
    assert draft["meta"] == {"system": "You are terse."}
    assert draft["history"] == [{"user": "Hi", "assistant": "Hello."}]
    with pytest.raises(RejectRow, match="unknown role"):
        normalize({"conversations": [{"from": "narrator", "value": "Once"}]})


def test_firefly_keeps_conversation_metadata():
    raw = raw_rows("firefly")
    d = [d for _, _, d in sample_drafts("firefly")][0]
    assert d["meta"] == {
        "conversation_id": raw[0]["conversation_id"],
        "category": raw[0]["category"],
        "dataset": raw[0]["dataset"],
    }
    turns = raw[0]["conversation"]
    assert d["history"][0] == {"user": turns[0]["human"], "assistant": turns[0]["assistant"]}
    assert (d["instruction"], d["output"]) == (turns[-1]["human"], turns[-1]["assistant"])


def test_parallel_turns_pair_the_two_lists():
    raw = raw_rows("chinese_vicuna_chat")
    for row, (_, _, d) in zip(raw, sample_drafts("chinese_vicuna_chat"), strict=True):
        assert d["history"] == [
            {"user": u, "assistant": a}
            for u, a in zip(row["input"][:-1], row["output"][:-1], strict=True)
        ]
        assert (d["instruction"], d["output"]) == (row["input"][-1], row["output"][-1])
    normalize = get_normalizer(CATALOG.datasets["chinese_vicuna_chat"], "x")
    with pytest.raises(RejectRow, match="2 user turns but 1 answers"):
        normalize({"input": ["a", "b"], "output": ["c"]})


# --- field mappings and meta -----------------------------------------------------------------


def test_gpt4all_parquet_maps_prompt_and_response(sample_build):
    raw = raw_rows("gpt4all")
    rows = shard_rows(sample_build, "gpt4all")
    assert len(rows) == len(raw) == 60
    for r in rows:
        upstream = raw[r["provenance"]["row"]]
        assert r["instruction"] == upstream["prompt"].strip()
        assert r["output"] == upstream["response"].strip()
        assert r["input"] == ""
        assert json.loads(r["meta"]) == {"source": upstream["source"]}


def test_finance_text_column_is_kept_in_meta(sample_build):
    raw = raw_rows("finance")
    for r in shard_rows(sample_build, "finance"):
        assert json.loads(r["meta"]) == {"text": raw[r["provenance"]["row"]]["text"]}


def test_unused_upstream_fields_land_in_meta():
    """GPTeacher's full releases carry `example_input` beside instruction/input/response."""
    normalize = get_normalizer(CATALOG.datasets["gpteacher"], "toolformer")
    draft = normalize(
        {
            "instruction": "Look up the capital of Peru.",
            "input": "",
            "output": "Lima",
            "example_input": "capital of Chile",
            "example_output": "Santiago",
        }
    )
    assert draft["meta"] == {"example_input": "capital of Chile", "example_output": "Santiago"}
    assert (draft["instruction"], draft["output"]) == ("Look up the capital of Peru.", "Lima")


def test_gpteacher_sample_has_nothing_left_over(sample_build):
    assert {r["meta"] for r in shard_rows(sample_build, "gpteacher")} == {"{}"}


def test_fields_history_column_accepts_pairs():
    catalog = CATALOG.datasets["codealpaca"]
    from dataclasses import replace

    entry = replace(catalog, fields={"instruction": "q", "output": "a", "history": "h"})
    normalize = get_normalizer(entry, "x")
    draft = normalize({"q": "And 3?", "a": "9", "h": [["Square 2", "4"]]})
    assert draft["history"] == [{"user": "Square 2", "assistant": "4"}]
    assert draft["input"] == ""
    with pytest.raises(RejectRow, match="history turn 0"):
        normalize({"q": "x", "a": "y", "h": [["only one"]]})


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]
