"""The format families added for Alpaca-CoT's table, on their real upstream excerpts: task files
(Natural Instructions), exam items (GAOKAO-Bench), inputs/targets pairs (pCLUE), a GB18030 CSV
(Chinese medical dialogues) and Dolly's context column."""

from __future__ import annotations

import json

import pytest

from alpacacot.catalog import load_catalog
from alpacacot.errors import MalformedFileError
from alpacacot.normalizers import RejectRow, get_normalizer
from alpacacot.readers import RowError, iter_rows

from .helpers import shard_rows
from .test_normalizers import sample_drafts

CATALOG = load_catalog()


def drafts(key: str) -> list[dict]:
    items = [d for _, _, d in sample_drafts(key)]
    assert not [d for d in items if isinstance(d, RowError | RejectRow)], key
    return items


# --- task files ------------------------------------------------------------------------------


def test_natural_instructions_instances_become_records_with_the_task_definition():
    records = drafts("natural_instructions")
    sample = CATALOG.local_path(CATALOG.datasets["natural_instructions"].sample[0])
    task = json.loads(sample.read_text("utf-8"))
    assert len(records) == len(task["Instances"]) == 8
    for record, instance in zip(records, task["Instances"], strict=True):
        assert record["instruction"] == task["Definition"]
        assert record["input"] == instance["input"]
        assert record["output"] == instance["output"][0]
    assert records[0]["output"] == "-1058"
    assert records[0]["meta"]["task"] == "task085_unnatural_addsub_arithmetic"
    assert records[0]["meta"]["Categories"] == ["Answer Generation", "Arithmetic"]
    # The task's examples belong to the file, not to every record.
    assert "Positive Examples" not in records[0]["meta"]


def test_natural_instructions_keeps_the_other_answers_and_a_list_definition():
    normalize = get_normalizer(CATALOG.datasets["natural_instructions"], "task001_x")
    task = {"Definition": ["Answer the question.", "Be brief."], "Categories": ["QA"]}
    draft = normalize({"id": "task001-7", "input": "2+2?", "output": ["4", "four"], "_file": task})
    assert draft["instruction"] == "Answer the question.\nBe brief."
    assert draft["output"] == "4"
    assert draft["meta"]["other_outputs"] == ["four"] and draft["meta"]["id"] == "task001-7"
    with pytest.raises(RejectRow) as info:
        normalize({"input": "x", "output": [], "_file": task})
    assert info.value.field == "output"


def test_a_task_file_streams_its_instances_after_the_fields_before_them(tmp_path):
    path = tmp_path / "task.json"
    path.write_text(
        json.dumps({"Definition": ["d"], "Instances": [{"input": "a", "output": ["b"]}, 3]}),
        encoding="utf-8",
    )
    rows = list(iter_rows(path, "json", records="Instances"))
    assert rows[0] == (0, {"input": "a", "output": ["b"], "_file": {"Definition": ["d"]}})
    assert isinstance(rows[1][1], RowError) and "Instances" in rows[1][1].reason


def test_a_task_file_without_its_record_list_names_the_keys_it_has(tmp_path):
    path = tmp_path / "task.json"
    path.write_text('{"Definition": ["d"], "Examples": []}', encoding="utf-8")
    with pytest.raises(MalformedFileError, match="no `Instances` list.*Definition, Examples"):
        list(iter_rows(path, "json", records="Instances"))


# --- exam items ------------------------------------------------------------------------------


def test_gaokao_items_teach_the_analysis_then_the_answer():
    records = drafts("gaokao")
    assert len(records) == 12 + 5 + 10
    first = records[0]
    assert first["instruction"].startswith("1. （5 分) 已知集合")
    assert first["output"].startswith("解: ") and first["output"].endswith("\n答案：D")
    assert first["meta"]["keywords"] == "2010-2022_Math_I_MCQs"
    assert first["meta"]["year"] == "2010" and first["meta"]["score"] == 5
    assert all(r["tags"] == ["exam"] for r in records)


