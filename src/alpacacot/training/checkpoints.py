"""Checkpoints that count only when complete, and the choice of the one to resume from.

transformers' Trainer writes `checkpoint-N/` file by file (adapter, optimizer, scheduler, RNG
state, `trainer_state.json`); a process killed in between leaves a folder that looks like a
checkpoint and fails on every resume. Here every process, once its part of a checkpoint is on
disk, writes a small completion record listing its files and their sizes (`complete-rank{R}.json`,
written to a temporary name and renamed, so it exists whole or not at all). A checkpoint counts
when the record of every rank exists and every file it lists has the recorded size; `latest` is the
newest checkpoint that counts, and the others are named with the reason they were passed over.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alpacacot.training.config import TrainingError

log = logging.getLogger(__name__)

RECORD = "complete-rank{rank}.json"
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_RNG = re.compile(r"^rng_state_(\d+)\.pth$")
LATEST_WORDS = ("latest", "true", "last")


def _files_of_rank(folder: Path, rank: int) -> dict[str, int]:
    """The files this rank wrote: rank 0 everything but other ranks' RNG states and records."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        name = path.relative_to(folder).as_posix()
        if name.startswith("complete-rank") or name.endswith(".tmp"):
            continue
        match = _RNG.match(name)
        owner = int(match.group(1)) if match else 0
        if owner == rank:
            files[name] = path.stat().st_size
    return files


def mark_complete(folder: str | Path, rank: int, world_size: int) -> None:
    """Record that this rank's part of the checkpoint in `folder` is fully written."""
    folder = Path(folder)
    record = {"rank": rank, "world_size": world_size, "files": _files_of_rank(folder, rank)}
    target = folder / RECORD.format(rank=rank)
    tmp = target.with_name(target.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(record, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def incomplete_reason(folder: str | Path) -> str | None:
    """None when the checkpoint in `folder` is complete, else why not (a file, what is wrong)."""
    folder = Path(folder)
    first = folder / RECORD.format(rank=0)
    if not first.is_file():
        return f"{first.name} is missing (the save did not finish)"
    try:
        world_size = int(json.loads(first.read_text(encoding="utf-8"))["world_size"])
    except (ValueError, KeyError, TypeError) as err:
        return f"{first.name} is unreadable ({err})"
    for rank in range(world_size):
        path = folder / RECORD.format(rank=rank)
        try:
            files = json.loads(path.read_text(encoding="utf-8"))["files"]
        except FileNotFoundError:
            return f"{path.name} is missing (rank {rank} did not finish saving)"
        except (ValueError, KeyError, TypeError) as err:
            return f"{path.name} is unreadable ({err})"
        for name, size in files.items():
            file = folder / name
            if not file.is_file():
                return f"{name} is missing"
            if file.stat().st_size != size:
                return f"{name} has {file.stat().st_size} bytes, {size} were written"
    if not (folder / "trainer_state.json").is_file():
        return "trainer_state.json is missing"
    return None


def checkpoints(output_dir: str | Path) -> list[Path]:
    """The `checkpoint-N` folders of `output_dir`, newest (highest N) first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    return sorted(found, key=lambda p: -int(_CHECKPOINT.match(p.name).group(1)))  # type: ignore[union-attr]


def latest_complete(output_dir: str | Path) -> Path | None:
    """The newest complete checkpoint; incomplete newer ones are logged with their reason."""
    for folder in checkpoints(output_dir):
        reason = incomplete_reason(folder)
        if reason is None:
            return folder
        log.warning("skipping %s: incomplete checkpoint, %s", folder, reason)
    return None


@dataclass
class Resume:
    """Where a run continues from: the checkpoint folder and the step it holds."""

    checkpoint: Path
    global_step: int
    max_steps: int


def resolve_resume(value: str | None, output_dir: str) -> Resume | None:
    """`--resume_from_checkpoint` as a complete checkpoint: `latest` or a folder; None for none."""
    if not value:
        return None
    if value.lower() in LATEST_WORDS:
        folder = latest_complete(output_dir)
        if folder is None:
            found = len(checkpoints(output_dir))
            detail = f" ({found} incomplete, see the warnings above)" if found else ""
            raise TrainingError(
                f"--resume_from_checkpoint {value}: no complete checkpoint in {output_dir}{detail}; "
                "start without --resume_from_checkpoint"
            )
    else:
        folder = Path(value)
        if not folder.is_dir():
            raise TrainingError(f"--resume_from_checkpoint {value}: no such checkpoint directory")
        reason = incomplete_reason(folder)
        if reason is not None:
            raise TrainingError(
                f"--resume_from_checkpoint {value}: incomplete checkpoint, {reason}; resume from "
                "an earlier one, or with 'latest' (the newest complete one)"
            )
    state = json.loads((folder / "trainer_state.json").read_text(encoding="utf-8"))
    return Resume(folder, int(state["global_step"]), int(state.get("max_steps") or 0))


def completion_callback() -> Any:
    """A Trainer callback that writes each rank's completion record after every save."""
    from transformers import TrainerCallback
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    class MarkComplete(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if folder.is_dir():
                mark_complete(folder, args.process_index, args.world_size)

    return MarkComplete()
