#!/usr/bin/env python
"""Kill a build at every rename and write of its output protocol; each rerun must be identical.

    python bench/fault_injection.py [--work DIR] [--points N] [--no-second-crash]

A previous build of five small sources is in place; the build under test changes two of them
(`src_a`, `src_b`), keeps one (`src_c`), adds one (`src_d`, no previous output) and breaks one
(`src_e`: its previous output must survive). It runs in-process (`-j 1`) so that the kill takes the
whole build down. First an uninterrupted build lists every fault point it passes
(`ALPACACOT_FAULT_TRACE`, see `src/alpacacot/faults.py`); then, for each point:

1. the build is killed there with SIGKILL (`ALPACACOT_FAULT=NAME#N`);
2. the manifest left behind is checked: every shard and rejects file it lists exists with the
   size and sha256 it records (it never points at missing or partial output);
3. the same build runs again, to the end;
4. every file of the folder is compared (sha256) with the uninterrupted build's: the same names,
   the same bytes. `built_at` and each source's `seconds` (wall clock) are the only fields
   blanked before the manifest and the card are compared; nothing else may differ, and no
   leftover (`.tmp-*`, `.old-*`, `.swap-*`, `.manifest.json.*`, `.lock`) may remain.

Points that only a recovering build passes (`recover.*`) are then tested as a second crash: the
first rerun is itself killed there, and a third build must still end identical.

Exit status 0 when every trial holds; one line per trial either way.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import yaml

ENV = {"COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb", "HF_HUB_OFFLINE": "1"}
KEYS = ("src_a", "src_b", "src_c", "src_d", "src_e")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def _rows(prefix: str, n: int) -> list[dict[str, str]]:
    return [
        {"instruction": f"{prefix}: what is {i} + {i}?", "output": str(2 * i), "note": prefix}
        for i in range(n)
    ] + [{"instruction": "", "output": f"{prefix}: rejected, no instruction"}]


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def make_catalog(root: Path) -> Path:
    """The catalog of the five sources, with their inputs as the previous build saw them."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for key in KEYS:
        _write_jsonl(data / f"{key}.jsonl", _rows(key, 30))
    entry = {
        "description": "fault injection source",
        "license": "cc-by-4.0",
        "languages": ["en"],
        "tags": {"lang": "EN", "task": "MT", "gen": "HG"},
        "format": "jsonl",
    }
    datasets = {k: {**entry, "source": {"kind": "local", "path": f"data/{k}.jsonl"}} for k in KEYS}
    catalog = root / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"version": 1, "datasets": datasets}), encoding="utf-8")
    return catalog


def change_inputs(root: Path) -> None:
    """The inputs of the build under test (see the module docstring)."""
    data = root / "data"
    _write_jsonl(data / "src_a.jsonl", _rows("src_a changed", 40))
    _write_jsonl(data / "src_b.jsonl", _rows("src_b changed", 3))
    # src_e: a JSON line nested far too deep, which ends the source (RecursionError).
    (data / "src_e.jsonl").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "utf-8")


def build(
    catalog: Path, out: Path, env: dict[str, str] | None = None, keys: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "alpacacot.cli", "build", *keys, "--catalog", str(catalog)]
    cmd += ["--out", str(out), "-j", "1", "--lang-backend", "none"]
    return subprocess.run(
        cmd, env={**os.environ, **ENV, **(env or {})}, capture_output=True, text=True, timeout=300
    )


