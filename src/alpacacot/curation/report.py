"""How curation results are shown: card sections, terminal tables, the overlap heatmap."""

from __future__ import annotations

from pathlib import Path
from typing import Any

OVERLAP_FIGURE = "curation/overlap.png"
CONFIGS = {
    "curation_signals": "curation/signals/*.parquet",
    "curation_clusters": "curation/clusters.parquet",
    "curation_contamination": "curation/contamination.parquet",
}


def card_configs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The curation files as their own `datasets` configs (only once `curate` has run)."""
    cur = manifest.get("curation")
    if not cur:
        return []
    summary = cur.get("summary") or {}
    nd = summary.get("near_duplicates") or {}
    # `datasets` refuses a split without rows: an empty file gets no config (yet).
    has = {
        "curation_signals": bool(summary.get("records")),
        "curation_clusters": any(v.get("records_in_clusters") for v in nd.values()),
        "curation_contamination": bool((summary.get("contamination") or {}).get("records_hit")),
    }
    return [
        {"config_name": name, "data_files": [{"split": "train", "path": path}]}
        for name, path in CONFIGS.items()
        if has[name]
    ]


def card_section(manifest: dict[str, Any], has_figure: bool) -> list[str]:
    """The card's `## Curation` section: parameters, overlap, clusters, contamination, signals."""
    cur = manifest.get("curation")
    if not cur:
        return []
    s = cur["summary"]
    nd = cur["parameters"]["neardup"]
    dc = cur["parameters"]["decontamination"]
    lines = [
        "## Curation",
        "",
        f"`alpacacot-data curate` ran at {cur.get('curated_at', 'unknown')} "
        f"over {s['records']:,} records. Its results are their own configs, keyed by record `id` "
        "and `source` (the shards above are unchanged): "
        + ", ".join(f"`{c}`" for c in CONFIGS)
        + ".",
        "",
        f"- near-duplicates: MinHash ({nd['backend']}), {nd['bands']} bands x {nd['rows']} rows "
        f"(about {nd['threshold']:.2f} Jaccard), word {nd['word_ngram']}-gram / CJK character "
        f"{nd['char_ngram']}-gram shingles, over the prompt and over the whole record",
        f"- decontamination: {dc['n']}-gram overlap after normalisation (GPT-3's test), a record "
        f"hits an item holding {dc['min_share']:.0%} of its grams; benchmarks: "
        + ", ".join(f"`{k}`" for k in cur.get("benchmarks", {})),
        "",
    ]
    prompt = s["near_duplicates"]["prompt"]
    record = s["near_duplicates"]["record"]
    lines += [
        "### Near-duplicates across sources",
        "",
        f"{prompt['records_in_clusters']:,} records share a near-duplicate prompt with another "
        f"record ({prompt['clusters']:,} clusters); {record['records_in_clusters']:,} are "
        f"near-duplicate whole records ({record['clusters']:,} clusters).",
        "",
    ]
    if has_figure:
        lines += [f"![near-duplicate prompts, source x source]({OVERLAP_FIGURE})", ""]
    lines += ["Largest prompt clusters:", "", "| cluster | size | sources |", "|---|---:|---|"]
    for c in prompt["largest"]:
        srcs = ", ".join(f"`{k}` {n}" for k, n in c["sources"].items())
        lines.append(f"| `{c['cluster']}` | {c['size']:,} | {srcs} |")
    lines += ["", "### Contamination", ""]
    hit = s["contamination"]["records_hit"]
    benches = sorted({b for per in hit.values() for b in per})
    if not hit:
        lines += ["No record contains a benchmark item.", ""]
    else:
        lines += [
            "Records that contain a benchmark item (per source and benchmark):",
            "",
            "| source | " + " | ".join(f"`{b}`" for b in benches) + " |",
            "|---|" + "---:|" * len(benches),
        ]
        for src in sorted(hit):
            cells = " | ".join(f"{hit[src].get(b, 0):,}" for b in benches)
            lines.append(f"| `{src}` | {cells} |")
        lines += ["", "Examples (the matched text, normalised):", ""]
        for ex in s["contamination"]["examples"][:10]:
            lines.append(
                f"- `{ex['source']}` record `{ex['id']}` / `{ex['benchmark']}` item {ex['item']}: "
                f"{_cell(ex['match'][:160])}"
            )
        lines.append("")
    lines += [
        "### Quality signals",
        "",
        "| source | records | refusal | lang mismatch | empty answer | truncated | repetition>0.5 "
        "| output chars p50/p99 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for src, sig in sorted(s["signals"].items()):
        lines.append(
            f"| `{src}` | {sig['records']:,} | {sig['refusal']:,} | {sig['lang_mismatch']:,} "
            f"| {sig['empty_answer']:,} | {sig['truncated']:,} | {sig['repetition_over_0.5']:,} "
            f"| {sig['output_chars_p50']:,}/{sig['output_chars_p99']:,} |"
        )
    lines.append("")
    return lines


def _cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


MAX_FIGURE_INCHES = 20.0
ANNOTATE_SOURCES = 30


def plot_overlap(summary: dict[str, Any], png: Path, view: str = "prompt") -> Path | None:
    """Heatmap: share of source a's records with a near-duplicate in source b."""
    overlap = summary["near_duplicates"][view]["overlap"]
    keys = sorted(overlap)
    if not keys:
        return None
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = {k: max(v["records"], 1) for k, v in summary["signals"].items()}
    counts = np.array([[overlap[a].get(b, 0) for b in keys] for a in keys], dtype=float)
    share = counts / np.array([[records.get(a, 1)] for a in keys])
    # The figure grows with the sources up to a cap, and the cells carry their counts while they
    # are legible: rendering 87 x 87 numbers on a 50-inch canvas took 800 MiB and seconds.
    size = min(max(5.0, 0.55 * len(keys) + 2), MAX_FIGURE_INCHES)
    label_size = 10 if len(keys) <= ANNOTATE_SOURCES else 5
    # A Figure on the Agg canvas, not pyplot: no pyplot import, nothing to close.
    fig = Figure(figsize=(size + 1.5, size), constrained_layout=True)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    im = ax.imshow(share, cmap="viridis", vmin=0, vmax=max(float(share.max()), 1e-9))
    ax.set_xticks(range(len(keys)), keys, rotation=60, ha="right", fontsize=label_size)
    ax.set_yticks(range(len(keys)), keys, fontsize=label_size)
    ax.set_xlabel("has a near-duplicate in")
    ax.set_ylabel("records of")
    ax.set_title(f"Near-duplicate {view}s: share of each source's records")
    for i in range(len(keys) if len(keys) <= ANNOTATE_SOURCES else 0):
        for j in range(len(keys)):
            if counts[i, j]:
                ax.text(
                    j,
                    i,
                    f"{int(counts[i, j]):,}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if share[i, j] < 0.6 * share.max() else "black",
                )
    fig.colorbar(im, ax=ax, shrink=0.8)
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=100, metadata={"Software": None})
    return png


