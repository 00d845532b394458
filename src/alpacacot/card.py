"""The dataset card (`DIR/README.md`) of a built collection, generated from its manifest.

The card is a pure function of the manifest (and, for mixes, the catalog), so two builds of the
same inputs give the same card apart from the build date. Its YAML front matter is what the Hub and
`datasets.load_dataset(DIR, KEY)` read: one config per key with `data_files: <key>/train-*.parquet`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from huggingface_hub import DatasetCardData

from alpacacot.outdir import atomic_write_text

REPO_PLACEHOLDER = "ORG/NAME"
STATS_FIGURE = "stats.png"
PRETTY_NAME = "Alpaca-CoT (alpacacot build)"

# Licence ids the Hub accepts in `license:`; anything else is declared as `other` (the
# table still names the upstream licence).
HUB_LICENSES = frozenset(
    """
    apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0
    bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause
    bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0
    cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0
    cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0
    cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1
    eupl-1.2 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc h-research intel-research
    lppl-1.3c ms-pl apple-ascl apple-amlr mpl-2.0 odc-by odbl openmdw-1.0 openrail++ osl-3.0
    postgresql ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license
    fair-noncommercial-research-license
    llama2 llama3 llama3.1 llama3.2 llama3.3 llama4 gemma unknown other
    """.split()
)

# The Hub's size_categories buckets, upper bounds exclusive.
SIZE_CATEGORIES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
]

LANG_CODE = re.compile(r"^[a-z]{2,3}$")


def write_card(
    out_dir: Path, manifest: dict[str, Any], catalog: Any = None, repo_id: str | None = None
) -> Path:
    """Write `out_dir/README.md` for a built collection and return its path.

    Args:
        out_dir: the collection directory (holds `manifest.json` and `<key>/train-*.parquet`).
        manifest: the parsed manifest of that build (see docs/CONTRACT.md).
        catalog: the `alpacacot.catalog.Catalog` the build used; only its `mixes` are read.
            `None` leaves the mixes section out.
        repo_id: the Hub repo the card will live in; default `ORG/NAME`, which `publish`
            replaces with the real repo id when it uploads the card.
    """
    out_dir = Path(out_dir)
    text = render_card(
        manifest,
        catalog,
        repo_id=repo_id,
        has_stats=(out_dir / STATS_FIGURE).is_file(),
        has_overlap=(out_dir / "curation" / "overlap.png").is_file(),
    )
    path = out_dir / "README.md"
    atomic_write_text(path, text, "card")  # a build killed here leaves the old card, whole
    return path


def refresh_card(out_dir: Path) -> Path:
    """Rewrite the card of an existing build (e.g. after `stats` added `stats.png`)."""
    from alpacacot.hub.collection import read_manifest

    manifest = read_manifest(out_dir)
    return write_card(out_dir, manifest, _catalog_of(manifest))


def _catalog_of(manifest: dict[str, Any]) -> Any:
    """The build's catalog when it is still where the manifest says, else None."""
    path = (manifest.get("catalog") or {}).get("path")
    if not path or not Path(path).is_file():
        return None
    try:
        from alpacacot.catalog import load_catalog

        # Only its names and mixes are read (no file it names): the build already accepted it,
        # --allow-outside-catalog included.
        return load_catalog(path, allow_outside=True)
    except Exception:  # noqa: BLE001 - the card only loses its mixes section
        return None


def render_card(
    manifest: dict[str, Any],
    catalog: Any = None,
    *,
    repo_id: str | None = None,
    has_stats: bool = False,
    has_overlap: bool = False,
) -> str:
    """The card's text: YAML front matter, then the Markdown body."""
    sources: dict[str, dict[str, Any]] = manifest.get("sources", {})
    keys = sorted(sources)
    metadata = card_metadata(manifest)
    repo = repo_id or REPO_PLACEHOLDER
    body = [
        f"# {PRETTY_NAME}",
        "",
        _intro(manifest, keys),
        "",
        *_datasets_section(sources, keys),
        *_mixes_section(manifest, catalog),
        *_loading_section(repo, keys),
        *_record_section(),
        *_build_section(manifest, sources, keys),
        *(_stats_section() if has_stats else []),
        *_curation_section(manifest, has_overlap),
        *_citation_section(sources, keys),
    ]
    return f"---\n{metadata.to_yaml()}\n---\n\n" + "\n".join(body).rstrip() + "\n"


