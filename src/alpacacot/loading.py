"""`alpacacot.load`: a dataset key or a mix of the collection as a `datasets.Dataset`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alpacacot.errors import AlpacacotError

if TYPE_CHECKING:
    import datasets

    from alpacacot.catalog import Catalog


def _manifest(collection: str | os.PathLike, revision: str | None) -> tuple[dict, str]:
    """The collection's manifest and the folder holding its files (local, or the Hub's cache)."""
    local = Path(collection)
    if local.is_dir():
        path = local / "manifest.json"
        if not path.is_file():
            raise AlpacacotError(
                f"{local} has no manifest.json: is it the --out folder of `alpacacot-data build`?"
            )
        return json.loads(path.read_text("utf-8")), str(local.resolve())
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(
            str(collection), "manifest.json", repo_type="dataset", revision=revision
        )
    except Exception as exc:  # noqa: BLE001 - huggingface_hub raises many kinds; all mean "not found"
        raise AlpacacotError(
            f"collection {collection!r} is neither a local folder nor a reachable Hub dataset repo "
            f"({type(exc).__name__}: {exc})"
        ) from exc
    return json.loads(Path(path).read_text("utf-8")), str(Path(path).parent)


def resolve_keys(name: str | list[str], manifest: dict, catalog: Catalog | None) -> list[str]:
    """Expand keys and mixes.

    With no catalog, the collection describes itself: its keys are the sources its manifest lists
    (so a collection built from a custom catalog loads too), and its mixes are those the manifest
    records plus the bundled catalog's mixes.
    """
    from alpacacot.catalog import Catalog as _Catalog
    from alpacacot.catalog import load_catalog

    names = [name] if isinstance(name, str) else list(name)
    sources = manifest.get("sources", {})
    if catalog is None:
        bundled = load_catalog()
        catalog = _Catalog(
            path=Path(manifest.get("catalog", {}).get("path", bundled.path)),
            datasets={**bundled.datasets, **dict.fromkeys(sources)},
            mixes={**bundled.mixes, **manifest.get("mixes", {})},
            sha256=manifest.get("catalog", {}).get("sha256", bundled.sha256),
        )
    keys: list[str] = []
    for n in names:
        keys += [k for k in catalog.resolve(n) if k not in keys]
    missing = [k for k in keys if k not in sources]
    if missing:
        built = ", ".join(sorted(sources)) or "none"
        raise AlpacacotError(
            f"{', '.join(missing)} not in this collection (it has: {built}); "
            f"build it with `alpacacot-data build {' '.join(missing)}`"
        )
    return keys


def _check_shard_names(collection: object, base: str, manifest: dict, key: str) -> None:
    """The manifest (someone else's, from the Hub or a folder) names only shards a build writes:
    never `../x` or a file outside the collection (hub.collection.declared_file)."""
    from alpacacot.hub.collection import declared_file, declared_name

    for shard in manifest["sources"][key]["shards"]:
        if Path(str(collection)).is_dir():
            declared_file(Path(base), shard.get("path"), key)
        else:  # the Hub's cache links every file to its blob: the names are what count
            declared_name(shard.get("path"), key, (), f"{collection}: manifest.json")


def load(
    name: str | list[str],
    collection: str | os.PathLike = "out",
    *,
    weights: dict[str, float] | None = None,
    seed: int = 0,
    dedupe: bool = True,
    as_dict: bool = False,
    catalog: Catalog | None = None,
    revision: str | None = None,
    allow_eval: bool = False,
) -> datasets.Dataset | dict[str, datasets.Dataset]:
    """Load a dataset key, a mix, or keys joined by `-` from a built collection.

    Args:
        name: a catalog key (`"cot"`), a mix (`"alpaca-belle-cot"`), keys joined by `-`, a list,
            or a recipe (`"alpaca-gpt4-curated"`, or a recipe `.yaml` file): its sources after
            decontamination, signal thresholds and deduplication (see alpacacot.recipes; needs a
            local collection that `alpacacot-data curate` has run on).
        collection: the `--out` folder of `alpacacot-data build`, or a Hub dataset repo id
            (`"ORG/NAME"`) that `publish` wrote. Default: `out`.
        weights: per-key sampling factor for a mix; 0.5 keeps a seeded half of that source, 2.0
            repeats it twice (the fraction above a whole number is sampled). Default: 1 for all.
        seed: seed of that sampling.
        dedupe: drop records whose `id` already appeared in an earlier source of the mix (the order
            of the mix decides which source keeps a shared record). Default True.
        as_dict: return `{key: Dataset}` (weights and dedupe applied) instead of one Dataset.
        catalog: catalog that defines the keys and mixes. Default: the collection's own sources
            and recorded mixes, plus the bundled catalog's mixes.
        revision: Hub revision when `collection` is a repo id.
        allow_eval: read sources whose catalog entry says `split: eval`. They are kept for
            decontamination, so by default asking for one is an error (the trainer never sets it).

    Returns:
        One `datasets.Dataset` with the record columns (see docs/CONTRACT.md), or a dict of them.
    """
    import datasets

    from alpacacot.recipes import find_recipe

    recipe = find_recipe(name, catalog)
    if recipe is not None:
        return load_recipe(recipe, collection, weights=weights, seed=seed, as_dict=as_dict)
    manifest, base = _manifest(collection, revision)
    keys = resolve_keys(name, manifest, catalog)
    held_out = [k for k in keys if manifest["sources"][k].get("split") == "eval"]
    if held_out and not allow_eval:
        raise AlpacacotError(
            f"{', '.join(held_out)}: evaluation set(s) (`split: eval` in the catalog), kept for "
            "decontamination and never loaded for training; pass allow_eval=True to read them"
        )
    unknown = set(weights or {}) - set(keys)
    if unknown:
        raise AlpacacotError(f"weights name {', '.join(sorted(unknown))}, which is not in {keys}")
    parts: dict[str, datasets.Dataset] = {}
    seen: set[str] = set()
    for key in keys:
        _check_shard_names(collection, base, manifest, key)
        files = [f"{base}/{shard['path']}" for shard in manifest["sources"][key]["shards"]]
        if not (Path(base) / manifest["sources"][key]["shards"][0]["path"]).exists():
            from huggingface_hub import hf_hub_download

            files = [
                hf_hub_download(str(collection), s["path"], repo_type="dataset", revision=revision)
                for s in manifest["sources"][key]["shards"]
            ]
        ds = datasets.Dataset.from_parquet(files, split="train")
        if dedupe and len(keys) > 1:
            ids = ds["id"]
            keep = [i for i, rid in enumerate(ids) if rid not in seen]
            seen.update(ids)
            if len(keep) < len(ds):
                ds = ds.select(keep)
        factor = (weights or {}).get(key, 1.0)
        if factor != 1.0:
            ds = _reweight(ds, factor, seed)
        parts[key] = ds
    if as_dict:
        return parts
    if len(parts) == 1:
        return next(iter(parts.values()))
    return datasets.concatenate_datasets(list(parts.values()))


def _reweight(ds: datasets.Dataset, factor: float, seed: int) -> datasets.Dataset:
    import datasets as hf_datasets

    if factor < 0:
        raise AlpacacotError(f"a weight must be >= 0, got {factor}")
    whole, frac = int(factor), factor - int(factor)
    pieces = [ds] * whole
    n = round(len(ds) * frac)
    if n:
        pieces.append(ds.shuffle(seed=seed).select(range(n)))
    if not pieces:
        return ds.select([])
    return pieces[0] if len(pieces) == 1 else hf_datasets.concatenate_datasets(pieces)


def load_recipe(
    recipe: Any,
    collection: str | os.PathLike = "out",
    *,
    weights: dict[str, float] | None = None,
    seed: int = 0,
    as_dict: bool = False,
) -> datasets.Dataset | dict[str, datasets.Dataset]:
    """The records a recipe selects from a local curated collection (per source, recipe order)."""
    import datasets

    from alpacacot.recipes import apply_recipe

    local = Path(collection)
    if not local.is_dir():
        raise AlpacacotError(
            f"recipe {recipe.name!r}: {collection} is not a local collection folder; recipes read "
            "the curation files of a local build (download the repo, or build and curate it)"
        )
    manifest, base = _manifest(collection, None)
    selection = apply_recipe(recipe, local, manifest)
    parts: dict[str, datasets.Dataset] = {}
    for src in recipe.sources:
        files = [f"{base}/{shard['path']}" for shard in manifest["sources"][src.key]["shards"]]
        ds = datasets.Dataset.from_parquet(files, split="train")
        ds = ds.select(selection.rows[src.key].tolist())
        factor = (weights or {}).get(src.key, src.weight)
        if factor != 1.0:
            ds = _reweight(ds, factor, seed if weights else recipe.seed)
        parts[src.key] = ds
    if as_dict:
        return parts
    if len(parts) == 1:
        return next(iter(parts.values()))
    return datasets.concatenate_datasets(list(parts.values()))
