"""Every dataset of Alpaca-CoT's README table has a catalog entry, and the entries without a real
excerpt (xP3, FLAN-Muffin, firefly's full set, COIG, swype/instruct, ...) map rows written in their
documented upstream layouts (dataset cards, loaders) into the right record fields. These rows are
the documented shapes, not upstream data: see samples/README.md."""

from __future__ import annotations

import pytest

from alpacacot.catalog import load_catalog
from alpacacot.errors import CatalogError
from alpacacot.normalizers import get_normalizer

CATALOG = load_catalog()

# The `Dataset` column of Alpaca-CoT's README table (PhoebusSi/Alpaca-CoT @ 00663ed1, "Statistics").
ALPACA_COT_TABLE = [
    "Chain of Thought", "GPT4all", "GPTeacher", "Guanaco", "HC3", "alpaca",
    "Natural Instructions", "belle_cn", "instinwild", "prosocial dialog", "finance_en", "xP3",
    "firefly", "instruct", "Code Alpaca", "Alpaca_GPT4", "webGPT", "dolly 2.0", "baize", "hh-rlhf",
    "OIG(part)", "GAOKAO", "camel", "FLAN-Muffin", "COIG(FlagInstruct)", "GPT4Tools", "ShareChat",
    "Auto CoT", "MOSS", "ultrachat", "Chinese-medical", "CSL", "pCLUE", "news_commentary",
    "StackLLaMA",
]  # fmt: skip


def normalize(key: str, row: dict, subset: str = "train") -> dict:
    entry = CATALOG.datasets[key]
    return get_normalizer(entry, subset)(row)


def test_every_row_of_alpaca_cots_table_has_an_entry():
    named = {e.alpaca_cot for e in CATALOG.datasets.values()}
    assert [row for row in ALPACA_COT_TABLE if row not in named] == []


def test_cot_zh_is_alpaca_cots_chinese_cot_file():
    entry = CATALOG.datasets["cot_zh"]
    [upstream] = entry.files()
    assert (upstream.repo, upstream.location) == (
        "QingyiSi/Alpaca-CoT",
        "Chain-of-Thought/CoT_Chinese_data.json",
    )
    assert entry.languages == ["zh"] and entry.normalizer == "alpaca"
    draft = normalize(
        "cot_zh", {"instruction": "问题：2+3=？请逐步思考。", "input": "", "output": "5"}
    )
    assert (draft["instruction"], draft["output"]) == ("问题：2+3=？请逐步思考。", "5")


def test_cot_builds_all_nine_flan_tasks_esnli_and_qed_at_a_commit():
    subsets = [sf.subset for sf in CATALOG.datasets["cot"].files()]
    assert subsets == [
        *("aqua", "creak", "ecqa", "gsm8k", "qasc", "sensemaking", "strategyqa"),
        *("esnli", "qed"),
    ]
    esnli = CATALOG.datasets["cot"].files()[7]
    assert "/e9e4ec6e2701182c7a91af176f705310da541277/" in esnli.location
    row = {"question": "Premise: ...\\nHypothesis: ...", "answer": "no", "rationale": "Because."}
    draft = normalize("cot", row, subset="esnli")
    assert draft["tags"] == ["cot", "flan:esnli"]
    assert "Premise: ...\nHypothesis: ..." in draft["instruction"]


def test_firefly_full_maps_input_and_target_and_keeps_the_task():
    # The row the dataset card shows (YeungNLP/firefly-train-1.1M), shortened.
    row = {
        "kind": "ClassicalChinese",
        "input": "将下面句子翻译成现代文：\n石中央又生一树",
        "target": "大石的中央长着一棵树",
    }
    draft = normalize("firefly_full", row)
    assert draft["instruction"] == "将下面句子翻译成现代文：\n石中央又生一树"
    assert draft["output"] == "大石的中央长着一棵树"
    assert draft["meta"] == {"kind": "ClassicalChinese", "subset": "train"}


def test_coig_builds_the_chinese_translation_and_keeps_the_english_in_meta():
    row = {
        "instruction": "Translate the sentence.",
        "input": "Good morning",
        "output": "早上好",
        "trans_instruction": "翻译这句话。",
        "trans_input": "Good morning",
        "trans_output": "早上好",
        "task_type": {"major": ["翻译"], "minor": ["英译中"]},
    }
    draft = normalize("coig", row, subset="translated")
    assert (draft["instruction"], draft["input"], draft["output"]) == (
        "翻译这句话。",
        "Good morning",
        "早上好",
    )
    assert draft["meta"]["instruction"] == "Translate the sentence."
    assert draft["meta"]["task_type"] == {"major": ["翻译"], "minor": ["英译中"]}


NEW_ROWS = {
    "xp3": ({"inputs": "Translate to French: cat", "targets": "chat"}, "chat"),
    "flan_muffin": ({"inputs": "Is it positive?", "targets": "yes", "task": "imdb"}, "yes"),
    "swype_instruct": ({"prompt": "Name a fruit.", "completion": "Apple"}, "Apple"),
    "guanaco": ({"instruction": "Say hi.", "input": "", "output": "Hi!"}, "Hi!"),
    "instinwild": (
        {"instruction": "写一首诗。", "input": "", "output": "春风。", "id": 0},
        "春风。",
    ),
    "gpt4tools": ({"instruction": "GPT4Tools can", "input": "x.png", "output": "No"}, "No"),
    "news_commentary": (
        {"instruction": "翻译成英文。", "input": "你好", "output": "Hello"},
        "Hello",
    ),
}


@pytest.mark.parametrize("key", sorted(NEW_ROWS))
def test_each_new_entry_maps_its_documented_layout(key):
    row, output = NEW_ROWS[key]
    draft = normalize(key, row)
    instruction = row.get("instruction") or row.get("inputs") or row["prompt"]
    assert draft["instruction"] == instruction
    assert draft["output"] == output


def test_xp3_builds_english_and_chinese_unless_told_otherwise():
    entry = CATALOG.datasets["xp3"]
    assert len(entry.subset_names()) == 46
    assert [sf.location for sf in entry.files()] == ["en/merged_en.jsonl", "zh/merged_zh.jsonl"]
    french = entry.with_subsets(["fr"])
    assert [sf.location for sf in french.files()] == ["fr/merged_fr.jsonl"]
    with pytest.raises(CatalogError, match="has no subset 'klingon'"):
        entry.with_subsets(["klingon"])