def card_metadata(manifest: dict[str, Any]) -> DatasetCardData:
    """The YAML metadata the Hub validates and `datasets` reads (configs, licences, ...)."""
    sources: dict[str, dict[str, Any]] = manifest.get("sources", {})
    keys = sorted(sources)
    licenses = sorted({hub_license(sources[k].get("license", "")) for k in keys}) or ["unknown"]
    # Declared languages (the catalog's), not every stray detection in lang_counts.
    languages = sorted(
        {
            lang
            for k in keys
            for lang in (sources[k].get("languages") or _languages(sources[k]))
            if LANG_CODE.match(lang)
        }
    )
    total = sum(_records(sources[k]) for k in keys)
    configs = [
        {"config_name": key, "data_files": [{"split": "train", "path": f"{key}/train-*.parquet"}]}
        for key in keys
    ]
    configs += _curation_configs(manifest)
    return DatasetCardData(
        pretty_name=PRETTY_NAME,
        license=licenses[0] if len(licenses) == 1 else licenses,
        language=languages or None,
        multilinguality="multilingual" if len(languages) > 1 else "monolingual",
        task_categories=["text-generation", "question-answering"],
        size_categories=[size_category(total)],
        tags=["instruction-tuning", "chain-of-thought", "alpaca-cot", "alpacacot"],
        configs=configs,
    )


def hub_license(license_id: str) -> str:
    """Map a catalog licence to an id the Hub accepts (`other` when it has none)."""
    lid = (license_id or "unknown").strip().lower()
    return lid if lid in HUB_LICENSES else "other"


def size_category(n: int) -> str:
    """The Hub's size bucket for `n` records."""
    for bound, name in SIZE_CATEGORIES:
        if n < bound:
            return name
    return "1B<n<10B"


def _records(source: dict[str, Any]) -> int:
    shards = source.get("shards") or []
    if shards:
        return sum(int(s.get("records", 0)) for s in shards)
    return int((source.get("counts") or {}).get("written", 0))


