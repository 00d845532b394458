"""Small builders for catalogs and upstream files written into tmp_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

from alpacacot.record import ARROW_SCHEMA


def entry(source: dict[str, Any], *, fmt: str = "jsonl", **extra: Any) -> dict[str, Any]:
    """A minimal valid catalog entry around `source`."""
    data = {
        "description": "test source",
        "license": "cc-by-4.0",
        "languages": ["en"],
        "tags": {"lang": "EN", "task": "MT", "gen": "HG"},
        "source": source,
        "format": fmt,
    }
    data.update(extra)
    return data


def write_catalog(
    path: Path, datasets: dict[str, Any], mixes: dict[str, list[str]] | None = None
) -> Path:
    data: dict[str, Any] = {"version": 1, "datasets": datasets}
    if mixes:
        data["mixes"] = mixes
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def shard_rows(out: Path, key: str) -> list[dict[str, Any]]:
    """All records of `key` in a build, in shard order."""
    rows: list[dict[str, Any]] = []
    for shard in sorted((out / key).glob("train-*.parquet")):
        table = pq.read_table(shard)
        assert table.schema.names == ARROW_SCHEMA.names
        rows += table.to_pylist()
    return rows


def reject_lines(out: Path, key: str) -> list[dict[str, Any]]:
    text = (out / "rejects" / f"{key}.jsonl").read_text("utf-8")
    return [json.loads(line) for line in text.splitlines()]


def statuses(stdout: str) -> dict[str, str]:
    """`{key: built|unchanged|failed}` from the summary table `build` prints."""
    out = {}
    for line in stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if line.lstrip().startswith("│") and len(cells) == 7:
            out[cells[0]] = cells[-1]
    return out


def shard_stats(out: Path, key: str) -> dict[str, tuple[int, int, bytes]]:
    """name -> (inode, mtime_ns, bytes) of every shard of `key`."""
    return {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted((out / key).glob("train-*.parquet"))
    }
