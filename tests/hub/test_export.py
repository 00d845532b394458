"""`alpacacot-data export`: LLaMA-Factory alpaca/sharegpt files and OpenAI messages JSONL."""

from __future__ import annotations

import json

from hub_helpers import make_records, write_collection
from typer.testing import CliRunner

from alpacacot.cli import app


def export(*args: str):
    return CliRunner().invoke(app, ["export", *args])


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_llamafactory_alpaca_format(collection, tmp_path):
    out = tmp_path / "lf"
    result = export(str(collection), "--to", "llamafactory", "--out", str(out))
    assert result.exit_code == 0, result.output
    info = json.loads((out / "dataset_info.json").read_text())
    assert set(info) == {"alpaca", "belle", "dialog"}
    assert info["dialog"] == {
        "file_name": "dialog.jsonl",
        "formatting": "alpaca",
        "columns": {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "history": "history",
        },
    }
    [dialog] = read_jsonl(out / "dialog.jsonl")
    assert dialog == {
        "instruction": "And in winter?",
        "input": "",
        "output": "Wear a warm coat.",
        "history": [["What should I wear in summer?", "Light clothes."]],
    }
    alpaca = read_jsonl(out / "alpaca.jsonl")
    assert [r["input"] for r in alpaca] == ["", "Good morning", ""]
    assert "写一首" in (out / "belle.jsonl").read_text(encoding="utf-8")  # not \\u-escaped


def test_sharegpt_format(collection, tmp_path):
    out = tmp_path / "sg"
    assert export(str(collection), "--to", "sharegpt", "--out", str(out), "dialog").exit_code == 0
    info = json.loads((out / "dataset_info.json").read_text())
    assert info == {
        "dialog": {
            "file_name": "dialog.jsonl",
            "formatting": "sharegpt",
            "columns": {"messages": "conversations"},
            "tags": {
                "role_tag": "from",
                "content_tag": "value",
                "user_tag": "human",
                "assistant_tag": "gpt",
            },
        }
    }
    [row] = read_jsonl(out / "dialog.jsonl")
    assert row["conversations"] == [
        {"from": "human", "value": "What should I wear in summer?"},
        {"from": "gpt", "value": "Light clothes."},
        {"from": "human", "value": "And in winter?"},
        {"from": "gpt", "value": "Wear a warm coat."},
    ]


def test_openai_messages_jsonl_expands_history_and_input(collection, tmp_path):
    out = tmp_path / "oa"
    assert (
        export(str(collection), "--to", "jsonl", "--out", str(out), "alpaca", "dialog").exit_code
        == 0
    )
    [dialog] = read_jsonl(out / "dialog.jsonl")
    assert dialog == {
        "messages": [
            {"role": "user", "content": "What should I wear in summer?"},
            {"role": "assistant", "content": "Light clothes."},
            {"role": "user", "content": "And in winter?"},
            {"role": "assistant", "content": "Wear a warm coat."},
        ]
    }
    second = read_jsonl(out / "alpaca.jsonl")[1]
    assert second["messages"][0] == {
        "role": "user",
        "content": "Translate to French.\n\nGood morning",
    }
    info = json.loads((out / "dataset_info.json").read_text())
    assert info["alpaca"]["columns"] == {"messages": "messages"}
    assert info["alpaca"]["tags"]["user_tag"] == "user"
    assert not (out / "belle.jsonl").exists()


def test_export_streams_every_shard_in_order(tmp_path):
    rows = [(f"question {i}", "", f"answer {i}") for i in range(7)]
    write_collection(
        tmp_path / "c", {"many": {"records": make_records("many", rows, "en"), "shards": 3}}
    )
    result = export(str(tmp_path / "c"), "--to", "llamafactory")
    assert result.exit_code == 0, result.output
    out = tmp_path / "c-llamafactory"  # default: next to the collection
    assert [r["output"] for r in read_jsonl(out / "many.jsonl")] == [
        f"answer {i}" for i in range(7)
    ]


def test_unknown_key_is_a_clear_error(collection, tmp_path):
    result = export(str(collection), "--to", "jsonl", "--out", str(tmp_path / "x"), "nope")
    assert result.exit_code == 1
    assert "unknown key(s) nope" in result.output and "alpaca, belle, dialog" in result.output
