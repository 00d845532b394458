"""Transcript strings: MOSS-003 on its real excerpt (meta instruction -> system); Baize and OIG
rows in their documented shapes (no real copy of their files could be found)."""

from __future__ import annotations

import json

import pytest

from alpacacot.catalog import load_catalog
from alpacacot.normalizers import RejectRow, get_normalizer
from alpacacot.normalizers.transcript import split_transcript

from .helpers import shard_rows
from .test_normalizers import raw_rows, sample_drafts

CATALOG = load_catalog()


def normalizer(name: str):
    return get_normalizer(CATALOG.datasets["moss"], "test", name)


def test_moss_turns_lose_their_markers_and_the_meta_instruction_is_the_system():
    raw = raw_rows("moss")
    drafts = {row: d for subset, row, d in sample_drafts("moss") if subset == "no-tools"}
    assert len(drafts) == len(raw)
    for row, draft in drafts.items():
        upstream = raw[row]
        turns = [upstream["chat"][f"turn_{n}"] for n in range(1, upstream["num_turns"] + 1)]
        assert draft["system"] == upstream["meta_instruction"]
        assert len(draft["history"]) == len(turns) - 1
        human = turns[-1]["Human"].removeprefix("<|Human|>: ").split("<eoh>")[0]
        assert draft["instruction"] == human.strip()
        assert turns[-1]["MOSS"].startswith("<|MOSS|>:") and draft["output"] in turns[-1]["MOSS"]
        texts = [draft["instruction"], draft["output"]]
        texts += [t[k] for t in draft["history"] for k in ("user", "assistant")]
        assert not any("<|" in t or "<eo" in t for t in texts)
        assert "tool_parts" not in draft.get("meta", {})


def test_moss_plugin_thoughts_commands_and_results_stay_in_meta():
    raw = raw_rows("moss", 1)
    drafts = [d for subset, _, d in sample_drafts("moss") if subset == "with-tools"]
    assert len(drafts) == len(raw) == 3
    for upstream, draft in zip(raw, drafts, strict=True):
        tools = draft["meta"]["tool_parts"]
        commands = [t["Commands"] for t in tools.values() if "Commands" in t]
        assert commands, "each plugin conversation calls its tool"
        first = upstream["chat"]["turn_1"]
        assert tools["turn_1"]["Inner Thoughts"] in first["Inner Thoughts"]


def test_moss_a_turn_without_its_markers_is_a_reject():
    row = raw_rows("moss")[0]
    broken = json.loads(json.dumps(row))
    broken["chat"]["turn_1"]["MOSS"] = "no marker here"
    with pytest.raises(RejectRow) as exc:
        normalizer("moss")(broken)
    assert exc.value.field == "chat" and "turn_1.MOSS" in exc.value.reason


def test_moss_shards_carry_the_system_column(sample_build):
    rows = shard_rows(sample_build, "moss")
    assert rows and all(
        r["system"].startswith("You are an AI assistant whose name is MOSS") for r in rows
    )
    assert {r["lang"] for r in rows} == {"zh", "en"}


def test_baize_preamble_is_the_system_and_the_open_last_turn_is_kept():
    row = {
        "topic": "Parsing JSON from an input stream",
        "input": "The conversation between human and AI assistant.\n[|Human|] Can I parse JSON "
        "from a stream?\n[|AI|] Yes, with an incremental parser.\n[|Human|] Which one?\n[|AI|] "
        "ijson, for example.\n[|Human|] ",
    }
    draft = normalizer("baize")(row)
    assert draft["system"] == "The conversation between human and AI assistant."
    assert draft["history"] == [
        {"user": "Can I parse JSON from a stream?", "assistant": "Yes, with an incremental parser."}
    ]
    assert (draft["instruction"], draft["output"]) == ("Which one?", "ijson, for example.")
    assert draft["meta"] == {"topic": row["topic"]}  # the empty last [|Human|] is no turn


def test_oig_turns_and_metadata():
    row = {
        "text": "<human>: What is a will?\n<bot>: A legal document that says who gets what.\n"
        "<human>: Do I need a lawyer?\n<bot>: Not always.",
        "metadata": {"source": "unified_chip2"},
    }
    draft = normalizer("oig")(row)
    assert draft["history"] == [
        {"user": "What is a will?", "assistant": "A legal document that says who gets what."}
    ]
    assert (draft["instruction"], draft["output"]) == ("Do I need a lawyer?", "Not always.")
    assert draft["meta"] == {"metadata": {"source": "unified_chip2"}}
    with pytest.raises(RejectRow, match="two user turns"):
        normalizer("oig")({"text": "<human>: a\n<human>: b\n<bot>: c"})


def test_split_transcript_prefers_the_longest_marker():
    preamble, turns = split_transcript(
        "intro <|MOSS|>: x <|M|>: y", {"<|M|>:": "a", "<|MOSS|>:": "b"}
    )
    assert preamble == "intro" and turns == [("b", "x"), ("a", "y")]


def test_moss_reads_from_a_zip_as_the_hub_publishes_it(tmp_path):
    """The Hub ships MOSS-003 as one JSON Lines file inside a .zip: the build reads that member."""
    import zipfile

    from .conftest import SAMPLES, run_cli
    from .helpers import entry, write_catalog

    excerpt = SAMPLES / "moss" / "moss-003-sft-no-tools.jsonl"
    with zipfile.ZipFile(tmp_path / "moss-003-sft-no-tools.jsonl.zip", "w") as zf:
        zf.write(excerpt, "moss-003-sft-no-tools.jsonl")
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        {
            "m": entry(
                {"kind": "local", "path": "moss-003-sft-no-tools.jsonl.zip"}, normalizer="moss"
            )
        },
    )
    run_cli("build", "--catalog", catalog, "--out", tmp_path / "out")
    rows = shard_rows(tmp_path / "out", "m")
    assert len(rows) == len(excerpt.read_text("utf-8").splitlines())
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as zf:
        zf.writestr("a.jsonl", "{}\n")
        zf.writestr("b.jsonl", "{}\n")
    two = write_catalog(
        tmp_path / "two.yaml", {"t": entry({"kind": "local", "path": "two.zip"}, normalizer="moss")}
    )
    result = run_cli("build", "--catalog", two, "--out", tmp_path / "out2", ok=False)
    assert "exactly one data file" in result.output


MOSS_002_META = (
    "MOSS is an AI assistant developed by the FudanNLP Lab and Shanghai AI Lab. Below is a "
    "conversation between MOSS and human."
)


def test_moss_002_meta_instruction_is_the_system_and_end_tokens_go():
    text = (
        f"{MOSS_002_META} [Human]: hello ! <eoh> [MOSS]: hello! <eoa> "
        "[Human]: Can you tell me the java code of quicksort ? <eoh> [MOSS]: Sure: ...<eoa>"
    )
    draft = normalizer("moss_002")({"plain_text": text, "id": 7})
    assert draft["system"] == MOSS_002_META
    assert draft["history"] == [{"user": "hello !", "assistant": "hello!"}]
    assert (draft["instruction"], draft["output"]) == (
        "Can you tell me the java code of quicksort ?",
        "Sure: ...",
    )
    assert draft["meta"] == {"id": 7}


def test_moss_002_an_answer_before_any_question_is_a_reject():
    with pytest.raises(RejectRow, match="plain_text: turn 0: an answer with no user turn"):
        normalizer("moss_002")({"plain_text": f"{MOSS_002_META} [MOSS]: hi<eoa>"})
