"""Helpers of the hub tests: a small built collection written by hand in the CONTRACT layout."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from alpacacot.record import ARROW_SCHEMA, record_id

# The token the tests publish with; it must never appear in any output.
TOKEN = "hf_TESTtokenDoNotPrint0123456789"

ALPACA_ROWS = [
    ("Give three tips for staying healthy.", "", "Eat well, sleep, and exercise."),
    ("Translate to French.", "Good morning", "Bonjour"),
    ("What is 2 + 2?", "", "Let's think step by step. 2 + 2 = 4."),
]
BELLE_ROWS = [
    ("写一首关于春天的诗。", "", "春风拂面，花开满园。"),
    ("解释光合作用。", "", "植物利用光能把二氧化碳和水转化为有机物。"),
]
DIALOG = [
    (
        "And in winter?",
        "",
        "Wear a warm coat.",
        [{"user": "What should I wear in summer?", "assistant": "Light clothes."}],
    )
]


def make_records(key: str, rows: list[tuple], lang: str, license: str = "cc-by-4.0") -> list[dict]:
    records = []
    for i, row in enumerate(rows):
        instruction, input_, output = row[:3]
        history = row[3] if len(row) > 3 else []
        records.append(
            {
                "id": record_id(instruction, input_, output, history),
                "instruction": instruction,
                "input": input_,
                "output": output,
                "history": history,
                "source": key,
                "lang": lang,
                "tags": ["EN", "MT", "SI"] + (["multi-turn"] if history else []),
                "provenance": {
                    "file": f"{key}.json",
                    "revision": "sha256:" + "0" * 64,
                    "row": i,
                    "license": license,
                },
                "meta": "{}",
            }
        )
    return records


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_collection(
    out: Path, sources: dict[str, dict[str, Any]], built_at: str = "2026-11-25T18:00:00Z"
) -> dict:
    """Write shards, rejects and manifest.json for {key: {records, lang, license, ...}}."""
    out.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, Any] = {
        "format": "alpacacot-collection",
        "format_version": 1,
        "schema_version": "1.0.0",
        "code_version": "0.1.0",
        "built_at": built_at,
        "catalog": {"path": str(out / "no-catalog.yaml"), "sha256": "c" * 64},
        "sources": {},
    }
    for key, spec in sources.items():
        records = spec["records"]
        chunks = spec.get("shards", 1)
        (out / key).mkdir(exist_ok=True)
        shards = []
        per = max(1, -(-len(records) // chunks))
        for n in range(chunks):
            part = records[n * per : (n + 1) * per]
            rel = f"{key}/train-{n:05d}-of-{chunks:05d}.parquet"
            pq.write_table(pa.Table.from_pylist(part, schema=ARROW_SCHEMA), out / rel)
            shards.append(
                {
                    "path": rel,
                    "records": len(part),
                    "bytes": (out / rel).stat().st_size,
                    "sha256": _sha256(out / rel),
                }
            )
        (out / "rejects").mkdir(exist_ok=True)
        reject = {
            "source": key,
            "file": f"{key}.json",
            "row": 99,
            "field": "output",
            "reason": "empty output",
            "raw": "{}",
        }
        (out / "rejects" / f"{key}.jsonl").write_text(json.dumps(reject) + "\n", encoding="utf-8")
        lang = spec.get("lang", "en")
        manifest["sources"][key] = {
            "fingerprint": hashlib.sha256(key.encode()).hexdigest(),
            "description": spec.get("description", f"The {key} dataset."),
            "license": spec.get("license", "cc-by-4.0"),
            "homepage": spec.get("homepage", f"https://example.org/{key}"),
            "citation": spec.get("citation", f"@misc{{{key}2023,\n  title={{{key}}}\n}}"),
            "languages": [lang],
            "tags": {"lang": "CN" if lang == "zh" else "EN", "task": "MT", "gen": "SI"},
            "inputs": [
                {"file": f"https://example.org/{key}.json", "sha256": "a" * 64, "bytes": 1234}
            ],
            "counts": {
                "read": len(records) + 2,
                "written": len(records),
                "duplicates": 1,
                "rejected": 1,
            },
            "lang_counts": {lang: len(records)},
            "shards": shards,
            "rejects": f"rejects/{key}.jsonl",
            "seconds": 0.01,
        }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return manifest


def default_sources() -> dict[str, dict[str, Any]]:
    return {
        "alpaca": {"records": make_records("alpaca", ALPACA_ROWS, "en"), "license": "cc-by-nc-4.0"},
        "belle": {
            "records": make_records("belle", BELLE_ROWS, "zh"),
            "lang": "zh",
            "license": "gpl-3.0",
        },
        "dialog": {"records": make_records("dialog", DIALOG, "en"), "license": "apache-2.0"},
    }
