"""A source cut into work units, and the ordered merge of what the units made.

Units of one source, in order:
- a whole file, read by the worker (small files);
- a byte range of a large uncompressed JSON Lines, TSV or CSV file, cut just after a line end, with
  the number of the first line it holds (so row numbers stay those of the file) and, for a file with
  a header, the header's columns;
- rows handed on by one reader in this process (a large JSON array, a compressed file, a CSV file
  with quoted fields, where a line end need not end a row): `unit_rows` rows a unit.

`SourceMerge` takes the units' outputs in order and writes what a single pass over the source would:
the same shards byte for byte (row groups of 10,000 and shard bounds counted over the merged
records), ids and row numbers, the same rejects file in the same order, and the same counts. Dedup
stays exact across units: each unit reports the ids of its records in order, and the merge drops
those an earlier unit had.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import shutil
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from alpacacot.catalog import DatasetEntry
from alpacacot.collectors import CollectedFile
from alpacacot.errors import AlpacacotError
from alpacacot.faults import fault_point
from alpacacot.normalizers import get_normalizer
from alpacacot.outdir import REJECTS, STAGED_REJECTS, staging_dir
from alpacacot.pipeline import BuildOptions, Counts, UnitOutput
from alpacacot.readers import _BOM, iter_rows
from alpacacot.record import ARROW_SCHEMA
from alpacacot.writer import ROW_GROUP, SHARD_OPTIONS, RejectWriter

# How much of a large file one unit takes: big enough that a unit's fixed cost (a task, its
# result's transfer) is small against its records (~40,000 Alpaca records), small enough that two
# workers share a 200 MB file evenly.
UNIT_BYTES = 16 * 1024 * 1024
UNIT_ROWS = 20_000
# A file that cannot be cut by bytes (a JSON array, a compressed file, another encoding) is read
# by the build's own process, which hands rows on: that process then parses it alone and pickles
# every row, so it pays only for a file several units long. Below that the file is one unit and
# the workers share the sources instead (measured on the 87-source bench: handing on each 22 MB
# Alpaca array made the whole build ~25% slower with two workers).
HANDOFF_UNITS = 4
_LINE_FORMATS = ("jsonl", "tsv", "csv")


@dataclass
class WorkUnit:
    """One part of one source; `seq` is its place among the source's units."""

    entry: DatasetEntry
    file: CollectedFile
    options: BuildOptions
    seq: int = 0
    span: tuple[int, int, int] | None = None  # (start, end, first row) of the file's bytes
    columns: list[str] | None = None  # a delimited file's header, for a span that lacks it
    rows: list[tuple[int, Any]] | None = None  # rows read by the parent
    error: AlpacacotError | None = None  # the parent's reader failed: the source fails with it
    last: bool = False  # the source's last unit
    # A folder the merging process reads, where the unit leaves its records as an Arrow file
    # instead of sending them back (local worker processes: the page cache is cheaper than a pipe).
    spill: str | None = None
    # With a token, the unit spills only where the folder holds it (`spill_reachable`): a Ray
    # worker on the build's machine (or on a file system it shares) writes the file; one on
    # another machine sends its records back with the result, through Ray's object store.
    spill_token: str | None = None
    # The output folder, for the only unit of a source that its worker may merge itself (local
    # workers: it writes the staging folder the build then commits).
    merge_into: str | None = None

    @property
    def key(self) -> str:
        return self.entry.key

    @property
    def weight(self) -> int:
        """Input bytes this unit stands for (for progress bars)."""
        if self.span:
            return self.span[1] - self.span[0]
        return 0 if self.rows is not None else self.file.bytes


def _compressed(entry: DatasetEntry, cf: CollectedFile) -> bool:
    """A file whose bytes are not its rows: gzip, zip or tar (read whole, or by rows handed on)."""
    return entry.compression in ("gzip", "zip", "tar") or (
        entry.compression == "infer" and cf.path.name.endswith((".gz", ".zip", ".tar", ".tgz"))
    )


