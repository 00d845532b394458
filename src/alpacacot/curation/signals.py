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
    """Every signal of a batch of records (`arrow_signals` on their columns)."""
    import pyarrow as pa

    from alpacacot.curation.batch import record_views

    turn = pa.struct([("user", pa.string()), ("assistant", pa.string())])
    table = pa.table(
        {
            "instruction": pa.array([r.get("instruction") for r in records], pa.string()),
            "input": pa.array([r.get("input") for r in records], pa.string()),
            "output": pa.array([r.get("output") for r in records], pa.string()),
            "history": pa.array(
                [
                    [
                        {"user": t["user"], "assistant": t["assistant"]}
                        for t in r.get("history") or []
                    ]
                    for r in records
                ],
                pa.list_(turn),
            ),
        }
    )
    cols = arrow_signals(table, record_views(table, params.cjk_share), params)
    values = {c: v if isinstance(v, list) else v.tolist() for c, v in cols.items()}
    return [{c: values[c][i] for c in COLUMNS} for i in range(len(records))]


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


# -------------------------------------------------------------------------- the batch version
# Arrow kernels settle most records; only those a kernel cannot settle exactly go through the
# per-record functions above, so the results are the same as calling them on every record.
_PY_SPACE = r"[\t\n\x{0b}\f\r\x{1c}-\x{1f}\x{85}\p{Z}]"  # what Python's str.isspace() accepts
_RE2_CJK = (
    r"[\x{3040}-\x{30ff}\x{3400}-\x{4dbf}\x{4e00}-\x{9fff}\x{ac00}-\x{d7af}\x{f900}-\x{faff}]"
)
_IDEOGRAPH = r"[\x{4e00}-\x{9fef}]"  # letters in every Unicode version
_PLACEHOLDER_MAX = max(len(p) for p in PLACEHOLDERS)
_WORD = r"A-Za-z0-9\x{4e00}-\x{9fef}"  # word characters, not `_`, in every Unicode version
_SURE_CONTENT = rf"(?s)(?:[{_WORD}][^{_WORD}]*){{{_PLACEHOLDER_MAX + 1}}}"
_END_RE2 = r"""[.!?。！？…:;：；)\]}"'”’）】》>`*|][ \t\n\r\x{0b}\f]*$"""


@functools.cache
def _refusal_candidates(phrases: tuple[str, ...]) -> str | None:
    """An RE2 pattern that matches every output whose Python-lowered (and, unless ASCII,
    space-collapsed) text contains a phrase: case-insensitive, any run of whitespace for a space,
    and `İ` for `i` (the one character Python lowers to an ASCII letter plus a mark)."""
    alts = []
    for phrase in phrases:
        out = []
        for ch in phrase:
            if ch == " ":
                out.append(_PY_SPACE + "+")
            elif ch == "i":
                out.append(r"(?:i|\x{130})")
            else:
                out.append(re.escape(ch) if not ch.isalnum() else ch)
        alts.append("".join(out))
    return "(?i)(?:" + "|".join(alts) + ")" if alts else None


def _mask(arr: Any) -> Any:
    import numpy as np

    return np.asarray(arr.to_numpy(zero_copy_only=False), dtype=bool)


def arrow_signals(batch: Any, views: Any, params: SignalParams) -> dict[str, Any]:
    """Every signal of a batch (a pyarrow RecordBatch/Table of records, and their
    `batch.record_views`), as columns: numpy arrays, and a list for `refusal_match`."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    from alpacacot.curation.batch import INPUT, INSTRUCTION, OUTPUT, USER, repetition

    n = batch.num_rows
    role, owner, segs = views.segment_role, views.segment_owner, views.segments
    out_seg = np.flatnonzero(role == OUTPUT)
    output = segs.take(pa.array(out_seg))
    olen = views.output_chars
    plen = views.prompt_chars
    outputs: dict[int, str] = {}

    def text_of(i: int) -> str:
        if i not in outputs:
            outputs[i] = output[i].as_py()
        return outputs[i]

    # refusal: the phrase search, on the few outputs a kernel finds a candidate phrase in
    match: list[str | None] = [None] * n
    pattern = _refusal_candidates(params.refusals)
    if pattern is not None and n:
        for i in np.flatnonzero(_mask(pc.match_substring_regex(output, pattern))).tolist():
            text = text_of(i)
            low = text.lower() if text.isascii() else _WS.sub(" ", text.lower())
            found = _refusal_pattern(params.refusals).search(low)
            match[i] = found.group(0) if found else None
    # empty answer: settled by a kernel when the output holds more word characters than the
    # longest placeholder
    # (a match of "more than _PLACEHOLDER_MAX of them", not a count: RE2 stops at the first)
    sure = _mask(pc.match_substring_regex(output, _SURE_CONTENT))
    empty = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(~sure).tolist():
        empty[i] = empty_answer(text_of(i))
    # truncated: an odd number of fences; else only long outputs not ending in punctuation
    fences = pc.count_substring(output, "```").to_numpy(zero_copy_only=False) % 2 == 1
    ends = _mask(pc.match_substring_regex(output, _END_RE2))
    cut = fences.copy()
    for i in np.flatnonzero(~fences & (olen >= params.truncation_min_chars) & ~ends).tolist():
        cut[i] = truncated(text_of(i), params)
    # language mismatch: no CJK character on either side, or an ideograph on both, settles it
    long_enough = (olen >= params.mismatch_min_chars) & (plen > 0)
    mixed = np.zeros(n, dtype=bool)
    if long_enough.any():
        cjk_seg = _mask(pc.match_substring_regex(segs, _RE2_CJK))
        ideo_seg = cjk_seg.copy()
        ideo_seg[cjk_seg] = _mask(
            pc.match_substring_regex(segs.filter(pa.array(cjk_seg)), _IDEOGRAPH)
        )
        in_prompt = (role == USER) | (role == INSTRUCTION) | (role == INPUT)

        def anywhere(seg_flag: np.ndarray, sel: np.ndarray) -> np.ndarray:
            return np.bincount(owner[seg_flag & sel], minlength=n) > 0

        cjk_p, cjk_o = anywhere(cjk_seg, in_prompt), anywhere(cjk_seg, role == OUTPUT)
        ideo_p, ideo_o = anywhere(ideo_seg, in_prompt), anywhere(ideo_seg, role == OUTPUT)
        unsettled = long_enough & (cjk_p | cjk_o) & ~(ideo_p & ideo_o)
        if params.cjk_share <= 0:  # then no CJK at all is enough for a mismatch
            unsettled = long_enough
        rows = np.flatnonzero(unsettled)
        if rows.size:
            records = batch.take(pa.array(rows)).to_pylist()
            for i, record in zip(rows.tolist(), records, strict=True):
                mixed[i] = lang_mismatch(prompt_text(record), text_of(i), params)
    reps = repetition(views.answer, params.repetition_n, params.repetition_min_tokens)
    return {
        "refusal": np.array([m is not None for m in match], dtype=bool),
        "refusal_match": match,
        "lang_mismatch": mixed,
        "empty_answer": empty,
        "repetition": reps,
        "truncated": cut,
        "prompt_chars": plen,
        "output_chars": olen,
    }
