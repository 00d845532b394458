"""The steps one work unit goes through: read -> normalize -> clean -> id -> dedup -> tag -> validate.

A unit is a part of one source (a file, a line-aligned byte range of one, or rows a reader handed
on; see `units.py`). `run_unit` takes it through the steps and returns what it made: its records as
Arrow columns (checked against the record JSON Schema 10,000 at a time, by `schema_check.py`), the
ids of all of them, and its rejects with where they fell among the records. The merge in `units.py`
turns the units of a source, in order, into the shards and rejects file a single pass over the
source would write: the record JSON Schema's rejects of a row group reach the rejects file when
their group is full, after the rejects of rows read later in that group.

`process_source` builds one source in this process; `build.py` runs the units on an executor. The
steps know nothing of where they run or of the other units and sources. A unit of JSON Lines or
of a JSON array mapped by `fields` or `alpaca` runs them on Arrow columns instead (`columnar.py`),
with the same output.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pyarrow as pa

from alpacacot.catalog import DatasetEntry
from alpacacot.collectors import CollectedFile
from alpacacot.errors import AlpacacotError, SourceFailed, describe_failure
from alpacacot.faults import fault_point
from alpacacot.lang import LanguageTagger
from alpacacot.normalizers import Draft, RejectRow, get_normalizer
from alpacacot.readers import RowError, iter_rows
from alpacacot.record import ARROW_SCHEMA, LONE_SURROGATE, InvalidText, clean_text, record_id
from alpacacot.schema_check import ColumnarValidator

if TYPE_CHECKING:
    from alpacacot.units import WorkUnit
from alpacacot.writer import DEFAULT_MAX_SHARD_BYTES, ROW_GROUP, RejectWriter, RowGroup

Progress = Callable[[int], None]

# One encoder for every record's meta: json.dumps with options builds a new encoder per call.
# allow_nan=False: NaN and Infinity are not JSON (see `encode_meta`).
_encode_meta_text = json.JSONEncoder(
    ensure_ascii=False, sort_keys=True, default=str, allow_nan=False
).encode
_encode_meta_ascii = json.JSONEncoder(
    ensure_ascii=True, sort_keys=True, default=str, allow_nan=False
).encode


def encode_meta(meta: dict[str, Any]) -> str:
    """The unused upstream fields as a JSON object, readable (not ASCII-escaped) where possible.

    NaN, Infinity and -Infinity (which Python's JSON reader accepts and parquet float columns
    hold) are not JSON: they become null, as JavaScript's JSON.stringify writes them, so that
    every JSON parser reads meta."""
    try:
        text = _encode_meta_text(meta)
    except ValueError:  # a float that is not finite
        meta = _finite(meta)
        text = _encode_meta_text(meta)
    if not text.isascii() and LONE_SURROGATE.search(text):
        # A lone surrogate (an upstream "\ud800" JSON escape) cannot be stored as UTF-8: keep the
        # escape itself, which reads back as the same value.
        return _encode_meta_ascii(meta)
    return text


def _finite(value: Any) -> Any:
    """`value` with every float that is NaN or infinite replaced by None, at any depth."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


@dataclass
class Counts:
    read: int = 0
    written: int = 0
    duplicates: int = 0
    rejected: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "written": self.written,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
        }


@dataclass
class BuildOptions:
    lang_backend: str = "fasttext"
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
    validate: bool = True
    progress_every: int = 2000
    extra: dict[str, Any] = field(default_factory=dict)


@cache
def record_validator() -> Callable[[dict[str, Any]], Any]:
    """The record JSON Schema compiled to Python by fastjsonschema (~25x jsonschema's speed).

    The build checks whole row groups with `columnar_validator`; this one words the reason of
    each record that one flags."""
    import fastjsonschema

    from alpacacot.catalog import load_json_schema

    return fastjsonschema.compile(load_json_schema("record"))


@cache
def columnar_validator() -> ColumnarValidator:
    """The record JSON Schema compiled to Arrow kernels over a row group (see `schema_check.py`)."""
    from alpacacot.catalog import load_json_schema

    return ColumnarValidator(load_json_schema("record"), ARROW_SCHEMA)


def schema_problem(record: dict[str, Any]) -> tuple[str, str] | None:
    """(field, reason) when `record` breaks the record JSON Schema, else None."""
    try:
        record_validator()(record)
    except Exception as exc:  # fastjsonschema.JsonSchemaValueException
        return _field_of(getattr(exc, "name", "record")), f"schema: {exc}"
    return None


