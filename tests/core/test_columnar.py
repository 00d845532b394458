"""The columnar path (`columnar.py`) writes what the per-record path writes, byte for byte: tricky
JSON Lines inputs built both ways, cut into many units and whole, and the files compared."""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml

from alpacacot import columnar
from alpacacot.build import BuildRequest, build
from alpacacot.catalog import load_catalog
from alpacacot.pipeline import BuildOptions, _Candidates, check_table
from alpacacot.record import ARROW_SCHEMA
from alpacacot.writer import RowGroup

SAMPLES = Path(__file__).resolve().parents[2] / "src" / "alpacacot" / "samples"
RUN = columnar.run


def _line(row: dict[str, Any], ascii_only: bool = False) -> bytes:
    return json.dumps(row, ensure_ascii=ascii_only).encode() + b"\n"


def _rows(seed: int) -> list[bytes]:
    """JSON lines of every kind the two paths must agree on."""
    rng = random.Random(seed)
    words = (
        "the a of to and in is are for on with that this it how what which you can not "
        "de la el que les des und der das ist het een yang dan Python code 42 x=1; naïve café "
        "这是 一个 中文 句子 日本語の テキスト 한국어 문장 “quoted” — emoji 😀 "
        "Translate into German: Ich bin müde"
    ).split()

    def text(lo: int, hi: int) -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(lo, hi)))

    lines = []
    for _ in range(120):
        row = {"instruction": text(1, 30), "input": rng.choice(["", "", text(1, 8)]),
               "output": text(1, 60)}  # fmt: skip
        lines.append(_line(row, ascii_only=rng.random() < 0.3))
    odd_rows: list[Any] = [
        {"instruction": "  padded\t\n ", "input": "\n", "output": " answer  "},
        {"instruction": "e\u0301 NFD text", "input": "", "output": "caf\u00e9 vs cafe\u0301"},
        {"instruction": "\u3000wide space\u3000", "input": "\xa0", "output": "nbsp\xa0"},
        {"instruction": "line\u2028sep", "input": "", "output": "ok\u2029"},
        {"instruction": "ctrl\x00\x0b\x1f\x7f here", "input": "", "output": "bell\x07"},
        {"instruction": "c1 \x85\x9f controls", "input": "", "output": "\r\nCRLF\r\n"},
        {"instruction": "pair \U0001f600 ok", "input": "", "output": "y"},
        {"instruction": "Say hi", "input": "<noinput>", "output": "hi"},
        {"instruction": "Say hi", "input": ' "<noinput>" ', "output": "hi"},
        {"instruction": "Say hi", "input": "not <noinput> alone", "output": "hi"},
        {"instruction": "No answer", "input": "", "output": "<nooutput> This cannot be done"},
        {"instruction": "No answer", "input": "", "output": "  <nooutput>"},
        {"instruction": "Mentions <nooutput> only", "input": "", "output": "fine"},
        {"instruction": "", "input": "", "output": "empty instruction"},
        {"instruction": " \t ", "input": "", "output": "blank instruction"},
        {"instruction": "empty output", "input": "", "output": "\x0b"},
        {"instruction": "null input", "input": None, "output": "z"},
        {"instruction": "no input", "output": "z2"},
        {"instruction": None, "input": "", "output": "null instruction"},
        {"input": "", "output": "missing instruction"},
        {"instruction": "missing output", "input": ""},
        {"instruction": "padded", "input": "\n", "output": "answer"},  # a duplicate once cleaned
        {"instruction": "Say hi", "input": "<noinput>", "output": "hi"},  # a duplicate
        {"instruction": "one two three four five six seven eight", "input": "", "output": "x"},
        {"instruction": " ".join(["the"] * 30), "input": "", "output": "y" * 400},
        {"instruction": "x" * 299, "input": "", "output": "the and of to in is for on with"},
        {"instruction": "It's a \\n test; don't split it's words", "input": "", "output": "ok"},
        {"instruction": "1234 5678", "input": "", "output": "9012"},
        {"instruction": "SHOUTING IN CAPITALS FOR THE WIN", "input": "", "output": "OK"},
        {"instruction": "¿Dónde está la biblioteca?", "input": "", "output": "Está aquí."},
        {"instruction": "Was ist das und wie geht es dir", "input": "", "output": "Gut"},
    ]
    lines += [_line(r) for r in odd_rows]
    lines += [_line(r, ascii_only=True) for r in odd_rows[:8]]
    lines += [
        b'{"instruction": "escaped \\u003cnoinput>", "input": "\\u003cnoinput>", "output": "o"}\n',
        b'{"instruction": "esc \\u0041\\u0062", "input": "", "output": "\\b\\f\\r\\t\\n"}\n',
        b'{"instruction": "a DEL \x7f raw", "input": "", "output": "o"}\n',
        b'{"instruction": "C1 raw \xc2\x85", "input": "", "output": "o"}\n',
        b'{"instruction": "\\\\b escaped backslash", "input": "", "output": "\\\\u0041"}\n',
        b'{"instruction":"compact","input":"","output":"no spaces"}\n',
    ]
    return lines


