"""Writers: parquet shards of bounded size, and the rejects file of a source."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from alpacacot.record import ARROW_SCHEMA

ROW_GROUP = 10_000
DEFAULT_MAX_SHARD_BYTES = 256 * 1024 * 1024  # of record text, before compression
# Dictionaries and min/max statistics only for the columns whose values repeat within a source.
# On the free-text columns (id, instruction, input, output, history) Arrow builds a dictionary per
# column chunk only to give it up at 1 MiB, and their statistics (whole texts in the footer) help
# no reader: 13% less CPU per shard and 3.5% fewer bytes on 400K Alpaca records.
_REPEATED = ["source", "lang", "tags.list.element", "meta", "system", "rejected"]
_PROVENANCE = ["provenance.file", "provenance.revision", "provenance.license"]
SHARD_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": _REPEATED + _PROVENANCE,
    "write_statistics": ["source", "lang", "tags.list.element", *_PROVENANCE, "provenance.row"],
}


class RowGroup:
    """Records on their way into one row group, held as one list per column.

    Arrow builds each column from its list in one call; no dict is made per record. `source` and
    `license` are the same for every record of a source, `file` and `revision` for runs of records.
    """

    def __init__(self, source: str, license: str, file: str = "", revision: str = ""):
        self.source = source
        self.license = license
        self.id: list[str] = []
        self.instruction: list[str] = []
        self.input: list[str] = []
        self.output: list[str] = []
        self.history: list[list[dict[str, str]]] = []
        self.lang: list[str] = []
        self.tags: list[list[str]] = []
        self.row: list[int] = []
        self.meta: list[str] = []
        self.system: list[str | None] = []
        self.rejected: list[str | None] = []
        self.files: list[tuple[int, str, str]] = [(0, file, revision)]  # (first row, file, rev)

    def __len__(self) -> int:
        return len(self.id)

    def append(
        self,
        rid: str,
        instruction: str,
        input: str,
        output: str,
        history: list[dict[str, str]],
        lang: str,
        tags: list[str],
        row: int,
        meta: str,
        system: str | None,
        rejected: str | None,
    ) -> None:
        """Add one record, its fields in the order of the shard's columns."""
        self.id.append(rid)
        self.instruction.append(instruction)
        self.input.append(input)
        self.output.append(output)
        self.history.append(history)
        self.lang.append(lang)
        self.tags.append(tags)
        self.row.append(row)
        self.meta.append(meta)
        self.system.append(system)
        self.rejected.append(rejected)

    def set_file(self, file: str, revision: str) -> None:
        """The records added from now on come from `file` at `revision`."""
        if self.files[-1][0] == len(self.id):
            self.files.pop()
        self.files.append((len(self.id), file, revision))

    def successor(self) -> RowGroup:
        """An empty group that goes on with the current file."""
        _, file, revision = self.files[-1]
        return RowGroup(self.source, self.license, file, revision)

    def _file_and_revision(self, i: int) -> tuple[str, str]:
        return next((f, r) for start, f, r in reversed(self.files) if start <= i)

    def file_of(self, i: int) -> str:
        return self._file_and_revision(i)[0]

    def _provenance_columns(self) -> tuple[list[str], list[str]]:
        files: list[str] = []
        revisions: list[str] = []
        n = len(self.id)
        for (start, file, revision), end in zip(
            self.files, [s for s, _, _ in self.files[1:]] + [n], strict=True
        ):
            files += [file] * (end - start)
            revisions += [revision] * (end - start)
        return files, revisions

    def to_batch(self) -> pa.RecordBatch:
        """The group as Arrow columns of the shard schema (raises pyarrow's error on a value that
        does not fit its column, such as a tag that is not a string)."""
        n = len(self.id)
        files, revisions = self._provenance_columns()
        provenance = pa.StructArray.from_arrays(
            [
                pa.array(files, pa.string()),
                pa.array(revisions, pa.string()),
                pa.array(self.row, pa.int64()),
                pa.array([self.license] * n, pa.string()),
            ],
            fields=list(_PROVENANCE.type),
        )
        columns = [
            pa.array(self.id, pa.string()),
            pa.array(self.instruction, pa.string()),
            pa.array(self.input, pa.string()),
            pa.array(self.output, pa.string()),
            pa.array(self.history, _HISTORY.type),
            pa.array([self.source] * n, pa.string()),
            pa.array(self.lang, pa.string()),
            pa.array(self.tags, _TAGS.type),
            provenance,
            pa.array(self.meta, pa.string()),
            pa.array(self.system, pa.string()),
            pa.array(self.rejected, pa.string()),
        ]
        return pa.RecordBatch.from_arrays(columns, schema=ARROW_SCHEMA)

    def record(self, i: int) -> dict[str, Any]:
        """Record `i` as the dict the record JSON Schema describes."""
        file, revision = self._file_and_revision(i)
        return {
            "id": self.id[i],
            "instruction": self.instruction[i],
            "input": self.input[i],
            "output": self.output[i],
            "history": self.history[i],
            "source": self.source,
            "lang": self.lang[i],
            "tags": self.tags[i],
            "provenance": {
                "file": file,
                "revision": revision,
                "row": self.row[i],
                "license": self.license,
            },
            "meta": self.meta[i],
            "system": self.system[i],
            "rejected": self.rejected[i],
        }


_PROVENANCE = ARROW_SCHEMA.field("provenance")
_HISTORY = ARROW_SCHEMA.field("history")
_TAGS = ARROW_SCHEMA.field("tags")


class RejectWriter:
    """One JSON line per rejected row: where it was, which field, why, and the raw row."""

    RAW_LIMIT = 2000

    def __init__(self, path: Path, source: str):
        self.path = path
        self.source = source
        self.count = 0
        self._fh = None

    def add(self, file: str, row: int, field: str | None, reason: str, raw: Any) -> None:
        self.write_line(self.line(self.source, file, row, field, reason, raw))

    @classmethod
    def line(
        cls, source: str, file: str, row: int, field: str | None, reason: str, raw: Any
    ) -> str:
        """The JSON line (with its newline) of one reject; a work unit makes it, the merge writes it."""
        if not isinstance(raw, str):
            raw = json.dumps(raw, ensure_ascii=False, default=str)
        entry = {
            "source": source,
            "file": file,
            "row": row,
            "field": field,
            "reason": reason,
            "raw": raw[: cls.RAW_LIMIT],
        }
        return json.dumps(entry, ensure_ascii=False) + "\n"

    def write_line(self, line: str) -> None:
        if self._fh is None:
            self._fh = open(self.path, "w", encoding="utf-8", errors="backslashreplace")
        self._fh.write(line)
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