def _languages(source: dict[str, Any]) -> list[str]:
    counts = source.get("lang_counts") or {}
    if counts:
        return [lang for lang, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return list(source.get("languages") or [])


def _cell(value: Any) -> str:
    """A value made safe for one Markdown table cell."""
    text = " ".join(str(value).split())
    return text.replace("|", "\\|") or "—"


def _citation_key(citation: str) -> str:
    match = re.search(r"@\w+\s*\{\s*([^,\s]+)\s*,", citation or "")
    if match:
        return f"`{match.group(1)}`"
    text = " ".join((citation or "").split())
    return (text[:57] + "...") if len(text) > 60 else text


def _intro(manifest: dict[str, Any], keys: list[str]) -> str:
    total = sum(_records(manifest["sources"][k]) for k in keys)
    return (
        f"{len(keys)} instruction-tuning datasets ({total:,} records) rebuilt from their upstream "
        "files into one record format, each record traceable to its upstream file, revision "
        "and row. "
        "Built with [alpacacot](https://github.com/alpacacot/alpacacot), the successor of "
        "[Alpaca-CoT](https://github.com/PhoebusSi/Alpaca-CoT). "
        "Each dataset keeps its own licence: check it before use."
    )


def _datasets_section(sources: dict[str, dict[str, Any]], keys: list[str]) -> list[str]:
    lines = [
        "## Datasets",
        "",
        "Tags follow Alpaca-CoT: Lang `EN`/`CN`/`ML` (English, Chinese, multilingual), "
        "Task `MT`/`TS` (multi-task, task-specific), Gen `HG`/`SI`/`MIX`/`COL` "
        "(human-generated, self-instruct, mixed, collected).",
        "",
        "| key | records | languages | Lang | Task | Gen | licence | source | citation |",
        "|---|---:|---|---|---|---|---|---|---|",
    ]
    for key in keys:
        src = sources[key]
        tags = src.get("tags") or {}
        homepage = src.get("homepage") or ""
        link = f"[link]({homepage})" if homepage else "—"
        langs = ", ".join(_languages(src))
        lines.append(
            f"| `{key}` | {_records(src):,} | {_cell(langs)} | {_cell(tags.get('lang', ''))} "
            f"| {_cell(tags.get('task', ''))} | {_cell(tags.get('gen', ''))} "
            f"| {_cell(src.get('license', ''))} | {link} "
            f"| {_cell(_citation_key(src.get('citation', '')))} |"
        )
    lines += ["", "Descriptions:", ""]
    lines += [f"- `{key}`: {_cell(sources[key].get('description', ''))}" for key in keys]
    lines.append("")
    return lines


def _mixes_section(manifest: dict[str, Any], catalog: Any) -> list[str]:
    # The manifest lists the mixes whose keys were all built; an older one has none, so fall
    # back to the catalog's.
    mixes: dict[str, list[str]] = dict(
        manifest.get("mixes") or getattr(catalog, "mixes", None) or {}
    )
    if not mixes:
        return []
    lines = [
        "### Mixes",
        "",
        "Named combinations, loaded with `alpacacot.load(MIX, collection=...)` "
        "(concatenated in order, de-duplicated by `id`).",
        "",
        "| mix | keys |",
        "|---|---|",
    ]
    for name in sorted(mixes):
        members = ", ".join(f"`{m}`" for m in mixes[name])
        lines.append(f"| `{name}` | {members} |")
    lines.append("")
    return lines


def _loading_section(repo: str, keys: list[str]) -> list[str]:
    example = "cot" if "cot" in keys else (keys[0] if keys else "KEY")
    return [
        "## Loading",
        "",
        "Every key is a config with one `train` split:",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        f'ds = load_dataset("{repo}", "{example}", split="train")',
        "```",
        "",
        "With alpacacot, mixes and keys joined by `-` are de-duplicated across datasets:",
        "",
        "```python",
        "import alpacacot",
        "",
        f'ds = alpacacot.load("{example}", collection="{repo}")',
        "```",
        "",
    ]


def _record_section() -> list[str]:
    rows = [
        ("id", "string", "blake2b-128 of instruction/input/output/history (source-independent)"),
        ("instruction", "string", "the task or the user's last message"),
        ("input", "string", 'optional context, `""` when none'),
        ("output", "string", "the target answer"),
        ("history", "list of {user, assistant}", "earlier turns, oldest first"),
        ("source", "string", "catalog key"),
        ("lang", "string", "ISO 639-1 code or `und`"),
        ("tags", "list of string", "Alpaca-CoT tags plus e.g. `cot`, `multi-turn`"),
        (
            "provenance",
            "{file, revision, row, license}",
            "upstream file, its revision, 0-based row",
        ),
        ("meta", "string", "JSON object of unused upstream fields"),
        ("system", "string or null", "system prompt / meta instruction, null when none"),
        ("rejected", "string or null", "dispreferred answer of a preference pair, null when none"),
    ]
    lines = ["## Record format", "", "| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | {kind} | {meaning} |" for name, kind, meaning in rows]
    lines.append("")
    return lines


def _build_section(
    manifest: dict[str, Any], sources: dict[str, dict[str, Any]], keys: list[str]
) -> list[str]:
    catalog = manifest.get("catalog") or {}
    lines = [
        "## How this build was made",
        "",
        f"- code version: `{manifest.get('code_version', 'unknown')}` "
        f"(record schema `{manifest.get('schema_version', 'unknown')}`)",
        f"- built at: {manifest.get('built_at', 'unknown')}",
        f"- catalog sha256: `{catalog.get('sha256', 'unknown')}`",
        *(
            [
                "- built from the small excerpts bundled with alpacacot (`--sample`), "
                "not the full upstream files"
            ]
            if manifest.get("sample")
            else []
        ),
        *(
            [f"- sources that failed and are missing: {', '.join(sorted(manifest['errors']))}"]
            if manifest.get("errors")
            else []
        ),
        "",
        "Rebuild with `alpacacot-data build --out DIR KEY...`; a changed upstream file changes its "
        "checksum below.",
        "",
        "| key | input file | sha256 | bytes | read | written | duplicates | rejected |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for key in keys:
        src = sources[key]
        counts = src.get("counts") or {}
        inputs = src.get("inputs") or [{}]
        for i, inp in enumerate(inputs):
            tally = (
                f"{counts.get('read', 0):,} | {counts.get('written', 0):,} "
                f"| {counts.get('duplicates', 0):,} | {counts.get('rejected', 0):,}"
                if i == 0
                else " | | | "
            )
            sha = inp.get("sha256") or ""
            lines.append(
                f"| `{key}` | {_cell(inp.get('file', ''))} | {f'`{sha}`' if sha else '—'} "
                f"| {int(inp.get('bytes') or 0):,} | {tally} |"
            )
    lines.append("")
    return lines


def _stats_section() -> list[str]:
    return [
        "## Statistics",
        "",
        f"![records, languages and lengths per dataset]({STATS_FIGURE})",
        "",
        "Regenerate with `alpacacot-data stats DIR`.",
        "",
    ]


def _curation_configs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    from alpacacot.curation.report import card_configs

    return card_configs(manifest)


def _curation_section(manifest: dict[str, Any], has_figure: bool) -> list[str]:
    from alpacacot.curation.report import card_section

    return card_section(manifest, has_figure)


def _citation_section(sources: dict[str, dict[str, Any]], keys: list[str]) -> list[str]:
    cited = [k for k in keys if (sources[k].get("citation") or "").strip()]
    if not cited:
        return []
    lines = ["## Citations", "", "Please cite the datasets you use:", ""]
    for key in cited:
        lines += [f"### {key}", "", "```bibtex", sources[key]["citation"].strip(), "```", ""]
    return lines
