"""A catalog of real excerpts cut into many units, builds on any executor, and a worker killer."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml

from alpacacot.build import BuildRequest, build
from alpacacot.catalog import PACKAGE_CATALOG, load_catalog
from alpacacot.executors import Executor
from alpacacot.pipeline import BuildOptions

SAMPLES = PACKAGE_CATALOG.parent / "samples"
# Small enough that every file above is cut into several units: JSON Lines and TSV files into
# byte ranges, JSON arrays into row ranges handed on by the reader.
UNIT_BYTES = 3_000
UNIT_ROWS = 30
COT = ["aqua", "creak", "ecqa", "gsm8k", "qasc", "sensemaking", "strategyqa"]
EN = {"lang": "EN", "task": "MT", "gen": "SI"}
ZH = {"lang": "CN", "task": "MT", "gen": "SI"}


def _entry(files: list[str], fmt: str, languages: list[str], tags: dict, **extra: Any) -> dict:
    return {
        "description": "real excerpt",
        "license": "other",
        "languages": languages,
        "tags": tags,
        "format": fmt,
        "source": {"kind": "local", "files": [{"path": f} for f in files]},
        **extra,
    }


def real_catalog(root: Path) -> Path:
    """Real upstream excerpts (the package's samples) copied under `root`, in a catalog of JSON
    Lines, JSON array and TSV sources (one TSV with its header line, one source holding the
    same file twice: the second copy is all duplicates, of records in other units)."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    for rel in [
        "alpaca/alpaca_data.json",
        "sharegpt_zh/sharegpt_zh_1K_format.jsonl",
        "belle_1m/Belle_open_source_1M.json",
        "multiturn_chat/multiturn_chat_0.8M.json",
        "alpaca_gpt4_zh/alpaca_gpt4_data_zh.json",
        "hh_rlhf/harmless-base_test.jsonl",
        "chinese_medical/internal_medicine_sample.csv",
        *[f"cot/{t}_train.tsv" for t in COT],
    ]:
        shutil.copyfile(SAMPLES / rel, data / Path(rel).name)
    with_header = b"question\tanswer\trationale\n" + (SAMPLES / "cot/gsm8k_train.tsv").read_bytes()
    (data / "gsm8k_header.tsv").write_bytes(with_header)
    datasets = {
        "alpaca": _entry(["data/alpaca_data.json"], "json", ["en"], EN, normalizer="alpaca"),
        "sharegpt_zh": _entry(
            ["data/sharegpt_zh_1K_format.jsonl"], "jsonl", ["zh"], ZH, normalizer="sharegpt"
        ),
        "belle": _entry(
            ["data/Belle_open_source_1M.json", "data/multiturn_chat_0.8M.json"],
            "jsonl",
            ["zh"],
            ZH,
        ),
        "cot": _entry(
            [f"data/{t}_train.tsv" for t in COT],
            "tsv",
            ["en"],
            EN,
            columns=["question", "answer", "rationale"],
            normalizer="flan_cot",
            fields={"instruction": "question", "output": "answer"},
        ),
        "cot_header": _entry(
            ["data/gsm8k_header.tsv"],
            "tsv",
            ["en"],
            EN,
            normalizer="flan_cot",
            fields={"instruction": "question", "output": "answer"},
        ),
        # schema 1.1's `rejected` column, and history from a transcript
        "hh_rlhf": _entry(
            ["data/harmless-base_test.jsonl"], "jsonl", ["en"], EN, normalizer="hh_rlhf"
        ),
        # a GB18030 CSV: another encoding is never cut by bytes
        "medical": _entry(
            ["data/internal_medicine_sample.csv"],
            "csv",
            ["zh"],
            ZH,
            encoding="gb18030",
            fields={"instruction": "ask", "output": "answer"},
        ),
        "twice": _entry(
            ["data/alpaca_gpt4_data_zh.json", "data/alpaca_gpt4_data_zh.json"],
            "json",
            ["zh"],
            ZH,
            normalizer="alpaca",
        ),
    }
    path = root / "catalog.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "datasets": datasets}, sort_keys=False), "utf-8")
    return path