def storage_problem(record: dict[str, Any]) -> tuple[str, str] | None:
    """(field, reason) when a field of `record` cannot be stored in its Arrow column, else None."""
    for field_ in ARROW_SCHEMA:
        try:
            pa.array([record[field_.name]], field_.type)
        except (pa.ArrowException, ValueError, TypeError) as exc:
            return field_.name, f"cannot be stored in the shard: {exc}"
    return None


def _field_of(path: str) -> str:
    """`data.provenance.row (minimum)` -> `provenance.row`."""
    return path.split(" ")[0].removeprefix("data.").removeprefix("data") or "record"


def clean_draft(draft: Draft) -> tuple[str, str, str, list[dict[str, str]]]:
    """Clean every text of a draft; raise RejectRow for text that is not valid."""
    out = []
    for name in ("instruction", "input", "output"):
        try:
            out.append(clean_text(draft.get(name) or ""))
        except InvalidText as exc:
            raise RejectRow(name, str(exc)) from None
    history = []
    for n, turn in enumerate(draft.get("history") or ()):
        try:
            history.append(
                {"user": clean_text(turn["user"]), "assistant": clean_text(turn["assistant"])}
            )
        except InvalidText as exc:
            raise RejectRow("history", f"turn {n}: {exc}") from None
    if not out[0]:
        raise RejectRow("instruction", "empty after cleaning")
    if not out[2]:
        raise RejectRow("output", "empty after cleaning")
    return out[0], out[1], out[2], history


OPTIONAL_TEXTS = ("system", "rejected")


def clean_optional(draft: Draft) -> tuple[str | None, str | None]:
    """The draft's `system` and `rejected`, cleaned; None when absent or empty after cleaning."""
    out: list[str | None] = []
    for name in OPTIONAL_TEXTS:
        value = draft.get(name)
        if value is None:
            out.append(None)
            continue
        if not isinstance(value, str):
            raise RejectRow(name, f"expected a string, got {type(value).__name__}")
        try:
            out.append(clean_text(value) or None)
        except InvalidText as exc:
            raise RejectRow(name, str(exc)) from None
    return out[0], out[1]


_NO_GROUP = object()


def group_rows(rows: Iterable[tuple[int, Any]], column: str) -> Iterator[tuple[int, Any]]:
    """Runs of consecutive rows with the same `column` value, as `(first row, [rows])`, streamed:
    only the run being read is held. A row without the column is a run of its own; a RowError
    passes through on its own and ends the run before it."""
    run: list[dict[str, Any]] = []
    first = 0
    current: Any = _NO_GROUP
    for row, value in rows:
        if isinstance(value, RowError):
            if run:
                yield first, run
                run, current = [], _NO_GROUP
            yield row, value
            continue
        key = value.get(column, _NO_GROUP)
        if run and (key is _NO_GROUP or key != current):
            yield first, run
            run = []
        if not run:
            first, current = row, key
        run.append(value)
    if run:
        yield first, run


def iter_drafts(
    entry: DatasetEntry,
    cf: CollectedFile,
    rows: Iterable[tuple[int, Any]] | None = None,
    span: tuple[int, int, int] | None = None,
    columns: list[str] | None = None,
) -> Iterator[tuple[int, Draft | RowError | RejectRow]]:
    """Rows of one file (or of `span` of it, or the `rows` a reader handed on) mapped by the
    entry's normalizer; failures are yielded, not raised.

    A normalizer with a `group_by` column (a dialogue spread over rows) gets each run of rows with
    the same value as one list; provenance then names the run's first row. Such a source is never
    cut inside a file (`units.py`), so a run is never split between units."""
    normalize = get_normalizer(entry, cf.subset, cf.normalizer)
    if rows is None:
        rows = iter_rows(
            cf.path,
            entry.format,
            name=cf.display,
            columns=columns or entry.columns,
            compression=entry.compression,
            encoding=entry.encoding,
            records=entry.records,
            span=span,
        )
    group_by = getattr(normalize, "group_by", None)
    if group_by:
        rows = group_rows(rows, group_by)
    for row, value in rows:
        if isinstance(value, RowError):
            yield row, value
            continue
        try:
            result = normalize(value)
        except RejectRow as exc:
            exc.raw = value  # type: ignore[attr-defined]
            yield row, exc
            continue
        if isinstance(result, dict):
            yield row, result
        else:
            yield from ((row, d) for d in result)