def summary_tables(summary: dict[str, Any]) -> list[Any]:
    """Rich tables for the terminal: signals and contamination per source, largest clusters."""
    from rich.table import Table

    nd = summary["near_duplicates"]
    per = Table(title="Curation per source")
    per.caption = (
        "nd-p / nd-r: records with a near-duplicate prompt / whole record; contam: hold a "
        "benchmark item; refus, lang, empty, trunc, rep: quality signals"
    )
    for col in (
        "source",
        "records",
        "nd-p",
        "nd-r",
        "contam",
        "refus",
        "lang",
        "empty",
        "trunc",
        "rep",
    ):
        per.add_column(col, justify="left" if col == "source" else "right", no_wrap=True)
    hit = summary["contamination"]["records_hit"]
    for src, sig in sorted(summary["signals"].items()):
        per.add_row(
            src,
            f"{sig['records']:,}",
            f"{sum(nd['prompt']['overlap'].get(src, {}).values()):,}",
            f"{sum(nd['record']['overlap'].get(src, {}).values()):,}",
            f"{sum(hit.get(src, {}).values()):,}",
            f"{sig['refusal']:,}",
            f"{sig['lang_mismatch']:,}",
            f"{sig['empty_answer']:,}",
            f"{sig['truncated']:,}",
            f"{sig['repetition_over_0.5']:,}",
        )
    largest = Table(title="Largest near-duplicate prompt clusters")
    largest.add_column("cluster (first record id)")
    largest.add_column("size", justify="right")
    largest.add_column("sources")
    for c in nd["prompt"]["largest"]:
        largest.add_row(
            c["cluster"], f"{c['size']:,}", ", ".join(f"{k} {n}" for k, n in c["sources"].items())
        )
    return [per, largest]
