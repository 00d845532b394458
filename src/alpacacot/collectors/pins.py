"""What the cache remembers about a download that failed its sha256 pin.

A file whose checksum differs from the catalog's pin is never kept in the cache; a small note
(`<cache>/failed-pins/<id>.json`) keeps what was received, so that `--offline` can say why the file
is missing instead of only "not in the cache".
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path


def _note_path(cache_dir: Path, display: str) -> Path:
    return cache_dir / "failed-pins" / f"{hashlib.sha256(display.encode()).hexdigest()[:16]}.json"


def record_failed_pin(cache_dir: Path, display: str, actual: str, pinned: str) -> None:
    """Remember that `display` was downloaded with sha256 `actual` where the catalog pins `pinned`."""
    path = _note_path(cache_dir, display)
    path.parent.mkdir(parents=True, exist_ok=True)
    note = {
        "file": display,
        "sha256": actual,
        "pinned": pinned,
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(note, fh)
    os.replace(tmp, path)


def clear_failed_pin(cache_dir: Path, display: str) -> None:
    _note_path(cache_dir, display).unlink(missing_ok=True)


def failed_pin_note(cache_dir: Path, display: str) -> str:
    """' (an earlier download ... failed its checksum ...)' when one did, else ''."""
    try:
        note = json.loads(_note_path(cache_dir, display).read_text("utf-8"))
    except (OSError, ValueError):
        return ""
    return (
        f" (an earlier download, at {note.get('at', '?')}, failed its checksum: sha256 "
        f"{note.get('sha256', '?')} where the catalog pins {note.get('pinned', '?')}; it was not "
        "kept. Check what changed upstream, then update `sha256` in the catalog entry)"
    )
