"""Builds as subprocesses (so that they can be killed) and small catalogs of local sources."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import yaml

ENV = {"COLUMNS": "400", "NO_COLOR": "1", "TERM": "dumb"}


def build_cmd(catalog: Path, out: Path, *args: str) -> list[str]:
    verbose = [a for a in args if a == "-v"]
    args = tuple(a for a in args if a != "-v")
    return [
        sys.executable,
        "-m",
        "alpacacot.cli",
        *verbose,
        "build",
        "--catalog",
        str(catalog),
        "--out",
        str(out),
        "--lang-backend",
        "none",
        *args,
    ]


def run_build(
    catalog: Path, out: Path, *args: str, fault: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess:
    """`alpacacot-data build` in its own process, to the end (or to the fault)."""
    env = {**os.environ, **ENV}
    if fault:
        env["ALPACACOT_FAULT"] = fault
    return subprocess.run(
        build_cmd(catalog, out, *args), env=env, capture_output=True, text=True, timeout=timeout
    )


def start_build(catalog: Path, out: Path, *args: str, fault: str, trace: Path) -> subprocess.Popen:
    env = {**os.environ, **ENV, "ALPACACOT_FAULT": fault, "ALPACACOT_FAULT_TRACE": str(trace)}
    return subprocess.Popen(
        build_cmd(catalog, out, *args),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll until `condition()` holds; fail the test naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def trace_lines(trace: Path) -> list[tuple[int, str]]:
    if not trace.exists():
        return []
    return [
        (int(pid), name)
        for pid, name in (line.split(" ", 1) for line in trace.read_text("utf-8").splitlines())
    ]


def pid_running(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def write_sources(root: Path, rows: dict[str, list]) -> Path:
    """A catalog of `kind: local` JSON Lines sources, one per key of `rows`, in root."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    datasets = {}
    for key, items in rows.items():
        lines = [line if isinstance(line, str) else json.dumps(line) for line in items]
        (root / "data" / f"{key}.jsonl").write_text("".join(f"{x}\n" for x in lines), "utf-8")
        datasets[key] = {
            "description": "test source",
            "license": "cc-by-4.0",
            "languages": ["en"],
            "tags": {"lang": "EN", "task": "MT", "gen": "HG"},
            "source": {"kind": "local", "path": f"data/{key}.jsonl"},
            "format": "jsonl",
        }
    catalog = root / "catalog.yaml"
    catalog.write_text(yaml.safe_dump({"version": 1, "datasets": datasets}), "utf-8")
    return catalog


def qa(prefix: str, n: int) -> list[dict[str, str]]:
    return [
        {"instruction": f"{prefix} {i}: what is {i} + 1?", "output": str(i + 1)} for i in range(n)
    ]


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text("utf-8"))


def missing_output(out: Path) -> list[str]:
    """What the manifest of `out` lists that is not there as it records (empty: consistent)."""
    problems = []
    for entry in manifest(out)["sources"].values():
        for shard in entry["shards"]:
            path = out / shard["path"]
            if not path.is_file():
                problems.append(f"{shard['path']} missing")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != shard["sha256"]:
                problems.append(f"{shard['path']} differs")
        if not (out / entry["rejects"]).is_file():
            problems.append(f"{entry['rejects']} missing")
    return problems


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name.startswith("."))
