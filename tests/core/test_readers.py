"""Readers stream rows of every upstream format; a file that cannot be read says where and why."""

from __future__ import annotations

import gzip
import json

import pytest

from alpacacot.errors import MalformedFileError
from alpacacot.readers import RowError, iter_rows

ROW = {"instruction": "Name a primary colour.", "output": "Red."}
BOM = b"\xef\xbb\xbf"


def rows(path, fmt, **kw):
    return list(iter_rows(path, fmt, **kw))


@pytest.mark.parametrize(
    "fmt,content",
    [
        ("json", json.dumps([ROW]).encode()),
        ("jsonl", json.dumps(ROW).encode() + b"\n"),
        ("csv", b"instruction,output\nName a primary colour.,Red.\n"),
    ],
)
def test_a_utf8_byte_order_mark_is_skipped(tmp_path, fmt, content):
    path = tmp_path / f"bom.{fmt}"
    path.write_bytes(BOM + content)
    [(_, row)] = rows(path, fmt)
    assert row == ROW


def test_a_top_level_object_is_an_error_not_an_empty_source(tmp_path):
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"data": [ROW]}), encoding="utf-8")
    with pytest.raises(MalformedFileError, match="expected a JSON array") as info:
        rows(path, "json", name="data/wrapped.json")
    assert info.value.file == "data/wrapped.json"


def test_truncated_gzip_json_array_names_the_line(tmp_path):
    text = json.dumps([ROW, ROW, ROW], indent=1)
    path = tmp_path / "rows.json.gz"
    path.write_bytes(gzip.compress(text[: text.rindex("Red.")].encode()))
    with pytest.raises(MalformedFileError) as info:
        rows(path, "json", name="rows.json.gz")
    assert info.value.line == text[: text.rindex("Red.")].count("\n") + 1
    assert str(info.value).startswith(f"rows.json.gz, line {info.value.line}: ")


def test_invalid_utf8_inside_a_json_array_names_its_line(tmp_path):
    path = tmp_path / "rows.json"
    path.write_bytes(
        b'[\n{"instruction": "a", "output": "b"},\n{"instruction": "caf\xe9", "output": "c"}]'
    )
    with pytest.raises(MalformedFileError) as info:
        rows(path, "json")
    assert info.value.line == 3


def test_jsonl_rows_keep_their_line_numbers_across_blank_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(f"{json.dumps(ROW)}\n\n   \n[1, 2]\n{json.dumps(ROW)}", encoding="utf-8")
    got = rows(path, "jsonl")
    assert [i for i, _ in got] == [0, 3, 4]
    assert isinstance(got[1][1], RowError) and "expected a JSON object" in got[1][1].reason


def test_tsv_without_quoting_keeps_quotes_and_csv_keeps_quoted_newlines(tmp_path):
    tsv = tmp_path / "rows.tsv"
    tsv.write_text('He said "hi"\tok\n', encoding="utf-8")
    assert rows(tsv, "tsv", columns=["q", "a"]) == [(0, {"q": 'He said "hi"', "a": "ok"})]
    csv_path = tmp_path / "rows.csv"
    csv_path.write_text('q,a\n"two\nlines","x, y"\n', encoding="utf-8")
    assert rows(csv_path, "csv") == [(1, {"q": "two\nlines", "a": "x, y"})]


def test_invalid_utf8_in_a_csv_row_is_a_row_error(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_bytes(b"q,a\ncaf\xe9,x\nfine,y\n")
    got = rows(path, "csv")
    assert isinstance(got[0][1], RowError) and "UTF-8" in got[0][1].reason
    assert got[1] == (2, {"q": "fine", "a": "y"})


def test_not_a_parquet_file(tmp_path):
    path = tmp_path / "rows.parquet"
    path.write_bytes(b"PAR1 but not really")
    with pytest.raises(MalformedFileError, match="not a parquet file"):
        rows(path, "parquet")


def test_a_tar_archive_of_json_objects_gives_one_row_per_file(tmp_path):
    import io
    import tarfile

    archive = tmp_path / "ai_society_chat.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, body in [
            ("ai_society/001_001_001.json", b'{"id": "001_001_001", "num_messages": 2}'),
            ("ai_society/._001_001_001.json", b"\x00resource fork"),
            ("ai_society/001_001_002.json", b"{broken"),
            ("ai_society/001_001_003.json", b'{"id": "001_001_003"}'),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    rows = list(iter_rows(archive, "json"))
    assert [i for i, _ in rows] == [0, 1, 2]
    assert rows[0][1] == {"id": "001_001_001", "num_messages": 2}
    assert isinstance(rows[1][1], RowError)
    assert "ai_society/001_001_002.json: not a JSON object" in rows[1][1].reason
    assert rows[2][1] == {"id": "001_001_003"}


def test_a_broken_tar_archive_names_the_file(tmp_path):
    bad = tmp_path / "code_chat.tar.gz"
    bad.write_bytes(b"not a tar archive at all")
    with pytest.raises(MalformedFileError, match="code_chat.tar.gz.*not a readable tar archive"):
        list(iter_rows(bad, "json"))