# Whole inputs that Arrow and Python's json may read differently: each must still agree.
UNUSUAL = {
    "extra_fields": b'{"instruction": "i", "input": "", "output": "o", "category": "x", "n": 1.5}\n',
    "nan": b'{"instruction": "i", "input": "", "output": "o", "score": NaN}\n',
    "wrong_type": b'{"instruction": 5, "input": "", "output": "o"}\n',
    "nested": b'{"instruction": {"a": 1}, "input": "", "output": "o"}\n',
    "duplicate_key": b'{"instruction": "a", "instruction": "b", "input": "", "output": "o"}\n',
    "blank_line": b"\n",
    "spaces_line": b"   \n",
    "crlf": b'{"instruction": "crlf", "input": "", "output": "o"}\r\n',
    "leading_space": b' {"instruction": "lead", "input": "", "output": "o"}\n',
    "two_objects": b'{"instruction": "a", "output": "b"} {"instruction": "c", "output": "d"}\n',
    "split_object": b'{"instruction": "split",\n"input": "", "output": "o"}\n',
    "not_json": b"this is not json\n",
    "array_line": b'["a", "b"]\n',
    "scalar_line": b"42\n",
    "invalid_utf8": b'{"instruction": "bad \xff byte", "input": "", "output": "o"}\n',
    "invalid_utf8_at_end": b'{"instruction": "i", "input": "", "output": "bad \xc3"}\n',
    "invalid_utf8_slow_row": b'{"instruction": "\\b \xe4\xb8", "input": "", "output": "o"}\n',
    "lone_surrogate": b'{"instruction": "lone \\udc00", "input": "", "output": "o"}\n',
    "lone_high_surrogate": b'{"instruction": "lone \\ud800 x", "input": "", "output": "o"}\n',
    "raw_tab": b'{"instruction": "raw\ttab", "input": "", "output": "o"}\n',
    "bom_inside": b'\xef\xbb\xbf{"instruction": "bom", "input": "", "output": "o"}\n',
    "trailing_comma": b'{"instruction": "t", "input": "", "output": "o",}\n',
}


def _catalog(root: Path, files: dict[str, bytes], **extra: Any) -> Path:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    datasets = {}
    for key, content in files.items():
        fmt = extra.get(key, {}).get("format", "jsonl")
        (data / f"{key}.{fmt}").write_bytes(content)
        datasets[key] = {
            "description": "tricky JSON Lines",
            "license": "cc-by-4.0",
            "languages": ["en"],
            "tags": {"lang": "EN", "task": "MT", "gen": "HG"},
            "format": "jsonl",
            "normalizer": "alpaca",
            "source": {"kind": "local", "files": [{"path": f"data/{key}.{fmt}"}]},
            **extra.get(key, {}),
        }
    path = root / "catalog.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "datasets": datasets}), "utf-8")
    return path


def _fingerprint(out: Path) -> tuple[dict[str, str], dict[str, Any]]:
    files = {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in ("manifest.json", "README.md", ".lock")
    }
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    manifest.pop("built_at")
    for source in manifest["sources"].values():
        source.pop("seconds")
    return files, manifest


