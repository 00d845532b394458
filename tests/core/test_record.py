"""Text cleaning, the content id, and the two record validators."""

from __future__ import annotations

import copy
import json

import jsonschema
import pytest

from alpacacot.catalog import load_json_schema
from alpacacot.pipeline import record_validator
from alpacacot.record import InvalidText, clean_text, record_id

from .conftest import read_manifest, run_cli
from .helpers import entry, reject_lines, shard_rows, write_catalog, write_jsonl

# --- clean_text ----------------------------------------------------------------------------------


def test_nfc_composes_decomposed_accents():
    decomposed = "Cafe\u0301 de\u0301ja\u0300 vu"
    assert clean_text(decomposed) == "Café déjà vu"
    assert clean_text(decomposed) == "Caf\u00e9 d\u00e9j\u00e0 vu"


def test_control_characters_go_but_newline_and_tab_stay():
    assert clean_text("a\x00b\x07c\x1bd\x7fe\x85f\x9fg") == "abcdefg"
    assert clean_text("line one\r\nline two\n\tindented") == "line one\nline two\n\tindented"
    assert clean_text("col1\tcol2") == "col1\tcol2"
    # ASCII-only text takes a faster path: the same characters go.
    assert clean_text("\x01 a\x00b\x07c\x1bd\x7fe\r\nf\tg\x0bh\x0ci \x1f") == "abcde\nf\tghi"


def test_outer_whitespace_is_trimmed_and_inner_kept():
    assert clean_text("  \n two  spaces\n\n  stay \t\n") == "two  spaces\n\n  stay"
    assert clean_text("\u3000全角空格\u3000") == "全角空格"


@pytest.mark.parametrize(
    "text",
    [
        "Plain ASCII, with punctuation!?",
        "def f(x):\n    return x  # keep the indent",
        "中文，标点。「引号」",
        "Emoji 🙂 and a ZWJ family 👨\u200d👩\u200d👧",
        "Ligature ﬁ and full-width Ａ stay (NFC, not NFKC)",
        "Right-to-left: שלום",
        "x" * 10_000,
    ],
)
def test_clean_text_changes_nothing_else(text):
    assert clean_text(text) == text


def test_a_lone_surrogate_is_rejected():
    with pytest.raises(InvalidText, match="surrogate"):
        clean_text("broken \ud83d text")


# --- record_id -----------------------------------------------------------------------------------


def test_record_id_is_stable_across_versions():
    # Pinned: changing these changes every id, and dedup against earlier collections breaks.
    assert record_id("Name a primary colour.", "", "Red.", []) == "d92dbed6bf46547de7f9c5f274af1de3"
    assert record_id("And 3?", "", "9", [{"user": "Square 2", "assistant": "4"}]) == (
        "a439c7f42392b9c0d0d603e9aa4585a4"
    )


def test_record_id_separates_fields_and_turns():
    ids = {
        record_id("ab", "", "c", []),
        record_id("a", "b", "c", []),
        record_id("a", "", "bc", []),
        record_id("c", "", "ab", []),
        record_id("a", "", "c", [{"user": "b", "assistant": ""}]),
        record_id("a", "", "c", [{"user": "", "assistant": "b"}]),
    }
    assert len(ids) == 6


def test_same_example_in_two_sources_gets_the_same_id(tmp_path):
    shared = {
        "instruction": "What is the boiling point of water at sea level?",
        "input": "",
        "output": "100 °C (212 °F).",
    }
    write_jsonl(tmp_path / "a.jsonl", [shared])
    write_jsonl(
        tmp_path / "b.jsonl", [{"question": shared["instruction"], "answer": shared["output"]}]
    )
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        {
            "first": entry({"kind": "local", "path": "a.jsonl"}),
            "second": entry(
                {"kind": "local", "path": "b.jsonl"},
                fields={"instruction": "question", "output": "answer"},
            ),
        },
    )
    run_cli("build", "--catalog", catalog, "--out", tmp_path / "out")
    [a] = shard_rows(tmp_path / "out", "first")
    [b] = shard_rows(tmp_path / "out", "second")
    assert a["id"] == b["id"] == record_id(shared["instruction"], "", shared["output"], [])
    assert (a["source"], b["source"]) == ("first", "second")


# --- the compiled validator agrees with jsonschema ----------------------------------------------

GOOD = {
    "id": "d92dbed6bf46547de7f9c5f274af1de3",
    "instruction": "Name a primary colour.",
    "input": "",
    "output": "Red.",
    "history": [{"user": "Hi", "assistant": "Hello"}],
    "source": "alpaca_gpt4_en",
    "lang": "en",
    "tags": ["EN", "MT", "SI"],
    "provenance": {
        "file": "samples/alpaca/alpaca_data.json",
        "revision": "sha256:ab",
        "row": 0,
        "license": "cc-by-nc-4.0",
    },
    "meta": "{}",
}


