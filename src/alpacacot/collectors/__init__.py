"""Collectors fetch upstream files exactly as published, into a cache, with pinned checksums.

`collect_file` is the one entry point: local files are read in place, URLs and Hub files are
downloaded once into the cache (atomically: a half-written file never appears there) and checked
against the sha256 the catalog pins. `offline=True` uses the cache only.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, replace
from pathlib import Path

from alpacacot.catalog import Catalog, SourceFile
from alpacacot.errors import CollectError


@dataclass(frozen=True)
class CollectedFile:
    """An upstream file on local disk, with what provenance needs to know about it."""

    path: Path
    sha256: str
    bytes: int
    display: str  # URL, hf://datasets/..., or the catalog-relative path
    revision: str  # Hub commit, or sha256:<hex>
    subset: str
    normalizer: str | None = None  # None: the entry's


def default_cache_dir() -> Path:
    env = os.environ.get("ALPACACOT_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "alpacacot"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def forget_hub_file(path: Path, sf: SourceFile, digest: str, cache_dir: Path) -> None:
    """A Hub file that failed its pin leaves huggingface_hub's cache (its snapshot link and blob):
    the cache never serves a file the catalog refuses; the failure is noted for --offline."""
    from alpacacot.collectors.pins import record_failed_pin

    blob = path.resolve()
    path.unlink(missing_ok=True)
    if blob != path:
        blob.unlink(missing_ok=True)
    record_failed_pin(cache_dir, sf.display, digest, sf.sha256 or "")


def check_pin(sf: SourceFile, actual: str, key: str) -> None:
    if sf.sha256 and sf.sha256 != actual:
        removed = " The file was removed from the cache." if sf.kind in ("hf", "url") else ""
        raise CollectError(
            f"dataset {key!r}: {sf.display} changed upstream: sha256 is {actual}, the catalog pins "
            f"{sf.sha256}.{removed} Check what changed, then update `sha256` in the catalog entry."
        )


# The revision of a file not hashed yet (`locate_file`): a unit may run on it meanwhile, and the
# merge puts the file's revision in its records once the hash is known. Never in an output.
PENDING_REVISION = "sha256:pending"


def locate_file(
    sf: SourceFile,
    catalog: Catalog,
    key: str,
    *,
    cache_dir: Path | None = None,
    offline: bool = False,
) -> CollectedFile:
    """Make one upstream file available locally, not verified yet: its `sha256` is empty and its
    revision, when it is the file's digest, PENDING_REVISION (`verify_file` completes it)."""
    cache_dir = cache_dir or default_cache_dir()
    if sf.kind == "local":
        path = catalog.local_path(sf.location, f"datasets/{key}: local file")
        if not path.is_file():
            raise CollectError(
                f"dataset {key!r}: local file {sf.location} not found (looked for {path}; "
                "local paths "
                f"are relative to the catalog file {catalog.path})"
            )
        revision = None
    elif sf.kind == "url":
        from alpacacot.collectors.url import fetch_url

        path = fetch_url(sf, key, cache_dir=cache_dir, offline=offline)
        revision = None
    elif sf.kind == "hf":
        from alpacacot.collectors.hub import fetch_hub_file

        path, revision = fetch_hub_file(sf, key, cache_dir=cache_dir, offline=offline)
    else:  # the catalog schema already rejects this
        raise CollectError(f"dataset {key!r}: unknown source kind {sf.kind!r}")
    return CollectedFile(
        path=path,
        sha256="",
        bytes=path.stat().st_size,
        display=sf.display,
        revision=revision or PENDING_REVISION,
        subset=sf.subset,
        normalizer=sf.normalizer,
    )


def verify_file(
    cf: CollectedFile, sf: SourceFile, key: str, *, cache_dir: Path | None = None
) -> CollectedFile:
    """A located file hashed and checked against the sha256 the catalog pins (a Hub file that
    fails its pin leaves the cache)."""
    digest = sha256_file(cf.path)
    if sf.kind == "hf" and sf.sha256 and digest != sf.sha256:
        forget_hub_file(cf.path, sf, digest, cache_dir or default_cache_dir())
    check_pin(sf, digest, key)
    revision = f"sha256:{digest}" if cf.revision == PENDING_REVISION else cf.revision
    return replace(cf, sha256=digest, revision=revision)


def collect_file(
    sf: SourceFile,
    catalog: Catalog,
    key: str,
    *,
    cache_dir: Path | None = None,
    offline: bool = False,
) -> CollectedFile:
    """Make one upstream file available locally and verify it."""
    located = locate_file(sf, catalog, key, cache_dir=cache_dir, offline=offline)
    return verify_file(located, sf, key, cache_dir=cache_dir)


def locate_files(
    sf: SourceFile,
    catalog: Catalog,
    key: str,
    *,
    cache_dir: Path | None = None,
    offline: bool = False,
) -> list[tuple[SourceFile, CollectedFile]]:
    """`locate_file`, with a Hub glob pattern expanded to the matching files (sorted); each with
    the catalog's file it verifies against."""
    if not sf.is_pattern:
        return [(sf, locate_file(sf, catalog, key, cache_dir=cache_dir, offline=offline))]
    from alpacacot.collectors.hub import expand_hub_pattern

    names = expand_hub_pattern(sf, key, cache_dir=cache_dir or default_cache_dir(), offline=offline)
    found = []
    for name in names:
        one = replace(sf, location=name)
        found.append((one, locate_file(one, catalog, key, cache_dir=cache_dir, offline=offline)))
    return found


def collect_files(
    sf: SourceFile,
    catalog: Catalog,
    key: str,
    *,
    cache_dir: Path | None = None,
    offline: bool = False,
) -> list[CollectedFile]:
    """`collect_file`, with a Hub glob pattern expanded to the matching files (sorted)."""
    return [
        verify_file(cf, one, key, cache_dir=cache_dir)
        for one, cf in locate_files(sf, catalog, key, cache_dir=cache_dir, offline=offline)
    ]
