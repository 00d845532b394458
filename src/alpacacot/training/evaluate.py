"""`alpacacot-data eval`: the seed's empirical study as one command.

A base model, alone and with each adapter, answers benchmark items (see `benchmarks.py`):
- generation with a chain-of-thought prompt, then final-answer extraction and exact match (GSM8K's
  number, AQuA's option letter);
- multiple choice by the log-likelihood of each option letter after the question and its options
  (CMMLU, C-Eval, MMCU, GAOKAO-Bench MCQs): the letter the model finds likeliest is its answer;
- BELLE-eval: answers written next to BELLE's judge prompt for their class, ready for a judge, and
  scored by one when `--judge-url` names an OpenAI-compatible endpoint.
Prompts go through the adapter's own template (its training manifest says which), so the model is
asked the way it was trained.

Why not lm-evaluation-harness: lm-eval 0.4.13 pulls 37 more packages (scipy, scikit-learn, nltk,
evaluate, sacrebleu, aiohttp, ...), and it would need each benchmark rewritten as its task YAML
with the adapter's prompt template copied into Jinja; the loop here is short and reuses the
trainer's templates, adapter loading and tokenization.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alpacacot.training.benchmarks import Item
from alpacacot.training.config import TrainingError

log = logging.getLogger(__name__)

RECORD_IDS = "record_ids.txt.gz"  # written by train next to the adapter
COT_SUFFIX = "\nLet's think step by step."
CHOICE_SUFFIX = "\n答案："

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
_ANSWER_IS = re.compile(
    r"(?:answer is|答案是|答案为|####)\s*[:：]?\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)", re.I
)
_LETTER_IS = re.compile(r"(?:answer is|答案是|答案为|答案[:：])\s*\(?([A-H])\b", re.I)


# --------------------------------------------------------------------------- answer extraction
def _number(text: str) -> str:
    value = text.replace(",", "").rstrip(".")
    try:
        number = float(value)
    except ValueError:
        return value
    return str(int(number)) if number == int(number) else str(number)


def extract_number(text: str) -> str | None:
    """The final number of a chain of thought: after 'the answer is' / '####', else the last one."""
    found = _ANSWER_IS.findall(text)
    if found:
        return _number(found[-1])
    numbers = _NUMBER.findall(text)
    return _number(numbers[-1]) if numbers else None


def extract_letter(text: str, letters: str = "ABCDE") -> str | None:
    """The chosen option letter: after 'the answer is', else the last standalone letter."""
    found = [m for m in _LETTER_IS.findall(text) if m in letters]
    if found:
        return found[-1]
    standalone = re.findall(rf"(?<![A-Za-z])([{letters}])(?![A-Za-z])", text)
    return standalone[-1] if standalone else None


def is_correct(item: Item, generated: str) -> bool:
    if item.extra.get("extract") == "letter":
        return extract_letter(generated, "".join(item.options) or "ABCDE") == item.answer
    return extract_number(generated) == _number(item.answer)


# ------------------------------------------------------------------------------------ prompts
def generation_prompt(item: Item) -> str:
    text = item.question
    if item.options:
        text += "\nOptions:\n" + "\n".join(f"{k}) {v}" for k, v in item.options.items())
    return text + COT_SUFFIX


def choice_prompt(item: Item) -> str:
    options = "\n".join(f"{k}. {v}" for k, v in item.options.items())
    return f"{item.question}\n{options}{CHOICE_SUFFIX}"


# ------------------------------------------------------------------------------------ scoring
def prompt_ids(loaded: Any, instruction: str) -> list[int]:
    """Token ids of the rendered prompt, tokenized exactly as in training."""
    from alpacacot.training.data import special_prefix
    from alpacacot.training.prompts import render_segments

    tok = loaded.tokenizer
    segments = render_segments(
        {"instruction": instruction, "input": "", "output": ""},
        loaded.template,
        tok,
        with_answer=False,
    )
    ids = list(special_prefix(tok))
    for piece in tok([t for t, _ in segments], add_special_tokens=False)["input_ids"]:
        ids.extend(piece)
    return ids


def continuation_logprobs(
    loaded: Any, pairs: Sequence[tuple[list[int], list[int]]], batch_size: int = 8
) -> list[float]:
    """log p(continuation | context) for each (context ids, continuation ids), summed over tokens.

    Rows are right-padded and batched; each row's score reads only its own positions.
    """
    import torch

    model, pad = loaded.model, loaded.tokenizer.pad_token_id
    scores: list[float] = []
    for start in range(0, len(pairs), batch_size):
        chunk = pairs[start : start + batch_size]
        rows = [ctx + cont for ctx, cont in chunk]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        with torch.no_grad():
            logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device))
        # prompt tuning puts virtual tokens in front: the last `width` positions are the rows'
        logp = torch.log_softmax(logits.logits[:, -width:].float(), dim=-1).cpu()
        for row, (ctx, cont) in enumerate(chunk):
            total = 0.0
            for j, token in enumerate(cont):
                total += logp[row, len(ctx) + j - 1, token].item()
            scores.append(total)
    return scores


def score_choices(loaded: Any, items: Sequence[Item], batch_size: int = 8) -> list[str]:
    """Each item's option letter with the highest log-likelihood after its prompt."""
    tok = loaded.tokenizer
    pairs, owners = [], []
    for n, item in enumerate(items):
        ctx = prompt_ids(loaded, choice_prompt(item))
        for letter in item.options:
            pairs.append((ctx, tok(letter, add_special_tokens=False)["input_ids"]))
            owners.append((n, letter))
    scores = continuation_logprobs(loaded, pairs, batch_size)
    best: dict[int, tuple[float, str]] = {}
    for (n, letter), score in zip(owners, scores, strict=True):
        if n not in best or score > best[n][0]:
            best[n] = (score, letter)
    return [best[n][1] for n in range(len(items))]