def _with(path: str, value) -> dict:
    record = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = record
    for p in parents:
        node = node[int(p)] if isinstance(node, list) else node[p]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return record


_DELETE = object()

CASES = {
    "good": GOOD,
    "good-und-lang": _with("lang", "und"),
    "good-iso639-3": _with("lang", "yue"),
    "good-no-history": _with("history", []),
    "id-too-short": _with("id", "abc"),
    "id-uppercase": _with("id", GOOD["id"].upper()),
    "empty-instruction": _with("instruction", ""),
    "empty-output": _with("output", ""),
    "output-is-list": _with("output", ["Red."]),
    "missing-input": _with("input", _DELETE),
    "source-with-dash": _with("source", "alpaca-cot"),
    "source-uppercase": _with("source", "Alpaca"),
    "lang-too-long": _with("lang", "english"),
    "history-turn-missing-assistant": _with("history", [{"user": "Hi"}]),
    "history-turn-extra-key": _with("history", [{"user": "Hi", "assistant": "Yo", "x": "1"}]),
    "negative-row": _with("provenance.row", -1),
    "row-is-string": _with("provenance.row", "3"),
    "empty-license": _with("provenance.license", ""),
    "meta-is-object": _with("meta", {}),
    "extra-column": {**GOOD, "score": 1},
    "tags-not-strings": _with("tags", ["EN", 1]),
    "tags-not-a-list": _with("tags", "EN"),
    "row-is-bool": _with("provenance.row", True),
    "history-not-a-list": _with("history", {"user": "Hi", "assistant": "Yo"}),
    "history-turn-not-strings": _with("history", [{"user": "Hi", "assistant": None}]),
    "provenance-extra-key": _with("provenance.sha", "x"),
    "provenance-missing-file": _with("provenance.file", _DELETE),
    "input-is-none": _with("input", None),
    "good-with-system": {**GOOD, "system": "You are a helpful assistant."},
    "good-with-rejected": {**GOOD, "rejected": "Blue is not primary in paint."},
    "good-null-system-and-rejected": {**GOOD, "system": None, "rejected": None},
    "empty-system": {**GOOD, "system": ""},
    "empty-rejected": {**GOOD, "rejected": ""},
    "rejected-is-list": {**GOOD, "rejected": ["Blue."]},
    "system-is-number": {**GOOD, "system": 1},
}


@pytest.mark.parametrize("name", list(CASES))
def test_fastjsonschema_and_jsonschema_agree(name):
    import fastjsonschema

    record = CASES[name]
    reference = jsonschema.Draft202012Validator(load_json_schema("record"))
    reference_ok = reference.is_valid(record)
    try:
        record_validator()(copy.deepcopy(record))
        compiled_ok = True
    except fastjsonschema.JsonSchemaValueException:
        compiled_ok = False
    assert compiled_ok == reference_ok
    assert reference_ok == name.startswith("good")


def test_record_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(load_json_schema("record"))
    jsonschema.Draft202012Validator.check_schema(load_json_schema("catalog"))


# --- the columnar check the build runs on every row group -----------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_columnar_check_and_jsonschema_agree_on_the_record_as_written(name):
    """What is checked is the row as it lands in the shard; a value Arrow cannot hold in its column
    (a list where a string goes) never gets that far: the build checks those one by one."""
    import pyarrow as pa

    from alpacacot.pipeline import columnar_validator
    from alpacacot.record import ARROW_SCHEMA

    reference = jsonschema.Draft202012Validator(load_json_schema("record"))
    try:
        batch = pa.RecordBatch.from_pylist([GOOD, CASES[name], GOOD], schema=ARROW_SCHEMA)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        # Arrow cannot hold it only when the schema refuses it too (the build rejects it then).
        assert not reference.is_valid(CASES[name])
        return
    reference_ok = reference.is_valid(batch.to_pylist()[1])
    broken = columnar_validator()(batch)
    assert set(broken) == (set() if reference_ok else {1})


