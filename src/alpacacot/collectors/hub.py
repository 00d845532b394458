"""Files of a Hugging Face Hub dataset repo, through huggingface_hub's own cache."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path

from alpacacot.catalog import SourceFile
from alpacacot.collectors.pins import failed_pin_note
from alpacacot.errors import CollectError


@contextmanager
def hub_errors(
    sf: SourceFile, key: str, offline: bool, cache_dir: Path | None = None
) -> Iterator[None]:
    """Turn huggingface_hub's exceptions into one CollectError naming the dataset and the file."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"hf://datasets/{sf.repo}/{sf.location}@{sf.revision or 'main'}"
    try:
        yield
    except LocalEntryNotFoundError as exc:
        note = failed_pin_note(cache_dir, sf.display) if cache_dir else ""
        hint = (
            f"it is not in the cache{note} and --offline is set"
            if offline
            else "the Hub cannot be reached"
        )
        raise CollectError(f"dataset {key!r}: {where}: {hint}.") from exc
    except (RepositoryNotFoundError, RevisionNotFoundError, EntryNotFoundError) as exc:
        raise CollectError(
            f"dataset {key!r}: {where} does not exist ({type(exc).__name__}); check repo, revision "
            "and file name in the catalog entry"
        ) from exc
    except HfHubHTTPError as exc:
        raise CollectError(f"dataset {key!r}: {where}: {exc}") from exc


def fetch_hub_file(sf: SourceFile, key: str, *, cache_dir: Path, offline: bool) -> tuple[Path, str]:
    """Download (or find in the cache) one file; return its path and the Hub commit it came from."""
    from huggingface_hub import hf_hub_download

    with hub_errors(sf, key, offline, cache_dir):
        path = Path(
            hf_hub_download(
                sf.repo,
                sf.location,
                repo_type="dataset",
                revision=sf.revision,
                cache_dir=cache_dir / "hf",
                local_files_only=offline,
            )
        )
    # hf_hub_download returns .../snapshots/<commit>/<file>: the commit is the revision.
    parts = path.parts
    commit = (
        parts[parts.index("snapshots") + 1] if "snapshots" in parts else (sf.revision or "main")
    )
    return path, commit


def expand_hub_pattern(sf: SourceFile, key: str, *, cache_dir: Path, offline: bool) -> list[str]:
    """The repo's file names matching the glob `sf.location`, sorted; from the cache when offline."""
    from huggingface_hub import snapshot_download

    with hub_errors(sf, key, offline, cache_dir):
        root = Path(
            snapshot_download(
                sf.repo,
                repo_type="dataset",
                revision=sf.revision,
                allow_patterns=[sf.location],
                cache_dir=cache_dir / "hf",
                local_files_only=offline,
            )
        )
    names = sorted(
        name
        for name in (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
        if fnmatch(name, sf.location)
    )
    if not names:
        raise CollectError(f"dataset {key!r}: no file of {sf.repo} matches {sf.location!r}")
    return names
