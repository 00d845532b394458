"""Record schema 1.1: a record's `system` prompt opens its conversation; without one (column
absent or null) the template's own opening stays."""

from __future__ import annotations

import json

import pytest

from alpacacot.training.prompts import render_prompt


class _Tok:
    eos_token = "</s>"


RECORD = {"instruction": "Name a color.", "input": "", "output": "Blue."}


def test_system_replaces_the_template_opening():
    with_system = render_prompt({**RECORD, "system": "You are a painter."}, "alpaca", _Tok())
    assert with_system == "You are a painter.\n\n### Instruction:\nName a color.\n\n### Response:\n"
    plain = render_prompt(RECORD, "alpaca", _Tok())
    assert plain.startswith("Below is an instruction that describes a task.")
    assert render_prompt({**RECORD, "system": None}, "alpaca", _Tok()) == plain
    chatml = render_prompt({**RECORD, "system": "Be brief."}, "chatml", _Tok())
    assert chatml.startswith("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n")
    assert "You are a helpful assistant" not in chatml


def test_system_reaches_the_chat_template(tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    tok.chat_template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}</{{ m['role'] }}>{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    text = render_prompt({**RECORD, "system": "Be brief."}, "tokenizer", tok)
    assert text == "<system>Be brief.</system><user>Name a color.</user><assistant>"


def test_record_files_with_and_without_the_system_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from alpacacot.training.config import TrainingError
    from alpacacot.training.data import read_record_file

    rows = [{**RECORD, "system": "Be brief."}, {**RECORD, "output": "Red.", "system": None}]
    path = tmp_path / "r.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    assert [r["system"] for r in read_record_file(path)] == ["Be brief.", ""]
    old = tmp_path / "old.parquet"  # schema 1.0: no system column at all
    pq.write_table(pa.Table.from_pylist([RECORD]), old)
    assert read_record_file(old)[0]["system"] == ""
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**RECORD, "system": 3}))
    with pytest.raises(TrainingError, match=r"bad.jsonl, row 0, field 'system'"):
        read_record_file(bad)
