"""Benchmark files as evaluation items: one small reader per upstream format, keyed by the
catalog's benchmark keys (gsm8k_test, aqua_test, cmmlu, ceval, mmcu, gaokao_bench, belle_eval).

An item is either answered by generation (`generate`: GSM8K's number, AQuA's option letter), chosen
among lettered options by log-likelihood (`choice`: CMMLU, C-Eval, MMCU, GAOKAO-Bench MCQs), or an
open instruction whose answer a judge grades (`open`: BELLE-eval). Files are read as their
repositories publish them; a task may be a file or a folder of such files (CMMLU's subject CSVs).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alpacacot.training.config import TrainingError

LETTERS = "ABCDEFGH"


@dataclass
class Item:
    """One question of a benchmark, with where it came from (file, row) for error messages."""

    task: str
    kind: str  # generate | choice | open
    question: str
    answer: str
    options: dict[str, str] = field(default_factory=dict)
    where: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def _json_lines(path: Path) -> list[tuple[int, dict[str, Any]]]:
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                rows.append((lineno, json.loads(line)))
            except json.JSONDecodeError as err:
                raise TrainingError(f"{path}, line {lineno}: invalid JSON ({err})") from err
    return rows


def _field(row: dict[str, Any], name: str, where: str) -> Any:
    if name not in row or row[name] in (None, ""):
        raise TrainingError(f"{where}, field {name!r}: missing; is this the right benchmark file?")
    return row[name]


def gsm8k_answer(solution: str) -> str:
    """GSM8K's final answer: what follows `####`, without thousands separators."""
    return solution.rsplit("####", 1)[-1].strip().replace(",", "")


def _gsm8k(path: Path) -> list[Item]:
    items = []
    for lineno, row in _json_lines(path):
        where = f"{path}, line {lineno}"
        answer = gsm8k_answer(str(_field(row, "answer", where)))
        items.append(Item("gsm8k_test", "generate", _field(row, "question", where), answer,
                          where=where, extra={"extract": "number"}))  # fmt: skip
    return items


def _aqua(path: Path) -> list[Item]:
    items = []
    for lineno, row in _json_lines(path):
        where = f"{path}, line {lineno}"
        options = {}
        for option in _field(row, "options", where):
            letter, _, text = str(option).partition(")")
            options[letter.strip()] = text.strip()
        items.append(Item("aqua_test", "generate", _field(row, "question", where),
                          str(_field(row, "correct", where)).strip(), options, where,
                          {"extract": "letter"}))  # fmt: skip
    return items


def _csv_choices(task: str, question: str, answer: str) -> Callable[[Path], list[Item]]:
    def read(path: Path) -> list[Item]:
        items = []
        with path.open(encoding="utf-8", newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh), start=2):
                where = f"{path}, row {i}"
                options = {k: str(row[k]).strip() for k in "ABCD" if row.get(k) is not None}
                items.append(Item(task, "choice", _field(row, question, where),
                                  str(_field(row, answer, where)).strip(), options, where))  # fmt: skip
        return items

    return read


def _mmcu(path: Path) -> list[Item]:
    items = []
    for i, row in enumerate(json.loads(path.read_text(encoding="utf-8"))):
        where = f"{path}, item {i}"
        options = {}
        for line in str(_field(row, "选项", where)).splitlines():
            letter, sep, text = line.partition(":")
            if sep:
                options[letter.strip()] = text.strip()
        items.append(Item("mmcu", "choice", _field(row, "题目", where),
                          str(_field(row, "答案", where)).strip(), options, where))  # fmt: skip
    return items


_INLINE_OPTION = re.compile(r"(?m)^\s*([A-H])[.．、:：]\s*")


def _gaokao(path: Path) -> list[Item]:
    """GAOKAO-Bench objective questions: options inline in the question; single-answer only."""
    data = json.loads(path.read_text(encoding="utf-8"))
    items = []
    for i, row in enumerate(data.get("example", [])):
        where = f"{path}, example {i}"
        answer = _field(row, "answer", where)
        if len(answer) != 1:
            continue  # multi-answer and cloze items are not single-choice questions
        text = str(_field(row, "question", where))
        parts = _INLINE_OPTION.split(text)
        stem, options = (
            parts[0].strip(),
            dict(zip(parts[1::2], (p.strip() for p in parts[2::2]), strict=False)),
        )
        if answer[0] not in options:
            continue
        items.append(Item("gaokao_bench", "choice", stem, answer[0], options, where))
    return items


def _belle(path: Path) -> list[Item]:
    items = []
    for lineno, row in _json_lines(path):
        where = f"{path}, line {lineno}"
        items.append(Item("belle_eval", "open", _field(row, "question", where),
                          str(row.get("std_answer") or ""), where=where,
                          extra={"class": str(row.get("class") or "")}))  # fmt: skip
    return items


READERS: dict[str, tuple[str, Callable[[Path], list[Item]]]] = {
    "gsm8k_test": (".jsonl", _gsm8k),
    "aqua_test": (".json", _aqua),
    "cmmlu": (".csv", _csv_choices("cmmlu", "Question", "Answer")),
    "ceval": (".csv", _csv_choices("ceval", "question", "answer")),
    "mmcu": (".json", _mmcu),
    "gaokao_bench": (".json", _gaokao),
    "belle_eval": (".json", _belle),
}


def parse_task(
    spec: str, *, offline: bool = False, cache_dir: Path | None = None
) -> tuple[str, list[Path]]:
    """`KEY=PATH` -> (key, [path]); `KEY` alone -> the full files the catalog's `benchmarks:` pins
    for KEY (downloaded into the cache, checked against their sha256); `KEY=sample` -> its bundled
    real excerpt."""
    key, sep, path = spec.partition("=")
    if key not in READERS:
        raise TrainingError(
            f"--task {spec}: unknown benchmark {key!r}; known: {', '.join(READERS)}"
        )
    if sep and path != "sample":
        if not Path(path).exists():
            raise TrainingError(f"--task {spec}: {path} does not exist")
        return key, [Path(path)]
    from alpacacot.catalog import load_catalog
    from alpacacot.curation.benchmarks import collect
    from alpacacot.errors import AlpacacotError

    catalog = load_catalog()
    entry = catalog.benchmarks.get(key)
    if entry is None:
        raise TrainingError(
            f"--task {spec}: the catalog has no benchmark {key!r} "
            f"(it has: {', '.join(sorted(catalog.benchmarks)) or 'none'}); give KEY=PATH"
        )
    try:
        files = collect(catalog, entry, sample=bool(sep), cache_dir=cache_dir, offline=offline)
    except AlpacacotError as exc:
        raise TrainingError(f"--task {spec}: {exc}") from None
    return key, [p for p, _ in files]


def load_task(key: str, path: Path | list[Path], max_items: int = 0) -> list[Item]:
    """Every item of the file(s), or of each file of a folder (sorted by name), in order."""
    suffix, reader = READERS[key]
    files: list[Path] = []
    for p in path if isinstance(path, list) else [path]:
        files += sorted(f for f in p.iterdir() if f.name.endswith(suffix)) if p.is_dir() else [p]
    items = [item for f in files for item in reader(f)]
    if not items:
        raise TrainingError(f"--task {key}={path}: no items found")
    return items[:max_items] if max_items else items
