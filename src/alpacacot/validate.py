"""`alpacacot-data validate`: what a pull request adding or changing a catalog entry must pass."""

from __future__ import annotations

import re
from collections import Counter

from alpacacot.catalog import Catalog, DatasetEntry, SourceFile
from alpacacot.collectors import collect_file
from alpacacot.errors import AlpacacotError
from alpacacot.normalizers import RejectRow
from alpacacot.pipeline import clean_draft, clean_optional, iter_drafts
from alpacacot.readers import RowError

COMMIT = re.compile(r"^[0-9a-f]{40}$")
# An address that names a commit serves the same bytes forever: it is a pin like a sha256.
COMMIT_URL = re.compile(
    r"^https://(?:raw\.githubusercontent\.com/[^/]+/[^/]+/[0-9a-f]{40}/"
    r"|github\.com/[^/]+/[^/]+/raw/[0-9a-f]{40}/"
    r"|huggingface\.co/datasets/[^/]+/[^/]+/resolve/[0-9a-f]{40}/)"
)
MAX_SAMPLE_REJECT_SHARE = 0.10
PLACEHOLDER_LICENSES = {"", "unknown", "todo", "tbd", "none"}


def is_pinned(sf: SourceFile) -> bool:
    """A sha256, a Hub commit revision, or a URL at a commit fixes the file's bytes."""
    if sf.sha256:
        return True
    if sf.kind == "hf":
        return bool(COMMIT.match(sf.revision or ""))
    return sf.kind == "url" and bool(COMMIT_URL.match(sf.location))


def pin_problems(entry: DatasetEntry, strict: bool) -> tuple[list[str], list[str]]:
    """Every upstream file needs a sha256 (or a Hub commit revision, or a URL at a commit)."""
    unpinned = [sf.display for sf in entry.all_files() if not is_pinned(sf)]
    if not unpinned:
        return [], []
    reason = entry.source.get("unpinned")
    what = (
        f"{entry.key}: {len(unpinned)} upstream file(s) without a pinned checksum "
        f"({', '.join(unpinned[:3])}{'...' if len(unpinned) > 3 else ''})"
    )
    if reason and not strict:
        return [], [f"{what}; waived: {reason}"]
    fix = (
        "add `sha256:` (run `sha256sum FILE`)"
        if entry.source["kind"] != "hf"
        else "set `revision:` to the 40-hex commit, or `sha256:` per file"
    )
    return [f"{what}: {fix}"], []


def sample_problems(
    catalog: Catalog, entry: DatasetEntry, strict: bool = False
) -> tuple[list[str], list[str]]:
    """The sample exists and normalizes into valid records, with few rejects. An entry may waive
    its sample with `no_sample: REASON` (no real excerpt could be found): a note, or under
    `--strict` (what a new entry's pull request passes) a problem."""
    if not entry.sample:
        what = f"{entry.key}: no `sample:` excerpt"
        fix = "add a few rows cut from the upstream file (see CONTRIBUTING.md)"
        if entry.no_sample and not strict:
            return [], [f"{what}; waived: {entry.no_sample}"]
        return [f"{what}; {fix}"], []
    problems, notes = [], []
    read = rejected = 0
    reasons: Counter[str] = Counter()
    for sf in entry.sample_files():
        try:
            cf = collect_file(sf, catalog, entry.key)
        except AlpacacotError as exc:
            problems.append(f"{entry.key}: sample: {exc}")
            continue
        try:
            for row, item in iter_drafts(entry, cf):
                read += 1
                if isinstance(item, RowError | RejectRow):
                    field = getattr(item, "field", None)
                    rejected += 1
                    reasons[
                        f"{sf.location} row {row}: {f'{field}: ' if field else ''}{item.reason}"
                    ] += 1
                    continue
                try:
                    clean_draft(item)
                    clean_optional(item)
                except RejectRow as exc:
                    rejected += 1
                    reasons[f"{sf.location} row {row}: {exc.field}: {exc.reason}"] += 1
        except AlpacacotError as exc:
            problems.append(f"{entry.key}: {exc}")
        except Exception as exc:  # a normalizer bug: report it, don't crash the whole validation
            problems.append(
                f"{entry.key}: normalizer {entry.normalizer!r} crashed on {sf.location}: "
                f"{type(exc).__name__}: {exc}"
            )
    if problems:
        return problems, notes
    if read == 0:
        return [f"{entry.key}: the sample has no rows"], notes
    first = "; ".join(list(reasons)[:3])
    if rejected / read > MAX_SAMPLE_REJECT_SHARE:
        problems.append(
            f"{entry.key}: {rejected} of {read} sample rows are rejected (over "
            f"{MAX_SAMPLE_REJECT_SHARE:.0%}); check `fields`/`format`/`normalizer`. First: {first}"
        )
    elif rejected:
        notes.append(
            f"{entry.key}: {rejected} of {read} sample rows rejected (upstream quirks?): {first}"
        )
    return problems, notes


def validate_catalog(
    catalog: Catalog, keys: list[str] | None = None, *, strict: bool = False
) -> tuple[list[str], list[str]]:
    """Return (problems, notes) for the chosen entries; the schema was checked when loading."""
    problems: list[str] = []
    notes: list[str] = []
    for key in keys or list(catalog.datasets):
        entry = catalog.datasets.get(key)
        if entry is None:
            problems.append(catalog._unknown(key))
            continue
        if entry.license.strip().lower() in PLACEHOLDER_LICENSES:
            problems.append(
                f"{key}: `license: {entry.license}` is not a licence; use the upstream's "
                "SPDX-style id (e.g. cc-by-nc-4.0) or `other` with a note in description"
            )
        if strict and not entry.homepage.strip():
            problems.append(f"{key}: no `homepage:`; give the upstream page (repository or Hub)")
        for found in pin_problems(entry, strict), sample_problems(catalog, entry, strict):
            problems += found[0]
            notes += found[1]
    return problems, notes