def _build_both(
    catalog: Path,
    out: Path,
    monkeypatch: pytest.MonkeyPatch,
    unit_bytes: int,
    unit_rows: int = 20_000,
    may_fail: bool = False,
    **options: Any,
) -> tuple[Any, Any, int]:
    """The fingerprints of the build with and without the columnar path, and how many units it
    took (`may_fail`: a build that fails gives its failures instead)."""
    cat = load_catalog(catalog)
    taken = []

    def counting(unit: Any, tagger: Any) -> Any:
        result = RUN(unit, tagger)
        taken.append(result is not None)
        return result

    def once(name: str) -> Any:
        report = build(
            cat,
            BuildRequest(
                keys=list(cat.datasets),
                out_dir=out / name,
                unit_bytes=unit_bytes,
                unit_rows=unit_rows,
                options=BuildOptions(progress_every=7, **options),
            ),
        )
        if may_fail and report.failed:
            return report.failed
        assert not report.failed, report.failed
        return _fingerprint(out / name)

    monkeypatch.setattr(columnar, "run", counting)
    fast = once("columnar")
    monkeypatch.setattr(columnar, "run", lambda unit, tagger: None)
    slow = once("per-record")
    return fast, slow, sum(taken)


@pytest.mark.parametrize("unit_bytes", [1_500, 1 << 24])
def test_tricky_rows_build_the_same_files_both_ways(tmp_path, monkeypatch, unit_bytes):
    lines = _rows(1)
    # A byte-order mark first, and no line end after the last line.
    content = b"\xef\xbb\xbf" + b"".join(lines).rstrip(b"\n")
    again = b"".join(_rows(2)) + b"".join(_rows(2)[:40])  # duplicates across units
    catalog = _catalog(
        tmp_path,
        {"tricky": content, "again": again, "plain": b"".join(lines[:100])},
        plain={"normalizer": "fields"},
    )
    fast, slow, taken = _build_both(catalog, tmp_path, monkeypatch, unit_bytes)
    assert fast == slow
    assert taken >= 3  # every source took the columnar path, in all or some of its units
    counts = fast[1]["sources"]["tricky"]["counts"]
    assert counts["rejected"] >= 8 and counts["duplicates"] >= 2
    assert fast[1]["sources"]["again"]["counts"]["duplicates"] >= 40


@pytest.mark.parametrize("name", sorted(UNUSUAL))
def test_unusual_lines_build_the_same_files_both_ways(tmp_path, monkeypatch, name):
    """One unusual line among ordinary ones, at the start, in the middle and at the end of a unit."""
    lines = _rows(3)[:60]
    content = UNUSUAL[name] + b"".join(lines[:30]) + UNUSUAL[name] + b"".join(lines[30:])
    content += UNUSUAL[name]
    catalog = _catalog(tmp_path, {"odd": content})
    fast, slow, _ = _build_both(catalog, tmp_path, monkeypatch, 1 << 24)
    assert fast == slow


def _array(lines: list[bytes], indent: int | None = None, ascii_only: bool = False) -> bytes:
    """The JSON lines as one JSON array: each line's own bytes (`indent` None) or re-dumped."""
    if indent is None:
        return b"[\n" + b",\n".join(line.rstrip(b"\n") for line in lines) + b"\n]\n"
    rows = [json.loads(line) for line in lines]
    return json.dumps(rows, indent=indent, ensure_ascii=ascii_only).encode()