class Refused(NamedTuple):
    """A candidate the record schema refused. Its reject line (which holds the record) is made by
    the merge: a unit may run before its file's revision is known (`collectors.locate_file`)."""

    file: str
    row: int
    field: str | None
    reason: str
    record: dict[str, Any]

    def line(self, key: str, revision: str | None = None) -> str:
        """The reject line; `revision`: the file's, in place of the one the unit had."""
        record = self.record
        if revision is not None:
            record = {**record, "provenance": {**record["provenance"], "revision": revision}}
        return RejectWriter.line(key, self.file, self.row, self.field, self.reason, record)


@dataclass
class UnitOutput:
    """What one unit made. Its candidates are the records that passed cleaning and the unit's own
    dedup, in order; the merge drops those an earlier unit of the source already had."""

    # The candidates the record schema accepts, in order (ARROW_SCHEMA); or None, and the Arrow
    # IPC file that holds them (a unit with a `spill` folder).
    table: pa.Table | None
    ids: np.ndarray  # uint64: the first 64 bits of every candidate's id
    text_bytes: np.ndarray  # int64: characters of instruction + input + output, per candidate
    broken: dict[int, Refused]  # candidate index -> refused by the record schema
    rejects: list[tuple[int, str]]  # (candidates before it, reject line): refused on reading
    read: int = 0
    duplicates: int = 0
    table_file: str | None = None

    def records(self) -> pa.Table:
        """The candidates' table, memory-mapped from its file when the unit spilled it."""
        if self.table is not None:
            return self.table
        assert self.table_file is not None
        with pa.memory_map(self.table_file) as source:
            return pa.ipc.open_file(source).read_all()


class _Candidates:
    """The unit's candidates gathered a row group at a time and checked against the schema."""

    def __init__(self, key: str, license: str, options: BuildOptions):
        self.key = key
        self.options = options
        self.group = RowGroup(key, license)
        self.batches: list[pa.RecordBatch] = []
        self.ids: list[int] = []
        self.text_bytes: list[int] = []
        self.broken: dict[int, Refused] = {}
        self.checked = 0  # candidates before `group`

    def add(self, short: int, text_bytes: int, *record: Any) -> None:
        g = self.group
        g.append(*record)
        self.ids.append(short)
        self.text_bytes.append(text_bytes)
        if len(g.id) >= ROW_GROUP:
            self.flush()

    def _reject(self, group: RowGroup, i: int, field_name: str, reason: str) -> None:
        # The record itself is the raw row here: it holds every upstream value (unused ones in
        # meta), and the group need not keep each normalizer's draft alive until it is checked.
        self.broken[self.checked + i] = Refused(
            group.file_of(i), group.row[i], field_name, reason, group.record(i)
        )

    def _check(self, group: RowGroup) -> pa.RecordBatch:
        """The group's records the record schema accepts; the others go to `broken`."""
        if not self.options.validate:
            return group.to_batch()
        try:
            batch = group.to_batch()
        except (pa.ArrowException, ValueError, TypeError):
            # A value Arrow cannot hold in its column (a tag that is not a string, a lone
            # surrogate): check this group record by record, and build it from the good ones.
            kept = []
            for i in range(len(group)):
                record = group.record(i)
                problem = schema_problem(record) or storage_problem(record)
                if problem:
                    self._reject(group, i, *problem)
                else:
                    kept.append(record)
            return pa.RecordBatch.from_pylist(kept, schema=ARROW_SCHEMA)
        broken_rows = columnar_validator()(batch)
        if not broken_rows:
            return batch
        for i, path in broken_rows.items():
            # The per-record validator words the reason; the kernels only say where.
            field_name, reason = schema_problem(group.record(i)) or (
                _field_of(path),
                f"schema: {path} is not valid",
            )
            self._reject(group, i, field_name, reason)
        keep = np.ones(batch.num_rows, dtype=bool)
        keep[list(broken_rows)] = False
        return batch.filter(pa.array(keep))

    def flush(self) -> None:
        group = self.group
        if not len(group):
            return
        self.group = group.successor()
        batch = self._check(group)
        if batch.num_rows:
            self.batches.append(batch)
        self.checked += len(group)

    def output(
        self, rejects: list[tuple[int, str]], counts: Counts, spill: Path | None
    ) -> UnitOutput:
        self.flush()
        return unit_output(
            pa.Table.from_batches(self.batches, schema=ARROW_SCHEMA),
            np.array(self.ids, dtype=np.uint64),
            np.array(self.text_bytes, dtype=np.int64),
            self.broken,
            rejects,
            counts,
            spill,
        )


