"""Statistics of a built collection: records, languages, lengths, duplicates and rejects per source.

Shards are streamed (only the `lang`, `instruction` and `output` columns); lengths are kept as one
int32 per record and field, so a collection of millions of records stays in tens of MB.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alpacacot.hub.collection import count_records, iter_batches, read_manifest, source_keys

LENGTH_FIELDS = ("instruction", "output")
PERCENTILES = (50, 90)


@dataclass
class SourceStats:
    """What the collection holds for one key."""

    key: str
    records: int
    duplicates: int
    rejected: int
    read: int
    langs: Counter = field(default_factory=Counter)
    chars: dict[str, np.ndarray] = field(default_factory=dict)
    tokens: dict[str, np.ndarray] = field(default_factory=dict)


def collect_stats(
    out_dir: Path,
    tokenizer: Any = None,
    progress: Callable[[str, int], None] | None = None,
) -> list[SourceStats]:
    """Stream every shard once and gather per-source statistics.

    Args:
        out_dir: the built collection.
        tokenizer: a `transformers` tokenizer; when given, lengths are also counted in tokens.
        progress: called with (key, records done in this batch) after each batch.
    """
    import pyarrow.compute as pc

    manifest = read_manifest(out_dir)
    result = []
    for key in source_keys(manifest):
        counts = manifest["sources"][key].get("counts") or {}
        stats = SourceStats(
            key=key,
            records=count_records(manifest, key),
            duplicates=int(counts.get("duplicates", 0)),
            rejected=int(counts.get("rejected", 0)),
            read=int(counts.get("read", 0)),
        )
        chars: dict[str, list[np.ndarray]] = {f: [] for f in LENGTH_FIELDS}
        tokens: dict[str, list[np.ndarray]] = {f: [] for f in LENGTH_FIELDS}
        for batch in iter_batches(out_dir, manifest, key, columns=["lang", *LENGTH_FIELDS]):
            stats.langs.update(batch.column("lang").to_pylist())
            for name in LENGTH_FIELDS:
                column = batch.column(name)
                chars[name].append(pc.utf8_length(column).to_numpy(zero_copy_only=False))
                if tokenizer is not None:
                    ids = tokenizer(column.to_pylist(), add_special_tokens=False)["input_ids"]
                    tokens[name].append(np.fromiter((len(x) for x in ids), dtype=np.int32))
            if progress:
                progress(key, batch.num_rows)
        stats.chars = {f: _concat(v) for f, v in chars.items()}
        if tokenizer is not None:
            stats.tokens = {f: _concat(v) for f, v in tokens.items()}
        result.append(stats)
    return result


def _concat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int32) if parts else np.zeros(0, dtype=np.int32)


def describe(lengths: np.ndarray) -> str:
    """`median/p90/max` of a length array (compact: 12k), or `—` when empty."""
    if lengths.size == 0:
        return "—"
    p50, p90 = np.percentile(lengths, PERCENTILES)
    return "/".join(_compact(v) for v in (p50, p90, lengths.max()))


def _compact(value: float) -> str:
    n = int(round(float(value)))
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    return str(n)


def load_tokenizer(name_or_path: str) -> Any:
    """A `transformers` tokenizer, imported only when asked for."""
    try:
        from transformers import AutoTokenizer
    except ImportError as err:
        from alpacacot.errors import AlpacacotError

        raise AlpacacotError(
            "--tokenizer needs transformers: pip install 'alpacacot[train]' (or transformers)"
        ) from err
    try:
        return AutoTokenizer.from_pretrained(name_or_path)
    except Exception as err:  # noqa: BLE001 - many failure types, one user message
        from alpacacot.errors import AlpacacotError

        raise AlpacacotError(
            f"cannot load tokenizer {name_or_path!r} ({type(err).__name__}: {err}). "
            "Pass a local tokenizer directory or a Hub model id you can reach."
        ) from err


def stats_tables(stats: list[SourceStats], with_tokens: bool) -> list[Any]:
    """Two rich tables that fit a terminal: counts and languages, then lengths."""
    from rich.table import Table

    counts = Table(title="Records per source", caption="dups and rejects as counted by the build")
    counts.add_column("source", style="bold", no_wrap=True)
    for name in ("records", "read", "dups", "rejects"):
        counts.add_column(name, justify="right", no_wrap=True)
    counts.add_column("languages")
    lengths = Table(title="Lengths per source", caption="median/p90/max")
    lengths.add_column("source", style="bold", no_wrap=True)
    lengths.add_column("instruction chars", justify="right", no_wrap=True)
    lengths.add_column("output chars", justify="right", no_wrap=True)
    if with_tokens:
        lengths.add_column("instruction tokens", justify="right", no_wrap=True)
        lengths.add_column("output tokens", justify="right", no_wrap=True)

    def length_cells(chars: dict, tokens: dict) -> list[str]:
        cells = [describe(chars.get(f, np.zeros(0))) for f in LENGTH_FIELDS]
        if with_tokens:
            cells += [describe(tokens.get(f, np.zeros(0))) for f in LENGTH_FIELDS]
        return cells

    for s in stats:
        counts.add_row(
            s.key,
            f"{s.records:,}",
            f"{s.read:,}",
            f"{s.duplicates:,}",
            f"{s.rejected:,}",
            _lang_summary(s.langs),
        )
        lengths.add_row(s.key, *length_cells(s.chars, s.tokens))
    counts.add_section()
    counts.add_row(
        "total",
        f"{sum(s.records for s in stats):,}",
        f"{sum(s.read for s in stats):,}",
        f"{sum(s.duplicates for s in stats):,}",
        f"{sum(s.rejected for s in stats):,}",
        _lang_summary(sum((s.langs for s in stats), Counter())),
        style="bold",
    )
    lengths.add_section()
    lengths.add_row(
        "all",
        *length_cells(
            {f: _all(stats, "chars", f) for f in LENGTH_FIELDS},
            {f: _all(stats, "tokens", f) for f in LENGTH_FIELDS},
        ),
        style="bold",
    )
    return [counts, lengths]


def _all(stats: list[SourceStats], kind: str, name: str) -> np.ndarray:
    return _concat([getattr(s, kind).get(name, np.zeros(0, np.int32)) for s in stats])


def _lang_summary(langs: Counter, top: int = 3) -> str:
    total = sum(langs.values())
    if not total:
        return "—"
    parts = [
        f"{lang} {100 * n / total:.0f}%" if 100 * n >= total else f"{lang} <1%"
        for lang, n in langs.most_common(top)
    ]
    if len(langs) > top:
        parts.append(f"+{len(langs) - top}")
    return ", ".join(parts)


def plot_stats(stats: list[SourceStats], png: Path) -> Path:
    """Draw records, languages and length distributions per source into one PNG (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [s.key for s in stats]
    n = max(len(keys), 1)
    height = max(6.0, 2.2 + 0.32 * n) * 2
    fig, axes = plt.subplots(2, 2, figsize=(15, height), constrained_layout=True)
    fig.suptitle("alpacacot collection statistics", fontsize=15, fontweight="bold")
    y = np.arange(len(keys))

    ax = axes[0][0]
    written = [s.records for s in stats]
    dups = [s.duplicates for s in stats]
    rejected = [s.rejected for s in stats]
    ax.barh(y, written, color="#4C72B0", label="written")
    ax.barh(y, dups, left=written, color="#DD8452", label="duplicates")
    ax.barh(y, rejected, left=np.add(written, dups), color="#C44E52", label="rejected")
    ax.set_yticks(y, keys)
    ax.invert_yaxis()
    ax.set_xlabel("records")
    ax.set_title("Records per source")
    ax.legend(loc="lower right", fontsize=9)
    ends = np.add(np.add(written, dups), rejected)
    for i, (w, end) in enumerate(zip(written, ends, strict=True)):
        ax.text(end, i, f" {w:,}", va="center", fontsize=8)
    ax.set_xlim(0, max(int(ends.max()) if len(ends) else 1, 1) * 1.15)

    ax = axes[0][1]
    langs = sum((s.langs for s in stats), Counter())
    top = langs.most_common(12)
    other = sum(langs.values()) - sum(c for _, c in top)
    labels = [lang for lang, _ in top] + (["other"] if other else [])
    values = [c for _, c in top] + ([other] if other else [])
    ly = np.arange(len(labels))
    ax.barh(ly, values, color="#55A868", height=0.6)
    ax.set_yticks(ly, labels)
    ax.invert_yaxis()
    ax.set_xlabel("records")
    ax.set_title("Languages (all sources)")
    total = max(sum(values), 1)
    for i, v in enumerate(values):
        share = f"{100 * v / total:.0f}%" if 100 * v >= total else "<1%"
        ax.text(v, i, f" {v:,} ({share})", va="center", fontsize=8)
    ax.set_xlim(0, max(max(values, default=1), 1) * 1.25)

    for ax, name in zip(axes[1], LENGTH_FIELDS, strict=True):
        data = [np.maximum(s.chars.get(name, np.zeros(0)), 1) for s in stats]
        if any(d.size for d in data):
            ax.boxplot(
                [d if d.size else np.array([1]) for d in data],
                orientation="horizontal",
                tick_labels=keys,
                showfliers=False,
                whis=(5, 95),
                medianprops={"color": "#C44E52"},
            )
            ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("characters (log scale; box: quartiles, whiskers: p5-p95)")
        ax.set_title(f"{name.capitalize()} length per source")
        ax.grid(axis="x", alpha=0.3)

    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    # A fixed creation date keeps the PNG byte-identical across runs on the same data.
    fig.savefig(png, dpi=100, metadata={"Software": None})
    plt.close(fig)
    return png
