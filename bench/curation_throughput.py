#!/usr/bin/env python
"""Curation throughput: `alpacacot-data curate` against `alpacacot-data build` of the same collection.

    python bench/curation_throughput.py [--real-data DIR] [--records N[,N...]] [--workers N]
                                        [--cache DIR] [--json FILE]

The collection is bench/build_throughput.py's (the real upstream files replicated, one catalog entry
per replica, to about N records). Both commands run side by side in this one process of the bench,
each as its own child process reaped with wait4 (wall time, peak RSS of the largest process, and the
sampled RSS of its process tree):

  build -jN     alpacacot-data build --catalog bench.yaml --out OUT --force --workers N
  curate -jN    alpacacot-data curate OUT --force --workers N --full-benchmarks --offline
                (signals, near-duplicate signatures of two views, decontamination against the
                catalog's seven benchmarks, clusters and reports)

The benchmark files must already be in the cache (--cache, default $ALPACACOT_CACHE): a first
`alpacacot-data curate` online puts them there. The machine may be shared: compare the two rows of
one run (their ratio), not absolute seconds across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from build_throughput import (  # noqa: E402
    DEFAULT_REAL_DATA,
    WORK,
    build_command,
    manifest_counts,
    measure,
    write_plan,
)


def run(real: Path, target: int, workers: int, cache: Path | None) -> dict:
    work = WORK / f"curation-n{target}"
    catalog, _, planned = write_plan(real, target, "entries", work)
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    exe = build_command()
    build = measure(
        [
            *exe,
            "build",
            "--catalog",
            str(catalog),
            "--out",
            str(out),
            "--force",
            "--allow-outside-catalog",  # the bench catalog names real-data files by absolute path
            "--workers",
            str(workers),
        ],
        work / "build.log",
    )
    counts = manifest_counts(out)
    env_cache = ["--cache-dir", str(cache)] if cache else []
    curate = measure(
        [
            *exe,
            "curate",
            str(out),
            "--force",
            "--workers",
            str(workers),
            "--full-benchmarks",
            "--offline",
            "--json",
            *env_cache,
        ],
        work / "curate.log",
    )
    summary = json.loads(curate["stdout"])
    result = {
        "target": target,
        "records": counts["written"],
        "sources": counts["sources"],
        "workers": workers,
        "build": {k: v for k, v in build.items() if k != "stdout"},
        "curate": {k: v for k, v in curate.items() if k != "stdout"},
        "ratio": curate["seconds"] / build["seconds"],
        "contaminated": sum(
            sum(v.values()) for v in summary["contamination"]["records_hit"].values()
        ),
        "prompt_clusters": summary["near_duplicates"]["prompt"]["clusters"],
        "curation_bytes": sum(
            f.stat().st_size for f in (out / "curation").rglob("*") if f.is_file()
        ),
    }
    shutil.rmtree(out, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real-data", type=Path, default=DEFAULT_REAL_DATA)
    ap.add_argument("--records", default="250000,1000000")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=os.environ.get("ALPACACOT_CACHE"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    results = []
    for target in (int(x) for x in args.records.split(",")):
        r = run(args.real_data, target, args.workers, args.cache)
        results.append(r)
        print(
            f"{r['records']:>9,} records, {r['sources']} sources, -j{r['workers']}: "
            f"build {r['build']['seconds']:.1f} s ({r['build']['tree_mib']:.0f} MiB tree), "
            f"curate {r['curate']['seconds']:.1f} s ({r['curate']['maxrss_mib']:.0f} MiB largest, "
            f"{r['curate']['tree_mib']:.0f} MiB tree) = {r['ratio']:.2f}x the build; "
            f"{r['curation_bytes'] / r['records']:.0f} bytes/record on disk",
            flush=True,
        )
    if len(results) > 1:
        a, b = results[0], results[-1]
        grow = (b["curate"]["maxrss_mib"] - a["curate"]["maxrss_mib"]) * 2**20
        print(
            f"curate peak RSS grows {grow / (b['records'] - a['records']):.0f} bytes per record "
            f"({a['records']:,} -> {b['records']:,})"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