def unit_output(
    table: pa.Table,
    ids: np.ndarray,
    text_bytes: np.ndarray,
    broken: dict[int, Refused],
    rejects: list[tuple[int, str]],
    counts: Counts,
    spill: Path | None,
) -> UnitOutput:
    table_file = None
    if spill is not None:
        # Through the page cache instead of a pipe: the merging process maps the file.
        table_file = str(spill)
        # Buffered: the IPC writer writes each buffer and its padding on its own (~8,000 small
        # writes for a unit of 40,000 records, one system call each unbuffered).
        with (
            pa.OSFile(table_file, "wb") as file,
            pa.BufferedOutputStream(file, buffer_size=1 << 20) as sink,
            pa.ipc.new_file(sink, ARROW_SCHEMA) as w,
        ):
            w.write_table(table)
        table = None
    return UnitOutput(
        table=table,
        table_file=table_file,
        ids=ids,
        text_bytes=text_bytes,
        broken=broken,
        rejects=rejects,
        read=counts.read,
        duplicates=counts.duplicates,
    )


def check_table(table: pa.Table) -> tuple[pa.Table, dict[int, Refused]]:
    """The records of `table` the record schema accepts, and the others by their row in `table`
    (as `_Candidates._check` finds them for a row group)."""
    if not table.num_rows:
        return table, {}
    batch = table.combine_chunks().to_batches()[0]
    broken_rows = columnar_validator()(batch)
    if not broken_rows:
        return table, {}
    broken: dict[int, Refused] = {}
    for i, path in broken_rows.items():
        record = batch.slice(i, 1).to_pylist()[0]
        field_name, reason = schema_problem(record) or (
            _field_of(path),
            f"schema: {path} is not valid",
        )
        provenance = record["provenance"]
        broken[i] = Refused(provenance["file"], provenance["row"], field_name, reason, record)
    keep = np.ones(batch.num_rows, dtype=bool)
    keep[list(broken_rows)] = False
    return pa.Table.from_batches([batch.filter(pa.array(keep))]), broken


@dataclass
class MergedSource:
    """What a unit that is its source's only one returns when it was merged where it ran: the
    source's manifest entry, its output staged in `.tmp-<key>/` for the build to commit."""

    entry: dict[str, Any]


def run_unit(
    unit: WorkUnit, report: Progress | None = None
) -> UnitOutput | MergedSource | AlpacacotError:
    """Take one work unit through the steps (the function an executor runs; module level so it
    pickles). Any error (a malformed file, a bug) is returned, not raised: it fails the unit's
    source, not the executor's other work. One that is not ours comes back as a SourceFailed
    carrying its message and traceback as text (it need not pickle)."""
    if unit.error is not None:
        return unit.error
    start = time.perf_counter()
    try:
        out = _run_unit(unit, report)
        if unit.merge_into is None:
            return out
        # A source of this one unit: merged here, so that many small sources write their shards
        # in the workers, in parallel, and not one after the other in the build process.
        from alpacacot.units import SourceMerge

        merge = SourceMerge(unit.entry, Path(unit.merge_into), unit.options)
        try:
            merge.add(out)
        except BaseException:
            merge.abort()
            raise
        return MergedSource(merge.finish([unit.file], start))
    except AlpacacotError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - any error is this source's failure
        return SourceFailed(describe_failure(exc), traceback.format_exc())


def _reporting(report: Progress, key: str) -> Progress:
    """`report`, behind the fault point the crash tests stop a worker at (`faults.py`)."""

    def report_progress(n: int) -> None:
        fault_point(f"worker.progress.{key}")
        report(n)

    return report_progress


# What `settle` makes of a row that can become a record: (short id, id, instruction, input,
# output, history, system, rejected, draft).
Settled = tuple[int, str, str, str, str, list[dict[str, str]], "str | None", "str | None", Draft]


def settle(key: str, file: str, row: int, item: Draft | RowError | RejectRow) -> str | Settled:
    """The reject line of a row that cannot become a record, or its cleaned texts and id."""
    if isinstance(item, RowError):
        return RejectWriter.line(key, file, row, None, item.reason, item.raw)
    if isinstance(item, RejectRow):
        return RejectWriter.line(key, file, row, item.field, item.reason, getattr(item, "raw", ""))
    try:
        instruction, input_, output, history = clean_draft(item)
        system, rejected = clean_optional(item)
    except RejectRow as exc:
        return RejectWriter.line(key, file, row, exc.field, exc.reason, item)
    rid = record_id(instruction, input_, output, history)
    return int(rid[:16], 16), rid, instruction, input_, output, history, system, rejected, item


