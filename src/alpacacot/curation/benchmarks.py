"""The catalog's benchmarks: collect their pinned files and read their items as text."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

from alpacacot.catalog import BenchmarkEntry, Catalog
from alpacacot.errors import CollectError
from alpacacot.readers import RowError, iter_rows, open_binary


def collect(
    catalog: Catalog,
    entry: BenchmarkEntry,
    *,
    sample: bool,
    cache_dir: Path | None = None,
    offline: bool = False,
) -> list[tuple[Path, str]]:
    """(local path, sha256) of each file of a benchmark: its excerpts, or the pinned full files."""
    from alpacacot.collectors import collect_files

    specs = entry.sample_files() if sample else entry.files()
    if sample and not specs:
        raise CollectError(f"benchmark {entry.key!r} has no `sample` in the catalog")
    out = []
    for sf in specs:
        for cf in collect_files(sf, catalog, entry.key, cache_dir=cache_dir, offline=offline):
            out.append((cf.path, cf.sha256))
    return out


def read_items(entry: BenchmarkEntry, files: list[Path]) -> Iterator[tuple[int, str]]:
    """(item index, text) of every item; the index counts items across the files in order."""
    index = 0
    for path in files:
        for row in _rows(entry, path):
            text = "\n".join(str(row.get(f) or "") for f in entry.text_fields).strip()
            if text:
                yield index, text
            index += 1


def _rows(entry: BenchmarkEntry, path: Path) -> Iterator[dict]:
    if entry.records:
        with open_binary(path, entry.compression) as fh:
            data = json.load(fh)
        rows = data.get(entry.records) if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise CollectError(
                f"benchmark {entry.key!r}: {path} has no list under {entry.records!r}; "
                "fix `records:` in the catalog entry"
            )
        yield from (r for r in rows if isinstance(r, dict))
        return
    rows = iter_rows(path, entry.format, columns=entry.columns, compression=entry.compression)
    for n, row in rows:
        if isinstance(row, RowError):
            raise CollectError(
                f"benchmark {entry.key!r}: {path} row {n}: {row.reason}; "
                "the pinned file should parse: check the catalog entry's format"
            )
        yield row


def fingerprint(files: dict[str, list[tuple[Path, str]]]) -> str:
    """Changes when any benchmark file changes."""
    h = hashlib.sha256()
    for key in sorted(files):
        h.update(key.encode())
        for _, digest in files[key]:
            h.update(digest.encode())
    return h.hexdigest()[:16]