def test_the_columnar_check_names_the_field_and_finds_rows_inside_lists():
    import pyarrow as pa

    from alpacacot.pipeline import columnar_validator
    from alpacacot.record import ARROW_SCHEMA

    rows = [
        _with("history", [{"user": "Hi", "assistant": "Yo"}, {"user": "Bye"}]),
        GOOD,
        _with("provenance.row", -1),
        _with("lang", "EN"),
    ]
    broken = columnar_validator()(pa.RecordBatch.from_pylist(rows, schema=ARROW_SCHEMA))
    assert broken == {
        0: "data.history[].assistant (type)",
        2: "data.provenance.row (minimum)",
        3: "data.lang (pattern)",
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "email"}, r"keyword\(s\) format not supported"),
        ({"type": ["string", "integer"]}, "needs one `type`"),
        ({"type": ["null", "null"]}, "needs one `type`"),
        ({"type": "integer"}, "JSON type integer but Arrow type string"),
    ],
)
def test_the_columnar_check_refuses_a_schema_it_cannot_check(change, message):
    from alpacacot.record import ARROW_SCHEMA
    from alpacacot.schema_check import ColumnarValidator, SchemaCompileError

    schema = copy.deepcopy(load_json_schema("record"))
    schema["properties"]["meta"].update(change)
    with pytest.raises(SchemaCompileError, match=message):
        ColumnarValidator(schema, ARROW_SCHEMA)
    schema = copy.deepcopy(load_json_schema("record"))
    schema["required"].append("score")
    with pytest.raises(SchemaCompileError, match="required .*score.* not in the Arrow layout"):
        ColumnarValidator(schema, ARROW_SCHEMA)


@pytest.fixture
def shouting_is_tagged_english(monkeypatch):
    """The language tagger answers "English" (not a language code) for instructions that shout: a
    record the build makes that breaks the record schema."""
    from alpacacot import columnar
    from alpacacot.lang import LanguageTagger

    real_call = LanguageTagger.__call__
    monkeypatch.setattr(
        LanguageTagger,
        "__call__",
        lambda self, i, inp, out: "English" if "shout" in i else real_call(self, i, inp, out),
    )
    # The records the columnar path tags (columnar.py) are tagged on Arrow columns.
    real_languages = columnar._languages

    def languages(tagger, instruction, input_, output):
        langs = real_languages(tagger, instruction, input_, output)
        texts = instruction.to_pylist()
        return ["English" if "shout" in i else lang for i, lang in zip(texts, langs, strict=True)]

    monkeypatch.setattr(columnar, "_languages", languages)


@pytest.mark.usefixtures("shouting_is_tagged_english")
def test_a_group_arrow_cannot_hold_is_checked_record_by_record(tmp_path, monkeypatch):
    """A normalizer gives a tag that is not a string, and one that is not valid UTF-8: Arrow cannot
    build that row group, so each of its records is checked on its own. Each bad one becomes a
    reject naming its field (a bad language code among them), the rest is written, counts add up."""
    from alpacacot.normalizers import NORMALIZERS, register

    @register("test_numbered_tags")
    def numbered_tags(entry, subset):
        def normalize(row):
            return {"instruction": row["q"], "output": row["a"], "tags": row.get("tags")}

        return normalize

    monkeypatch.setitem(NORMALIZERS, "test_numbered_tags", numbered_tags)
    rows = [
        {"q": "Name a primary colour.", "a": "Red."},
        {"q": "Name a prime number.", "a": "Seven.", "tags": ["math", 7]},
        {"q": "Please shout the answer.", "a": "YES."},
        {"q": "Name a planet.", "a": "Mars."},
        {"q": "Please shout the answer.", "a": "YES."},
        {"q": "Name a metal.", "a": "Iron.", "tags": ["broken \ud800 tag"]},
    ]
    # ASCII-escaped JSON, as upstream files carry a lone surrogate.
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        {"odd": entry({"kind": "local", "path": "data.jsonl"}, normalizer="test_numbered_tags")},
    )
    out = tmp_path / "out"
    run_cli("build", "--catalog", catalog, "--out", out)

    assert [(r["output"], r["provenance"]["row"]) for r in shard_rows(out, "odd")] == [
        ("Red.", 0),
        ("Mars.", 3),
    ]
    rejects = reject_lines(out, "odd")
    # (This group holds a value Arrow cannot store, so each of its records is checked on its own:
    # the rejects come in row order.)
    assert [(r["row"], r["field"]) for r in rejects] == [(1, "tags[4]"), (2, "lang"), (5, "tags")]
    assert "must be string" in rejects[0]["reason"]
    assert "must match pattern" in rejects[1]["reason"]
    assert "cannot be stored in the shard" in rejects[2]["reason"]  # a string, but not UTF-8
    assert json.loads(rejects[0]["raw"])["tags"] == ["EN", "MT", "HG", "math", 7]  # the record
    source = json.loads((out / "manifest.json").read_text("utf-8"))["sources"]["odd"]
    # Row 4 repeats row 2 exactly: a duplicate, whatever became of the first one.
    assert source["counts"] == {"read": 6, "written": 2, "duplicates": 1, "rejected": 3}
    assert source["lang_counts"] == {"en": 2}