def complete(
    settled: Settled, row: int, tagger: LanguageTagger, base_tags: list[str]
) -> tuple[Any, ...]:
    """A settled row that is not a duplicate, as `_Candidates.add` takes it: its language, tags
    and meta added."""
    short, rid, instruction, input_, output, history, system, rejected, item = settled
    extra_tags = item.get("tags")
    meta = item.get("meta")
    text_bytes = len(instruction) + len(input_) + len(output)
    if system or rejected:
        text_bytes += len(system or "") + len(rejected or "")
    return (
        short,
        text_bytes,
        rid,
        instruction,
        input_,
        output,
        history,
        tagger(instruction, input_, output),
        base_tags + [t for t in extra_tags if t not in base_tags] if extra_tags else base_tags,
        row,
        encode_meta(meta) if meta else "{}",
        system,
        rejected,
    )


def warm_up() -> None:
    """Import the column steps now (numpy, pyarrow's kernels, and pandas, which pyarrow imports
    the first time it converts Python values): ~0.3 s the first unit would otherwise pay, in
    each worker process that did not inherit them."""
    from alpacacot import columnar  # noqa: F401


def _run_unit(unit: WorkUnit, report: Progress | None) -> UnitOutput:
    entry, cf, options = unit.entry, unit.file, unit.options
    key = entry.key
    if report is not None:
        report = _reporting(report, key)
    tagger = LanguageTagger(options.lang_backend, entry.languages)
    # (A unit merged where it runs keeps its records in memory.)
    from alpacacot.units import spill_reachable  # (units imports this module)

    spill = None
    if unit.merge_into is None and spill_reachable(unit):
        spill = Path(unit.spill) / f"{unit.seq:06d}.arrow"
    # A unit of JSON Lines or of a JSON array mapped onto instruction/input/output takes the same
    # steps on Arrow columns, with the same result (`columnar.py`); None: this unit takes them
    # record by record.
    from alpacacot import columnar  # (imported by the build while it hashes the inputs)

    fast = columnar.run(unit, tagger)
    if fast is not None:
        table, ids, text_bytes, broken, rejects, counts = fast
        if report:
            every = options.progress_every
            for _ in range(counts.read // every):
                report(every)
            if counts.read % every:
                report(counts.read % every)
        return unit_output(table, ids, text_bytes, broken, rejects, counts, spill)
    base_tags = entry.record_tags
    counts = Counts()
    seen: set[int] = set()
    candidates = _Candidates(key, entry.license, options)
    candidates.group.set_file(cf.display, cf.revision)
    add = candidates.add
    ids = candidates.ids
    rejects: list[tuple[int, str]] = []
    prov_file = cf.display
    since_progress = 0
    for row, item in iter_drafts(entry, cf, unit.rows, unit.span, unit.columns):
        counts.read += 1
        since_progress += 1
        if report and since_progress >= options.progress_every:
            report(since_progress)
            since_progress = 0
        settled = settle(key, prov_file, row, item)
        if type(settled) is str:
            rejects.append((len(ids), settled))
            continue
        short = settled[0]
        if short in seen:
            counts.duplicates += 1
            continue
        seen.add(short)
        add(*complete(settled, row, tagger, base_tags))
    if report and since_progress:
        report(since_progress)
    return candidates.output(rejects, counts, spill)


def process_source(
    entry: DatasetEntry,
    files: Iterable[CollectedFile],
    out_dir: Path,
    options: BuildOptions,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build one source in this process into `out_dir/.tmp-<key>/` (its shards and
    `rejects.jsonl`); return its manifest entry, whose paths name where `outdir.commit_source`
    then puts the files. The same as `build.py` running its units on any executor.

    Nothing outside that staging folder is touched, so a failure (for example a malformed file,
    raised as MalformedFileError) leaves the previous build of this source as it was; the staging
    folder is removed on the way out."""
    from alpacacot.units import SourceMerge, cut_source, prepare_staging

    start = time.perf_counter()
    files = list(files)
    prepare_staging(out_dir, entry.key)
    merge = SourceMerge(entry, out_dir, options)
    try:
        for unit in cut_source(entry, files, options):
            result = run_unit(unit, progress)
            if isinstance(result, AlpacacotError):
                raise result
            merge.add(result)
        return merge.finish(files, start)
    except BaseException:
        merge.abort()
        raise
