"""Transcript strings: a whole dialogue in one string, each turn opened by a speaker marker.

Baize writes `[|Human|] ... [|AI|] ...` after a one-line preamble, OIG `<human>: ... <bot>: ...`,
MOSS-003 one `<|Human|>: ...<eoh>` / `<|MOSS|>: ...<eom>` string per turn under its meta instruction,
MOSS-002 `[Human]: ...<eoh> [MOSS]: ...<eoa>` in one string after its meta instruction.
`split_transcript` cuts such a string at its markers; the normalizers pair the turns and end in
`history` + last turn, like every multi-turn format.
"""

from __future__ import annotations

import re
from typing import Any

from alpacacot.catalog import DatasetEntry
from alpacacot.normalizers import Draft, Normalize, RejectRow, register, text_field
from alpacacot.normalizers.dialogue import from_turns
from alpacacot.normalizers.fields import meta_of


def split_transcript(text: str, markers: dict[str, str]) -> tuple[str, list[tuple[str, str]]]:
    """`(text before the first marker, [(role, turn text), ...])`; `markers` maps a marker as it
    appears in the text (`"[|Human|]"`) to a role (`"user"` or `"assistant"`). Turn texts are
    stripped of surrounding whitespace."""
    pattern = "(" + "|".join(re.escape(m) for m in sorted(markers, key=len, reverse=True)) + ")"
    parts = re.split(pattern, text)
    preamble, rest = parts[0], parts[1:]
    return preamble.strip(), [
        (markers[marker], body.strip()) for marker, body in zip(rest[0::2], rest[1::2], strict=True)
    ]


def pair_turns(
    turns: list[tuple[str, str]], column: str
) -> tuple[list[tuple[str, str]], str | None]:
    """Alternating user/assistant turns as (user, assistant) pairs, and the last user turn when no
    answer follows it (a transcript that ends on an open `[|Human|]`, for example)."""
    pairs: list[tuple[str, str]] = []
    pending: str | None = None
    for n, (role, body) in enumerate(turns):
        if role == "user":
            if pending is not None:
                raise RejectRow(column, f"turn {n}: two user turns in a row")
            pending = body
        else:
            if pending is None:
                raise RejectRow(column, f"turn {n}: an answer with no user turn before it")
            pairs.append((pending, body))
            pending = None
    return pairs, pending


BAIZE_MARKERS = {"[|Human|]": "user", "[|AI|]": "assistant"}


def transcript_draft(
    row: dict[str, Any], col: str, preamble: str, turns: list[tuple[str, str]]
) -> Draft:
    """The draft of a transcript whose opening text (before the first turn) is a system prompt:
    turns paired into history + last turn, a trailing user turn kept in `meta`, other columns in
    `meta`."""
    pairs, unanswered = pair_turns(turns, col)
    meta = meta_of(row, frozenset({col}))
    if unanswered:
        meta["unanswered_last_user_message"] = unanswered
    draft = from_turns(pairs, col, meta)
    if preamble:
        draft["system"] = preamble
    return draft


@register("baize")
def baize_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """Baize self-chat: `{"topic", "input"}`, where `input` is "The conversation between human and
    AI assistant.\\n[|Human|] ...\\n[|AI|] ...\\n[|Human|] " (it ends on an empty user turn). The
    preamble line becomes `system`; `topic` and the other columns stay in `meta`."""
    col = entry.fields.get("history", "input")

    def normalize(row: dict[str, Any]) -> Draft:
        preamble, turns = split_transcript(text_field(row, col, required=True), BAIZE_MARKERS)
        return transcript_draft(row, col, preamble, turns)

    return normalize


OIG_MARKERS = {"<human>:": "user", "<bot>:": "assistant"}


@register("oig")
def oig_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """LAION OIG: `{"text": "<human>: ...\\n<bot>: ...", "metadata": {"source": ...}}`. Text before
    the first `<human>:` (some parts open with background) is kept in `meta` as `preamble`."""
    col = entry.fields.get("history", "text")

    def normalize(row: dict[str, Any]) -> Draft:
        preamble, turns = split_transcript(text_field(row, col, required=True), OIG_MARKERS)
        pairs, unanswered = pair_turns(turns, col)
        meta = meta_of(row, frozenset({col}))
        if preamble:
            meta["preamble"] = preamble
        if unanswered:
            meta["unanswered_last_user_message"] = unanswered
        return from_turns(pairs, col, meta)

    return normalize


