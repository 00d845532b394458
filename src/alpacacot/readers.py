"""Stream the rows of an upstream file, whatever its format, without loading it whole.

Every reader yields `(row, value)` where `row` is the 0-based position in the file (array index for a
JSON array, line index for line-based formats) and `value` is the parsed row or a `RowError` when that
one row cannot be parsed. A file that cannot be parsed past some point raises MalformedFileError.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import itertools
import json
import re
import tarfile
import zipfile
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
    """Open a file for binary reading, decompressing gzip (or the one file of a zip archive, as the
    Hub publishes MOSS) when asked or when the name says so."""
    if compression == "zip" or (compression == "infer" and path.name.endswith(".zip")):
        with zipfile.ZipFile(path) as archive:
            members = [
                m
                for m in archive.infolist()
                if not m.is_dir() and not m.filename.startswith("__MACOSX/")
            ]
            if len(members) != 1:
                names = ", ".join(m.filename for m in members[:5]) or "none"
                raise MalformedFileError(
                    str(path),
                    None,
                    f"a zip source must hold exactly one data file, found {len(members)} "
                    f"({names}); list the files separately or unpack the archive",
                )
            with archive.open(members[0]) as fh:
                yield fh
        return
    gz = compression == "gzip" or (compression == "infer" and path.name.endswith(".gz"))
    with gzip.open(path, "rb") if gz else open(path, "rb") as fh:
        yield fh


_BOM = b"\xef\xbb\xbf"


def _skip_bom(fh: IO[bytes]) -> None:
    """Start after a UTF-8 byte-order mark (Windows editors and Excel write one), if any."""
    if fh.read(3) != _BOM:
        fh.seek(0)


class _Utf8Recoder(io.RawIOBase):
    """A file in another text encoding, re-encoded as UTF-8 while it is read (ijson parses UTF-8
    bytes). A byte sequence that does not decode raises UnicodeDecodeError."""

    def __init__(self, fh: IO[bytes], encoding: str):
        self._text = io.TextIOWrapper(fh, encoding=encoding, newline="")
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = self._text.read(1 << 16)
            if not chunk:
                return 0
            self._pending = chunk.encode("utf-8", "surrogatepass")
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


def _first_byte(fh: IO[bytes]) -> bytes:
    """The first non-whitespace byte from the current position (b"" when none); position kept."""
    if not fh.seekable():  # a re-encoded stream: look ahead in its buffer
        return fh.peek(1 << 16).lstrip()[:1]  # type: ignore[attr-defined]
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


def _is_utf8(encoding: str) -> bool:
    return codecs.lookup(encoding).name == "utf-8"


# This many rows that do not decode, with none that does before them: the file is in another
# encoding, and rejecting it row by row would only hide that.
UNDECODABLE_RUN = 3


def _undecodable(name: str, row: int, encoding: str, run: int) -> None:
    """Stop at the `UNDECODABLE_RUN`th undecodable row from the start of a file."""
    if run >= UNDECODABLE_RUN:
        hint = (
            "; if the file is in another encoding, set `encoding:` in the catalog entry "
            "(e.g. gb18030)"
            if _is_utf8(encoding)
            else "; check the entry's `encoding:`"
        )
        raise MalformedFileError(
            name, row + 1, f"rows up to {row} are not valid {encoding} text{hint}"
        )


def read_jsonl(
    fh: IO[bytes], name: str, encoding: str = "utf-8", first_row: int = 0
) -> Iterator[Row]:
    run = 0  # undecodable rows since the start of the file (0 once a row decodes)
    decoded = (
        first_row > 0
    )  # a later part of a file (a unit) rejects row by row, as a whole read would
    for i, line in enumerate(fh, start=first_row):
        if not line.strip():
            continue
        try:
            text = line.decode(encoding)
        except UnicodeDecodeError as exc:
            run = 0 if decoded else run + 1
            _undecodable(name, i, encoding, run)
            yield (
                i,
                RowError(
                    f"invalid {'UTF-8' if _is_utf8(encoding) else encoding} at byte {exc.start}",
                    line.decode(encoding, "replace"),
                ),
            )
            continue
        decoded = True
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
    fh: IO[bytes],
    name: str,
    delimiter: str,
    columns: list[str] | None,
    encoding: str = "utf-8",
    first_row: int = 0,
) -> Iterator[Row]:
    # newline="" keeps line breaks inside quoted CSV fields; TSV (no quoting) is one row per line.
    # surrogateescape turns a byte that does not decode into a lone surrogate: that row is
    # rejected (naming the encoding), the file goes on.
    text = io.TextIOWrapper(fh, encoding=encoding, errors="surrogateescape", newline="")
    label = "UTF-8" if _is_utf8(encoding) else encoding
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
            if _ESCAPED_BYTE.search("".join(header)):
                _undecodable(name, 0, encoding, UNDECODABLE_RUN)
        width = len(header)
        run, decoded = 0, first_row > 0  # as in read_jsonl
        for i, cells in enumerate(reader, start=offset):
            if not cells:
                continue
            raw = delimiter.join(cells)
            if not raw.isascii() and _ESCAPED_BYTE.search(raw):
                run = 0 if decoded else run + 1
                _undecodable(name, i, encoding, run)
                yield (
                    i,
                    RowError(
                        f"invalid {label} (row {i} of {name})",
                        raw.encode(encoding, "surrogateescape").decode(encoding, "replace"),
                    ),
                )
                continue
            decoded = True
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
    fh: IO[bytes],
    name: str,
    columns: list[str] | None = None,
    encoding: str = "utf-8",
    first_row: int = 0,
) -> Iterator[Row]:
    return _read_delimited(fh, name, "\t", columns, encoding, first_row)


def read_csv(
    fh: IO[bytes],
    name: str,
    columns: list[str] | None = None,
    encoding: str = "utf-8",
    first_row: int = 0,
) -> Iterator[Row]:
    return _read_delimited(fh, name, ",", columns, encoding, first_row)


def _build_value(events: Iterator[tuple[str, str, Any]]) -> Any:
    """Consume the ijson events of one JSON value and return it."""
    builder = ijson.ObjectBuilder()
    depth = 0
    for _, event, value in events:
        builder.event(event, value)
        if event in ("start_map", "start_array"):
            depth += 1
        elif event in ("end_map", "end_array"):
            depth -= 1
        if depth == 0:
            return builder.value
    raise ijson.IncompleteJSONError("the file ends inside a value")


def read_json_records(fh: IO[bytes], name: str, key: str) -> Iterator[Row]:
    """A file that is one JSON object whose records are the list under `key` (a Natural
    Instructions task and its `Instances`, a GAOKAO-Bench file and its `example`): the records are
    streamed one by one, each with the object's other fields read so far under `_file`."""
    first = _first_byte(fh)
    if first != b"{":
        found = repr(first.decode("utf-8", "replace")) if first else "an empty file"
        raise MalformedFileError(
            name, None, f"expected one JSON object holding a `{key}` list, found {found}"
        )
    header: dict[str, Any] = {}
    events = ijson.parse(fh, use_float=True)
    found_list = False
    try:
        for prefix, event, value in events:
            if prefix != "" or event != "map_key":
                continue
            if value != key:
                header[value] = _build_value(events)
                continue
            found_list = True
            _, event, _ = next(events)
            if event != "start_array":
                raise MalformedFileError(name, None, f"`{key}` is not a list")
            for i in itertools.count():
                prefix, event, value = next(events)
                if event == "end_array":
                    break
                item = _build_value(itertools.chain([(prefix, event, value)], events))
                if isinstance(item, dict):
                    yield i, {**item, "_file": header}
                else:
                    yield (
                        i,
                        RowError(
                            f"expected a JSON object in `{key}`, got {type(item).__name__}",
                            json.dumps(item, default=str)[:2000],
                        ),
                    )
    except ijson.JSONError as exc:
        raise MalformedFileError(
            name, _json_error_line(fh), f"not a valid JSON object ({exc})"
        ) from exc
    if not found_list:
        raise MalformedFileError(
            name,
            None,
            f"no `{key}` list at the top level of the object (its keys: "
            f"{', '.join(header) or 'none'}); check `records:` in the catalog entry",
        )


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
    encoding: str = "utf-8",
    records: str | None = None,
    span: tuple[int, int, int] | None = None,
) -> Iterator[Row]:
    """Yield `(row, dict | RowError)` for every row of `path` read as `fmt`.

    `encoding` is the text encoding of a tsv/csv/jsonl/json file; `records` names the list of
    records inside a `json` file that is one object rather than an array. `span` =
    (start, end, first_row) reads only the bytes [start, end) of an uncompressed JSON Lines, TSV or
    CSV file, cut at line ends, whose first line is row `first_row` of the file (see `units.py`);
    `columns` then names the columns of a delimited file whose header is elsewhere."""
    name = name or str(path)
    if fmt not in READERS:
        raise MalformedFileError(
            name, None, f"unknown format {fmt!r}; use one of {', '.join(READERS)}"
        )
    if compression == "tar" or (
        compression == "infer" and path.name.endswith((".tar", ".tar.gz", ".tgz"))
    ):
        yield from iter_tar_rows(path, fmt, name, columns)
        return
    if span is not None:
        start, end, first_row = span
        with open(path, "rb") as raw:
            raw.seek(start)
            fh = io.BytesIO(raw.read(end - start))
        if start == 0 and _is_utf8(encoding):
            _skip_bom(fh)
        if fmt in ("tsv", "csv"):
            yield from READERS[fmt](fh, name, columns, encoding, first_row)
        else:
            yield from READERS[fmt](fh, name, encoding, first_row)
        return
    with open_binary(path, compression) as fh:
        if fmt != "parquet" and _is_utf8(encoding):
            _skip_bom(fh)
        if fmt in ("tsv", "csv"):
            yield from READERS[fmt](fh, name, columns, encoding)
        elif fmt == "jsonl":
            yield from read_jsonl(fh, name, encoding)
        elif fmt == "json":
            if not _is_utf8(encoding):
                fh = io.BufferedReader(_Utf8Recoder(fh, encoding), 1 << 16)
            try:
                if records:
                    yield from read_json_records(fh, name, records)
                else:
                    yield from read_json_array(fh, name)
            except UnicodeDecodeError as exc:
                raise MalformedFileError(
                    name, None, f"not valid {encoding} text at byte {exc.start} of a chunk: {exc}"
                ) from exc
        else:
            yield from READERS[fmt](fh, name)