def test_an_exam_item_without_an_answer_is_rejected():
    normalize = get_normalizer(CATALOG.datasets["gaokao"], "x")
    with pytest.raises(RejectRow) as info:
        normalize({"question": "1. ...", "answer": [], "analysis": "..."})
    assert info.value.field == "answer"
    assert (
        normalize({"question": "q", "answer": ["A", "C"], "analysis": ""})["output"] == "答案：AC"
    )


# --- inputs / targets ------------------------------------------------------------------------


def test_pclue_inputs_and_targets_with_the_choices_in_meta():
    records = drafts("pclue")
    assert len(records) == 24
    assert records[0]["instruction"].startswith("假设“为什么不受监管呢”")
    assert records[0]["output"] == "不是"
    assert records[0]["meta"] == {
        "answer_choices": ["是的", "不是", "也许"],
        "type": "nli",
        "subset": "train",
    }


def test_inputs_targets_defaults_and_a_single_target_list():
    entry = CATALOG.datasets["pclue"]
    from dataclasses import replace

    normalize = get_normalizer(replace(entry, fields={}), "zh")
    draft = normalize({"inputs": "Translate: hi", "targets": ["你好"], "task": "mt"})
    assert (draft["instruction"], draft["output"]) == ("Translate: hi", "你好")
    assert draft["meta"] == {"task": "mt", "subset": "zh"}
    with pytest.raises(RejectRow):
        normalize({"inputs": "x", "targets": ["a", "b"]})


# --- non-UTF-8 CSV ---------------------------------------------------------------------------


def test_chinese_medical_gb18030_csv_decodes(sample_build):
    records = drafts("chinese_medical")
    assert len(records) == 40
    assert records[0]["instruction"].startswith("我有高血压这两天女婿来的时候")
    assert records[0]["meta"] == {"department": "心血管科", "title": "高血压患者能吃党参吗？"}
    written = shard_rows(sample_build, "chinese_medical")
    assert len(written) == 40 and {r["lang"] for r in written} == {"zh"}


def test_a_gb18030_file_read_as_utf8_stops_with_a_hint(tmp_path):
    sample = CATALOG.local_path(CATALOG.datasets["chinese_medical"].sample[0])
    with pytest.raises(MalformedFileError) as info:
        list(iter_rows(sample, "csv", name="med.csv"))
    message = str(info.value)
    assert "med.csv" in message and "utf-8" in message and "encoding:" in message


def test_a_bad_byte_in_a_gb18030_file_is_a_row_reject_naming_row_and_encoding(tmp_path):
    path = tmp_path / "med.csv"
    good = "科室,问题,回答\n内科,头疼怎么办,多休息\n".encode("gb18030")
    path.write_bytes(good + b"\xff\xfe,x,y\n" + "外科,骨折,就医\n".encode("gb18030"))
    rows = list(iter_rows(path, "csv", name="med.csv", encoding="gb18030"))
    assert rows[0] == (1, {"科室": "内科", "问题": "头疼怎么办", "回答": "多休息"})
    assert isinstance(rows[1][1], RowError)
    assert "gb18030" in rows[1][1].reason and "row 2 of med.csv" in rows[1][1].reason
    assert rows[2] == (3, {"科室": "外科", "问题": "骨折", "回答": "就医"})


def test_an_unknown_encoding_is_a_catalog_error(tmp_path):
    from alpacacot.errors import CatalogError

    from .helpers import entry, write_catalog

    path = write_catalog(
        tmp_path / "c.yaml",
        {"x": entry({"kind": "local", "path": "x.csv"}, fmt="csv", encoding="klingon")},
    )
    with pytest.raises(CatalogError, match="datasets/x/encoding: unknown text encoding"):
        load_catalog(path)


# --- dolly -----------------------------------------------------------------------------------


def test_dolly_context_is_the_input_and_category_stays_in_meta():
    records = drafts("dolly")
    assert records[0]["input"].startswith("Virgin Australia, the trading name")
    assert records[0]["meta"] == {"category": "closed_qa"}
    assert records[1]["input"] == "" and records[1]["output"] == "Tope"


