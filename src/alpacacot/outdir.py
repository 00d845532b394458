"""The output folder's protocol: one writer at a time, and no crash that leaves it inconsistent.

A build owns `DIR` through `OutputLock` (`DIR/.lock`, an flock the kernel releases when the holder
dies, so a lock left by a killed build is simply taken over). Under the lock:

1. `recover(DIR)` first finishes or undoes whatever a crashed build left half done (see below) and
   removes its leftovers: `.tmp-<key>/` (unfinished output), `.manifest.json.<pid>` and other
   temporary files, and `.old-<key>/` folders (restored when their replacement never landed).
2. A source is built into `staging_dir(DIR, key)` = `DIR/.tmp-<key>/` (shards + `rejects.jsonl`).
3. `commit_source` swaps it in. The manifest is the commit point, and it never lists a shard
   that is not there:
   a. `DIR/.swap-<key>.json` records the source's old and new manifest entries (the journal);
   b. the manifest is rewritten without the source (only when it listed it);
   c. `DIR/<key>/` moves to `DIR/.old-<key>/`, and `rejects/<key>.jsonl` into it;
   d. the new rejects file and then the new `<key>/` move into place;
   e. the manifest is rewritten with the new entry: from here on the new output is the build's;
   f. `.old-<key>/` and then the journal are removed.
   A crash before (e) is rolled back by `recover` (old output and old entry restored); after (e),
   rolled forward (old output removed). Every step of both is idempotent, so a crash during
   recovery is recovered by the next build the same way.

Every file is written under a temporary name, fsynced and renamed (`atomic_write_text`). The module
knows nothing of catalogs, records or how sources are built: the manifest is written through a
callback of the build.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alpacacot.errors import AlpacacotError
from alpacacot.faults import fault_point

try:
    import fcntl
except ImportError:  # Windows: builds are not locked there
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
LOCK = ".lock"
REJECTS = "rejects"
STAGED_REJECTS = "rejects.jsonl"
_OLD_REJECTS = ".rejects.jsonl"  # the old rejects file while it waits in .old-<key>/

Entry = dict[str, Any]
# Writes the manifest with one source's entry set to the given one (None: without that source).
PublishEntry = Callable[[Entry | None], None]


class OutputBusyError(AlpacacotError):
    """Another build holds the lock of the output folder."""


def staging_dir(out_dir: Path, key: str) -> Path:
    return out_dir / f".tmp-{key}"


def _old_dir(out_dir: Path, key: str) -> Path:
    return out_dir / f".old-{key}"


def _journal(out_dir: Path, key: str) -> Path:
    return out_dir / f".swap-{key}.json"


def rejects_path(out_dir: Path, key: str) -> Path:
    return out_dir / REJECTS / f"{key}.jsonl"


def _fsync_dir(path: Path) -> None:
    """Make the renames in `path` durable (POSIX; Windows has no directory handles for this)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str, point: str) -> None:
    """Write `path` so that it is either its old or its new content, never a part of it.

    `point` names the fault points of this write (`<point>.write`, `.partial`, `.rename`)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    data = text.encode("utf-8")
    fault_point(f"{point}.write")
    with open(tmp, "wb") as fh:
        fh.write(data[: len(data) // 2])
        fh.flush()
        fault_point(f"{point}.partial")
        fh.write(data[len(data) // 2 :])
        fh.flush()
        os.fsync(fh.fileno())
    fault_point(f"{point}.rename")
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _remove_tree(path: Path, point: str) -> None:
    if path.exists():
        fault_point(point)
        shutil.rmtree(path)


class OutputLock:
    """`with OutputLock(DIR):` holds DIR for one build; a second one gets OutputBusyError.

    The lock is an flock on `DIR/.lock`, which holds the holder's pid for the message. The kernel
    drops the lock when its process dies, so the lock file of a killed build is simply taken over.
    A build that ends removes the file while it still holds the lock; whoever locked the removed
    file in the meantime sees that it is no longer `DIR/.lock` and locks the new one."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / LOCK
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fcntl is None:
            log.warning("no file locks on this platform: %s is not locked", self.path.parent)
            return self
        while self._fd is None:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise OutputBusyError(
                        f"another build is writing {self.path.parent} (pid {holder}); wait for "
                        "it to finish (or stop it), or build into another --out folder"
                    ) from None
                raise OutputBusyError(f"cannot lock {self.path}: {exc}") from None
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if not same:  # the file was removed by the build that held it: lock the new one
                os.close(fd)
                continue
            previous = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            if previous:
                log.warning(
                    "%s: taking over the lock of pid %s, which is no longer running",
                    self.path.parent,
                    previous,
                )
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def read_manifest_file(out_dir: Path) -> dict[str, Any] | None:
    """The parsed manifest, or None when there is none (or it is not a JSON object)."""
    try:
        data = json.loads((out_dir / MANIFEST).read_text("utf-8"))
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError):
        log.warning("%s is not valid JSON; it will be rewritten", out_dir / MANIFEST)
        return None
    return data if isinstance(data, dict) else None


def write_manifest(out_dir: Path, manifest: dict[str, Any]) -> None:
    atomic_write_text(
        out_dir / MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", "manifest"
    )


