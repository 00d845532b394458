"""Turn lists: UltraChat, ShareGPT52K's HTML answers, and ProsocialDialog's dialogues spread over
rows, in their documented upstream shapes (no real copy of these files could be found; see
samples/README.md). The grouping of rows into dialogues is checked through the real build path."""

from __future__ import annotations

import json

import pytest

from alpacacot.catalog import load_catalog
from alpacacot.normalizers import RejectRow, get_normalizer
from alpacacot.normalizers.html_text import html_to_text, looks_like_html
from alpacacot.pipeline import group_rows
from alpacacot.readers import RowError

from .conftest import read_manifest, run_cli
from .helpers import entry, reject_lines, shard_rows, write_catalog, write_jsonl

CATALOG = load_catalog()


def normalizer(name: str):
    return get_normalizer(CATALOG.datasets["moss"], "test", name)


def test_ultrachat_roles_by_position_and_an_unanswered_last_turn_in_meta():
    row = {"id": "0", "data": ["Q1", "A1", "Q2", "A2", "Q3"]}
    draft = normalizer("ultrachat")(row)
    assert draft["history"] == [{"user": "Q1", "assistant": "A1"}]
    assert (draft["instruction"], draft["output"]) == ("Q2", "A2")
    assert draft["meta"] == {"id": "0", "unanswered_last_user_message": "Q3"}


SAVED_ANSWER = (
    '<div class="markdown prose w-full break-words dark:prose-invert light"><p>Use a list '
    "comprehension &amp; a filter:</p><ol><li>Read the file.</li><li>Keep <code>x &gt; 0</code>."
    '</li></ol><pre><div class="bg-black"><div class="flex"><span>python</span><button>'
    '<svg></svg>Copy code</button></div><div><code class="language-python">xs = [x for x in '
    "xs if x &gt; 0]\nprint(xs)\n</code></div></div></pre><p>Done.</p></div>"
)


def test_html_answers_become_text_with_lists_and_code_blocks():
    assert looks_like_html(SAVED_ANSWER) and not looks_like_html("Is 2 < 3?")
    assert html_to_text(SAVED_ANSWER) == (
        "Use a list comprehension & a filter:\n\n"
        "1. Read the file.\n"
        "2. Keep `x > 0`.\n\n"
        "```python\nxs = [x for x in xs if x > 0]\nprint(xs)\n```\n\n"
        "Done."
    )


def test_sharegpt_html_converts_only_html_values():
    row = {
        "id": "abc_0",
        "conversations": [
            {"from": "human", "value": "Filter <positive> numbers?"},
            {"from": "gpt", "value": SAVED_ANSWER},
        ],
    }
    draft = normalizer("sharegpt_html")(row)
    assert draft["instruction"] == "Filter <positive> numbers?"
    assert draft["output"].startswith("Use a list comprehension & a filter:")
    assert "<" not in draft["output"].replace("<positive>", "")
    assert draft["meta"] == {"id": "abc_0"}


def test_sharegpt_html_keeps_answers_shared_without_their_question():
    row = {
        "conversations": [
            {"from": "gpt", "value": "<p>…continued.</p>"},
            {"from": "human", "value": "Thanks. And then?"},
            {"from": "gpt", "value": "<p>Then stop.</p>"},
        ]
    }
    draft = normalizer("sharegpt_html")(row)
    assert draft["meta"]["leading_answers"] == ["…continued."]
    assert (draft["instruction"], draft["output"]) == ("Thanks. And then?", "Then stop.")


def test_group_rows_streams_runs_of_the_same_dialogue():
    rows = iter(
        [
            (0, {"dialogue_id": 1, "t": "a"}),
            (1, {"dialogue_id": 1, "t": "b"}),
            (2, RowError("bad", "{")),
            (3, {"dialogue_id": 1, "t": "c"}),
            (4, {"dialogue_id": 2, "t": "d"}),
            (5, {"t": "no id"}),
            (6, {"t": "no id either"}),
        ]
    )
    groups = group_rows(rows, "dialogue_id")
    first = next(groups)  # produced before the rest of the input is read
    assert first == (0, [{"dialogue_id": 1, "t": "a"}, {"dialogue_id": 1, "t": "b"}])
    rest = list(groups)
    assert [row for row, _ in rest] == [2, 3, 4, 5, 6]
    assert isinstance(rest[0][1], RowError)
    assert [len(v) for _, v in rest[1:]] == [1, 1, 1, 1]


def prosocial_row(dialogue: int, turn: int, context: str, response: str, **extra) -> dict:
    return {
        "context": context,
        "response": response,
        "rots": ["It's wrong to hurt others"],
        "safety_label": "__needs_caution__",
        "safety_annotations": ["needs caution", "needs caution", "casual"],
        "safety_annotation_reasons": ["r1", "r2", "r3"],
        "source": "sbic",
        "etc": "",
        "dialogue_id": dialogue,
        "response_id": turn,
        "episode_done": False,
        **extra,
    }


