"""Reading a built collection (the layout of docs/CONTRACT.md) without loading it whole."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alpacacot.errors import AlpacacotError

MANIFEST = "manifest.json"
# The names a build writes under a key (docs/THREAT_MODEL.md): the only files of a collection that
# are read (stats, export) or uploaded (publish), whatever else the folder or its manifest holds.
KEY = r"[a-z0-9][a-z0-9_]{0,63}"
DECLARED = re.compile(
    rf"^(?:{KEY}/train-\d+-of-\d+\.parquet|rejects/{KEY}\.jsonl|curation/{KEY}\.parquet"
    rf"|curation/signals/{KEY}\.parquet)$"
)


class CollectionError(AlpacacotError):
    """A collection directory is missing, incomplete or does not match the manifest."""


def read_manifest(out_dir: Path) -> dict[str, Any]:
    """Return the parsed `manifest.json` of a built collection, with a clear error when absent."""
    path = Path(out_dir) / MANIFEST
    if not path.is_file():
        raise CollectionError(
            f"{path} not found: {out_dir} is not a built collection. "
            "Run `alpacacot-data build --out DIR` first."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise CollectionError(f"{path} is not valid JSON ({err}); rebuild the collection.") from err
    if manifest.get("format") != "alpacacot-collection":
        raise CollectionError(
            f"{path}: 'format' is not 'alpacacot-collection'; rebuild the collection."
        )
    return manifest


def source_keys(manifest: dict[str, Any]) -> list[str]:
    """The collection's keys in a stable order (sorted)."""
    return sorted(manifest.get("sources", {}))


def select_keys(manifest: dict[str, Any], keys: list[str] | None) -> list[str]:
    """Validate requested keys against the manifest; no keys means all of them."""
    available = source_keys(manifest)
    if not keys:
        return available
    unknown = [k for k in keys if k not in manifest.get("sources", {})]
    if unknown:
        raise CollectionError(
            f"unknown key(s) {', '.join(unknown)}; this collection holds: {', '.join(available)}"
        )
    return list(dict.fromkeys(keys))


def declared_name(rel: object, key: str | None, fixed: tuple[str, ...], where: str) -> str:
    """`rel` when it is a name a build writes (for source `key`: `key/train-*.parquet` or
    `rejects/key.jsonl`; or one of `fixed`), else a CollectionError naming `where`."""
    owned = (
        not key
        or not isinstance(rel, str)
        or rel.startswith(f"{key}/")
        or rel in (f"rejects/{key}.jsonl", f"curation/{key}.parquet")
    )
    if not isinstance(rel, str) or not (rel in fixed or DECLARED.match(rel)) or not owned:
        raise CollectionError(
            f"{where}: {rel!r} is not a file a build writes; a collection holds README.md, "
            f"{MANIFEST}, stats.png, <key>/train-NNNNN-of-NNNNN.parquet, rejects/<key>.jsonl and "
            "curation/ results (manifest.json, clusters, contamination, signals/<key>.parquet, "
            "overlap.png), and only these are read or uploaded. Rebuild the collection."
        )
    return rel


def declared_file(
    out_dir: Path, rel: object, key: str | None = None, fixed: tuple[str, ...] = ()
) -> Path:
    """`out_dir / rel`, when `rel` is a name a build writes (`declared_name`), inside `out_dir` and
    not through a symbolic link. A collection folder may come from someone else: its manifest must
    not name any other file."""
    out_dir = Path(out_dir)
    where = f"{out_dir / MANIFEST}" + (f": sources/{key}" if key else "")
    path = out_dir / declared_name(rel, key, fixed, where)
    if os.path.lexists(path) and path.resolve() != out_dir.resolve() / str(rel):
        raise CollectionError(
            f"{where}: {rel} is a symbolic link (to {path.resolve()}); only the files the build "
            f"wrote inside {out_dir} are read or uploaded. Rebuild {out_dir}."
        )
    return path


def shard_paths(out_dir: Path, manifest: dict[str, Any], key: str) -> list[Path]:
    """The parquet shards of one key, checked to be names a build writes and to exist."""
    paths = []
    for shard in manifest["sources"][key].get("shards", []):
        path = declared_file(out_dir, shard.get("path"), key)
        if not path.is_file():
            raise CollectionError(
                f"{path} is listed in the manifest but missing; rebuild the collection."
            )
        paths.append(path)
    return paths


def iter_batches(
    out_dir: Path,
    manifest: dict[str, Any],
    key: str,
    columns: list[str] | None = None,
    batch_size: int = 4096,
) -> Iterator[Any]:
    """Stream `pyarrow.RecordBatch`es of one key, shard after shard."""
    import pyarrow.parquet as pq

    for path in shard_paths(out_dir, manifest, key):
        parquet = pq.ParquetFile(path)
        yield from parquet.iter_batches(batch_size=batch_size, columns=columns)


def count_records(manifest: dict[str, Any], key: str) -> int:
    """Records of one key according to the manifest."""
    source = manifest["sources"][key]
    shards = source.get("shards", [])
    if shards:
        return sum(int(s.get("records", 0)) for s in shards)
    return int(source.get("counts", {}).get("written", 0))