def commit_source(
    out_dir: Path, key: str, new: Entry, old: Entry | None, publish: PublishEntry
) -> None:
    """Swap `staging_dir(out_dir, key)` in as the output of `key`; see the module docstring.

    `new` is the source's manifest entry for the staged output, `old` the entry the manifest
    holds now (None when none), `publish(entry)` writes the manifest with that entry for `key`."""
    staged = staging_dir(out_dir, key)
    target, old_dir = out_dir / key, _old_dir(out_dir, key)
    rejects = rejects_path(out_dir, key)
    if old_dir.exists():  # cannot be ours: recover() ran under the same lock
        shutil.rmtree(old_dir)
    journal = {
        "key": key,
        "old": old,
        "new": new,
        "had_output": target.exists(),
        "had_rejects": rejects.exists(),
    }
    atomic_write_text(_journal(out_dir, key), json.dumps(journal), "swap.journal")
    committed = False
    try:
        if old is not None:
            publish(None)
        if target.exists():
            fault_point("swap.hide-old")
            target.rename(old_dir)
            if rejects.exists():
                fault_point("swap.hide-old-rejects")
                rejects.rename(old_dir / _OLD_REJECTS)
        rejects.parent.mkdir(exist_ok=True)
        _fsync_tree(staged)
        fault_point("swap.rejects")
        os.replace(staged / STAGED_REJECTS, rejects)
        fault_point("swap.shards")
        staged.rename(target)
        _fsync_dir(out_dir)
        publish(new)
        committed = True
    except BaseException:
        # (Ctrl-C included) undo it now, as the next build's recover() would.
        if not committed:
            _roll_back(out_dir, key, journal, publish)
        raise
    _finish(out_dir, key)


def _fsync_tree(folder: Path) -> None:
    """Flush the staged files to disk before the manifest may name them (a power cut then
    cannot leave a manifest whose shards are empty)."""
    for path in folder.iterdir():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
    _fsync_dir(folder)


def _finish(out_dir: Path, key: str) -> None:
    """The swap of `key` is committed: drop the old output, then the journal."""
    _remove_tree(_old_dir(out_dir, key), "swap.drop-old")
    fault_point("swap.drop-journal")
    _journal(out_dir, key).unlink(missing_ok=True)


def _roll_back(
    out_dir: Path, key: str, journal: dict[str, Any], publish: PublishEntry | None = None
) -> None:
    """Put the output of `key` back as it was before the swap began (idempotent). The manifest
    gets the old entry back through `publish`, or (None: at recovery) by editing the file."""
    target, old_dir = out_dir / key, _old_dir(out_dir, key)
    rejects = rejects_path(out_dir, key)
    if old_dir.exists():
        if (old_dir / _OLD_REJECTS).exists():
            fault_point("recover.restore-rejects")
            os.replace(old_dir / _OLD_REJECTS, rejects)
        elif not journal.get("had_rejects") and rejects.exists():
            fault_point("recover.drop-new-rejects")
            rejects.unlink()
        _remove_tree(target, "recover.drop-new")
        fault_point("recover.restore-old")
        old_dir.rename(target)
    elif not journal.get("had_output"):
        # There was no output before: whatever of the new one landed goes.
        _remove_tree(target, "recover.drop-new")
        if not journal.get("had_rejects") and rejects.exists():
            fault_point("recover.drop-new-rejects")
            rejects.unlink()
    # (else: the old folder never moved, so the old output is in place.)
    _remove_tree(staging_dir(out_dir, key), "recover.drop-tmp")
    if publish is not None:
        publish(journal.get("old"))
    else:
        manifest = read_manifest_file(out_dir)
        sources = manifest.get("sources") if manifest else None
        if isinstance(sources, dict) and journal.get("old") not in (None, sources.get(key)):
            sources[key] = journal["old"]
            manifest["sources"] = dict(sorted(sources.items()))
            write_manifest(out_dir, manifest)
    fault_point("recover.drop-journal")
    _journal(out_dir, key).unlink(missing_ok=True)


def recover(out_dir: Path) -> list[str]:
    """Finish or undo the swaps a crashed build left and remove its leftovers (hold the lock).

    Returns one note per source whose output was restored or whose swap was completed."""
    notes: list[str] = []
    if not out_dir.is_dir():
        return notes
    for path in sorted(out_dir.glob(".swap-*.json")):
        key = path.name.removeprefix(".swap-").removesuffix(".json")
        try:
            journal = json.loads(path.read_text("utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):  # cannot happen: written atomically
            journal = {"old": None, "new": None, "had_output": True, "had_rejects": True}
        manifest = read_manifest_file(out_dir) or {}
        current = manifest.get("sources", {}).get(key)
        if journal.get("new") is not None and current == journal["new"]:
            _finish(out_dir, key)
            notes.append(f"{key}: completed the swap of its new output (an earlier build stopped)")
        else:
            _roll_back(out_dir, key, journal)
            notes.append(f"{key}: restored its previous output (an earlier build stopped)")
    for old_dir in sorted(out_dir.glob(".old-*")):
        # Left by a version without the journal: restore it when its replacement never landed.
        target = out_dir / old_dir.name.removeprefix(".old-")
        if target.exists():
            _remove_tree(old_dir, "recover.drop-old")
        else:
            fault_point("recover.restore-old")
            old_dir.rename(target)
            notes.append(f"{target.name}: restored its previous output from {old_dir.name}")
    for leftover in sorted(out_dir.glob(".tmp-*")):
        _remove_tree(leftover, "recover.drop-tmp")
    for pattern in (f".{MANIFEST}.*", ".README.md.*", "..swap-*.json.*"):
        for leftover in out_dir.glob(pattern):
            fault_point("recover.drop-temp-file")
            leftover.unlink(missing_ok=True)
    return notes
