"""`alpacacot-data new`: add a dataset to a catalog without writing Python.

From one upstream file (local or URL) it writes: the catalog entry (appended inside `datasets:`,
with the file's sha256 and a field mapping, checked by `load_catalog`), a sample excerpt of the
first rows in the same format under `samples/<key>/` next to the catalog, and on request a
normalizer skeleton with its test for layouts a field mapping cannot express.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import yaml

from alpacacot.errors import AlpacacotError

KEY = re.compile(r"^[a-z0-9][a-z0-9_]*$")
LANG_TAG = {"en": "EN", "zh": "CN"}
# Column names seen in instruction datasets, most specific first.
GUESSES = {
    "instruction": ("instruction", "prompt", "question", "query", "problem", "inputs"),
    "input": ("input", "context", "passage"),
    "output": ("output", "response", "answer", "completion", "target", "targets", "solution"),
}
NEW_CATALOG = (
    "# alpacacot catalog: see CONTRIBUTING.md for every key of an entry.\nversion: 1\ndatasets:\n"
)


class ScaffoldError(AlpacacotError):
    """`new` cannot add this dataset; the message says which option to fix."""


@dataclass
class NewDataset:
    """What `alpacacot-data new` was asked to add."""

    key: str
    format: str
    path: Path | None = None
    url: str | None = None
    fields: str | None = None  # "instruction=col,input=col,output=col"
    license: str = "unknown"
    description: str | None = None
    languages: list[str] = field(default_factory=list)
    normalizer: bool = False
    rows: int = 20
    task: str = "MT"
    gen: str = "SI"
    columns: list[str] | None = None  # headerless tsv/csv
    code_root: Path | None = None  # where src/ and tests/ of the checkout are (normalizer skeleton)


def add_dataset(spec: NewDataset, catalog_path: Path) -> dict[str, Path]:
    """Write the entry, the sample and (optionally) a normalizer skeleton; return the paths."""
    catalog_path = Path(catalog_path)
    _check_spec(spec, catalog_path)
    with tempfile.TemporaryDirectory(prefix="alpacacot-new-") as tmp:
        upstream, sha256, name = _fetch(spec, Path(tmp))
        rows = _first_rows(upstream, spec, name)
        if not rows:
            raise ScaffoldError(f"{name}: no rows could be read as {spec.format}; check --format.")
        if spec.fields:
            mapping = parse_fields(spec.fields)
        elif spec.normalizer:
            try:
                mapping = guess_fields(rows[0], name)
            except ScaffoldError:  # the skeleton is where the layout gets handled
                mapping = {"instruction": "instruction", "output": "output"}
        else:
            mapping = guess_fields(rows[0], name)
        if not spec.normalizer:
            _check_fields(mapping, rows[0], name)
        sample_rel = f"samples/{spec.key}/{_sample_name(name)}"
        sample_path = catalog_path.parent / sample_rel
        sample_path.parent.mkdir(parents=True, exist_ok=True)
        write_sample(upstream, sample_path, spec, rows)
    languages = spec.languages or detect_languages(rows, mapping)
    entry = build_entry(spec, catalog_path, sha256, mapping, languages, sample_rel)
    created = {"catalog entry": catalog_path, "sample": sample_path}
    try:
        append_entry(catalog_path, spec.key, entry)
    except AlpacacotError:
        sample_path.unlink(missing_ok=True)
        raise
    if spec.normalizer:
        created.update(write_normalizer(spec, mapping, catalog_path, sample_rel))
    return created


def _check_spec(spec: NewDataset, catalog_path: Path) -> None:
    if not KEY.match(spec.key):
        raise ScaffoldError(
            f"key {spec.key!r} is not valid: use lowercase letters, digits and _ (no -), "
            "e.g. dolly_15k"
        )
    if (spec.path is None) == (spec.url is None):
        raise ScaffoldError("give exactly one of --path FILE or --url URL")
    if spec.url and not re.match(r"^https?://", spec.url):
        raise ScaffoldError(f"--url {spec.url!r} must start with http:// or https://")
    if spec.path and not Path(spec.path).is_file():
        raise ScaffoldError(f"--path {spec.path}: no such file")
    if catalog_path.is_file():
        data = yaml.safe_load(catalog_path.read_text(encoding="utf-8")) or {}
        if spec.key in (data.get("datasets") or {}):
            raise ScaffoldError(
                f"{catalog_path} already has a dataset {spec.key!r}: pick another key or edit it."
            )
    for lang in spec.languages:
        if not re.match(r"^[a-z]{2,3}$", lang):
            raise ScaffoldError(f"--language {lang!r}: use an ISO 639-1 code such as en or zh")


def _fetch(spec: NewDataset, tmp: Path) -> tuple[Path, str, str]:
    """The upstream file on disk, its sha256 and its file name."""
    if spec.path is not None:
        path = Path(spec.path)
        return path, _sha256(path), path.name
    from alpacacot.collectors.url import download

    name = PurePosixPath(urlparse(spec.url).path).name or f"{spec.key}.{spec.format}"
    target = tmp / name
    download(spec.url, target, spec.key)
    return target, _sha256(target), name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _sample_name(name: str) -> str:
    return name.removesuffix(".gz")


def _first_rows(path: Path, spec: NewDataset, name: str) -> list[dict[str, Any]]:
    from alpacacot.readers import RowError, iter_rows

    rows = []
    for _, value in iter_rows(path, spec.format, name=name, columns=spec.columns):
        if isinstance(value, RowError):
            continue
        rows.append(value)
        if len(rows) >= spec.rows:
            break
    return rows


def parse_fields(text: str) -> dict[str, str]:
    """`instruction=q,output=a` -> {"instruction": "q", "output": "a"}, checked."""
    mapping = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, column = part.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not column:
            raise ScaffoldError(f"--fields: {part!r} is not NAME=COLUMN")
        if name not in ("instruction", "input", "output", "history"):
            raise ScaffoldError(
                f"--fields: {name!r} is not a record field; use instruction, input, output, history"
            )
        mapping[name] = column
    for required in ("instruction", "output"):
        if required not in mapping:
            raise ScaffoldError(f"--fields must map {required}, e.g. {required}=<column>")
    return mapping


def guess_fields(row: dict[str, Any], name: str) -> dict[str, str]:
    """Map the usual column names; fail with the columns seen and a --fields example."""
    lower = {str(c).lower(): c for c in row}
    mapping = {}
    for target, candidates in GUESSES.items():
        for cand in candidates:
            if cand in lower and lower[cand] not in mapping.values():
                mapping[target] = lower[cand]
                break
    if "instruction" not in mapping or "output" not in mapping:
        cols = ", ".join(map(str, row))
        raise ScaffoldError(
            f"{name}: cannot guess which columns hold the instruction and the output "
            f"(columns: {cols}). Pass --fields instruction=COL,input=COL,output=COL, "
            "or --normalizer for a layout that needs code."
        )
    return mapping


def _check_fields(mapping: dict[str, str], row: dict[str, Any], name: str) -> None:
    missing = [f"{k}={v}" for k, v in mapping.items() if v not in row]
    if missing:
        raise ScaffoldError(
            f"{name}: --fields names column(s) the file does not have ({', '.join(missing)}); "
            f"its first row has: {', '.join(map(str, row))}"
        )


def detect_languages(rows: list[dict[str, Any]], mapping: dict[str, str]) -> list[str]:
    """Languages covering at least 20% of the sample rows (the build tags each record anyway)."""
    from alpacacot.lang import LanguageTagger

    tagger = LanguageTagger()
    counts: Counter = Counter()
    for row in rows:
        text = {k: str(row.get(v) or "") for k, v in mapping.items() if k != "history"}
        lang = tagger(text.get("instruction", ""), text.get("input", ""), text.get("output", ""))
        if lang != "und":
            counts[lang] += 1
    langs = [lang for lang, n in counts.most_common() if n >= 0.2 * len(rows)]
    return langs or ["en"]


def write_sample(upstream: Path, target: Path, spec: NewDataset, rows: list[dict]) -> None:
    """The first rows in the upstream format, so the build reads the sample like the real file."""
    fmt = spec.format
    if fmt == "json":
        target.write_text(json.dumps(rows, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    elif fmt == "jsonl":
        target.write_text(
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
        )
    elif fmt in ("tsv", "csv"):
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter="\t" if fmt == "tsv" else ",", lineterminator="\n")
        columns = spec.columns or list(rows[0])
        if not spec.columns:
            writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
        target.write_text(buf.getvalue(), encoding="utf-8")
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        batch = next(pq.ParquetFile(upstream).iter_batches(batch_size=len(rows)))
        pq.write_table(_table(batch), target)
    else:  # pragma: no cover - typer restricts the choices
        raise ScaffoldError(f"unknown --format {fmt}")


def _table(batch: Any) -> Any:
    import pyarrow as pa

    return pa.Table.from_batches([batch])


def build_entry(
    spec: NewDataset,
    catalog_path: Path,
    sha256: str,
    mapping: dict[str, str],
    languages: list[str],
    sample_rel: str,
) -> dict[str, Any]:
    """The catalog entry, keys in the order CONTRIBUTING.md documents them."""
    if spec.path is not None:
        location = _relative_to(Path(spec.path), catalog_path.parent)
        source = {"kind": "local", "path": location, "sha256": sha256}
    else:
        source = {"kind": "url", "url": spec.url, "sha256": sha256}
    lang_tag = "ML" if len(languages) > 1 else LANG_TAG.get(languages[0], "ML")
    entry: dict[str, Any] = {
        "description": spec.description
        or f"{spec.key} (added with alpacacot-data new; describe it)",
        "homepage": spec.url or "",
        "citation": "",
        "license": spec.license,
        "languages": languages,
        "tags": {"lang": lang_tag, "task": spec.task, "gen": spec.gen},
        "source": source,
        "format": spec.format,
    }
    if spec.columns:
        entry["columns"] = spec.columns
    if spec.normalizer:
        entry["normalizer"] = spec.key
    entry["fields"] = mapping
    entry["sample"] = sample_rel
    return entry


def _relative_to(path: Path, root: Path) -> str:
    import os

    try:
        return Path(os.path.relpath(path.resolve(), root.resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return path.resolve().as_posix()


def append_entry(catalog_path: Path, key: str, entry: dict[str, Any]) -> None:
    """Insert the entry at the end of `datasets:` (comments and order kept), then validate the
    catalog with `load_catalog`; on failure the file is restored."""
    from alpacacot.catalog import load_catalog

    original = catalog_path.read_text(encoding="utf-8") if catalog_path.is_file() else None
    text = original if original is not None else NEW_CATALOG
    lines = text.splitlines(keepends=True)
    start = next(
        (i for i, line in enumerate(lines) if re.match(r"^datasets:\s*(#.*)?$", line)), None
    )
    if start is None:
        if re.search(r"^datasets:", text, re.M):
            raise ScaffoldError(
                f"{catalog_path}: `datasets:` is written inline; put each dataset on its own lines"
            )
        text = text.rstrip("\n") + ("\n" if text.strip() else "") + "datasets:\n"
        lines = text.splitlines(keepends=True)
        start = len(lines) - 1
    end = next(
        (i for i in range(start + 1, len(lines)) if re.match(r"^[^\s#]", lines[i])), len(lines)
    )
    while end > start + 1 and not lines[end - 1].strip():
        end -= 1  # insert before the blank lines that separate the next section
    indent = _entry_indent(lines[start + 1 : end])
    block = "".join(indent + line + "\n" for line in entry_yaml(key, entry, indent))
    if lines and end > 0 and not lines[end - 1].endswith("\n"):
        lines[end - 1] += "\n"
    if end > start + 1:
        block = "\n" + block  # a blank line between entries
    new_text = "".join(lines[:end]) + block + "".join(lines[end:])
    catalog_path.parent.mkdir(parents=True, exist_ok=True)
    catalog_path.write_text(new_text, encoding="utf-8")
    try:
        # The user named the upstream file on the command line: it may lie outside the folder
        # (build and validate then need --allow-outside-catalog, which `new` prints).
        load_catalog(catalog_path, allow_outside=True)
    except AlpacacotError as err:
        if original is None:
            catalog_path.unlink()
        else:
            catalog_path.write_text(original, encoding="utf-8")
        raise ScaffoldError(
            f"the new entry does not validate, catalog left unchanged: {err}"
        ) from err


def entry_yaml(key: str, entry: dict[str, Any], indent: str = "  ") -> list[str]:
    """The entry as YAML lines, styled like the bundled catalog: short lists and maps inline
    (`languages: [en]`), `source:` as a block."""
    lines = [f"{key}:"]
    for name, value in entry.items():
        dumped = yaml.safe_dump(
            {name: value},
            sort_keys=False,
            allow_unicode=True,
            width=1000,
            # None: inline only collections of scalars; a top-level scalar must stay a block.
            default_flow_style=None
            if isinstance(value, list | dict) and name != "source"
            else False,
        )
        lines += [indent + line for line in dumped.splitlines()]
    return lines


def _entry_indent(lines: list[str]) -> str:
    for line in lines:
        if line.strip() and not line.lstrip().startswith("#"):
            return line[: len(line) - len(line.lstrip())]
    return "  "


NORMALIZER_TEMPLATE = '''"""Normalizer of the `{key}` dataset: one upstream row to one draft record.