def traced_points(catalog: Path, out: Path, trace: Path) -> list[str]:
    """Build into `out` (to the end), listing the fault points passed as `NAME#N`."""
    trace.unlink(missing_ok=True)
    build(catalog, out, {"ALPACACOT_FAULT_TRACE": str(trace)})
    seen: Counter[str] = Counter()
    points = []
    for line in trace.read_text("utf-8").splitlines() if trace.exists() else []:
        name = line.split(" ", 1)[1]
        seen[name] += 1
        points.append(f"{name}#{seen[name]}")
    return points


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(out: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under `out`; manifest and card with the wall-clock
    fields blanked."""
    files = {}
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        rel = path.relative_to(out).as_posix()
        if rel == "manifest.json":
            manifest = json.loads(path.read_text("utf-8"))
            manifest["built_at"] = ""
            for entry in manifest["sources"].values():
                entry["seconds"] = 0
            data = json.dumps(manifest, sort_keys=True).encode()
        elif rel == "README.md":
            data = TIMESTAMP.sub("", path.read_text("utf-8")).encode()
        else:
            data = path.read_bytes()
        files[rel] = hashlib.sha256(data).hexdigest()
    return files


def manifest_problems(out: Path) -> list[str]:
    """What the manifest in `out` lists that is not there, or not as it records."""
    path = out / "manifest.json"
    if not path.exists():
        return []
    try:
        manifest = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        return [f"manifest.json is not JSON: {exc}"]
    problems = []
    for key, entry in manifest["sources"].items():
        for shard in entry["shards"]:
            shard_path = out / shard["path"]
            if not shard_path.is_file():
                problems.append(f"{key}: {shard['path']} is missing")
            elif sha256(shard_path) != shard["sha256"]:
                problems.append(f"{key}: {shard['path']} does not match its sha256")
        if not (out / entry["rejects"]).is_file():
            problems.append(f"{key}: {entry['rejects']} is missing")
    return problems


def trial(exp: Experiment, work: Path, kills: list[str]) -> list[str]:
    """Copy the previous build to `work`, run the build killed at each of `kills` in turn, then
    once to the end; return what went wrong (nothing: the trial holds)."""
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(exp.before, work)
    problems = []
    for kill in kills:
        result = build(exp.catalog, work, {"ALPACACOT_FAULT": kill})
        if result.returncode != -signal.SIGKILL:
            problems.append(f"not killed at {kill} (exit {result.returncode})")
        problems += manifest_problems(work)
    result = build(exp.catalog, work)
    if result.returncode != 1 or "src_e failed" not in result.stderr:
        problems.append(f"the rerun ended with exit {result.returncode}: {result.stderr[-500:]}")
    got = snapshot(work)
    for rel in sorted(set(got) | set(exp.reference)):
        if got.get(rel) != exp.reference.get(rel):
            what = (
                "missing" if rel not in got else "extra" if rel not in exp.reference else "differs"
            )
            problems.append(f"{rel} {what}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--points", type=int, help="only every k-th point, k chosen for N points")
    parser.add_argument("--no-second-crash", action="store_true", help="skip the recover.* kills")
    args = parser.parse_args(argv)
    root = args.work or Path(tempfile.mkdtemp(prefix="alpacacot-faults-"))
    return run(root, args.points, not args.no_second_crash)


@dataclass
class Experiment:
    catalog: Path  # the catalog, its inputs changed for the build under test
    before: Path  # the previous build, copied before each trial
    reference: dict[str, str]  # `snapshot` of the uninterrupted build
    points: list[str]  # the fault points the uninterrupted build passes, as NAME#N


def prepare(root: Path) -> Experiment:
    """The previous build, the changed inputs and the uninterrupted build, in `root`."""
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ALPACACOT_CACHE", str(root / "cache"))
    catalog = make_catalog(root / "catalog")
    before = root / "before"
    shutil.rmtree(before, ignore_errors=True)
    first = build(catalog, before, keys=tuple(k for k in KEYS if k != "src_d"))
    assert first.returncode == 0, first.stderr
    change_inputs(root / "catalog")
    ref_dir = root / "reference"
    shutil.rmtree(ref_dir, ignore_errors=True)
    shutil.copytree(before, ref_dir)
    points = traced_points(catalog, ref_dir, root / "trace.txt")
    return Experiment(catalog, before, snapshot(ref_dir), points)


def report(kills: list[str], problems: list[str]) -> str:
    status = "FAIL" if problems else "ok  "
    where = ", then at ".join(kills)
    return f"{status} kill at {where}: " + (
        "; ".join(problems) or "manifest consistent, rerun identical"
    )


def run(root: Path, points: int | None = None, second_crash: bool = True) -> int:
    """The whole experiment in `root`; prints one line per trial and returns the exit status."""
    exp = prepare(root)
    kill_points = exp.points
    if points and points < len(kill_points):
        step = len(kill_points) / points
        kill_points = [kill_points[int(i * step)] for i in range(points)]
    print(f"{len(kill_points)} kill points; reference: {len(exp.reference)} files")
    failures = 0
    recover_first: dict[str, str] = {}
    for point in kill_points:
        problems = trial(exp, root / "work", [point])
        failures += bool(problems)
        print(report([point], problems), flush=True)
        if second_crash:
            # Which recovery points does a rerun after this crash pass?
            probe = root / "probe"
            shutil.rmtree(probe, ignore_errors=True)
            shutil.copytree(exp.before, probe)
            build(exp.catalog, probe, {"ALPACACOT_FAULT": point})
            for later in traced_points(exp.catalog, probe, root / "trace2.txt"):
                if later.startswith("recover.") and later not in recover_first:
                    recover_first[later] = point
    for later, point in recover_first.items():
        problems = trial(exp, root / "work", [point, later])
        failures += bool(problems)
        print(report([point, later], problems), flush=True)
    total = len(kill_points) + len(recover_first)
    print(f"{total - failures} of {total} trials hold")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
