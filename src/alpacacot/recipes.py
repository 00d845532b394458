"""Recipes: pure selection of a training set from a curated collection.

A recipe (the catalog's `recipes:` section, or a YAML file of the same shape) names sources and
rules. Applied in this order, each record removed is counted under the first rule that removes it:

1. `decontaminated`: the record contains an item of a selected benchmark
   (`DIR/curation/contamination.parquet`; on by default, every benchmark).
2. signals (`DIR/curation/signals/<key>.parquet`): `refusal`, `lang_mismatch`, `empty_answer`,
   `truncated` when set to true; `repetition` above `max_repetition`; `output_chars` below
   `min_output_chars` or above `max_output_chars`; `prompt_chars` above `max_prompt_chars`.
3. `exact_duplicate`: the same record id was kept from a preferred source (`dedup.exact`,
   default true).
4. `near_duplicate`: a record of the same near-duplicate cluster (`dedup.near`: `prompt` or
   `record`, from `DIR/curation/clusters.parquet`) was kept from a preferred source. By default
   (`dedup.near_scope: across`) only a record of another source removes it: within one source,
   near-duplicate prompts are mostly one template around different tasks (GPTeacher's
   toolformer prompts share 40 words of tool description); `near_scope: all` removes those too.
5. `cap`: beyond the source's `cap` (a seeded sample of the rest is kept); then `weight`
   samples or repeats what is left, as `alpacacot.load(..., weights=)` does.

"Preferred" is the `dedup.prefer` order, then the recipe's source order; within one source the
first record (shard order) wins. This module only reads the collection; loading.py, export and
the trainer call it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alpacacot.errors import AlpacacotError

SIGNAL_FLAGS = ("refusal", "lang_mismatch", "empty_answer", "truncated")
RULES = (
    "decontaminated",
    *SIGNAL_FLAGS,
    "repetition",
    "length",
    "exact_duplicate",
    "near_duplicate",
    "cap",
)


class RecipeError(AlpacacotError):
    """A recipe cannot be read or applied."""


@dataclass(frozen=True)
class RecipeSource:
    key: str
    weight: float = 1.0
    cap: int | None = None


@dataclass(frozen=True)
class Recipe:
    name: str
    sources: list[RecipeSource]
    exact: bool = True
    near: str = "none"
    near_scope: str = "across"
    prefer: list[str] = field(default_factory=list)
    decontaminate: bool | list[str] = True
    signals: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    description: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def keys(self) -> list[str]:
        return [s.key for s in self.sources]

    @property
    def order(self) -> list[str]:
        """Sources best first: `prefer`, then the rest in recipe order."""
        return [*self.prefer, *[k for k in self.keys if k not in self.prefer]]

    @property
    def needs_curation(self) -> bool:
        return bool(self.decontaminate) or bool(self.signals) or self.near != "none"


def parse_recipe(name: str, raw: dict[str, Any]) -> Recipe:
    """A recipe from its (schema-validated) catalog mapping."""
    sources = [
        RecipeSource(s)
        if isinstance(s, str)
        else RecipeSource(s["key"], float(s.get("weight", 1.0)), s.get("cap"))
        for s in raw["sources"]
    ]
    dedup = raw.get("dedup") or {}
    return Recipe(
        name=name,
        sources=sources,
        exact=dedup.get("exact", True),
        near=dedup.get("near", "none"),
        near_scope=dedup.get("near_scope", "across"),
        prefer=list(dedup.get("prefer", [])),
        decontaminate=raw.get("decontaminate", True),
        signals=dict(raw.get("signals") or {}),
        seed=int(raw.get("seed", 0)),
        description=raw.get("description", ""),
        raw=raw,
    )


def find_recipe(name: Any, catalog: Any = None) -> Recipe | None:
    """The recipe called `name` in the catalog, or read from a `.yaml` file; None otherwise."""
    if not isinstance(name, str):
        return None
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return read_recipe_file(Path(name), catalog)
    if catalog is None:
        from alpacacot.catalog import load_catalog

        catalog = load_catalog()
    raw = getattr(catalog, "recipes", {}).get(name)
    return parse_recipe(name, raw) if raw is not None else None


def read_recipe_file(path: Path, catalog: Any = None) -> Recipe:
    """A recipe file: one recipe mapping (sources, dedup, ...), checked like a catalog entry."""
    import jsonschema
    import yaml

    from alpacacot.catalog import _check_recipe, load_catalog, load_json_schema
    from alpacacot.errors import CatalogError
    from alpacacot.guards import load_yaml, read_catalog_bytes

    try:
        # the catalog's limits: a regular file, size cap, bounded aliases, no duplicate keys
        raw = load_yaml(read_catalog_bytes(path))
    except (CatalogError, yaml.YAMLError) as exc:
        raise RecipeError(f"{path}: cannot read the recipe ({exc})") from exc
    schema = load_json_schema("catalog")
    validator = jsonschema.Draft202012Validator({**schema, **schema["$defs"]["recipe"]})
    errors = sorted(validator.iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top level)"
        raise RecipeError(f"{path}: {where}: {errors[0].message}")
    catalog = catalog or load_catalog()
    _check_recipe(catalog, path.stem, raw, str(path))
    return parse_recipe(path.stem, raw)


@dataclass
class Selection:
    """What a recipe kept: row numbers per source (shard order) and what each rule removed."""

    rows: dict[str, np.ndarray]
    removed: dict[str, dict[str, int]]
    read: dict[str, int]

    def counts(self) -> dict[str, dict[str, Any]]:
        return {
            k: {"read": self.read[k], "kept": int(len(self.rows[k])), "removed": self.removed[k]}
            for k in self.rows
        }


def select(
    recipe: Recipe,
    ids: dict[str, np.ndarray],
    *,
    signals: dict[str, Any] | None = None,
    contaminated: dict[str, set[str]] | None = None,
    clusters: dict[tuple[str, str], str] | None = None,
) -> Selection:
    """Apply the recipe's rules (see the module docstring). Pure: no I/O.

    Args:
        ids: per source, its record ids in shard order.
        signals: per source, a pandas DataFrame of its signals in the same order.
        contaminated: per benchmark, the ids of records that contain one of its items.
        clusters: (source, id) -> near-duplicate cluster of the recipe's `dedup.near` view;
            records not in it are alone.
    """
    removed: dict[str, dict[str, int]] = {k: dict.fromkeys(RULES, 0) for k in recipe.keys}
    alive: dict[str, np.ndarray] = {}
    bad_ids: set[str] = set()
    if recipe.decontaminate:
        wanted = recipe.decontaminate if isinstance(recipe.decontaminate, list) else None
        for bench, hit in (contaminated or {}).items():
            if wanted is None or bench in wanted:
                bad_ids |= hit
    for key in recipe.keys:
        n = len(ids[key])
        keep = np.ones(n, dtype=bool)
        if bad_ids:
            drop = np.fromiter((i in bad_ids for i in ids[key]), dtype=bool, count=n)
            removed[key]["decontaminated"] = int(drop.sum())
            keep &= ~drop
        if recipe.signals:
            for rule, drop in _signal_drops(recipe.signals, signals[key], n):
                drop &= keep
                removed[key][rule] += int(drop.sum())
                keep &= ~drop
        alive[key] = keep
    seen_ids: set[str] = set()
    kept_by: dict[str, str] = {}  # near-duplicate cluster -> the source that kept a record of it
    within = recipe.near_scope == "all"
    for key in recipe.order:
        keep = alive[key]
        for row in np.flatnonzero(keep):
            rid = ids[key][row]
            if recipe.exact and rid in seen_ids:
                keep[row] = False
                removed[key]["exact_duplicate"] += 1
                continue
            cluster = clusters.get((key, rid)) if clusters and recipe.near != "none" else None
            owner = kept_by.get(cluster) if cluster is not None else None
            if owner is not None and (within or owner != key):
                keep[row] = False
                removed[key]["near_duplicate"] += 1
                continue
            seen_ids.add(rid)
            if cluster is not None and owner is None:
                kept_by[cluster] = key
    rows: dict[str, np.ndarray] = {}
    for s in recipe.sources:
        kept = np.flatnonzero(alive[s.key])
        if s.cap is not None and len(kept) > s.cap:
            rng = np.random.default_rng(_seed(recipe.seed, s.key))
            kept = np.sort(rng.choice(kept, size=s.cap, replace=False))
            removed[s.key]["cap"] = int(alive[s.key].sum()) - s.cap
        rows[s.key] = kept
    return Selection(rows=rows, removed=removed, read={k: len(ids[k]) for k in recipe.keys})


def _seed(seed: int, key: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}:{key}".encode(), digest_size=8).digest(), "big")


def _signal_drops(rules: dict[str, Any], df: Any, n: int):
    if df is None or len(df) != n:
        raise RecipeError("the signals file does not match the shards; run `alpacacot-data curate`")
    for flag in SIGNAL_FLAGS:
        if rules.get(flag):
            yield flag, df[flag].to_numpy(dtype=bool).copy()
    if "max_repetition" in rules:
        yield "repetition", (df["repetition"].to_numpy() > rules["max_repetition"])
    length = np.zeros(n, dtype=bool)
    if "min_output_chars" in rules:
        length |= df["output_chars"].to_numpy() < rules["min_output_chars"]
    if "max_output_chars" in rules:
        length |= df["output_chars"].to_numpy() > rules["max_output_chars"]
    if "max_prompt_chars" in rules:
        length |= df["prompt_chars"].to_numpy() > rules["max_prompt_chars"]
    yield "length", length


# ------------------------------------------------------------------------------ reading a collection
def apply_recipe(recipe: Recipe, out_dir: Path, manifest: dict[str, Any]) -> Selection:
    """Read a local collection's ids and curation files and select with `recipe`."""
    import pandas as pd
    import pyarrow.parquet as pq

    out_dir = Path(out_dir)
    missing = [k for k in recipe.keys if k not in manifest.get("sources", {})]
    if missing:
        raise RecipeError(
            f"recipe {recipe.name!r} needs {', '.join(missing)}, not in {out_dir}; "
            f"build it with `alpacacot-data build {' '.join(missing)} --out {out_dir}`"
        )
    cur = out_dir / "curation"
    if recipe.needs_curation and not (cur / "manifest.json").is_file():
        raise RecipeError(
            f"recipe {recipe.name!r} uses curation results, and {out_dir} has none: run "
            f"`alpacacot-data curate {out_dir}` first"
        )
    ids = {}
    for key in recipe.keys:
        paths = [out_dir / s["path"] for s in manifest["sources"][key]["shards"]]
        ids[key] = (
            np.concatenate(
                [
                    pq.read_table(p, columns=["id"]).column("id").to_numpy(zero_copy_only=False)
                    for p in paths
                ]
            )
            if paths
            else np.zeros(0, dtype=object)
        )
    signals = None
    if recipe.signals:
        signals = {}
        for key in recipe.keys:
            path = cur / "signals" / f"{key}.parquet"
            if not path.is_file():
                raise RecipeError(f"{path} missing: run `alpacacot-data curate {out_dir}`")
            df = pd.read_parquet(path)
            if len(df) != len(ids[key]) or not np.array_equal(df["id"].to_numpy(), ids[key]):
                raise RecipeError(
                    f"{path} was made from other shards of {key!r} (rebuilt since): run "
                    f"`alpacacot-data curate {out_dir}` again"
                )
            signals[key] = df
    contaminated: dict[str, set[str]] = {}
    if recipe.decontaminate:
        t = pq.read_table(cur / "contamination.parquet", columns=["id", "benchmark"])
        for rid, bench in zip(
            t.column("id").to_pylist(), t.column("benchmark").to_pylist(), strict=True
        ):
            contaminated.setdefault(bench, set()).add(rid)
    clusters = None
    if recipe.near != "none":
        col = f"{recipe.near}_cluster"
        t = pq.read_table(cur / "clusters.parquet", columns=["id", "source", col, f"{col}_size"])
        clusters = {
            (s, i): c
            for i, s, c, n in zip(*(t.column(x).to_pylist() for x in t.column_names), strict=True)
            if n > 1
        }
    return select(recipe, ids, signals=signals, contaminated=contaminated, clusters=clusters)


def ids_sha256(ids: list[str]) -> str:
    """sha256 over the sorted record ids, one per line (as the trainer's manifest records it)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode("utf-8")).hexdigest()