def iter_tar_rows(path: Path, fmt: str, name: str, columns: list[str] | None) -> Iterator[Row]:
    """The rows of every data file of a tar archive, in archive order (CAMEL publishes one JSON
    object per conversation in a tar.gz). A `json` member holding one object is one row; any other
    member is read as `fmt`. Rows are numbered across the archive; the archive is streamed."""
    n = 0
    try:
        with tarfile.open(path, "r:*") as archive:
            for member in archive:
                base = member.name.rsplit("/", 1)[-1]
                if not member.isfile() or base.startswith("._") or "__MACOSX/" in member.name:
                    continue
                data = archive.extractfile(member).read()  # type: ignore[union-attr]
                where = f"{name}:{member.name}"
                if fmt == "json" and data.lstrip(_BOM + b" \t\r\n")[:1] == b"{":
                    try:
                        value = json.loads(data.decode("utf-8-sig"))
                    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                        yield n, RowError(f"{member.name}: not a JSON object: {exc}", "")
                    else:
                        yield n, value
                    n += 1
                    continue
                fh = io.BytesIO(data)
                _skip_bom(fh)
                rows = (
                    READERS[fmt](fh, where, columns)
                    if fmt in ("tsv", "csv")
                    else READERS[fmt](fh, where)
                )
                for _, row in rows:
                    yield n, row
                    n += 1
    except tarfile.TarError as exc:
        raise MalformedFileError(name, None, f"not a readable tar archive: {exc}") from exc