# A MOSS-003 turn: each part is "<|Role|>: text<eo?>\n"; "None" marks a part the turn did not use.
_MOSS_PART = re.compile(r"^<\|(?P<role>[^|]+)\|>:\s?(?P<body>.*?)\s*<eo[a-z]>\s*$", re.DOTALL)
MOSS_SPEAKERS = {"Human": "user", "MOSS": "assistant"}


def moss_part(value: Any, where: str) -> tuple[str, str]:
    """`"<|MOSS|>: text<eom>\\n"` -> `("MOSS", "text")`."""
    if not isinstance(value, str):
        raise RejectRow("chat", f"{where}: expected a string, got {type(value).__name__}")
    match = _MOSS_PART.match(value)
    if not match:
        raise RejectRow("chat", f"{where}: not a '<|Role|>: text<eo?>' string")
    return match["role"], match["body"]


@register("moss")
def moss_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """MOSS-003 SFT: `{"conversation_id", "meta_instruction", "num_turns", "chat": {"turn_1":
    {"Human", "Inner Thoughts", "Commands", "Tool Responses", "MOSS"}, ...}}`. The meta instruction
    becomes `system`; the Human/MOSS strings lose their markers and end tokens; tool parts that are
    not "None" (plugin conversations) stay in `meta` per turn."""

    def normalize(row: dict[str, Any]) -> Draft:
        chat = row.get("chat")
        if not isinstance(chat, dict) or not chat:
            raise RejectRow("chat", "missing field" if chat is None else "expected turn objects")
        names = sorted(chat, key=lambda k: int(k.rsplit("_", 1)[-1]) if k[-1:].isdigit() else -1)
        pairs: list[tuple[str, str]] = []
        tools: dict[str, dict[str, str]] = {}
        for name in names:
            turn = chat[name]
            if not isinstance(turn, dict):
                raise RejectRow("chat", f"{name} is not an object")
            texts = {}
            for part, value in turn.items():
                role, body = moss_part(value, f"{name}.{part}")
                if role in MOSS_SPEAKERS:
                    texts[MOSS_SPEAKERS[role]] = body
                elif body != "None":
                    tools.setdefault(name, {})[part] = body
            if set(texts) != {"user", "assistant"}:
                raise RejectRow("chat", f"{name} lacks a Human or a MOSS part")
            pairs.append((texts["user"], texts["assistant"]))
        system = row.get("meta_instruction")
        is_text = isinstance(system, str) and bool(system.strip())
        meta = meta_of(row, frozenset({"chat", "meta_instruction"} if is_text else {"chat"}))
        if tools:
            meta["tool_parts"] = tools
        draft = from_turns(pairs, "chat", meta)
        if is_text:
            draft["system"] = system
        return draft

    return normalize


MOSS_002_MARKERS = {"[Human]:": "user", "[MOSS]:": "assistant"}
_MOSS_002_END = re.compile(r"\s*<eo[ha]>\s*$")


@register("moss_002")
def moss_002_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """MOSS-002 SFT (fnlp/moss-002-sft-data): `{"plain_text": ...}`, the whole dialogue in one
    string, `[Human]: ...<eoh> [MOSS]: ...<eoa>` per turn after MOSS's meta instruction ("MOSS is
    an AI assistant developed by the FudanNLP Lab ... Below is a conversation between MOSS and
    human."). The format is the one the loaders of that Hub set read (`plain_text` cut at
    `<eoh>`/`<eoa>`, speakers `[Human]:`/`[MOSS]:`); no real row could be checked. The meta
    instruction becomes `system`, each turn loses its end token, other columns stay in `meta`."""
    col = entry.fields.get("history", "plain_text")

    def normalize(row: dict[str, Any]) -> Draft:
        preamble, turns = split_transcript(text_field(row, col, required=True), MOSS_002_MARKERS)
        turns = [(role, _MOSS_002_END.sub("", body)) for role, body in turns]
        return transcript_draft(row, col, preamble, turns)

    return normalize