def test_a_lone_surrogate_in_an_unused_field_is_kept_as_its_json_escape(tmp_path):
    """Upstream JSON may escape half a surrogate pair ("\\ud800") in a field the mapping does not
    use: the record is written, and its meta reads back as exactly the upstream value."""
    lines = [
        '{"instruction": "Name a colour.", "output": "Red.", "note": "half \\ud800 pair", "zh": "红"}',
        '{"instruction": "Name a fruit.", "output": "Pear.", "zh": "梨"}',
    ]
    (tmp_path / "data.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    catalog = write_catalog(
        tmp_path / "catalog.yaml", {"odd": entry({"kind": "local", "path": "data.jsonl"})}
    )
    run_cli("build", "--catalog", catalog, "--out", tmp_path / "out")
    first, second = shard_rows(tmp_path / "out", "odd")
    assert json.loads(first["meta"]) == {"note": "half \ud800 pair", "zh": "红"}
    assert second["meta"] == '{"zh": "梨"}'  # readable where it can be


@pytest.mark.usefixtures("shouting_is_tagged_english")
def test_a_row_group_arrow_can_hold_is_checked_by_the_kernels(tmp_path):
    """No value in the group trips Arrow, so the columnar check finds the bad rows; they leave the
    group with the per-record validator's reason and the rest is written in order."""
    rows = [
        {"instruction": "Name a primary colour.", "output": "Red."},
        {"instruction": "Please shout the answer.", "output": "YES."},
        {"instruction": "Name a planet.", "output": "Mars."},
        {"instruction": "Please shout the answer.", "output": "YES."},
        {"instruction": "Now shout the question.", "output": "WHY?"},
    ]
    write_jsonl(tmp_path / "data.jsonl", rows)
    catalog = write_catalog(
        tmp_path / "catalog.yaml", {"loud": entry({"kind": "local", "path": "data.jsonl"})}
    )
    out = tmp_path / "out"
    run_cli("build", "--catalog", catalog, "--out", out)

    assert [(r["output"], r["provenance"]["row"]) for r in shard_rows(out, "loud")] == [
        ("Red.", 0),
        ("Mars.", 2),
    ]
    rejects = reject_lines(out, "loud")
    assert [(r["row"], r["field"], r["file"]) for r in rejects] == [
        (1, "lang", "data.jsonl"),
        (4, "lang", "data.jsonl"),
    ]
    assert all("data.lang must match pattern" in r["reason"] for r in rejects)
    assert json.loads(rejects[1]["raw"])["output"] == "WHY?"
    source = read_manifest(out)["sources"]["loud"]
    assert source["counts"] == {"read": 5, "written": 2, "duplicates": 1, "rejected": 2}
    assert source["lang_counts"] == {"en": 2}


def test_system_and_rejected_reach_the_shard_cleaned_and_leave_the_id_alone(tmp_path, monkeypatch):
    """Schema 1.1.0: a draft's `system` and `rejected` land in their columns (cleaned like every
    text; empty means null), rows without them get nulls, and the id hashes neither, so the same
    example with another system prompt or rejected answer is a duplicate of the first."""
    from alpacacot.normalizers import NORMALIZERS, register

    @register("test_preference")
    def preference(entry, subset):
        def normalize(row):
            draft = {"instruction": row["q"], "output": row["a"]}
            draft.update({k: row[k] for k in ("system", "rejected") if k in row})
            return draft

        return normalize

    monkeypatch.setitem(NORMALIZERS, "test_preference", preference)
    rows = [
        {
            "q": "Name a primary colour.",
            "a": "Red.",
            "rejected": "  Green.\x07 ",
            "system": "Be brief.",
        },
        {"q": "Name a planet.", "a": "Mars.", "system": "   "},
        {"q": "Name a primary colour.", "a": "Red.", "rejected": "Purple."},
        {"q": "Name a metal.", "a": "Iron.", "rejected": 3},
    ]
    write_jsonl(tmp_path / "data.jsonl", rows)
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        {"pairs": entry({"kind": "local", "path": "data.jsonl"}, normalizer="test_preference")},
    )
    out = tmp_path / "out"
    run_cli("build", "--catalog", catalog, "--out", out)
    written = shard_rows(out, "pairs")
    assert [(r["output"], r["system"], r["rejected"]) for r in written] == [
        ("Red.", "Be brief.", "Green."),
        ("Mars.", None, None),
    ]
    assert written[0]["id"] == record_id("Name a primary colour.", "", "Red.", [])
    [bad] = reject_lines(out, "pairs")
    assert (bad["row"], bad["field"]) == (3, "rejected")
    assert read_manifest(out)["sources"]["pairs"]["counts"] == {
        "read": 4,
        "written": 2,
        "duplicates": 1,
        "rejected": 1,
    }
