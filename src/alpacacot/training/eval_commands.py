"""`alpacacot-data eval`: score a base model and any number of adapters on benchmark files.

    alpacacot-data eval --model BASE --adapter A --adapter B \
        --task gsm8k_test=test.jsonl --task cmmlu=cmmlu/test/ --out eval_out

Writes `results.json`, `scores.png` and, for BELLE-eval, `<run>.belle_eval.jsonl` into --out, and
prints a table. Refuses a benchmark whose items curation found in an adapter's training records
(the collection's `curation/contamination.parquet`) unless --allow-contaminated.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

import typer

from alpacacot.training.config import TrainingError

log = logging.getLogger("alpacacot.training")


def _run_name(adapter: str | None, taken: set[str]) -> str:
    name = Path(adapter).name if adapter else "base"
    base, n = name, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    taken.add(name)
    return name


def score_task(
    loaded: Any,
    key: str,
    items: list,
    *,
    name: str,
    out: Path,
    max_new_tokens: int,
    batch_size: int,
    judge: dict[str, Any],
) -> dict[str, Any]:
    """Score one run on one task; returns {metric, score, items, correct, ...}."""
    from alpacacot.training import evaluate as ev

    kind = items[0].kind
    if kind == "choice":
        chosen = ev.score_choices(loaded, items, batch_size)
        correct = sum(c == item.answer for c, item in zip(chosen, items, strict=True))
        return {"metric": "accuracy (option log-likelihood)", "score": correct / len(items),
                "items": len(items), "correct": correct}  # fmt: skip
    if kind == "generate":
        prompts = [ev.generation_prompt(item) for item in items]
        answers = ev.generate_answers(loaded, prompts, max_new_tokens, batch_size)
        correct = sum(ev.is_correct(item, a) for item, a in zip(items, answers, strict=True))
        return {"metric": "exact match (CoT generation)", "score": correct / len(items),
                "items": len(items), "correct": correct}  # fmt: skip
    # open instructions: generations for a judge (BELLE-eval)
    answers = ev.generate_answers(loaded, [i.question for i in items], max_new_tokens, batch_size)
    prompts = judge["prompts"]
    path = out / f"{name}.{key}.jsonl"
    scores = []
    with path.open("w", encoding="utf-8") as fh:
        for item, answer in zip(items, answers, strict=True):
            prompt = prompts.get(ev._class_key(item.extra.get("class", "")))
            row = {"question": item.question, "std_answer": item.answer,
                   "class": item.extra.get("class"), "answer": answer}  # fmt: skip
            if prompt is not None:
                row["judge_message"] = ev.judge_message(prompt, item, answer)
                if judge["url"]:
                    row["score"] = ev.ask_judge(
                        judge["url"], judge["model"], row["judge_message"], judge["key"], 60
                    )
                    scores.append(row["score"])
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return {"metric": "judge score" if scores else "generations for a judge",
            "score": sum(scores) / len(scores) if scores else None, "items": len(items),
            "judged": len(scores), "generations": str(path)}  # fmt: skip


def run_eval(
    model: str | None,
    adapters: list[str],
    tasks: list[str],
    out: Path,
    *,
    include_base: bool = True,
    collection: str | None = None,
    allow_contaminated: bool = False,
    max_items: int = 0,
    max_new_tokens: int = 256,
    batch_size: int = 8,
    judge_url: str | None = None,
    judge_model: str = "gpt-3.5-turbo",
    belle_prompts: Path | None = None,
    model_type: str | None = None,
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    from alpacacot.training import eval_report
    from alpacacot.training.benchmarks import load_task, parse_task
    from alpacacot.training.evaluate import contamination, load_judge_prompts
    from alpacacot.training.infer import _manifest, load_for_inference

    if not tasks:
        raise TrainingError(
            "--task is required: KEY (the catalog's pinned files), KEY=sample or KEY=PATH, "
            "e.g. --task gsm8k_test"
        )
    task_items = {}
    for spec in tasks:
        key, path = parse_task(spec)
        task_items[key] = load_task(key, path, max_items)
    manifests = {a: _manifest(a) for a in adapters}
    for a, m in manifests.items():
        if not (Path(a) / "adapter_config.json").is_file():
            raise TrainingError(
                f"--adapter {a}: no adapter_config.json there (a train --output_dir)"
            )
        model = model or m.get("model", {}).get("name_or_path")
    if not model:
        raise TrainingError("--model is required (no adapter has a training manifest naming it)")

    # Evaluation sets are never training data: check before any model is loaded.
    found = {a: contamination(Path(a), manifests[a], collection) for a in adapters}
    for a, c in found.items():
        bad = {k: n for k, n in c.items.items() if k in task_items and n}
        if bad and not allow_contaminated:
            listed = ", ".join(f"{n} item(s) of {k}" for k, n in sorted(bad.items()))
            raise TrainingError(
                f"--adapter {a} was trained on records that contain {listed} ({c.source}); its "
                "scores there would be inflated. Drop those --task entries, or pass "
                "--allow-contaminated to score them anyway (results.json then records the count)"
            )

    out.mkdir(parents=True, exist_ok=True)
    judge = {"url": judge_url, "model": judge_model, "key": os.environ.get("OPENAI_API_KEY"),
             "prompts": load_judge_prompts(belle_prompts)}  # fmt: skip
    if "belle_eval" in task_items and not judge["prompts"]:
        log.warning(
            "belle_eval: no --belle-prompts file; generations are written without judge prompts"
        )
    taken: set[str] = set()
    runs = []
    for adapter in ([None] if include_base else []) + list(adapters):
        name = _run_name(adapter, taken)
        manifest = manifests.get(adapter, {}) if adapter else {}
        loaded = load_for_inference(
            model, adapter, model_type=model_type, trust_remote_code=trust_remote_code
        )
        run: dict[str, Any] = {
            "name": name,
            "adapter": adapter,
            "peft_type": (manifest.get("peft") or {}).get("type") if adapter else None,
            "data_hash": (manifest.get("data") or {}).get("record_ids_sha256"),
            "catalog_keys": (manifest.get("data") or {}).get("catalog_keys"),
            "prompt_template": loaded.template,
            "tasks": {},
        }
        for key, items in task_items.items():
            log.info("%s: %s (%d items)", name, key, len(items))
            result = score_task(
                loaded, key, items, name=name, out=out, max_new_tokens=max_new_tokens,
                batch_size=batch_size, judge=judge,
            )  # fmt: skip
            if adapter and found[adapter].items.get(key):
                result["contaminated_items"] = found[adapter].items[key]
            run["tasks"][key] = result
        runs.append(run)
        del loaded
    results = {
        "format": "alpacacot-eval",
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "model": model,
        "tasks": {k: {"items": len(v), "kind": v[0].kind} for k, v in task_items.items()},
        "settings": {"max_new_tokens": max_new_tokens, "max_items": max_items},
        "runs": runs,
    }
    eval_report.write_json(results, out)
    eval_report.bar_chart(results, out)
    return results


AdaptersOpt = Annotated[
    list[str] | None, typer.Option("--adapter", help="Adapter directory; repeat for more.")
]
TasksOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--task",
        help="KEY, KEY=sample or KEY=PATH: gsm8k_test, aqua_test, cmmlu, ceval, mmcu, "
        "gaokao_bench, belle_eval. KEY alone reads the files the catalog's benchmarks: pins "
        "(downloaded into the cache); sample its bundled excerpt; PATH a file or a folder of "
        "files as their repositories publish them.",
    ),
]
OutOpt = Annotated[Path, typer.Option("--out", help="Folder for results.json and scores.png.")]
BellePromptsOpt = Annotated[
    Path | None,
    typer.Option("--belle-prompts", help="BELLE's eval_prompt.json (judge prompt per class)."),
]


def eval_command(
    model: str | None = typer.Option(None, "--model", help="Base model (default: the adapters')."),
    adapter: AdaptersOpt = None,
    task: TasksOpt = None,
    out: OutOpt = Path("eval_out"),
    skip_base: bool = typer.Option(False, "--skip-base", help="Do not score the base model alone."),
    collection: str | None = typer.Option(
        None,
        "--collection",
        help="Collection whose curation/contamination.parquet is checked "
        "(default: the one in each adapter's manifest).",
    ),
    allow_contaminated: bool = typer.Option(
        False, "--allow-contaminated", help="Score benchmarks found in an adapter's training data."
    ),
    max_items: int = typer.Option(0, "--max-items", help="First N items of each task (0 = all)."),
    max_new_tokens: int = typer.Option(256, "--max_new_tokens", help="Tokens per generation."),
    batch_size: int = typer.Option(8, "--batch_size", help="Prompts per forward pass."),
    judge_url: str | None = typer.Option(
        None,
        "--judge-url",
        help="OpenAI-compatible endpoint (…/v1) that grades BELLE-eval answers.",
    ),
    judge_model: str = typer.Option("gpt-3.5-turbo", "--judge-model", help="The judge's model."),
    belle_prompts: BellePromptsOpt = None,
    model_type: str | None = typer.Option(None, "--model_type", help="Registry model type."),
    trust_remote_code: bool = typer.Option(False, "--trust_remote_code"),
) -> None:
    """Score a base model and adapters on GSM8K, CMMLU, BELLE-eval, ... (table, JSON, chart)."""
    from rich.console import Console

    from alpacacot.training.commands import _fail, setup_logging
    from alpacacot.training.eval_report import CHART, RESULTS, table

    setup_logging()
    try:
        results = run_eval(
            model, adapter or [], task or [], out, include_base=not skip_base, collection=collection,
            allow_contaminated=allow_contaminated, max_items=max_items,
            max_new_tokens=max_new_tokens, batch_size=batch_size, judge_url=judge_url,
            judge_model=judge_model, belle_prompts=belle_prompts, model_type=model_type,
            trust_remote_code=trust_remote_code,
        )  # fmt: skip
    except TrainingError as err:
        raise _fail(err) from err
    console = Console()
    console.print(table(results))
    console.print(f"{out / RESULTS} and {out / CHART} written")
