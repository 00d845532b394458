#!/usr/bin/env python
"""Scale-out: one large real-file source built with 1 and 2 local workers and on Ray, against the
plain read-and-write and the `datasets` pipeline a user would pick, side by side in one run.

    python bench/scaleout_throughput.py [--real-data DIR] [--replicas 20] [--rounds 3]
                                        [--runs baseline,datasets,j1,j2,ray,ray-running]

The source is Stanford Alpaca's alpaca_data.json (52,002 records) written as JSON Lines `--replicas`
times into one file (20: 1,040,040 records, 424 MB); each replica's instructions end in " [rK]", so
that per-source dedup keeps every replica and all runs write the same number of records. Runs,
each its own process (wall time and peak RSS as in build_throughput.py), interleaved round by round
so that a machine shared with other work slows them alike:

  baseline     json.loads per line + pq.write_table of instruction/input/output
  datasets     datasets.load_dataset("json") + map(NFC, strip, blake2b id; batched, num_proc=2)
               + to_parquet (a fresh datasets cache each run)
  j1, j2       alpacacot-data build --workers 1|2 (--executor local)
  ray          alpacacot-data build --executor ray -j 2 (a Ray started for the run, 2 CPUs)
  ray-running  alpacacot-data build --executor ray --ray-address (a Ray head started once, 2 CPUs)

Medians per run go to stdout as a markdown table; --json writes every measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from build_throughput import DEFAULT_REAL_DATA, WORK, build_command, manifest_counts, measure

HERE = Path(__file__).resolve()
RUNS = ("baseline", "datasets", "j1", "j2", "ray", "ray-running")


def write_source(real: Path, replicas: int, work: Path) -> tuple[Path, Path, int]:
    """The replicated JSON Lines file and its catalog; returns them and the record count."""
    rows = json.loads((real / "alpaca" / "alpaca_data.json").read_text("utf-8"))
    data = work / f"alpaca_x{replicas}.jsonl"
    if not data.exists():
        with open(data, "w", encoding="utf-8") as fh:
            for k in range(replicas):
                for row in rows:
                    row = {**row, "instruction": f"{row['instruction']} [r{k}]"}
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    catalog = work / "scaleout.yaml"
    catalog.write_text(
        "version: 1\ndatasets:\n  alpaca_large:\n"
        f"    description: Stanford Alpaca replicated {replicas}x as JSON Lines\n"
        "    license: cc-by-nc-4.0\n    format: jsonl\n    normalizer: alpaca\n"
        "    languages: [en]\n    tags: {lang: EN, task: MT, gen: SI}\n"
        f"    source: {{kind: local, files: [{{path: {data}}}]}}\n",
        encoding="utf-8",
    )
    return data, catalog, len(rows) * replicas


def run_datasets(src: Path, out: Path, cache: Path) -> None:
    """The `datasets` pipeline (in its own process)."""
    import hashlib
    import unicodedata

    import datasets

    datasets.disable_progress_bars()
    ds = datasets.load_dataset("json", data_files=str(src), split="train", cache_dir=str(cache))

    def clean(batch: dict) -> dict:
        cols = {
            c: [unicodedata.normalize("NFC", t or "").strip() for t in batch[c]]
            for c in ("instruction", "input", "output")
        }
        cols["id"] = [
            hashlib.blake2b("\x1f".join(t).encode(), digest_size=16).hexdigest()
            for t in zip(cols["instruction"], cols["input"], cols["output"], strict=True)
        ]
        return cols

    ds = ds.map(clean, batched=True, num_proc=2)
    out.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(out / "data.parquet"))
    print(json.dumps({"records": len(ds)}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(marker: str) -> set[int]:
    """Processes whose command line names `marker`, and their descendants."""
    parents, found = {}, set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except (OSError, ValueError, IndexError):
                continue
            if marker in cmd:
                found.add(int(entry.name))
    while True:
        more = {p for p, pp in parents.items() if pp in found and p not in found}
        if not more:
            return found - {os.getpid()}
        found |= more


class RayHead:
    """A Ray head on this machine with 2 CPUs, ended by process id (never `ray stop`)."""

    def __init__(self) -> None:
        self.temp = Path(f"/tmp/acbench{os.getpid()}")  # short: Ray's socket paths live here
        self.port = _free_port()
        ray = Path(sys.executable).with_name("ray")
        subprocess.run(
            [str(ray), "start", "--head", f"--port={self.port}", f"--temp-dir={self.temp}",
             "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats",
             "--node-ip-address=127.0.0.1"],
            check=True, capture_output=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"},
        )  # fmt: skip
        self.address = f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        pids = _descendants(str(self.temp)) | _descendants(f":{self.port}")
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            time.sleep(2)
        shutil.rmtree(self.temp, ignore_errors=True)


def command(run: str, data: Path, catalog: Path, out: Path, work: Path, head: RayHead | None):
    if run == "baseline":
        plan = work / "plan.json"
        plan.write_text(json.dumps({"files": [[str(data), "jsonl"]]}), encoding="utf-8")
        return [sys.executable, str(HERE.with_name("build_throughput.py")), "_baseline", str(plan),
                str(out)]  # fmt: skip
    if run == "datasets":
        return [sys.executable, str(HERE), "_datasets", str(data), str(out), str(work / "hf")]
    build = [*build_command(), "build", "--catalog", str(catalog), "--out", str(out), "--force"]
    build.append("--allow-outside-catalog")  # the bench's catalog names its generated file by path
    if run in ("j1", "j2"):
        return [*build, "--executor", "local", "--workers", run[1]]
    if run == "ray":
        return [*build, "--executor", "ray", "--workers", "2"]
    assert head is not None
    return [*build, "--executor", "ray", "--ray-address", head.address]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_datasets"]:
        run_datasets(Path(argv[1]), Path(argv[2]), Path(argv[3]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real-data", type=Path, default=DEFAULT_REAL_DATA)
    ap.add_argument("--replicas", type=int, default=20, help="copies of Alpaca (default 20: ~1M)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    ap.add_argument("--runs", default=",".join(RUNS), help=f"default {','.join(RUNS)}")
    ap.add_argument("--json", type=Path, help="also write every measurement here")
    args = ap.parse_args(argv)
    runs = [r for r in args.runs.split(",") if r]
    if unknown := set(runs) - set(RUNS):
        sys.exit(f"error: unknown run(s) {', '.join(sorted(unknown))}; use {', '.join(RUNS)}")
    work = WORK / "scaleout"
    work.mkdir(parents=True, exist_ok=True)
    data, catalog, records = write_source(args.real_data.resolve(), args.replicas, work)
    print(f"source: {data} ({data.stat().st_size / 1e6:,.0f} MB, {records:,} records)", flush=True)
    head = RayHead() if "ray-running" in runs else None
    results: dict[str, list[dict]] = {r: [] for r in runs}
    try:
        for n in range(args.rounds):
            for run in runs:
                out = work / f"out-{run}"
                shutil.rmtree(out, ignore_errors=True)
                shutil.rmtree(work / "hf", ignore_errors=True)
                r = measure(command(run, data, catalog, out, work, head), work / f"{run}.log")
                stdout = r.pop("stdout")
                if run in ("baseline", "datasets"):
                    r["records"] = json.loads(stdout.strip().splitlines()[-1])["records"]
                else:
                    r["counts"] = manifest_counts(out)
                    r["records"] = r["counts"]["written"]
                results[run].append(r)
                print(f"round {n + 1} {run:<12} {r['seconds']:7.1f} s  cpu {r['cpu_s']:6.1f} s"
                      f"  {r['records']:>9,} records"
                      f"  maxrss {r['maxrss_mib']:.0f} MiB  tree {r['tree_mib']:.0f} MiB",
                      flush=True)  # fmt: skip
                shutil.rmtree(out, ignore_errors=True)
    finally:
        if head:
            head.stop()
    print("\n" + table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1), encoding="utf-8")


def table(results: dict[str, list[dict]]) -> str:
    med = {run: statistics.median(r["seconds"] for r in rs) for run, rs in results.items() if rs}
    lines = [
        "| run | records written | seconds (median) | all rounds | records/s | vs baseline "
        "| vs datasets | CPU s (median) | peak RSS (largest process) | peak RSS (tree) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run, rs in results.items():
        if not rs:
            continue
        secs = med[run]
        vs_base = f"{med['baseline'] / secs:.2f}x" if "baseline" in med else ""
        vs_ds = f"{med['datasets'] / secs:.2f}x" if "datasets" in med else ""
        rounds = ", ".join(f"{r['seconds']:.1f}" for r in rs)
        lines.append(
            f"| {run} | {rs[0]['records']:,} | {secs:.1f} | "
            f"{rounds} | {rs[0]['records'] / secs:,.0f} | "
            f"{vs_base} | {vs_ds} | {statistics.median(r['cpu_s'] for r in rs):.1f} | "
            f"{max(r['maxrss_mib'] for r in rs):.0f} MiB | "
            f"{max(r['tree_mib'] for r in rs):.0f} MiB |"
        )
    notes = []
    if "j1" in med and "j2" in med:
        notes.append(f"j1 -> j2 speed-up: {med['j1'] / med['j2']:.2f}x")
    for ray in ("ray", "ray-running"):
        if ray in med and "j2" in med:
            notes.append(f"{ray} vs local j2: {100 * (med[ray] / med['j2'] - 1):+.0f}% time")
    return "\n".join(lines) + ("\n\n" + "; ".join(notes) if notes else "")


if __name__ == "__main__":
    main()
