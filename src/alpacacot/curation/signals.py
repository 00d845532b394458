"""Quality signals per record: cheap, explainable flags a recipe thresholds.

Each signal says what it catches:

- `refusal`: the answer is a refusal or model boilerplate ("As an AI language model",
  "作为一个AI语言模型", "I'm sorry, but I cannot"). The phrase list is configurable
  (`SignalParams.refusals`); the matched phrase is kept in `refusal_match`.
- `lang_mismatch`: a Chinese prompt answered in English, or an English prompt answered in Chinese
  (by CJK share, so it costs no language model); prompts that ask for a translation or name the
  other language are exempt.
- `empty_answer`: the answer has no content: empty, only punctuation/whitespace, or a placeholder
  such as "N/A", "<nooutput>", "无".
- `repetition`: the share of repeated token 4-grams in the answer (0: none; degenerate loops
  score above 0.5); only answers of 20+ tokens are scored, shorter ones get 0.
- `truncated`: the answer stops mid-sentence (long prose ending without closing punctuation) or
  leaves a code fence open (an odd number of ```).
- `prompt_chars` / `output_chars`: lengths in characters, for recipes' min/max thresholds
  (extreme lengths: one-character answers, 50,000-character dumps).
"""

from __future__ import annotations

import functools
import re
from dataclasses import asdict, dataclass
from typing import Any

from alpacacot.curation.text import CJK_CHAR, prompt_text

DEFAULT_REFUSALS = (
    "as an ai language model",
    "as a language model",
    "as an ai assistant",
    "as an ai, i",
    "i'm sorry, but i cannot",
    "i am sorry, but i cannot",
    "i'm sorry, but i can't",
    "i'm sorry, i cannot",
    "i cannot fulfill",
    "i can't assist with",
    "i'm not able to provide",
    "i am not able to provide",
    "i do not have personal opinions",
    "i don't have personal opinions",
    "my knowledge cutoff",
    "作为一个ai语言模型",
    "作为一个人工智能语言模型",
    "作为ai语言模型",
    "作为一个ai",
    "作为一个人工智能",
    "作为人工智能",
    "我是一个ai语言模型",
    "我是一个人工智能",
    "很抱歉，我无法",
    "抱歉，我无法",
    "对不起，我无法",
    "我无法回答",
    "我不能回答",
)
PLACEHOLDERS = frozenset(
    "n/a na none null nil <nooutput> <noinput> nooutput noinput ... - 无 暂无 无。 没有 空".split()
)
TRANSLATE = re.compile(
    r"translat|chinese|english|mandarin|pinyin|翻译|译成|中文|英文|英语|汉语|用英|in english",
    re.IGNORECASE,
)
_WS = re.compile(r"\s+")
_CONTENT = re.compile(r"[^\W_]", re.UNICODE)
_END = re.compile(r"""[.!?。！？…:;：；)\]}"'”’）】》>`*|]\s*$""")


@dataclass(frozen=True)
class SignalParams:
    """Signal settings (recorded in the manifest)."""

    refusals: tuple[str, ...] = DEFAULT_REFUSALS
    repetition_n: int = 4
    repetition_min_tokens: int = 20
    truncation_min_chars: int = 200
    cjk_share: float = 0.3
    mismatch_min_chars: int = 20

    def to_dict(self) -> dict:
        return asdict(self)


COLUMNS = (
    "refusal",
    "refusal_match",
    "lang_mismatch",
    "empty_answer",
    "repetition",
    "truncated",
    "prompt_chars",
    "output_chars",
)


def record_signals(record: dict[str, Any], params: SignalParams) -> dict[str, Any]:
    """Every signal of one record (see the module docstring)."""
    return batch_signals([record], params)[0]


def batch_signals(records: list[dict[str, Any]], params: SignalParams) -> list[dict[str, Any]]:
    """Every signal of a batch of records; repetition is counted for the batch at once."""
    from alpacacot.curation.batch import repetition as batch_repetition
    from alpacacot.curation.batch import tokenize

    outputs = [r.get("output") or "" for r in records]
    reps = batch_repetition(
        tokenize(outputs), params.repetition_n, params.repetition_min_tokens
    ).tolist()
    out = []
    for record, output, rep in zip(records, outputs, reps, strict=True):
        prompt = prompt_text(record)
        low = output.lower() if output.isascii() else _WS.sub(" ", output.lower())
        found = _refusal_pattern(params.refusals).search(low)
        match = found.group(0) if found else None
        out.append(
            {
                "refusal": match is not None,
                "refusal_match": match,
                "lang_mismatch": lang_mismatch(prompt, output, params),
                "empty_answer": empty_answer(output),
                "repetition": rep,
                "truncated": truncated(output, params),
                "prompt_chars": len(prompt),
                "output_chars": len(output),
            }
        )
    return out


@functools.cache
def _refusal_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(p) for p in phrases) or "(?!)")


def empty_answer(output: str) -> bool:
    text = output.strip()
    return not _CONTENT.search(text) or text.lower() in PLACEHOLDERS


def _cjk_share(text: str) -> float:
    if text.isascii():
        return 0.0
    letters = len(_CONTENT.findall(text))
    return len(CJK_CHAR.findall(text)) / letters if letters else 0.0


def lang_mismatch(prompt: str, output: str, params: SignalParams) -> bool:
    if len(output) < params.mismatch_min_chars or not prompt or TRANSLATE.search(prompt):
        return False
    p, o = _cjk_share(prompt), _cjk_share(output)
    if p >= params.cjk_share and o == 0.0:
        return True  # Chinese prompt, an answer without a single CJK character
    return p == 0.0 and o >= params.cjk_share and len(prompt) >= params.mismatch_min_chars


def truncated(output: str, params: SignalParams) -> bool:
    if output.count("```") % 2:
        return True
    text = output.rstrip()
    if len(text) < params.truncation_min_chars or _END.search(text):
        return False
    last = text.splitlines()[-1].strip()
    words = last.split()
    if last.endswith((",", "，", "、")):
        return True  # stopped in the middle of an enumeration or clause
    # A table row, hashtags, a code line, a list item or a heading may end without punctuation;
    # so may a line of verse.
    if (
        "|" in last
        or "#" in last
        or re.match(r"^(\w+\s*[=(]|[-*+>•]|\d+[.)]|[A-Za-z][.)]\s)", last)
    ):
        return False
    return len(words) >= 8 or (bool(CJK_CHAR.search(last)) and len(last) >= 12)
