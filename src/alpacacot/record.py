"""The canonical record: text cleaning, the content id, and the arrow schema of a shard."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = "1.1.0"

# C0 and C1 control characters except tab and line feed; a CR of CRLF goes too.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_ASCII_CONTROL = bytes([*range(0x00, 0x09), *range(0x0B, 0x20), 0x7F])

ARROW_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("instruction", pa.string(), nullable=False),
        pa.field("input", pa.string(), nullable=False),
        pa.field("output", pa.string(), nullable=False),
        pa.field(
            "history",
            pa.list_(
                pa.struct([pa.field("user", pa.string()), pa.field("assistant", pa.string())])
            ),
            nullable=False,
        ),
        pa.field("source", pa.string(), nullable=False),
        pa.field("lang", pa.string(), nullable=False),
        pa.field("tags", pa.list_(pa.string()), nullable=False),
        pa.field(
            "provenance",
            pa.struct(
                [
                    pa.field("file", pa.string()),
                    pa.field("revision", pa.string()),
                    pa.field("row", pa.int64()),
                    pa.field("license", pa.string()),
                ]
            ),
            nullable=False,
        ),
        pa.field("meta", pa.string(), nullable=False),
        # Schema 1.1.0: appended after meta, null when the source has none (older shards lack them).
        pa.field("system", pa.string(), nullable=True),
        pa.field("rejected", pa.string(), nullable=True),
    ],
    metadata={"alpacacot.schema_version": SCHEMA_VERSION},
)


class InvalidText(ValueError):
    """A text field holds something that is not valid Unicode text."""


def clean_text(text: str) -> str:
    """Unicode NFC, control characters removed, outer whitespace trimmed; nothing else changes."""
    if text.isascii():
        # Most text: ASCII is already NFC, and bytes.translate deletes its control characters at
        # C speed (half the time of the regex, which scans for the C1 range too).
        raw = text.encode("ascii")
        kept = raw.translate(None, _ASCII_CONTROL)
        return (kept.decode("ascii") if len(kept) != len(raw) else text).strip()
    if LONE_SURROGATE.search(text):
        raise InvalidText("lone surrogate (invalid UTF-16 escape or undecodable byte)")
    return _CONTROL.sub("", unicodedata.normalize("NFC", text)).strip()


def record_id(instruction: str, input: str, output: str, history: list[dict[str, str]]) -> str:
    """Content hash of a record: the same example gets the same id in every source."""
    h = hashlib.blake2b(digest_size=16)
    for turn in history:
        h.update(turn["user"].encode())
        h.update(b"\x1e")
        h.update(turn["assistant"].encode())
        h.update(b"\x1d")
    for part in (instruction, input, output):
        h.update(part.encode())
        h.update(b"\x1f")
    return h.hexdigest()


def empty_record() -> dict[str, Any]:
    return {"instruction": "", "input": "", "output": "", "history": []}
