"""The catalog: every dataset key, where its files come from and how its rows map to records."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import yaml

from alpacacot.errors import CatalogError

PACKAGE_CATALOG = Path(str(resources.files("alpacacot") / "catalog.yaml"))


@cache
def load_json_schema(name: str) -> dict[str, Any]:
    """Return one of the package's JSON Schemas (`record` or `catalog`)."""
    text = (resources.files("alpacacot") / "schema" / f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a mapping with the same key twice (else silently overwritten)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise CatalogError(
                    f"line {key_node.start_mark.line + 1}: key {key!r} appears twice "
                    f"(first on line {seen[key]}); every dataset key must be unique"
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


@dataclass(frozen=True)
class SourceFile:
    """One upstream file of a dataset."""

    kind: str  # local | url | hf
    location: str  # path relative to the catalog, URL, or file name inside a Hub repo
    sha256: str | None
    subset: str
    repo: str | None = None
    revision: str | None = None
    normalizer: str | None = None  # None: the entry's

    @property
    def is_pattern(self) -> bool:
        """A Hub file given as a glob pattern, expanded when collected."""
        return self.kind == "hf" and any(c in self.location for c in "*?[")

    @property
    def display(self) -> str:
        """How provenance names this file."""
        if self.kind == "hf":
            return f"hf://datasets/{self.repo}/{self.location}"
        return self.location


@dataclass(frozen=True)
class DatasetEntry:
    """A catalog entry, validated."""

    key: str
    description: str
    license: str
    languages: list[str]
    tags: dict[str, Any]
    source: dict[str, Any]
    format: str
    normalizer: str = "fields"
    fields: dict[str, str] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    columns: list[str] | None = None
    compression: str = "infer"
    sample: list[str] = field(default_factory=list)
    homepage: str = ""
    citation: str = ""
    split: str = "train"
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def record_tags(self) -> list[str]:
        """Tags every record of this dataset carries (Alpaca-CoT's, then the entry's extras)."""
        t = self.tags
        return [t["lang"], t["task"], t["gen"], *t.get("extra", [])]

    def files(self) -> list[SourceFile]:
        """The upstream files, in catalog order."""
        src = self.source
        kind = src["kind"]
        specs = src.get("files")
        if specs is None:
            single = src.get("path") or src.get("url")
            specs = [{"path" if kind == "local" else "url": single, "sha256": src.get("sha256")}]
        out = []
        for spec in specs:
            if isinstance(spec, str):
                spec = {"file" if kind == "hf" else ("path" if kind == "local" else "url"): spec}
            location = spec.get("path") or spec.get("url") or spec.get("file")
            out.append(
                SourceFile(
                    kind=kind,
                    location=location,
                    sha256=spec.get("sha256"),
                    subset=spec.get("subset") or subset_name(location),
                    repo=spec.get("repo") or src.get("repo"),
                    revision=spec.get("revision") or src.get("revision"),
                    normalizer=spec.get("normalizer"),
                )
            )
        return out

    def sample_files(self) -> list[SourceFile]:
        """The bundled excerpts standing in for the upstream files (`--sample`)."""
        upstream = self.files()
        out = []
        for i, path in enumerate(self.sample):
            twin = upstream[i] if i < len(upstream) else None
            out.append(
                SourceFile(
                    kind="local",
                    location=path,
                    sha256=None,
                    subset=twin.subset if twin else subset_name(path),
                    normalizer=twin.normalizer if twin else None,
                )
            )
        return out

    def fingerprint_data(self) -> dict[str, Any]:
        """What about this entry changes its output (for rebuild skipping)."""
        return {
            k: v for k, v in self.raw.items() if k not in {"description", "homepage", "citation"}
        }


@dataclass(frozen=True)
class BenchmarkEntry:
    """An evaluation set of the catalog's `benchmarks:` section (for decontamination)."""

    key: str
    description: str
    license: str
    source: dict[str, Any]
    format: str
    text_fields: list[str]
    records: str | None = None
    columns: list[str] | None = None
    compression: str = "infer"
    sample: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=list)
    homepage: str = ""
    citation: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    # A benchmark's files are declared exactly like a dataset's.
    files = DatasetEntry.files
    sample_files = DatasetEntry.sample_files


def subset_name(location: str) -> str:
    """`.../aqua_train.tsv.gz` -> `aqua`."""
    name = PurePosixPath(location.split("?")[0]).name
    for suffix in (".gz", ".json", ".jsonl", ".tsv", ".csv", ".parquet"):
        name = name.removesuffix(suffix)
    return name.removesuffix("_train")


@dataclass
class Catalog:
    """All dataset entries and mixes of one catalog file."""

    path: Path
    datasets: dict[str, DatasetEntry]
    mixes: dict[str, list[str]]
    sha256: str
    benchmarks: dict[str, BenchmarkEntry] = field(default_factory=dict)
    recipes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.path.parent

    def resolve(self, name: str, _seen: tuple[str, ...] = ()) -> list[str]:
        """Expand a key, a mix, or keys/mixes joined by `-` into dataset keys (in order, once)."""
        if name in self.datasets:
            return [name]
        if name in _seen:
            raise CatalogError(f"{self.path}: mix {name!r} contains itself ({' -> '.join(_seen)})")
        if name in self.mixes:
            parts = self.mixes[name]
        elif "-" in name:
            parts = name.split("-")
        else:
            raise CatalogError(self._unknown(name))
        keys: list[str] = []
        for part in parts:
            if part not in self.datasets and part not in self.mixes:
                raise CatalogError(self._unknown(part, within=name))
            for key in self.resolve(part, (*_seen, name)):
                if key not in keys:
                    keys.append(key)
        return keys

    def _unknown(self, name: str, within: str | None = None) -> str:
        where = f" (in {within!r})" if within else ""
        known = ", ".join(sorted(self.datasets))
        mixes = ", ".join(sorted(self.mixes)) or "none"
        return (
            f"unknown dataset {name!r}{where} in catalog {self.path}. "
            f"Known keys: {known}. Mixes: {mixes}. Run `alpacacot-data list` to see them."
        )

    def local_path(self, location: str) -> Path:
        return (self.root / location).resolve()


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Load and validate a catalog file (default: the one bundled with the package).

    Raises CatalogError naming the file and the offending entry and field.
    """
    path = Path(path) if path is not None else PACKAGE_CATALOG
    try:
        data_bytes = path.read_bytes()
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc.strerror}") from exc
    try:
        data = yaml.load(data_bytes, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from exc
    except CatalogError as exc:
        raise CatalogError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogError(
            f"{path}: a catalog is a mapping with `datasets:` (and optional `mixes:`)"
        )
    validator = jsonschema.Draft202012Validator(load_json_schema("catalog"))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    if errors:
        lines = []
        for err in errors[:10]:
            where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
            lines.append(f"  {where}: {err.message}")
        raise CatalogError(f"{path}: catalog does not match its schema:\n" + "\n".join(lines))
    datasets = {}
    for key, raw in data["datasets"].items():
        sample = raw.get("sample", [])
        datasets[key] = DatasetEntry(
            key=key,
            description=raw["description"],
            license=raw["license"],
            languages=raw["languages"],
            tags=raw["tags"],
            source=raw["source"],
            format=raw["format"],
            normalizer=raw.get("normalizer", "fields"),
            fields=raw.get("fields", {}),
            options=raw.get("options", {}),
            columns=raw.get("columns"),
            compression=raw.get("compression", "infer"),
            sample=[sample] if isinstance(sample, str) else list(sample),
            homepage=raw.get("homepage", ""),
            citation=raw.get("citation", ""),
            split=raw.get("split", "train"),
            raw=raw,
        )
    mixes = data.get("mixes") or {}
    catalog = Catalog(
        path=path.resolve(),
        datasets=datasets,
        mixes=mixes,
        sha256=hashlib.sha256(data_bytes).hexdigest(),
        benchmarks={k: _benchmark(k, raw) for k, raw in (data.get("benchmarks") or {}).items()},
        recipes=data.get("recipes") or {},
    )
    for entry in datasets.values():
        if entry.source["kind"] == "hf" and any(not sf.repo for sf in entry.files()):
            raise CatalogError(
                f"{path}: datasets/{entry.key}/source: a Hub source needs `repo:` (on the source, "
                "or on every file)"
            )
    for mix in mixes:
        if mix in datasets:
            raise CatalogError(f"{path}: mix {mix!r} has the same name as a dataset key")
        catalog.resolve(mix)
    for name, recipe in catalog.recipes.items():
        _check_recipe(catalog, name, recipe, f"{path}: recipes/{name}")
    return catalog


def _benchmark(key: str, raw: dict[str, Any]) -> BenchmarkEntry:
    text = raw["fields"]["text"]
    sample = raw.get("sample", [])
    return BenchmarkEntry(
        key=key,
        description=raw["description"],
        license=raw["license"],
        source=raw["source"],
        format=raw["format"],
        text_fields=[text] if isinstance(text, str) else list(text),
        records=raw.get("records"),
        columns=raw.get("columns"),
        compression=raw.get("compression", "infer"),
        sample=[sample] if isinstance(sample, str) else list(sample),
        languages=raw.get("languages", []),
        homepage=raw.get("homepage", ""),
        citation=raw.get("citation", ""),
        raw=raw,
    )


def _check_recipe(catalog: Catalog, name: str, recipe: dict[str, Any], where: str) -> None:
    """A recipe names known dataset keys, benchmarks, and a name no key or mix has."""
    if name in catalog.datasets or name in catalog.mixes:
        raise CatalogError(f"{where}: recipe {name!r} has the same name as a dataset key or mix")
    keys = [s if isinstance(s, str) else s["key"] for s in recipe["sources"]]
    for i, key in enumerate(keys):
        if key not in catalog.datasets:
            raise CatalogError(
                f"{where}/sources/{i}: {key!r} is not a dataset key of the catalog "
                f"(known: {', '.join(sorted(catalog.datasets))})"
            )
    for i, key in enumerate((recipe.get("dedup") or {}).get("prefer", [])):
        if key not in keys:
            raise CatalogError(
                f"{where}/dedup/prefer/{i}: {key!r} is not one of the recipe's sources {keys}"
            )
    decon = recipe.get("decontaminate", True)
    for i, key in enumerate(decon if isinstance(decon, list) else []):
        if key not in catalog.benchmarks:
            raise CatalogError(
                f"{where}/decontaminate/{i}: {key!r} is not a benchmark of the catalog "
                f"(known: {', '.join(sorted(catalog.benchmarks)) or 'none'})"
            )