def _byte_ranges_unsafe(entry: DatasetEntry, cf: CollectedFile) -> bool:
    """Rows that must not be cut by bytes: a text encoding other than UTF-8 (a header read here
    would be misread), or a normalizer that groups consecutive rows (a dialogue spread over rows
    must stay in one unit)."""
    if codecs.lookup(entry.encoding).name != "utf-8":
        return True
    return _groups_rows(entry, cf)


def _groups_rows(entry: DatasetEntry, cf: CollectedFile) -> bool:
    normalize = get_normalizer(entry, cf.subset, cf.normalizer)
    return bool(getattr(normalize, "group_by", None))


def _spans(
    path: Path, size: int, unit_bytes: int, odd: bytes
) -> Iterator[tuple[int, int, int, bool]]:
    """(start, end, first line, odd) of each part of the file, found as they are asked for: parts
    of about `unit_bytes` cut just after a line end, the number of the line each starts at, and
    whether a byte of `odd` is in the part (a quote or a carriage return, where a delimited file's
    rows need not be its lines). The file is read once, a part at a time, so the first units can
    run while the rest of a large file is still being cut."""
    odd_bytes = [odd[i : i + 1] for i in range(len(odd))]
    with open(path, "rb") as fh:
        start, first = 0, 0
        while start < size:
            end = size
            pos = start + unit_bytes
            if pos < size:
                fh.seek(pos - 1)
                at = pos - 1
                while chunk := fh.read(1 << 16):
                    i = chunk.find(b"\n")
                    if i >= 0:
                        end = min(size, at + i + 1)
                        break
                    at += len(chunk)
            fh.seek(start)
            lines, found, at = 0, False, start
            while at < end:
                block = fh.read(min(1 << 24, end - at))
                if not block:
                    break
                lines += block.count(b"\n")
                found = found or any(b in block for b in odd_bytes)
                at += len(block)
            yield start, end, first, found
            first += lines
            start = end


def _header(path: Path, fmt: str) -> list[str] | None:
    """The first row of a delimited file, read the way the reader reads it."""
    with open(path, "rb") as fh:
        first = fh.readline()
    first = first.removeprefix(_BOM)
    text = io.StringIO(first.decode("utf-8", "surrogateescape"), newline="")
    delimiter = "\t" if fmt == "tsv" else ","
    quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
    return next(csv.reader(text, delimiter=delimiter, quoting=quoting), None)


def _row_units(
    entry: DatasetEntry, cf: CollectedFile, options: BuildOptions, seq: int, unit_rows: int
) -> Iterator[WorkUnit]:
    rows: list[tuple[int, Any]] = []
    try:
        for item in iter_rows(
            cf.path,
            entry.format,
            name=cf.display,
            columns=entry.columns,
            compression=entry.compression,
            encoding=entry.encoding,
            records=entry.records,
        ):
            rows.append(item)
            if len(rows) >= unit_rows:
                yield WorkUnit(entry, cf, options, seq, rows=rows)
                seq += 1
                rows = []
    except AlpacacotError as exc:
        yield WorkUnit(entry, cf, options, seq, error=exc)
        return
    if rows or seq == 0:
        yield WorkUnit(entry, cf, options, seq, rows=rows)


