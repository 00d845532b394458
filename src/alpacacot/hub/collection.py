"""Reading a built collection (the layout of docs/CONTRACT.md) without loading it whole."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alpacacot.errors import AlpacacotError

MANIFEST = "manifest.json"


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


def shard_paths(out_dir: Path, manifest: dict[str, Any], key: str) -> list[Path]:
    """The parquet shards of one key, checked to exist."""
    paths = []
    for shard in manifest["sources"][key].get("shards", []):
        path = Path(out_dir) / shard["path"]
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
