"""`mix`: write the training set a recipe selects, with its own manifest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alpacacot.recipes import Recipe, apply_recipe, ids_sha256

SHARD = "train-00000-of-00001.parquet"


def write_mix(recipe: Recipe, collection: Path, out: Path) -> dict[str, Any]:
    """Write `out/train-00000-of-00001.parquet` and `out/manifest.json`; return the manifest."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from alpacacot.hub.collection import read_manifest
    from alpacacot.loading import load_recipe

    collection = Path(collection)
    manifest = read_manifest(collection)
    selection = apply_recipe(recipe, collection, manifest)
    parts = load_recipe(recipe, collection, as_dict=True)
    out.mkdir(parents=True, exist_ok=True)
    # Weights and caps are already applied by load_recipe; sources follow the recipe's order.
    table = pa.concat_tables([p.with_format("arrow")[:] for p in parts.values()])
    tmp = out / f".{SHARD}.partial"
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(out / SHARD)
    ids = table.column("id").to_pylist()
    curation = manifest.get("curation") or {}
    record = {
        "format": "alpacacot-mix",
        "recipe": recipe.name,
        "definition": recipe.raw,
        "made_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "collection": {
            "path": str(collection.resolve()),
            "built_at": manifest.get("built_at"),
            "code_version": manifest.get("code_version"),
            "curated_at": curation.get("curated_at"),
            "curation_parameters": curation.get("parameters"),
        },
        "records": len(ids),
        "ids_sha256": ids_sha256(ids),
        "sources": selection.counts(),
        "files": [SHARD],
        "ids": ids,
    }
    (out / "manifest.json").write_text(
        json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return record
