"""The catalog: every dataset key, where its files come from and how its rows map to records."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import yaml

from alpacacot import guards
from alpacacot.errors import CatalogError

PACKAGE_CATALOG = Path(str(resources.files("alpacacot") / "catalog.yaml"))


@cache
def load_json_schema(name: str) -> dict[str, Any]:
    """Return one of the package's JSON Schemas (`record` or `catalog`)."""
    text = (resources.files("alpacacot") / "schema" / f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


@cache
def fast_catalog_validator() -> Any:
    """The catalog schema compiled by fastjsonschema (a 5 MB catalog: ~1 s instead of jsonschema's
    ~15 s), or None where it cannot compile it. Only a valid catalog takes this path: one that
    fails is checked again by jsonschema, whose messages name every problem."""
    try:
        import fastjsonschema

        return fastjsonschema.compile(load_json_schema("catalog"))
    except Exception:  # noqa: BLE001 - a schema it cannot compile: jsonschema alone
        return None


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
    no_sample: str = ""  # why no real excerpt is bundled (waives `sample:`)
    homepage: str = ""
    citation: str = ""
    split: str = "train"
    encoding: str = "utf-8"
    subsets: list[str] | None = None  # None: every upstream file
    records: str | None = None  # a JSON file's record list under this top-level key
    size: int | None = None
    alpaca_cot: str = ""
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def record_tags(self) -> list[str]:
        """Tags every record of this dataset carries (Alpaca-CoT's, then the entry's extras)."""
        t = self.tags
        return [t["lang"], t["task"], t["gen"], *t.get("extra", [])]

    def files(self) -> list[SourceFile]:
        """The upstream files of the selected subsets (all without `subsets:`), in catalog order."""
        return [sf for sf in self.all_files() if self.selects(sf.subset)]

    def selects(self, subset: str) -> bool:
        """Whether a file of this subset is built (`subsets:` lists the chosen ones)."""
        return self.subsets is None or subset in self.subsets

    def subset_names(self) -> list[str]:
        """Every subset of the upstream files, in catalog order, once each."""
        return list(dict.fromkeys(sf.subset for sf in self.all_files()))

    def with_subsets(self, subsets: list[str]) -> DatasetEntry:
        """This entry building only `subsets` (e.g. one xP3 language); unknown names are an error."""
        known = self.subset_names()
        unknown = [s for s in subsets if s not in known]
        if unknown:
            raise CatalogError(
                f"dataset {self.key!r} has no subset {', '.join(map(repr, unknown))}; "
                f"its subsets are: {', '.join(known)}"
            )
        return replace(self, subsets=list(subsets), raw={**self.raw, "subsets": list(subsets)})

    def all_files(self) -> list[SourceFile]:
        """Every upstream file, whatever `subsets:` selects, in catalog order."""
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
        upstream = self.all_files()
        out = []
        for i, path in enumerate(self.sample):
            twin = upstream[i] if i < len(upstream) else None
            if twin is not None and not self.selects(twin.subset):
                continue
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
            k: v
            for k, v in self.raw.items()
            if k not in {"description", "homepage", "citation", "size", "alpaca_cot"}
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
    subsets: list[str] | None = None  # a benchmark is always read whole

    # A benchmark's files are declared exactly like a dataset's.
    all_files = DatasetEntry.all_files
    files = DatasetEntry.files
    selects = DatasetEntry.selects
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
    # --allow-outside-catalog: local paths may leave the catalog's folder
    allow_outside: bool = False
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

    def local_path(self, location: str, where: str = "local path") -> Path:
        """The file a local `location` names, confined as `guards.confine_path` says (checked at
        load time, and again here because the file may have changed since)."""
        return guards.confine_path(
            self.root, location, allow_outside=self.allow_outside, where=f"{self.path}: {where}"
        )


def _check_entry_options(path: Path, entry: DatasetEntry) -> None:
    """What the JSON Schema cannot say about `encoding`, `subsets` and `records`."""
    import codecs

    where = f"{path}: datasets/{entry.key}"
    try:
        codecs.lookup(entry.encoding)
    except LookupError:
        raise CatalogError(
            f"{where}/encoding: unknown text encoding {entry.encoding!r} "
            "(use a Python codec name such as gb18030, utf-16 or latin-1)"
        ) from None
    if entry.encoding.lower().replace("-", "").replace("_", "") not in {"utf8", "utf8sig"} and (
        entry.format == "parquet"
    ):
        raise CatalogError(f"{where}/encoding: a parquet file has no text encoding to set")
    if entry.records and entry.format != "json":
        raise CatalogError(f"{where}/records: only a `format: json` file has a record list to name")
    if entry.subsets is not None:
        known = entry.subset_names()
        unknown = [s for s in entry.subsets if s not in known]
        if unknown:
            raise CatalogError(
                f"{where}/subsets: no upstream file has subset {', '.join(map(repr, unknown))}; "
                f"the files' subsets are: {', '.join(known)}"
            )


def load_catalog(path: str | Path | None = None, *, allow_outside: bool = False) -> Catalog:
    """Load and validate a catalog file (default: the one bundled with the package).

    The catalog may come from a stranger's pull request: its size, aliases, names, Hub ids and local
    paths are checked here, once (see `guards`); `allow_outside` lets local paths leave the
    catalog's folder (`--allow-outside-catalog`). Raises CatalogError naming the file and the
    offending entry and field.
    """
    path = Path(path) if path is not None else PACKAGE_CATALOG
    data_bytes = guards.read_catalog_bytes(path)
    try:
        data = guards.load_yaml(data_bytes)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{path}: not valid YAML: {exc}") from exc
    except RecursionError:  # pure-Python PyYAML (no libyaml) on a deeply nested document
        raise CatalogError(f"{path}: not valid YAML: nested too deeply") from None
    except CatalogError as exc:
        raise CatalogError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogError(
            f"{path}: a catalog is a mapping with `datasets:` (and optional `mixes:`)"
        )
    check_names(path, data)
    fast = fast_catalog_validator()
    valid = False
    if fast is not None:
        try:
            fast(data)  # the schema sets no `default`, so `data` is left as it is
            valid = True
        except Exception:  # noqa: BLE001 - JsonSchemaValueException: jsonschema words it below
            pass
    validator = jsonschema.Draft202012Validator(load_json_schema("catalog"))
    errors = (
        [] if valid else sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
    )
    if errors:
        lines = []
        for err in errors[:10]:
            where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
            lines.append(f"  {where}: {err.message}")
        raise CatalogError(f"{path}: catalog does not match its schema:\n" + "\n".join(lines))
    datasets = {}
    for key, raw in data["datasets"].items():
        sample = raw.get("sample", [])
        if sample and raw.get("no_sample"):
            raise CatalogError(
                f"{path}: datasets/{key}: `sample:` and `no_sample:` together; keep `sample:` "
                "and delete `no_sample:` once a real excerpt is bundled"
            )
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
            no_sample=raw.get("no_sample", ""),
            homepage=raw.get("homepage", ""),
            citation=raw.get("citation", ""),
            split=raw.get("split", "train"),
            encoding=raw.get("encoding", "utf-8"),
            subsets=raw.get("subsets"),
            records=raw.get("records"),
            size=raw.get("size"),
            alpaca_cot=raw.get("alpaca_cot", ""),
            raw=raw,
        )
    mixes = data.get("mixes") or {}
    catalog = Catalog(
        path=path.resolve(),
        datasets=datasets,
        mixes=mixes,
        sha256=hashlib.sha256(data_bytes).hexdigest(),
        allow_outside=allow_outside,
        benchmarks={k: _benchmark(k, raw) for k, raw in (data.get("benchmarks") or {}).items()},
        recipes=data.get("recipes") or {},
    )
    for entry in datasets.values():
        if entry.source["kind"] == "hf" and any(not sf.repo for sf in entry.files()):
            raise CatalogError(
                f"{path}: datasets/{entry.key}/source: a Hub source needs `repo:` (on the source, "
                "or on every file)"
            )
        check_locations(catalog, f"datasets/{entry.key}", entry.raw)
    for key, raw in (data.get("benchmarks") or {}).items():
        # evaluation sets (branch curation) name files the same way: the same rules
        if isinstance(raw, dict) and isinstance(raw.get("source"), dict):
            check_locations(catalog, f"benchmarks/{key}", raw)
    for entry in datasets.values():
        _check_entry_options(path, entry)
    for mix in mixes:
        if mix in datasets:
            raise CatalogError(f"{path}: mix {mix!r} has the same name as a dataset key")
        catalog.resolve(mix)
    for name, recipe in catalog.recipes.items():
        _check_recipe(catalog, name, recipe, f"{path}: recipes/{name}")
    return catalog