Registered as `{key}`; the catalog entry says `normalizer: {key}`. Fill in `normalize`: return a
dict with instruction, input, output (and optionally history, meta, tags), or raise RejectRow(field,
reason) for a row that cannot become a record. Test it with tests/normalizers/test_{key}.py.
"""

from __future__ import annotations

from typing import Any

from alpacacot.catalog import DatasetEntry
from alpacacot.normalizers import Draft, Normalize, RejectRow, register, text_field


@register("{key}")
def {key}_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    fields = {{**{mapping!r}, **entry.fields}}

    def normalize(row: dict[str, Any]) -> Draft:
        instruction = text_field(row, fields["instruction"], required=True).strip()
        output = text_field(row, fields["output"], required=True).strip()
        if not output:
            raise RejectRow(fields["output"], "empty output")
        used = set(fields.values())
        return {{
            "instruction": instruction,
            "input": text_field(row, fields["input"], required=False) if "input" in fields else "",
            "output": output,
            "meta": {{k: v for k, v in row.items() if k not in used}},
        }}

    return normalize
'''

TEST_TEMPLATE = '''"""The `{key}` normalizer on its real excerpt ({sample})."""

from pathlib import Path

from alpacacot.catalog import load_catalog
from alpacacot.normalizers import get_normalizer
from alpacacot.readers import RowError, iter_rows

import alpacacot.normalizers.{key}  # noqa: F401  (registers the normalizer)

CATALOG = Path({catalog!r})


def test_{key}_sample_rows_become_records():
    entry = load_catalog(CATALOG).datasets["{key}"]
    normalize = get_normalizer(entry, "{key}")
    sample = CATALOG.parent / entry.sample[0]
    drafts = []
    for _, row in iter_rows(sample, entry.format, columns=entry.columns):
        assert not isinstance(row, RowError), row
        drafts.append(normalize(row))
    assert drafts
    for draft in drafts:
        assert draft["instruction"] and draft["output"]
'''


def write_normalizer(
    spec: NewDataset, mapping: dict[str, str], catalog_path: Path, sample_rel: str
) -> dict[str, Path]:
    """Write `src/alpacacot/normalizers/<key>.py` and `tests/normalizers/test_<key>.py`."""
    root = spec.code_root or _checkout_root()
    module = root / "src" / "alpacacot" / "normalizers" / f"{spec.key}.py"
    test = root / "tests" / "normalizers" / f"test_{spec.key}.py"
    for path in (module, test):
        if path.exists():
            raise ScaffoldError(f"{path} already exists; remove it or choose another key")
    module.parent.mkdir(parents=True, exist_ok=True)
    test.parent.mkdir(parents=True, exist_ok=True)
    module.write_text(NORMALIZER_TEMPLATE.format(key=spec.key, mapping=mapping), encoding="utf-8")
    test.write_text(
        TEST_TEMPLATE.format(
            key=spec.key, sample=sample_rel, catalog=str(Path(catalog_path).resolve())
        ),
        encoding="utf-8",
    )
    return {"normalizer": module, "normalizer test": test}


def _checkout_root() -> Path:
    """The source checkout alpacacot runs from (editable install), where contributors add code."""
    import alpacacot

    root = Path(alpacacot.__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file():
        raise ScaffoldError(
            "--normalizer writes into the source checkout, but alpacacot is not installed "
            "from one. "
            "Clone the repo and `pip install -e .`, then run `new` again."
        )
    return root