@pytest.mark.parametrize(("unit_bytes", "unit_rows"), [(1 << 24, 20_000), (1_500, 37)])
def test_tricky_rows_in_json_arrays_build_the_same_files_both_ways(
    tmp_path, monkeypatch, unit_bytes, unit_rows
):
    """Whole small arrays (parsed by the unit) and the rows of a large one (handed on)."""
    lines = _rows(1)
    again = _rows(2) + _rows(2)[:40]
    files = {
        "tricky": b"\xef\xbb\xbf" + _array(lines),
        "indented": _array(lines, indent=4),
        "escaped": _array(lines[::-1], indent=2, ascii_only=True),
        "again": _array(again, indent=4),
        "plain": _array(lines[:100]),
    }
    extra = {key: {"format": "json"} for key in files}
    extra["plain"]["normalizer"] = "fields"
    catalog = _catalog(tmp_path, files, **extra)
    fast, slow, taken = _build_both(catalog, tmp_path, monkeypatch, unit_bytes, unit_rows)
    assert fast == slow
    assert taken >= 5
    counts = fast[1]["sources"]["tricky"]["counts"]
    assert counts["rejected"] >= 8 and counts["duplicates"] >= 2
    assert fast[1]["sources"]["again"]["counts"]["duplicates"] >= 40


# Array items the columnar path must send to the per-record path, or leave the unit to it (some
# make the reader refuse the file: the build fails the same way both ways).
UNUSUAL_ITEMS = {
    "extra_fields": b'{"instruction": "i", "input": "", "output": "o", "category": "x", "n": 1.5}',
    "extra_nested": b'{"instruction": "i", "output": "o", "m": {"k": [1, 2.5, null, true]}}',
    "file_field": b'{"instruction": "i", "input": "", "output": "o", "_file": "x"}',
    "nan": b'{"instruction": "i", "input": "", "output": "o", "score": NaN}',
    "infinity": b'{"instruction": "i", "input": "", "output": "o", "score": -Infinity}',
    "huge_float": b'{"instruction": "i", "input": "", "output": "o", "score": 1e400}',
    "tiny_float": b'{"instruction": "i", "input": "", "output": "o", "score": 1e-400}',
    "huge_int": b'{"instruction": "i", "input": "", "output": "o", "n": 123456789012345678901}',
    "wrong_type": b'{"instruction": 5, "input": "", "output": "o"}',
    "input_number": b'{"instruction": "i", "input": 7, "output": "o"}',
    "nested": b'{"instruction": {"a": 1}, "input": "", "output": "o"}',
    "duplicate_key": b'{"instruction": "a", "instruction": "b", "input": "", "output": "o"}',
    "null_item": b"null",
    "scalar_item": b"42",
    "list_item": b'["a", "b"]',
    "empty_object": b"{}",
    "lone_surrogate": b'{"instruction": "lone \\udc00", "input": "", "output": "o"}',
    "lone_surrogate_meta": b'{"instruction": "i", "output": "o", "x": "\\ud800"}',
    "surrogate_pair": b'{"instruction": "pair \\ud83d\\ude00", "input": "", "output": "o"}',
    "raw_control": b'{"instruction": "raw \x01", "input": "", "output": "o"}',
    "invalid_utf8": b'{"instruction": "bad \xff byte", "input": "", "output": "o"}',
    "placeholder_at_end": b'{"instruction": "i", "input": "", "output": "x <nooutput>"}',
    "input_placeholder_at_end": b'{"instruction": "i", "output": "o", "input": "<noinput>"}',
    "control_escapes": b'{"instruction": "\\u001f i \\u0085", "input": "\\r", "output": "\\f"}',
}


@pytest.mark.parametrize("name", sorted(UNUSUAL_ITEMS))
def test_unusual_array_items_build_the_same_files_both_ways(tmp_path, monkeypatch, name):
    """One unusual item among ordinary ones, at the start, in the middle and at the end."""
    items = [line.rstrip(b"\n") for line in _rows(3)[:60]]
    odd = UNUSUAL_ITEMS[name]
    content = b"[" + b",\n".join([odd, *items[:30], odd, *items[30:], odd]) + b"]"
    catalog = _catalog(tmp_path, {"odd": content}, odd={"format": "json"})
    fast, slow, _ = _build_both(catalog, tmp_path, monkeypatch, 1 << 24, may_fail=True)
    assert fast == slow


