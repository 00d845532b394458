"""Multi-turn formats: the last user turn becomes `instruction`, the last answer `output`, and every
earlier exchange a `history` turn."""

from __future__ import annotations

import re
from typing import Any

from alpacacot.catalog import DatasetEntry
from alpacacot.normalizers import Draft, Normalize, RejectRow, register, text_field
from alpacacot.normalizers.fields import meta_of


def from_turns(pairs: list[tuple[str, str]], column: str, meta: dict[str, Any]) -> Draft:
    """Build a draft from (user, assistant) pairs, the last pair being the one to learn."""
    if not pairs:
        raise RejectRow(column, "no complete user/assistant exchange")
    *earlier, (user, assistant) = pairs
    draft: Draft = {
        "instruction": user,
        "input": "",
        "output": assistant,
        "history": [{"user": u, "assistant": a} for u, a in earlier],
    }
    if earlier:
        draft["tags"] = ["multi-turn"]
    if meta:
        draft["meta"] = meta
    return draft


_SPEAKER = re.compile(r"(?:^|\n)(Human|Assistant)[:：]")


@register("belle_multiturn")
def belle_multiturn_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """BELLE multiturn_chat: `instruction` = "Human: …\\nAssistant: …\\nHuman: …\\nAssistant:"."""
    inst_col = entry.fields.get("instruction", "instruction")
    out_col = entry.fields.get("output", "output")
    used = frozenset({inst_col, out_col, entry.fields.get("input", "input")})

    def normalize(row: dict[str, Any]) -> Draft:
        dialogue = text_field(row, inst_col, required=True)
        answer = text_field(row, out_col, required=True)
        parts = _SPEAKER.split(dialogue)
        if parts[0].strip():
            raise RejectRow(inst_col, "text before the first 'Human:' turn")
        speakers, texts = parts[1::2], [t.strip() for t in parts[2::2]]
        if not speakers or speakers[-1] != "Assistant" or texts[-1]:
            raise RejectRow(inst_col, "dialogue must end with an empty 'Assistant:' turn")
        expected = ["Human", "Assistant"] * (len(speakers) // 2)
        if speakers != expected:
            raise RejectRow(inst_col, "turns do not alternate Human/Assistant")
        texts[-1] = answer
        pairs = list(zip(texts[0::2], texts[1::2], strict=True))
        return from_turns(pairs, inst_col, meta_of(row, used))

    return normalize


ROLE_ALIASES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "chatgpt": "assistant",
    "bing": "assistant",
    "bard": "assistant",
    "model": "assistant",
}


def sharegpt_messages(
    row: dict[str, Any], col: str
) -> tuple[list[tuple[int, Any, str]], dict[str, Any]]:
    """A ShareGPT row's messages as (position, `from`, value), each checked to hold a string
    value, and the row's other fields as meta. Roles are left to the caller (`ROLE_ALIASES`)."""
    turns = row.get(col)
    if not isinstance(turns, list):
        raise RejectRow(col, "missing field" if turns is None else "expected a list of messages")
    messages = []
    for n, msg in enumerate(turns):
        if not isinstance(msg, dict) or not isinstance(msg.get("value"), str):
            raise RejectRow(col, f"message {n} has no string 'value'")
        messages.append((n, msg.get("from"), msg["value"]))
    return messages, meta_of(row, frozenset({col}))


def role_of(sender: Any, col: str, n: int) -> str:
    """`user` or `assistant` for a ShareGPT `from` value; an unknown one rejects the row."""
    role = ROLE_ALIASES.get(str(sender).lower())
    if role is None:
        raise RejectRow(col, f"message {n} has unknown role {sender!r}")
    return role


@register("sharegpt")
def sharegpt_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """ShareGPT: `conversations: [{from: human|gpt|system, value}]`."""
    col = entry.fields.get("history", "conversations")

    def normalize(row: dict[str, Any]) -> Draft:
        messages, meta = sharegpt_messages(row, col)
        pairs: list[tuple[str, str]] = []
        pending: str | None = None
        for n, sender, value in messages:
            if sender == "system":
                meta["system"] = value
                continue
            if role_of(sender, col, n) == "user":
                if pending is not None:
                    raise RejectRow(col, f"message {n}: two user messages in a row")
                pending = value
            else:
                if pending is None:
                    raise RejectRow(col, f"message {n}: an answer with no question before it")
                pairs.append((pending, value))
                pending = None
        if pending is not None:
            meta["unanswered_last_user_message"] = pending
        return from_turns(pairs, col, meta)

    return normalize


@register("firefly")
def firefly_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """Firefly / MOSS-003: `conversation: [{human, assistant}, ...]`."""
    col = entry.fields.get("history", "conversation")

    def normalize(row: dict[str, Any]) -> Draft:
        turns = row.get(col)
        if not isinstance(turns, list):
            raise RejectRow(col, "missing field" if turns is None else "expected a list of turns")
        pairs = []
        for n, turn in enumerate(turns):
            if not isinstance(turn, dict):
                raise RejectRow(col, f"turn {n} is not an object")
            user, assistant = turn.get("human"), turn.get("assistant")
            if not isinstance(user, str) or not isinstance(assistant, str):
                raise RejectRow(col, f"turn {n} lacks string 'human'/'assistant'")
            pairs.append((user, assistant))
        return from_turns(pairs, col, meta_of(row, frozenset({col})))

    return normalize


@register("parallel_turns")
def parallel_turns_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """Chinese-Vicuna chat: `input: [user turns]`, `output: [answers]`, two parallel lists."""
    in_col = entry.fields.get("instruction", "input")
    out_col = entry.fields.get("output", "output")

    def normalize(row: dict[str, Any]) -> Draft:
        users, answers = row.get(in_col), row.get(out_col)
        for col, value in ((in_col, users), (out_col, answers)):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise RejectRow(col, "expected a list of strings")
        if len(users) != len(answers):
            raise RejectRow(out_col, f"{len(users)} user turns but {len(answers)} answers")
        return from_turns(
            list(zip(users, answers, strict=True)),
            in_col,
            meta_of(row, frozenset({in_col, out_col})),
        )

    return normalize
