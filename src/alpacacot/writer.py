"""Writers: parquet shards of bounded size, and the rejects file of a source."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from alpacacot.record import ARROW_SCHEMA

ROW_GROUP = 10_000
DEFAULT_MAX_SHARD_BYTES = 256 * 1024 * 1024  # of record text, before compression


class ShardWriter:
    """Append records; they land in `train-XXXXX-of-NNNNN.parquet` files of bounded size.

    Files are written under temporary names and get their final `-of-N` names in `close()`, once the
    number of shards is known. The same records in the same order give byte-identical files.
    """

    def __init__(self, directory: Path, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES):
        self.directory = directory
        self.max_shard_bytes = max_shard_bytes
        self.pending: list[dict[str, Any]] = []
        self.shard_bytes = 0
        self.paths: list[Path] = []
        self.records: list[int] = []
        self._writer: pq.ParquetWriter | None = None

    def add(self, record: dict[str, Any], text_bytes: int) -> None:
        if self._writer is not None and self.shard_bytes + text_bytes > self.max_shard_bytes:
            self._flush()
            self._close_shard()
        self.pending.append(record)
        self.shard_bytes += text_bytes
        if len(self.pending) >= ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        if self._writer is None:
            path = self.directory / f".train-{len(self.paths):05d}.parquet.part"
            self.paths.append(path)
            self.records.append(0)
            self._writer = pq.ParquetWriter(path, ARROW_SCHEMA, compression="zstd")
        # Arrow converts the whole row group in C: half the cost of a Python list per column, and
        # the same arrays (so the same bytes).
        rows = self.pending
        self._writer.write_batch(pa.RecordBatch.from_pylist(rows, schema=ARROW_SCHEMA))
        self.records[-1] += len(rows)
        self.pending = []

    def _close_shard(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            self.shard_bytes = 0

    def close(self) -> list[tuple[Path, int]]:
        """Finish the last shard and give every shard its final name; returns (path, records)."""
        self._flush()
        self._close_shard()
        if not self.paths:  # a source with no valid record still gets a readable (empty) shard
            path = self.directory / ".train-00000.parquet.part"
            pq.write_table(ARROW_SCHEMA.empty_table(), path, compression="zstd")
            self.paths.append(path)
            self.records.append(0)
        total = len(self.paths)
        final = []
        for i, (path, count) in enumerate(zip(self.paths, self.records, strict=True)):
            target = self.directory / f"train-{i:05d}-of-{total:05d}.parquet"
            os.replace(path, target)
            final.append((target, count))
        return final


class RejectWriter:
    """One JSON line per rejected row: where it was, which field, why, and the raw row."""

    RAW_LIMIT = 2000

    def __init__(self, path: Path, source: str):
        self.path = path
        self.source = source
        self.count = 0
        self._fh = None

    def add(self, file: str, row: int, field: str | None, reason: str, raw: Any) -> None:
        if self._fh is None:
            self._fh = open(self.path, "w", encoding="utf-8", errors="backslashreplace")
        if not isinstance(raw, str):
            raw = json.dumps(raw, ensure_ascii=False, default=str)
        entry = {
            "source": self.source,
            "file": file,
            "row": row,
            "field": field,
            "reason": reason,
            "raw": raw[: self.RAW_LIMIT],
        }
        self._fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self.count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
