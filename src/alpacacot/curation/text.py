"""Text views of a record shared by the curation passes: prompt, whole record, tokens, shingles.

Tokens are what n-grams are made of: a run of letters/digits for space-separated scripts, and one
character for each CJK ideograph, kana or hangul syllable (those scripts do not separate words
with spaces, so a character is the unit, as in the CJK n-gram practice of CMMLU/C-Eval
decontamination). Normalisation is Unicode NFKC, lower case, punctuation and whitespace dropped;
digits are kept, since two maths questions that differ only in their numbers are different items.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Any

# CJK Unified Ideographs (+ extension A, compatibility), Hiragana, Katakana, Hangul syllables.
_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
TOKEN = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+")
CJK_CHAR = re.compile(rf"[{_CJK}]")


def normalize(text: str) -> str:
    """NFKC and lower case (the token regex then drops punctuation and whitespace)."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKC", text).lower()


def tokens(text: str) -> list[str]:
    """Normalised tokens: words of space-separated scripts, single CJK characters (the same
    tokens the batch passes make, see alpacacot.curation.batch)."""
    from alpacacot.curation.batch import tokenize

    return tokenize([text]).tokens_of(0)


def is_cjk(text: str, share: float = 0.3) -> bool:
    """True when at least `share` of the non-space characters are CJK."""
    if text.isascii():
        return False
    n = sum(1 for c in text if not c.isspace())
    return n > 0 and len(CJK_CHAR.findall(text)) >= share * n


def prompt_text(record: dict[str, Any]) -> str:
    """What the user asked: earlier user turns, the instruction and its input."""
    parts = [t["user"] for t in record.get("history") or []]
    parts += [record.get("instruction") or "", record.get("input") or ""]
    return "\n".join(p for p in parts if p)


def record_text(record: dict[str, Any]) -> str:
    """The whole example: every turn of the history, the prompt and the answer."""
    parts: list[str] = []
    for t in record.get("history") or []:
        parts += [t["user"], t["assistant"]]
    parts += [
        record.get("instruction") or "",
        record.get("input") or "",
        record.get("output") or "",
    ]
    return "\n".join(p for p in parts if p)


def shingles(text: str, word_n: int, char_n: int) -> list[str]:
    """MinHash shingles of a text: word `word_n`-grams, or CJK character `char_n`-grams.

    A text shorter than one shingle is one shingle (its whole token sequence), so short prompts
    still get a signature and two equal short prompts still collide.
    """
    toks = tokens(text)
    if not toks:
        return []
    if is_cjk(text):
        # Characters are the tokens; spaces between CJK runs carry no meaning.
        n, sep = char_n, ""
    else:
        n, sep = word_n, " "
    if len(toks) <= n:
        return [sep.join(toks)]
    return [sep.join(toks[i : i + n]) for i in range(len(toks) - n + 1)]


def ngrams(toks: list[str], n: int) -> Iterable[tuple[str, ...]]:
    """Contiguous token n-grams."""
    return (tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))