def cut_file(
    entry: DatasetEntry,
    cf: CollectedFile,
    options: BuildOptions,
    seq: int = 0,
    unit_bytes: int = UNIT_BYTES,
    unit_rows: int = UNIT_ROWS,
) -> Iterator[WorkUnit]:
    """The units of one file, numbered from `seq`; rows handed on are read as they are needed."""
    size = cf.bytes
    if size <= unit_bytes or _groups_rows(entry, cf):
        yield WorkUnit(entry, cf, options, seq)
        return
    if (
        entry.format not in _LINE_FORMATS
        or _compressed(entry, cf)
        or _byte_ranges_unsafe(entry, cf)
    ):
        if size <= HANDOFF_UNITS * unit_bytes:
            yield WorkUnit(entry, cf, options, seq)
        else:
            yield from _row_units(entry, cf, options, seq, unit_rows)
        return
    # JSON Lines rows are lines; csv's reader also ends a row at a lone \r, and a quoted CSV
    # field may hold a line end (TSV is read without quoting).
    odd = {"jsonl": b"", "tsv": b"\r", "csv": b'\r"'}[entry.format]
    spans: Iterator[tuple[int, int, int, bool]] = _spans(cf.path, size, unit_bytes, odd)
    columns = entry.columns
    if entry.format != "jsonl":
        # A quoted field or a \r anywhere may hold a line end: then lines are not rows, and that
        # is known only once the whole file is read.
        spans = iter(listed := list(spans))
        if any(found for *_, found in listed):
            yield from _row_units(entry, cf, options, seq, unit_rows)
            return
        columns = columns or _header(cf.path, entry.format)
    for n, (start, end, first, _) in enumerate(spans):
        yield WorkUnit(
            entry,
            cf,
            options,
            seq + n,
            span=(start, end, first),
            columns=columns if start else None,
        )


def cut_source(
    entry: DatasetEntry,
    files: list[CollectedFile],
    options: BuildOptions,
    unit_bytes: int = UNIT_BYTES,
    unit_rows: int = UNIT_ROWS,
) -> Iterator[WorkUnit]:
    """The units of a source's files, in order; the last one says so (a unit is looked ahead)."""

    def all_units() -> Iterator[WorkUnit]:
        seq = 0
        for cf in files:
            for unit in cut_file(entry, cf, options, seq, unit_bytes, unit_rows):
                seq = unit.seq + 1
                yield unit

    previous = None
    for unit in all_units():
        if previous is not None:
            yield previous
        previous = unit
    if previous is not None:
        previous.last = True
        yield previous


SPILL_TOKEN = ".token"


def prepare_staging(out_dir: Path, key: str, token: str | None = None) -> Path:
    """An empty staging folder for a source, and in it the folder its units may spill into (with
    `token` in it, for units that must first check they see this folder)."""
    tmp = staging_dir(out_dir, key)
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "units").mkdir(parents=True)
    if token is not None:
        (tmp / "units" / SPILL_TOKEN).write_text(token, encoding="ascii")
    return tmp / "units"


def spill_reachable(unit: WorkUnit) -> bool:
    """Whether the unit may leave its records in its spill folder: it has one, and either needs
    no proof (local workers) or finds its token there (the build's own folder, not a namesake)."""
    if not unit.spill:
        return False
    if unit.spill_token is None:
        return True
    try:
        found = (Path(unit.spill) / SPILL_TOKEN).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError):
        return False
    return found == unit.spill_token


class _HashedFile(io.RawIOBase):
    """A file being written, hashed as it is written: a shard's sha256 is ready when it closes,
    instead of being read back at the end of the source (~1 s per GB there)."""

    def __init__(self, path: Path):
        super().__init__()
        self.fh = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.sha256 = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        return self.fh.write(data)

    def tell(self) -> int:
        return self.fh.tell()

    def flush(self) -> None:
        self.fh.flush()

    def close(self) -> None:
        super().close()  # (flushes)
        self.fh.close()


def _with_revision(table: pa.Table, revision: str) -> pa.Table:
    """`table` with every record's provenance revision set to `revision`."""
    at = table.schema.get_field_index("provenance")
    column = table.column(at)
    chunks = []
    for chunk in column.chunks:
        children = chunk.flatten()  # (the struct's offset applied; it holds no nulls)
        children[column.type.get_field_index("revision")] = pa.repeat(
            pa.scalar(revision, pa.string()), len(chunk)
        )
        chunks.append(pa.StructArray.from_arrays(children, fields=list(column.type)))
    return table.set_column(at, table.field(at), pa.chunked_array(chunks, type=column.type))


