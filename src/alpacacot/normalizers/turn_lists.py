"""Turn lists: a dialogue as a list of turns (UltraChat, ShareGPT52K), as numbered message fields
(CAMEL role-play), or spread over several rows (ProsocialDialog, one row per turn).

A normalizer whose dialogue spans rows sets `normalize.group_by` to the column that names the
dialogue; the pipeline then hands it each run of consecutive rows with the same value, as a list,
while it streams the file (`pipeline.group_rows`): one dialogue in memory at a time, never the file.
"""

from __future__ import annotations

import re
from typing import Any

from alpacacot.catalog import DatasetEntry
from alpacacot.normalizers import Draft, Normalize, RejectRow, register, text_field
from alpacacot.normalizers.dialogue import from_turns, role_of, sharegpt_messages
from alpacacot.normalizers.fields import meta_of
from alpacacot.normalizers.html_text import html_to_text, looks_like_html


@register("ultrachat")
def ultrachat_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """UltraChat: `{"id", "data": [user, assistant, user, assistant, ...]}`, roles by position. A
    trailing user turn with no answer is kept in `meta`."""
    col = entry.fields.get("history", "data")

    def normalize(row: dict[str, Any]) -> Draft:
        turns = row.get(col)
        if not isinstance(turns, list) or not all(isinstance(t, str) for t in turns):
            raise RejectRow(col, "missing field" if turns is None else "expected a list of strings")
        meta = meta_of(row, frozenset({col}))
        if len(turns) % 2:
            meta["unanswered_last_user_message"] = turns[-1]
        pairs = list(zip(turns[0::2], turns[1::2], strict=False))
        return from_turns(pairs, col, meta)

    return normalize


@register("sharegpt_html")
def sharegpt_html_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """ShareGPT52K / ShareChat (`sg_90k_part*.json`): `{"id", "conversations": [{"from", "value"}]}`
    where ChatGPT's answers are the saved page's HTML. Each HTML value becomes text (`html_text`,
    the standard library's parser); plain-text values are left as they are. A conversation may
    open with a model turn (the share began mid-dialogue): such leading answers stay in `meta`."""
    col = entry.fields.get("history", "conversations")

    def normalize(row: dict[str, Any]) -> Draft:
        messages, meta = sharegpt_messages(row, col)
        pairs: list[tuple[str, str]] = []
        pending: str | None = None
        for n, sender, value in messages:
            role = role_of(sender, col, n)
            text = html_to_text(value) if looks_like_html(value) else value
            if role == "user":
                if pending is not None:  # two user messages in a row: one turn
                    text = f"{pending}\n\n{text}"
                pending = text
            elif pending is None:
                if pairs:
                    raise RejectRow(col, f"message {n}: two answers in a row")
                meta.setdefault("leading_answers", []).append(text)
            else:
                pairs.append((pending, text))
                pending = None
        if pending is not None:
            meta["unanswered_last_user_message"] = pending
        return from_turns(pairs, col, meta)

    return normalize


PROSOCIAL_TURN_FIELDS = ("context", "response")


@register("prosocial_dialog")
def prosocial_dialog_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """ProsocialDialog: one row per turn, `{"context", "response", "rots", "safety_label",
    "safety_annotations", "safety_annotation_reasons", "source", "etc", "dialogue_id",
    "response_id", "episode_done"}`; the rows of a dialogue are consecutive and share
    `dialogue_id`. A dialogue becomes one record: its turns in `response_id` order, the last one
    the instruction/output, and each turn's labels (every column but context/response) in
    `meta["turns"]`, so nothing of a row is lost."""
    key = entry.options.get("dialogue_field", "dialogue_id")

    def normalize(rows: list[dict[str, Any]]) -> Draft:
        ordered = sorted(rows, key=lambda r: (r.get("response_id") is None, r.get("response_id")))
        pairs = []
        labels = []
        for row in ordered:
            pairs.append(
                (
                    text_field(row, "context", required=True),
                    text_field(row, "response", required=True),
                )
            )
            labels.append(meta_of(row, frozenset({*PROSOCIAL_TURN_FIELDS, key})))
        return from_turns(pairs, "context", {key: rows[0].get(key), "turns": labels})

    normalize.group_by = key  # type: ignore[attr-defined]
    return normalize


_CAMEL_MESSAGE = re.compile(r"^message_(\d+)$")
CAMEL_ROLES = {"user": "user", "assistant": "assistant"}


@register("camel")
def camel_normalizer(entry: DatasetEntry, subset: str) -> Normalize:
    """CAMEL role-play (`ai_society_chat`, `code_chat`: one JSON object per conversation, as
    camel-ai/camel's `examples/ai_society/role_playing_multiprocess.py` writes it): `{"role_1",
    "role_2", "id", "original_task", "specified_task", "message_1": {"role_name", "role_type",
    "content", ...}, ..., "termination_reason", "num_messages"}`. The AI user (odd messages)
    instructs, the AI assistant (even messages) answers. The role-play's task, around which both
    agents' system prompts were written, becomes `system` (`specified_task`, else
    `original_task`); the roles, the other task text, the termination reason and each message's
    other fields stay in `meta`; a closing user message with no answer (`<CAMEL_TASK_DONE>`) too."""

    def normalize(row: dict[str, Any]) -> Draft:
        numbered = sorted((int(m[1]), k) for k in row if (m := _CAMEL_MESSAGE.match(k)) is not None)
        if not numbered:
            raise RejectRow("message_1", "missing field")
        pairs: list[tuple[str, str]] = []
        pending: str | None = None
        extras: dict[str, Any] = {}
        for n, key in numbered:
            msg = row[key]
            if not isinstance(msg, dict) or not isinstance(msg.get("content"), str):
                raise RejectRow(key, "expected an object with a string 'content'")
            role = CAMEL_ROLES.get(str(msg.get("role_type", "")).lower().split(".")[-1])
            if role is None:  # no role type: the AI user speaks first, then they alternate
                role = "user" if n % 2 else "assistant"
            if role == "user":
                if pending is not None:
                    raise RejectRow(key, "two user messages in a row")
                pending = msg["content"]
            else:
                if pending is None:
                    raise RejectRow(key, "an answer with no user message before it")
                pairs.append((pending, msg["content"]))
                pending = None
            other = {k: v for k, v in msg.items() if k != "content"}
            if other:
                extras[key] = other
        meta = meta_of(row, frozenset(k for _, k in numbered))
        if extras:
            meta["messages"] = extras
        if pending is not None:
            meta["unanswered_last_user_message"] = pending
        system = row.get("specified_task") or row.get("original_task")
        draft = from_turns(pairs, numbered[0][1], meta)
        if isinstance(system, str) and system.strip():
            draft["system"] = system
        return draft

    return normalize