# --- alpaca_cleaned ----------------------------------------------------------------------------


def test_alpaca_cleaned_sample_is_the_cleaned_file_not_the_original(sample_build):
    # The real excerpt: the cleaned rewrites of Alpaca's first records (GPT-4-LLM answers since
    # April 2023, instructions fixed by hand), in Alpaca's layout.
    records = drafts("alpaca_cleaned")
    assert len(records) == 40
    assert records[0]["instruction"] == "Give three tips for staying healthy."
    assert records[0]["output"].startswith("1. Eat a balanced and nutritious diet:")
    assert records[4]["instruction"].startswith("Pretend you are a project manager")
    assert not any("<noinput>" in r["input"] or "<nooutput>" in r["output"] for r in records)
    written = shard_rows(sample_build, "alpaca_cleaned")
    assert len(written) == 40 and {r["lang"] for r in written} == {"en"}


def test_auto_cot_demonstrations_end_with_the_answer_their_chain_reaches():
    records = drafts("auto_cot")
    assert len(records) == 16  # 8 automatic and 8 hand-written chains
    first = records[0]
    assert first["instruction"].startswith("Q: Wendy uploaded 45 pictures")
    assert first["output"].startswith("Let's think step by step.")
    assert first["output"].endswith("\nThe answer is 2")
    assert first["meta"]["gold_ans"] == "2" and first["tags"] == []
    assert "gold_ans" not in records[8]["meta"]  # the manual demonstrations have no gold answer


def test_csl_headerless_tsv_maps_task_text_and_target():
    records = drafts("csl")
    assert records[0] == {
        "instruction": "to category",
        "input": "太平天国私人便章“朝勋詹记”考",
        "output": "历史学",
    }


# --- self-instruct seed tasks ----------------------------------------------------------------


@pytest.mark.parametrize(
    "key,tasks",
    [("alpaca_seed_tasks", 20), ("belle_seed_tasks", 20), ("codealpaca_seed_tasks", 21)],
)
def test_seed_tasks_give_one_record_per_instance(key, tasks):
    entry = CATALOG.datasets[key]
    rows = [row for _, row in iter_rows(CATALOG.local_path(entry.sample[0]), entry.format)]
    assert len(rows) == tasks
    records = drafts(key)
    assert len(records) == sum(len(r["instances"]) for r in rows)
    first = rows[0]
    assert records[0]["instruction"] == first["instruction"]
    assert records[0]["output"] == first["instances"][0]["output"]
    assert records[0]["meta"]["id"] == first["id"] and "is_classification" in records[0]["meta"]


def test_a_seed_task_without_instances_is_rejected():
    normalize = get_normalizer(CATALOG.datasets["alpaca_seed_tasks"], "seed_tasks")
    with pytest.raises(RejectRow) as info:
        normalize({"id": "seed_task_9", "instruction": "Say hi.", "instances": []})
    assert info.value.field == "instances"


def test_a_gb18030_json_file_is_read_as_text_of_that_encoding(tmp_path):
    array = tmp_path / "rows.json"
    array.write_bytes(json.dumps([{"instruction": "你好", "output": "世界"}]).encode("gb18030"))
    assert list(iter_rows(array, "json", encoding="gb18030")) == [
        (0, {"instruction": "你好", "output": "世界"})
    ]
    task = tmp_path / "task.json"
    body = {"keywords": "语文", "example": [{"question": "问", "answer": "答"}]}
    task.write_bytes(json.dumps(body, ensure_ascii=False).encode("gb18030"))
    rows = list(iter_rows(task, "json", encoding="gb18030", records="example"))
    assert rows == [(0, {"question": "问", "answer": "答", "_file": {"keywords": "语文"}})]
    task.write_bytes(b'{"example": [{"question": "\xff\xff"}]}')
    with pytest.raises(MalformedFileError, match="not valid gb18030 text"):
        list(iter_rows(task, "json", encoding="gb18030", records="example"))