def run_build(
    catalog: Path,
    out: Path,
    *,
    workers: int = 1,
    executor: Executor | None = None,
    executor_name: str = "local",
    cut_small: bool = True,
    max_shard_bytes: int | None = None,
    **request: Any,
) -> dict[str, Any]:
    """Build every source of `catalog` into `out`; the manifest."""
    cat = load_catalog(catalog)
    sizes = {"unit_bytes": UNIT_BYTES, "unit_rows": UNIT_ROWS} if cut_small else {}
    # Progress every 5 records, so that a unit reports (and can be killed) half-way.
    options = BuildOptions(progress_every=5)
    if max_shard_bytes is not None:
        options.max_shard_bytes = max_shard_bytes
    report = build(
        cat,
        BuildRequest(
            keys=list(cat.datasets),
            out_dir=out,
            workers=workers,
            executor=executor_name,
            options=options,
            **sizes,
            **request,
        ),
        executor=executor,
    )
    assert not report.failed, report.failed
    return report.manifest


def fingerprint(out: Path) -> tuple[dict[str, str], dict[str, Any]]:
    """sha256 of every file a build wrote, and its manifest without timings and code hashes."""
    files = {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name not in ("manifest.json", "README.md", ".lock")
    }
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    manifest.pop("built_at")
    for source in manifest["sources"].values():
        source.pop("seconds")
    return files, manifest


class KillOnce:
    """Wraps a unit function: the worker running unit `seq` of source `key` kills itself with
    SIGKILL at that unit's first progress report (mid-unit), the first time only (`marker`)."""

    def __init__(self, fn: Any, key: str, seq: int, marker: Path):
        self.fn, self.key, self.seq, self.marker = fn, key, seq, str(marker)

    def __call__(self, unit: Any, report: Any) -> Any:
        if unit.key != self.key or unit.seq != self.seq:
            return self.fn(unit, report)

        def report_then_die(n: int) -> None:
            if not os.path.exists(self.marker):
                Path(self.marker).write_text(str(os.getpid()))
                os.kill(os.getpid(), signal.SIGKILL)
            report(n)

        return self.fn(unit, report_then_die)


class Killing:
    """An executor whose units run through `KillOnce`."""

    def __init__(self, inner: Executor, key: str, seq: int, marker: Path):
        self.inner, self.key, self.seq, self.marker = inner, key, seq, marker
        self.name, self.workers = inner.name, inner.workers

    def map(self, fn: Any, units: Iterable[Any], *, progress: Any = None) -> Iterator[Any]:
        return self.inner.map(
            KillOnce(fn, self.key, self.seq, self.marker), units, progress=progress
        )


def square_slowly(unit: int, report: Any) -> int:
    """A unit function for the executor tests: reports twice, returns the unit squared."""
    report(1)
    report(1)
    return unit * unit


def die_always(unit: int, report: Any) -> int:
    """Kills its worker every time it runs unit 2."""
    if unit == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return unit


def fail_on_three(unit: int, report: Any) -> int:
    if unit == 3:
        raise ValueError("unit 3 is bad")
    return unit


class Elsewhere:
    """Wraps a unit function: the unit runs as on another machine, where the build's staging
    folder is not there (its token is not found), and counts how it came back in `log`."""

    def __init__(self, fn: Any, log: Path):
        self.fn, self.log = fn, str(log)

    def __call__(self, unit: Any, report: Any) -> Any:
        from dataclasses import replace

        if unit.spill_token is not None:
            unit = replace(unit, spill_token="a token no folder of this build holds")
        result = self.fn(unit, report)
        kind = "file" if getattr(result, "table_file", None) else "in-band"
        with open(self.log, "a", encoding="utf-8") as fh:
            fh.write(kind + "\n")
        return result


class Remote:
    """An executor whose units run through `Elsewhere`."""

    def __init__(self, inner: Executor, log: Path):
        self.inner, self.log = inner, log
        self.name, self.workers = inner.name, inner.workers

    def map(self, fn: Any, units: Iterable[Any], *, progress: Any = None) -> Iterator[Any]:
        return self.inner.map(Elsewhere(fn, self.log), units, progress=progress)