def generate_answers(
    loaded: Any, instructions: Sequence[str], max_new_tokens: int, batch_size: int
) -> list[str]:
    from alpacacot.training.infer import generate

    answers: list[str] = []
    for start in range(0, len(instructions), batch_size):
        chunk = [{"instruction": i, "input": ""} for i in instructions[start : start + batch_size]]
        answers += generate(loaded, chunk, max_new_tokens=max_new_tokens)
    return answers


# ---------------------------------------------------------------------------------- the judge
def load_judge_prompts(path: Path | None) -> dict[str, str]:
    """BELLE's eval_prompt.json (JSON Lines {class, prompt}), keyed by class."""
    if path is None:
        return {}
    prompts = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            if "class" not in row or "prompt" not in row:
                raise TrainingError(f"{path}, line {lineno}: expected {{class, prompt}}")
            prompts[_class_key(row["class"])] = row["prompt"]
    return prompts


def _class_key(name: str) -> str:
    return " ".join(name.split()).lower()  # BELLE writes "closed\u00a0qa" in places


def judge_message(prompt: str, item: Item, answer: str) -> str:
    return f"{prompt}\n\n问题：{item.question}\n标准回答：{item.answer}\n模型回答：{answer}"


_SCORE = re.compile(r"得分\s*[:：]\s*([0-9]*\.?[0-9]+)")


def ask_judge(url: str, model: str, message: str, api_key: str | None, timeout: float) -> float:
    """One chat completion from an OpenAI-compatible endpoint; the score after '得分:'."""
    body = json.dumps(
        {"model": model, "messages": [{"role": "user", "content": message}], "temperature": 0}
    ).encode("utf-8")
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(
        url.rstrip("/") + "/chat/completions", data=body, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read().decode("utf-8"))
        content = reply["choices"][0]["message"]["content"]
    except (OSError, ValueError, KeyError, IndexError) as err:
        raise TrainingError(f"--judge-url {url}: no usable answer ({err})") from err
    match = _SCORE.search(content)
    if not match:
        raise TrainingError(
            f"--judge-url {url}: the judge's reply has no '得分:' score: {content!r}"
        )
    return float(match.group(1))


# ------------------------------------------------------------------------------ contamination
@dataclass
class Contamination:
    """How many items of each benchmark appear in records an adapter was trained on."""

    source: str | None = None
    items: dict[str, int] = field(default_factory=dict)


def training_ids(adapter: Path) -> set[str] | None:
    path = adapter / RECORD_IDS
    if not path.is_file():
        return None
    return set(gzip.decompress(path.read_bytes()).decode("utf-8").split())


def contamination(adapter: Path, manifest: dict[str, Any], collection: str | None) -> Contamination:
    """Items of each benchmark found (by curation) in the adapter's training records."""
    location = collection or (manifest.get("data", {}).get("collection") or {}).get("location")
    if not location:
        return Contamination()
    path = Path(location) / "curation" / "contamination.parquet"
    if not path.is_file():
        return Contamination()
    import pyarrow.parquet as pq

    table = pq.read_table(path).to_pylist()
    ids = training_ids(adapter)
    keys = set(manifest.get("data", {}).get("catalog_keys") or [])
    hits: dict[str, set[Any]] = {}
    for row in table:
        used = row["id"] in ids if ids is not None else row.get("source") in keys
        if used:
            hits.setdefault(str(row["benchmark"]), set()).add(row.get("item", row["id"]))
    return Contamination(str(path), {k: len(v) for k, v in hits.items()})
