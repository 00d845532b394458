"""The results of `eval`: a JSON file, a table in the terminal and a bar chart comparing runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = "results.json"
CHART = "scores.png"


def write_json(results: dict[str, Any], out: Path) -> Path:
    path = out / RESULTS
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def table(results: dict[str, Any]) -> Any:
    from rich.table import Table

    tasks = sorted({t for run in results["runs"] for t in run["tasks"]})
    grid = Table(title=f"eval of {results['model']}")
    grid.add_column("run")
    grid.add_column("data hash")
    for task in tasks:
        grid.add_column(task, justify="right")
    for run in results["runs"]:
        cells = []
        for task in tasks:
            t = run["tasks"].get(task)
            if t is None:
                cells.append("-")
            elif t.get("score") is None:
                cells.append(f"written ({t['items']})")
            else:
                cells.append(f"{t['score']:.3f} ({t['items']})")
        grid.add_row(run["name"], (run.get("data_hash") or "-")[:12], *cells)
    return grid


def bar_chart(results: dict[str, Any], out: Path) -> Path:
    """Grouped bars: one group per task, one bar per run (base model, each adapter)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted(
        {
            t
            for run in results["runs"]
            for t, v in run["tasks"].items()
            if v.get("score") is not None
        }
    )
    runs = results["runs"]
    width = 0.8 / max(len(runs), 1)
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(tasks) + 2), 3.5))
    for i, run in enumerate(runs):
        values = [(run["tasks"].get(t) or {}).get("score") or 0 for t in tasks]
        ax.bar([x + i * width for x in range(len(tasks))], values, width, label=run["name"])
    ax.set_xticks([x + width * (len(runs) - 1) / 2 for x in range(len(tasks))], tasks)
    ax.set_ylim(0, 1)
    ax.set_ylabel("score")
    ax.set_title(f"{Path(str(results['model'])).name}: base and adapters")
    ax.legend(fontsize="small")
    fig.tight_layout()
    path = out / CHART
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