def test_prosocial_dialogues_spread_over_rows_build_one_record_each(tmp_path):
    rows = [
        prosocial_row(0, 0, "I hit someone today.", "Why did you do that?"),
        prosocial_row(0, 1, "He annoyed me.", "That is no reason to hurt him.", episode_done=True),
        prosocial_row(1, 0, "Can I borrow your notes?", "Sure, here they are."),
        prosocial_row(2, 0, "Tell me a joke.", None),
    ]
    write_jsonl(tmp_path / "train.json", rows)
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        {"pd": entry({"kind": "local", "path": "train.json"}, normalizer="prosocial_dialog")},
    )
    out = tmp_path / "out"
    run_cli("build", "--catalog", catalog, "--out", out)
    first, second = shard_rows(out, "pd")
    assert first["history"] == [
        {"user": "I hit someone today.", "assistant": "Why did you do that?"}
    ]
    assert (first["instruction"], first["output"]) == (
        "He annoyed me.",
        "That is no reason to hurt him.",
    )
    assert first["provenance"]["row"] == 0 and second["provenance"]["row"] == 2
    turns = json.loads(first["meta"])["turns"]
    assert [t["response_id"] for t in turns] == [0, 1]
    assert turns[1]["episode_done"] is True and turns[0]["rots"] == ["It's wrong to hurt others"]
    [bad] = reject_lines(out, "pd")
    assert (bad["row"], bad["field"]) == (3, "response")
    assert read_manifest(out)["sources"]["pd"]["counts"] == {
        "read": 3,
        "written": 2,
        "duplicates": 0,
        "rejected": 1,
    }


@pytest.mark.parametrize("name", ["ultrachat", "sharegpt_html"])
def test_turn_lists_refuse_rows_without_their_list(name):
    from alpacacot.normalizers import RejectRow

    with pytest.raises(RejectRow):
        normalizer(name)({"id": "x"})


def camel_row(**changes):
    """One conversation in the shape camel-ai/camel's role_playing_multiprocess.py writes."""
    row = {
        "role_1": "Python Programmer_RoleType.ASSISTANT",
        "role_2": "Stock Trader_RoleType.USER",
        "id": "001_002_003",
        "original_task": "Develop a trading bot for the stock market",
        "specified_task": "Write a Python bot that buys when the 50-day average crosses up.",
        "message_1": {
            "role_name": "Stock Trader",
            "role_type": "USER",
            "content": "Instruction: fetch prices.\nInput: None",
        },
        "message_2": {
            "role_name": "Python Programmer",
            "role_type": "ASSISTANT",
            "content": "Solution: use a data API.",
        },
        "message_3": {
            "role_name": "Stock Trader",
            "role_type": "USER",
            "content": "Instruction: compute the average.\nInput: prices",
        },
        "message_4": {
            "role_name": "Python Programmer",
            "role_type": "ASSISTANT",
            "content": "Solution: rolling mean.",
        },
        "message_5": {
            "role_name": "Stock Trader",
            "role_type": "USER",
            "content": "<CAMEL_TASK_DONE>",
        },
        "termination_reason": "<CAMEL_TASK_DONE>",
        "num_messages": 5,
    }
    row.update(changes)
    return row


def test_camel_role_play_task_is_the_system_and_nothing_is_lost():
    draft = normalizer("camel")(camel_row())
    assert draft["system"] == "Write a Python bot that buys when the 50-day average crosses up."
    assert draft["history"] == [
        {
            "user": "Instruction: fetch prices.\nInput: None",
            "assistant": "Solution: use a data API.",
        }
    ]
    assert (draft["instruction"], draft["output"]) == (
        "Instruction: compute the average.\nInput: prices",
        "Solution: rolling mean.",
    )
    meta = draft["meta"]
    assert meta["unanswered_last_user_message"] == "<CAMEL_TASK_DONE>"
    assert meta["role_1"] == "Python Programmer_RoleType.ASSISTANT"
    assert meta["original_task"] == "Develop a trading bot for the stock market"
    assert meta["termination_reason"] == "<CAMEL_TASK_DONE>"
    assert meta["messages"]["message_2"] == {
        "role_name": "Python Programmer",
        "role_type": "ASSISTANT",
    }
    # message_10 sorts after message_9, not after message_1
    many = camel_row(
        **{
            f"message_{n}": {"role_type": "USER" if n % 2 else "ASSISTANT", "content": f"m{n}"}
            for n in range(1, 11)
        }
    )
    assert normalizer("camel")(many)["output"] == "m10"


def test_camel_rows_that_cannot_be_a_dialogue_are_rejected():
    with pytest.raises(RejectRow, match="message_2: two user messages in a row"):
        normalizer("camel")(camel_row(message_2={"role_type": "USER", "content": "again"}))
    bare = {k: v for k, v in camel_row().items() if not k.startswith("message_")}
    with pytest.raises(RejectRow, match="message_1: missing field"):
        normalizer("camel")(bare)


def test_camel_builds_from_a_tar_of_one_json_file_per_conversation(tmp_path):
    import io
    import tarfile

    archive = tmp_path / "ai_society_chat.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for n, row in enumerate([camel_row(), camel_row(id="001_002_004", message_4=None)]):
            body = json.dumps(row, ensure_ascii=False).encode()
            info = tarfile.TarInfo(f"ai_society/001_002_00{n + 3}.json")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        {
            "camel": entry(
                {"kind": "local", "path": "ai_society_chat.tar.gz"},
                fmt="json",
                normalizer="camel",
                compression="tar",
            )
        },
    )
    out = tmp_path / "out"
    run_cli("build", "--catalog", catalog, "--out", out)
    [record] = shard_rows(out, "camel")
    assert record["system"] == camel_row()["specified_task"]
    assert record["output"] == "Solution: rolling mean."
    [bad] = reject_lines(out, "camel")
    assert (bad["row"], bad["field"]) == (1, "message_4")