def test_a_mapping_and_the_language_backends_build_the_same_files_both_ways(tmp_path, monkeypatch):
    rows = [
        {"q": r["instruction"], "a": r["output"]}
        for r in map(json.loads, _rows(4)[:150])
        if "instruction" in r and "output" in r
    ]
    content = b"".join(_line(r) for r in rows)
    catalog = _catalog(
        tmp_path,
        {"mapped": content},
        mapped={"normalizer": "fields", "fields": {"instruction": "q", "output": "a"}},
    )
    for backend in ("none", "fasttext"):
        fast, slow, taken = _build_both(
            catalog, tmp_path / backend, monkeypatch, 2_000, lang_backend=backend
        )
        assert fast == slow and taken


def test_real_jsonl_excerpts_build_the_same_files_both_ways(tmp_path, monkeypatch):
    files = {
        "belle": (SAMPLES / "belle_1m" / "Belle_open_source_1M.json").read_bytes(),
        "alpaca": b"".join(
            _line(r)
            for r in json.loads((SAMPLES / "alpaca" / "alpaca_data.json").read_text("utf-8"))
        ),
    }
    catalog = _catalog(tmp_path, files, belle={"normalizer": "fields"})
    fast, slow, taken = _build_both(catalog, tmp_path, monkeypatch, 4_000)
    assert fast == slow and taken


def test_the_record_schema_check_on_a_table_words_rejects_as_on_a_row_group():
    group = RowGroup("src", "cc-by-4.0", "data/f.jsonl", "sha256:00")
    for i, lang in enumerate(["en", "EN!", "zh", "x"]):
        group.id.append(f"{i:032x}")
        group.instruction.append(f"instruction {i}")
        group.input.append("")
        group.output.append("" if i == 2 else "output")
        group.history.append([])
        group.lang.append(lang)
        group.tags.append(["EN"])
        group.row.append(i)
        group.meta.append("{}")
        group.system.append(None)
        group.rejected.append(None)
    candidates = _Candidates("src", "cc-by-4.0", BuildOptions())
    expected = candidates._check(group)
    table, broken = check_table(pa.Table.from_batches([group.to_batch()]))
    assert table.equals(pa.Table.from_batches([expected], schema=ARROW_SCHEMA))
    assert broken == candidates.broken and sorted(broken) == [1, 2, 3]


def test_the_english_rule_on_columns_is_the_rule_on_each_text():
    from alpacacot.lang import RULE_PREFIX, _is_plain_english

    rng = random.Random(5)
    alphabet = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 '\\.,;:-\t\n")
    words = ["the", "and", "of", "to", "de", "la", "que", "und", "The", "AND", "it's", "x"]
    texts = ["", " ", "  the  ", "the " * 30]
    for _ in range(3000):
        parts = [rng.choice(words) if rng.random() < 0.6 else rng.choice(alphabet) for _ in
                 range(rng.randint(0, 80))]  # fmt: skip
        texts.append(rng.choice([" ", "", "  ", "."]).join(parts)[:RULE_PREFIX])
    got = columnar.plain_english(pa.array(texts, pa.string()))
    assert got.tolist() == [_is_plain_english(t) for t in texts]


def test_nfc_makes_no_control_character():
    """The columnar path cleans text that holds no control character by NFC and strip alone:
    NFC of any other character holds none, and no control character is a composition."""
    import sys
    import unicodedata

    from alpacacot.record import _CONTROL

    for cp in range(sys.maxunicode + 1):
        c = chr(cp)
        if _CONTROL.match(c):
            assert unicodedata.decomposition(c) == ""
        elif not 0xD800 <= cp <= 0xDFFF:
            assert not _CONTROL.search(unicodedata.normalize("NFC", c)), hex(cp)


def test_the_script_ranges_are_those_of_the_tagger():
    import sys

    from alpacacot.lang import _HAN, _HANGUL, _KANA, _LATIN_WORD

    chars = [chr(cp) for cp in range(0x10000) if not 0xD800 <= cp <= 0xDFFF]
    got = pc.match_substring_regex(pa.array(chars, pa.string()), columnar._SCRIPTS).to_pylist()
    assert got == [bool(_HAN.search(c) or _HANGUL.search(c)) for c in chars]
    latin = re.compile(_LATIN_WORD.pattern.removesuffix("{2,}"))
    expected = [
        columnar._HAN if _HAN.match(c) else columnar._HANGUL if _HANGUL.match(c)
        else columnar._KANA if _KANA.match(c) else columnar._LATIN if latin.match(c) else 0
        for c in map(chr, range(sys.maxunicode + 1))
    ]  # fmt: skip
    assert columnar._SCRIPT_CLASSES.tolist() == expected


