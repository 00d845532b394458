"""The steps one source goes through: read -> normalize -> clean -> dedup -> tag -> validate -> write.

Records go to the writer a row group (10,000) at a time; the record JSON Schema is checked on each
whole row group (`schema_check.py`), so its rejects reach the rejects file when their group is
full, after the rejects of rows read later in that group.

`process_source` runs them over a source's collected files and returns its manifest entry. It knows
nothing of where it runs (in-process or in a worker process; see `build.py`) or of the other sources.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from alpacacot.catalog import DatasetEntry
from alpacacot.collectors import CollectedFile, sha256_file
from alpacacot.lang import LanguageTagger
from alpacacot.normalizers import Draft, RejectRow, get_normalizer
from alpacacot.outdir import REJECTS, STAGED_REJECTS, staging_dir
from alpacacot.readers import RowError, iter_rows
from alpacacot.record import ARROW_SCHEMA, LONE_SURROGATE, InvalidText, clean_text, record_id
from alpacacot.schema_check import ColumnarValidator
from alpacacot.writer import DEFAULT_MAX_SHARD_BYTES, RejectWriter, RowGroup, ShardWriter

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
    entry: DatasetEntry, cf: CollectedFile
) -> Iterator[tuple[int, Draft | RowError | RejectRow]]:
    """Rows of one file mapped by the entry's normalizer; failures are yielded, not raised.

    A normalizer with a `group_by` column (a dialogue spread over rows) gets each run of rows with
    the same value as one list; provenance then names the run's first row."""
    normalize = get_normalizer(entry, cf.subset, cf.normalizer)
    rows: Iterable[tuple[int, Any]] = iter_rows(
        cf.path,
        entry.format,
        name=cf.display,
        columns=entry.columns,
        compression=entry.compression,
        encoding=entry.encoding,
        records=entry.records,
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


def process_source(
    entry: DatasetEntry,
    files: Iterable[CollectedFile],
    out_dir: Path,
    options: BuildOptions,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Build one source into `out_dir/.tmp-<key>/` (its shards and `rejects.jsonl`); return its
    manifest entry, whose paths name where `outdir.commit_source` then puts the files.

    Nothing outside that staging folder is touched, so a failure (for example a malformed file,
    raised as MalformedFileError) leaves the previous build of this source as it was; the staging
    folder is removed on the way out.
    """
    start = time.perf_counter()
    files = list(files)
    key = entry.key
    tmp = staging_dir(out_dir, key)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    rejects = RejectWriter(tmp / STAGED_REJECTS, key)
    tagger = LanguageTagger(options.lang_backend, entry.languages)
    base_tags = entry.record_tags
    counts = Counts()
    langs: Counter[str] = Counter()
    seen: set[int] = set()

    def reject_from_group(group: RowGroup, i: int, field_name: str, reason: str) -> None:
        # The record itself is the raw row here: it holds every upstream value (unused ones in
        # meta), and the group need not keep each normalizer's draft alive until it is checked.
        rejects.add(group.file_of(i), group.row[i], field_name, reason, group.record(i))
        counts.written -= 1
        langs[group.lang[i]] -= 1

    def prepare(group: RowGroup) -> pa.RecordBatch:
        """Check a full row group against the record schema; rejects leave it here."""
        if not options.validate:
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
                    reject_from_group(group, i, *problem)
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
            reject_from_group(group, i, field_name, reason)
        keep = np.ones(batch.num_rows, dtype=bool)
        keep[list(broken_rows)] = False
        return batch.filter(pa.array(keep))

    shards = ShardWriter(tmp, key, entry.license, options.max_shard_bytes, prepare)
    add = shards.add
    since_progress = 0
    try:
        for cf in files:
            prov_file = cf.display
            shards.set_file(prov_file, cf.revision)
            for row, item in iter_drafts(entry, cf):
                counts.read += 1
                since_progress += 1
                if progress and since_progress >= options.progress_every:
                    progress(since_progress)
                    since_progress = 0
                if isinstance(item, RowError):
                    rejects.add(prov_file, row, None, item.reason, item.raw)
                    continue
                if isinstance(item, RejectRow):
                    rejects.add(prov_file, row, item.field, item.reason, getattr(item, "raw", ""))
                    continue
                try:
                    instruction, input_, output, history = clean_draft(item)
                    system, rejected = clean_optional(item)
                except RejectRow as exc:
                    rejects.add(prov_file, row, exc.field, exc.reason, item)
                    continue
                rid = record_id(instruction, input_, output, history)
                short = int(rid[:16], 16)
                if short in seen:
                    counts.duplicates += 1
                    continue
                seen.add(short)
                lang = tagger(instruction, input_, output)
                extra_tags = item.get("tags")
                meta = item.get("meta")
                langs[lang] += 1
                counts.written += 1
                add(
                    rid,
                    instruction,
                    input_,
                    output,
                    history,
                    lang,
                    base_tags + [t for t in extra_tags if t not in base_tags]
                    if extra_tags
                    else base_tags,
                    row,
                    encode_meta(meta) if meta else "{}",
                    system,
                    rejected,
                )
        if progress and since_progress:
            progress(since_progress)
        final = shards.close()
        counts.rejected = rejects.count
        rejects.close()
    except BaseException:
        rejects.close()
        shutil.rmtree(tmp, ignore_errors=True)
        raise

    if not (tmp / STAGED_REJECTS).exists():
        (tmp / STAGED_REJECTS).write_bytes(b"")
    shard_info = [
        {
            "path": f"{key}/{path.name}",
            "records": n,
            "bytes": path.stat().st_size,
            "sha256": sha256_file(path),
        }
        for path, n in final
    ]
    assert counts.read == counts.written + counts.duplicates + counts.rejected, counts
    return {
        "inputs": [
            {"file": cf.display, "sha256": cf.sha256, "bytes": cf.bytes, "revision": cf.revision}
            for cf in files
        ],
        "counts": counts.as_dict(),
        "lang_counts": dict(sorted((+langs).items(), key=lambda kv: (-kv[1], kv[0]))),
        "shards": shard_info,
        "rejects": f"{REJECTS}/{key}.jsonl",
        "seconds": round(time.perf_counter() - start, 3),
    }
