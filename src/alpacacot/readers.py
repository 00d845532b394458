"""Stream the rows of an upstream file, whatever its format, without loading it whole.

Every reader yields `(row, value)` where `row` is the 0-based position in the file (array index for a
JSON array, line index for line-based formats) and `value` is the parsed row or a `RowError` when that
one row cannot be parsed. A file that cannot be parsed past some point raises MalformedFileError.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import ijson

from alpacacot.errors import MalformedFileError

Row = tuple[int, "dict[str, Any] | RowError"]
# What errors="surrogateescape" turns an undecodable byte into.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class RowError:
    """One row that could not be parsed; it becomes a reject, the file goes on."""

    reason: str
    raw: str


@contextmanager
def open_binary(path: Path, compression: str = "infer"):
    """Open a file for binary reading, decompressing gzip when asked or when the name says so."""
    gz = compression == "gzip" or (compression == "infer" and path.name.endswith(".gz"))
    with gzip.open(path, "rb") if gz else open(path, "rb") as fh:
        yield fh


_BOM = b"\xef\xbb\xbf"


def _skip_bom(fh: IO[bytes]) -> None:
    """Start after a UTF-8 byte-order mark (Windows editors and Excel write one), if any."""
    if fh.read(3) != _BOM:
        fh.seek(0)


def _first_byte(fh: IO[bytes]) -> bytes:
    """The first non-whitespace byte from the current position (b"" when none); position kept."""
    pos = fh.tell()
    first = b""
    while chunk := fh.read(1 << 16):
        if stripped := chunk.lstrip():
            first = stripped[:1]
            break
    fh.seek(pos)
    return first


def read_json_array(fh: IO[bytes], name: str) -> Iterator[Row]:
    # ijson's "item" prefix finds nothing in a top-level object: say so rather than read 0 rows.
    first = _first_byte(fh)
    if first != b"[":
        found = repr(first.decode("utf-8", "replace")) if first else "an empty file"
        raise MalformedFileError(
            name,
            None,
            f"expected a JSON array of objects at the top level, found {found} "
            "(one JSON object per line is `format: jsonl`)",
        )
    try:
        for i, item in enumerate(ijson.items(fh, "item", use_float=True)):
            yield (
                i,
                item
                if isinstance(item, dict)
                else RowError(
                    f"expected a JSON object, got {type(item).__name__}", json.dumps(item)[:2000]
                ),
            )
    except ijson.JSONError as exc:
        raise MalformedFileError(
            name, _json_error_line(fh), f"not a valid JSON array ({exc})"
        ) from exc


def _json_error_line(fh: IO[bytes]) -> int | None:
    """Find the line of a JSON syntax error (only on the error path, so a full parse is fine)."""
    try:
        fh.seek(0)
        data = fh.read()
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return data.count(b"\n", 0, exc.start) + 1
        json.loads(text)
    except json.JSONDecodeError as exc:
        return exc.lineno
    except Exception:  # noqa: BLE001 - best effort: the caller already has an error to report
        return None
    return None


def read_jsonl(fh: IO[bytes], name: str, first_row: int = 0) -> Iterator[Row]:
    for i, line in enumerate(fh, start=first_row):
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield i, RowError(f"invalid UTF-8 at byte {exc.start}", line.decode("utf-8", "replace"))
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield i, RowError(f"unparsable JSON line: {exc.msg} at column {exc.colno}", text[:2000])
            continue
        if not isinstance(value, dict):
            yield i, RowError(f"expected a JSON object, got {type(value).__name__}", text[:2000])
            continue
        yield i, value


def _read_delimited(
    fh: IO[bytes], name: str, delimiter: str, columns: list[str] | None, first_row: int = 0
) -> Iterator[Row]:
    # newline="" keeps line breaks inside quoted CSV fields; TSV (no quoting) is one row per line.
    text = io.TextIOWrapper(fh, encoding="utf-8", errors="surrogateescape", newline="")
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(text, delimiter=delimiter, quoting=quoting, strict=True)
    header = columns
    offset = first_row
    try:
        if header is None:
            header = next(reader, None)
            offset += 1
            if header is None:
                return
        width = len(header)
        for i, cells in enumerate(reader, start=offset):
            if not cells:
                continue
            raw = delimiter.join(cells)
            if not raw.isascii() and _ESCAPED_BYTE.search(raw):
                yield (
                    i,
                    RowError(
                        "invalid UTF-8",
                        raw.encode("utf-8", "surrogateescape").decode("utf-8", "replace"),
                    ),
                )
                continue
            if len(cells) != width:
                yield (
                    i,
                    RowError(
                        f"expected {width} columns ({', '.join(header)}), got {len(cells)}", raw
                    ),
                )
                continue
            yield i, dict(zip(header, cells, strict=True))
    except csv.Error as exc:
        raise MalformedFileError(
            name, first_row + reader.line_num, f"not valid {delimiter!r}-separated text: {exc}"
        ) from exc


def read_tsv(
    fh: IO[bytes], name: str, columns: list[str] | None = None, first_row: int = 0
) -> Iterator[Row]:
    return _read_delimited(fh, name, "\t", columns, first_row)


def read_csv(
    fh: IO[bytes], name: str, columns: list[str] | None = None, first_row: int = 0
) -> Iterator[Row]:
    return _read_delimited(fh, name, ",", columns, first_row)


def read_parquet(fh: IO[bytes], name: str) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(fh)
    except Exception as exc:  # pyarrow raises ArrowInvalid and OSError subclasses
        raise MalformedFileError(name, None, f"not a parquet file ({exc})") from exc
    i = 0
    for batch in pf.iter_batches(batch_size=4096):
        for row in batch.to_pylist():
            yield i, row
            i += 1


READERS: dict[str, Callable[..., Iterator[Row]]] = {
    "json": read_json_array,
    "jsonl": read_jsonl,
    "tsv": read_tsv,
    "csv": read_csv,
    "parquet": read_parquet,
}


def iter_rows(
    path: Path,
    fmt: str,
    *,
    name: str | None = None,
    columns: list[str] | None = None,
    compression: str = "infer",
    span: tuple[int, int, int] | None = None,
) -> Iterator[Row]:
    """Yield `(row, dict | RowError)` for every row of `path` read as `fmt`.

    `span` = (start, end, first_row) reads only the bytes [start, end) of an uncompressed JSON Lines,
    TSV or CSV file, cut at line ends, whose first line is row `first_row` of the file (see
    `units.py`); `columns` then names the columns of a delimited file whose header is elsewhere."""
    name = name or str(path)
    if fmt not in READERS:
        raise MalformedFileError(
            name, None, f"unknown format {fmt!r}; use one of {', '.join(READERS)}"
        )
    if span is not None:
        start, end, first_row = span
        with open(path, "rb") as raw:
            raw.seek(start)
            fh = io.BytesIO(raw.read(end - start))
        if start == 0:
            _skip_bom(fh)
        if fmt in ("tsv", "csv"):
            yield from READERS[fmt](fh, name, columns, first_row)
        else:
            yield from READERS[fmt](fh, name, first_row)
        return
    with open_binary(path, compression) as fh:
        if fmt != "parquet":
            _skip_bom(fh)
        if fmt in ("tsv", "csv"):
            yield from READERS[fmt](fh, name, columns)
        else:
            yield from READERS[fmt](fh, name)