def _mixed_texts(rng: random.Random, count: int) -> list[str]:
    """Texts of Han, Hangul, Kana and Latin letters (accented too), other scripts, digits,
    punctuation and spaces, in runs, some longer than the 2,000 characters the rules read."""
    pieces = ["中文", "字", "한국어", "かな", "カタカナ", "ab", "x", "Éa", "ñ", "ÿz", "ß", "Ω", "Ж",
              "١", " ", ", ", "1", "\n", "é", "\u0100\u024f", "\u0250", "\U00020000", "😀",
              "\u3400", "\u4dbf\u4dc0", "\uf900", "\ufb00", "\u1100", "\u30ff"]  # fmt: skip
    # Rows that end and begin with Latin letters: a word never runs from one row into the next.
    texts = ["", "a", "中", "ab 中", "中 ab x", "ab", "中 ab c", "d 中 ab", "中x", "y"]
    for _ in range(count):
        runs = [rng.choice(pieces) * rng.choice([1, 1, 1, 2, 5]) for _ in range(rng.randint(0, 40))]
        text = "".join(runs)
        if rng.random() < 0.05:
            text = text * (2100 // max(1, len(text)) + 1)
        texts.append(text)
    return texts


def test_the_script_rules_on_columns_are_the_rules_on_each_text():
    from alpacacot.lang import _script_language

    texts = _mixed_texts(random.Random(7), 4000)
    got = columnar.script_languages(pa.array([t[:2000] for t in texts], pa.string()))
    assert list(got) == [_script_language(t[:2000]) for t in texts]
    # A slice of a column (its offsets do not start at 0) gives the same.
    column = pa.array(texts, pa.string()).slice(100, 500)
    assert list(columnar.script_languages(column)) == [_script_language(t) for t in texts[100:600]]


def test_the_columns_get_the_tagger_s_language_of_every_record():
    from alpacacot.lang import LanguageTagger

    rng = random.Random(11)
    texts = _mixed_texts(rng, 3000) + ["The cat sat on the mat and the dog ran to it."] * 20
    rows = [(rng.choice(texts), rng.choice(["", *texts[:50]]), rng.choice(texts) or "x")
            for _ in range(3000)]  # fmt: skip
    rows = [(a or "i", b, c) for a, b, c in rows]
    tagger = LanguageTagger("fasttext", ["zh"])
    columns = [pa.array(list(c), pa.string()) for c in zip(*rows, strict=True)]
    assert columnar._languages(tagger, *columns) == [tagger(a, b, c) for a, b, c in rows]


def test_records_the_schema_refuses_are_rejected_the_same_way_both_ways(tmp_path, monkeypatch):
    """Records the record schema check flags, among the fast rows and the per-record ones, leave
    the same reject lines in the same places (a stand-in check flags them by their text)."""
    from alpacacot import pipeline

    def flag(batch: pa.RecordBatch) -> dict[int, str]:
        texts = batch.column("instruction").to_pylist()
        return {i: "instruction (pattern)" for i, t in enumerate(texts) if "BREAK" in t}

    monkeypatch.setattr(pipeline, "columnar_validator", lambda: flag)
    lines = _rows(6)[:80]
    lines[5] = _line({"instruction": "BREAK fast", "input": "", "output": "o"})
    lines[9] = _line({"instruction": "BREAK slow", "input": "<noinput>", "output": "o"})
    lines[10] = _line({"instruction": "slow \u0085", "input": "", "output": "o"})
    lines[40] = _line({"instruction": "BREAK again", "input": "", "output": "o"})
    catalog = _catalog(tmp_path, {"flagged": b"".join(lines)})
    fast, slow, taken = _build_both(catalog, tmp_path, monkeypatch, 1 << 24)
    assert fast == slow and taken
    assert fast[1]["sources"]["flagged"]["counts"]["rejected"] >= 3