def check_names(path: Path, data: dict[str, Any]) -> None:
    """Every dataset key and mix name matches its rule in full and fits MAX_KEY_LENGTH; checked
    before the schema, whose error would not say the length limit."""
    sections = (
        ("datasets", guards.KEY_RULE, "dataset key"),
        ("mixes", guards.MIX_RULE, "mix"),
        ("benchmarks", guards.KEY_RULE, "benchmark key"),
    )
    for section, rule, what in sections:
        names = data.get(section)
        if not isinstance(names, dict):
            continue
        for name in names:
            if problem := guards.name_problem(name, rule, what):
                raise CatalogError(f"{path}: {section}: {problem}")


def check_locations(catalog: Catalog, base: str, raw: dict[str, Any]) -> None:
    """Each file the entry `raw` (a dataset, or a benchmark) names is safe to use: local paths
    confined (`guards.confine_path`), Hub repo ids, revisions and file names valid, URLs http(s).
    `base` names the entry in errors (`datasets/<key>`)."""
    src = raw["source"]
    kind = src.get("kind")
    fields: list[tuple[str, Any]] = []  # (field, value) pairs naming a file
    for name in ("path", "url"):
        if name in src:
            fields.append((f"source.{name}", src[name]))
    for i, spec in enumerate(src.get("files", [])):
        if isinstance(spec, str):
            fields.append((f"source.files[{i}]", spec))
            continue
        fields += [
            (f"source.files[{i}].{n}", spec[n]) for n in ("path", "url", "file") if n in spec
        ]
        for n, check in (("repo", guards.repo_problem), ("revision", guards.revision_problem)):
            if n in spec and (problem := check(spec[n])):
                raise CatalogError(f"{catalog.path}: {base}/source.files[{i}].{n}: {problem}")
    for n, check in (("repo", guards.repo_problem), ("revision", guards.revision_problem)):
        if n in src and (problem := check(src[n])):
            raise CatalogError(f"{catalog.path}: {base}/source.{n}: {problem}")
    for field_name, value in fields:
        if kind == "hf":
            if problem := guards.hub_file_problem(value):
                raise CatalogError(f"{catalog.path}: {base}/{field_name}: {problem}")
        elif kind == "url":
            if not (isinstance(value, str) and value.startswith(("https://", "http://"))):
                raise CatalogError(
                    f"{catalog.path}: {base}/{field_name}: {value!r} is not an http(s) URL"
                )
        else:  # local, or a kind this code does not know: treated as a local path
            catalog.local_path(value, f"{base}/{field_name}")
    sample = raw.get("sample") or []
    for i, location in enumerate([sample] if isinstance(sample, str) else sample):
        catalog.local_path(location, f"{base}/sample[{i}]")


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