class SourceMerge:
    """Merge a source's unit outputs, given in unit order, into its shards and rejects file.

    It writes what one pass over the source would: a row group is written when it holds 10,000
    records (counting those the record schema refuses, which leave it as it is
    written) or when the next record would take the shard past `max_shard_bytes` (the shard is
    closed then); a row group's schema rejects follow the rejects of rows read before it was
    written."""

    def __init__(self, entry: DatasetEntry, out_dir: Path, options: BuildOptions):
        self.key = entry.key
        self.out_dir = out_dir
        self.max_shard_bytes = options.max_shard_bytes
        # Made empty by `prepare_staging` before the source's units run (they may spill into it).
        self.tmp = staging_dir(out_dir, self.key)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.rejects = RejectWriter(self.tmp / STAGED_REJECTS, self.key)
        self.waiting: deque[tuple[int, str]] = deque()  # row rejects: (records before, line)
        self.seen: set[int] = set()
        self.counts = Counts()
        self.langs: Counter[str] = Counter()
        self.added = 0  # records that passed dedup, schema refusals included
        # the row group being filled
        self.group_tables: list[pa.Table] = []
        self.group_broken: list[str] = []
        self.group_n = 0
        # the shard being written
        self.shard_bytes = 0
        self.writer: pq.ParquetWriter | None = None
        self.sink: _HashedFile | None = None
        self.paths: list[Path] = []
        self.records: list[int] = []
        self.digests: list[str] = []

    def add(self, out: UnitOutput, revision: str | None = None) -> None:
        """Take the next unit's output; `revision`: its file's, when the unit ran before the file
        was hashed (its records then hold PENDING_REVISION, which this replaces)."""
        self.counts.read += out.read
        # A unit's ids are distinct (it drops its own duplicates): a set operation per unit finds
        # those an earlier unit had, instead of a lookup per record in Python.
        ids = out.ids
        new = set(ids.tolist())
        seen = self.seen
        earlier = seen.intersection(new)
        keep = ~np.isin(ids, np.fromiter(earlier, dtype=np.uint64, count=len(earlier)))
        seen |= new
        self.counts.duplicates += out.duplicates + int(len(ids) - keep.sum())
        before = np.concatenate(([0], np.cumsum(keep)))
        added = self.added
        self.waiting.extend((added + int(before[p]), line) for p, line in out.rejects)

        is_broken = np.zeros(len(ids), dtype=bool)
        if out.broken:
            is_broken[list(out.broken)] = True
        table = out.records()
        if out.table_file:
            os.unlink(out.table_file)  # the mapping stays readable until the slices go
        if revision is not None:
            table = _with_revision(table, revision)
        if not keep.all():
            table = table.filter(pa.array(keep[~is_broken]))
        kept = np.flatnonzero(keep)
        kept_bytes = out.text_bytes[kept]
        kept_broken = is_broken[kept]
        # table row of kept record j: good_before[j]; broken lines by kept position
        good_before = np.concatenate(([0], np.cumsum(~kept_broken)))
        broken_at = np.flatnonzero(kept_broken)
        broken_lines = [out.broken[int(kept[j])].line(self.key, revision) for j in broken_at]

        def take(i: int, k: int) -> None:
            if k <= i:
                return
            self.group_tables.append(table.slice(good_before[i], good_before[k] - good_before[i]))
            lo, hi = np.searchsorted(broken_at, [i, k])
            self.group_broken += broken_lines[lo:hi]
            self.group_n += k - i
            self.added += k - i
            self.shard_bytes += int(kept_bytes[i:k].sum())

        i, m = 0, len(kept)
        while i < m:
            end = min(m, i + ROW_GROUP - self.group_n)
            if self.writer is not None:
                over = np.flatnonzero(
                    self.shard_bytes + np.cumsum(kept_bytes[i:end]) > self.max_shard_bytes
                )
                if over.size:
                    k = i + int(over[0])
                    take(i, k)
                    # The record at k is not added yet: rows refused before it come first.
                    self._flush(self.added + 1)
                    self._close_shard()
                    i = k
                    continue
            take(i, end)
            i = end
            if self.group_n >= ROW_GROUP:
                self._flush(self.added)

    def _write_rejects_before(self, added: int | None) -> None:
        waiting = self.waiting
        while waiting and (added is None or waiting[0][0] < added):
            self.rejects.write_line(waiting.popleft()[1])

    def _flush(self, before: int | None) -> None:
        """Write the row group; first the row rejects of fewer than `before` records."""
        if not self.group_n:
            return
        self._write_rejects_before(before)
        for line in self.group_broken:
            self.rejects.write_line(line)
        table = pa.concat_tables(self.group_tables).combine_chunks()
        self.group_tables, self.group_broken, self.group_n = [], [], 0
        if self.writer is None:
            self._open_shard()
        assert self.writer is not None
        if table.num_rows:
            for batch in table.to_batches():
                self.writer.write_batch(batch)
            self.records[-1] += table.num_rows
            counts = pc.value_counts(table.column("lang")).to_pylist()
            self.langs.update({c["values"]: c["counts"] for c in counts})

    def _open_shard(self) -> None:
        path = self.tmp / f".train-{len(self.paths):05d}.parquet.part"
        self.paths.append(path)
        self.records.append(0)
        self.sink = _HashedFile(path)
        self.writer = pq.ParquetWriter(self.sink, ARROW_SCHEMA, **SHARD_OPTIONS)

    def _close_shard(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            assert self.sink is not None
            self.sink.close()
            self.digests.append(self.sink.sha256.hexdigest())
            self.sink = None
            self.shard_bytes = 0

    def finish(self, files: list[CollectedFile], start: float) -> dict[str, Any]:
        """Write what is left into the staging folder and return the source's manifest entry,
        whose paths name where `outdir.commit_source` then puts the files."""
        try:
            self._write_rejects_before(None)
            self._flush(None)
            self._close_shard()
            if not self.paths:  # a source with no valid record still gets a readable (empty) shard
                self._open_shard()
                self._close_shard()
            total = len(self.paths)
            shards = []
            for i, (path, count, digest) in enumerate(
                zip(self.paths, self.records, self.digests, strict=True)
            ):
                target = self.tmp / f"train-{i:05d}-of-{total:05d}.parquet"
                fault_point("stage.shard-rename")
                os.replace(path, target)
                shards.append(
                    {
                        "path": f"{self.key}/{target.name}",
                        "records": count,
                        "bytes": target.stat().st_size,
                        "sha256": digest,
                    }
                )
            counts = self.counts
            counts.written = sum(self.records)
            counts.rejected = self.rejects.count
            self.rejects.close()
            if not (self.tmp / STAGED_REJECTS).exists():
                (self.tmp / STAGED_REJECTS).write_bytes(b"")
            shutil.rmtree(self.tmp / "units", ignore_errors=True)
        except BaseException:
            self.abort()
            raise
        assert counts.read == counts.written + counts.duplicates + counts.rejected, counts
        return {
            "inputs": [
                {
                    "file": cf.display,
                    "sha256": cf.sha256,
                    "bytes": cf.bytes,
                    "revision": cf.revision,
                }
                for cf in files
            ],
            "counts": counts.as_dict(),
            "lang_counts": dict(sorted((+self.langs).items(), key=lambda kv: (-kv[1], kv[0]))),
            "shards": shards,
            "rejects": f"{REJECTS}/{self.key}.jsonl",
            "seconds": round(time.perf_counter() - start, 3),
        }

    def abort(self) -> None:
        """Drop the unfinished output; the previous build of the source stays."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.sink is not None:
            self.sink.close()
            self.sink = None
        self.rejects.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
