"""The rules a catalog from a stranger must pass before anything else reads it.

A catalog (and every file it names) may come from a pull request. `load_catalog` applies these
rules once, at load time, so that collectors and stages can trust the names and paths they are
handed (docs/THREAT_MODEL.md says what is allowed and why):

- the file is at most `MAX_CATALOG_BYTES` and its YAML aliases add at most `MAX_ALIAS_NODES`
  nodes (a 762-byte "billion laughs" catalog otherwise takes minutes and gigabytes);
- names (dataset keys, mixes) match their rule in full and are at most `MAX_KEY_LENGTH` long:
  they become folder and file names;
- Hub repo ids, revisions and file names cannot climb out of a repo or the download cache;
- local paths resolve, symlinks included, inside the catalog's folder (unless the user passes
  `--allow-outside-catalog`), and never to a special file (/proc, /sys, /dev, FIFOs, sockets).
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from alpacacot.errors import CatalogError

# 5 MB is over 400 times the bundled catalog (about 12 kB for 14 datasets, ~800 bytes each), room
# for several thousand entries, and still loads in a few seconds; a bigger file is almost surely
# generated or hostile, and pure YAML parsing of it would hold gigabytes.
MAX_CATALOG_BYTES = 5 * 1024 * 1024
# Aliases (`*name`) are handy for a shared `tags:` block; this bounds what they can expand to.
MAX_ALIAS_NODES = 100_000
# Keys become folder names (`out/<key>/`), file names (`rejects/<key>.jsonl`) and Hub paths.
MAX_KEY_LENGTH = 64

KEY_RULE = re.compile(r"[a-z0-9][a-z0-9_]*")
MIX_RULE = re.compile(r"[a-z0-9][a-z0-9_.-]*")  # mixes may hold `.` (belle1.5m)
# The Hub's own rule for repo ids (letters, digits, `._-`, no `--` or `..`, at most 96 characters
# per part), with the owner required: a dataset repo is always `owner/name` on today's Hub.
REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
# A branch, tag or commit: git ref characters only, no `..`, no empty component.
REVISION_RULE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,199}")
MAX_HUB_NAME_LENGTH = 1000
# Special filesystems: even with --allow-outside-catalog a catalog never reads these.
SPECIAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))
OUTSIDE_FLAG = "--allow-outside-catalog"


# --- YAML ----------------------------------------------------------------------------------------

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's parser when built


class UniqueKeyLoader(_BaseLoader):
    """A safe loader (libyaml's C parser where available) that refuses a mapping with the same
    key twice (else the second silently overwrites the first)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # `<<: *shared`: its keys may be overridden here, by design
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise CatalogError(
                    f"line {key_node.start_mark.line + 1}: key {key!r} appears twice "
                    f"(first on line {seen[key]}); every dataset key must be unique"
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def read_catalog_bytes(path: Path) -> bytes:
    """The catalog's bytes, refusing a file over MAX_CATALOG_BYTES before reading it whole."""
    try:
        # stat before open: opening a FIFO would wait for a writer
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise CatalogError(f"catalog {path} is not a regular file")
        with open(path, "rb") as fh:
            data = fh.read(MAX_CATALOG_BYTES + 1)
    except OSError as exc:
        raise CatalogError(f"cannot read catalog {path}: {exc.strerror}") from exc
    if len(data) > MAX_CATALOG_BYTES:
        raise CatalogError(
            f"catalog {path} is over {MAX_CATALOG_BYTES // (1024 * 1024)} MB, the limit (the "
            "bundled one is 12 kB); split it, or check that it is the file you meant"
        )
    return data


def load_yaml(data: bytes) -> Any:
    """Parse one YAML document with `UniqueKeyLoader`, refusing aliases that expand too far."""
    loader = UniqueKeyLoader(data)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        # Without an `&` byte there is no anchor, so no alias: skip the walk (a third of the time
        # of a large catalog).
        if b"&" in data:
            size: dict[int, int] = {}
            extra = expanded_nodes(node, size) - len(size)
            if extra > MAX_ALIAS_NODES:
                raise CatalogError(
                    f"its aliases (*name) expand to {extra:,}+ more nodes, over the limit of "
                    f"{MAX_ALIAS_NODES:,}; write the repeated parts out, or use fewer aliases"
                )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def expanded_nodes(
    root: yaml.Node, size: dict[int, int], cap: int = 10 * MAX_ALIAS_NODES + MAX_CATALOG_BYTES
) -> int:
    """How many nodes the document has once every alias is expanded, counted without expanding:
    each node's expanded size is computed once, into `size` (keyed by id: `len(size)` is then the
    number of distinct nodes); counts stop at `cap`. A node that contains itself (`&a [*a]`) is
    refused."""
    open_: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        ident = id(node)
        if children_done:
            open_.discard(ident)
            size[ident] = min(cap, 1 + sum(size[id(c)] for c in _children(node)))
            continue
        if ident in size:
            continue
        if ident in open_:
            raise CatalogError(f"line {node.start_mark.line + 1}: an alias refers to itself")
        open_.add(ident)
        stack.append((node, True))
        for child in _children(node):
            if id(child) in open_:
                raise CatalogError(f"line {child.start_mark.line + 1}: an alias refers to itself")
            if id(child) not in size:
                stack.append((child, False))
    return size[id(root)]


# --- names ---------------------------------------------------------------------------------------


def name_problem(name: Any, rule: re.Pattern[str], what: str) -> str | None:
    """Why `name` cannot be a key (None when it can). Matches the whole name: `re.match` with `$`
    would accept a final newline."""
    shown = rule.pattern
    if not isinstance(name, str):
        return f"{what} {name!r} is not a string"
    if len(name) > MAX_KEY_LENGTH:
        return (
            f"{what} {name[:20]!r}... is {len(name)} characters long; the limit is {MAX_KEY_LENGTH}"
        )
    if not rule.fullmatch(name):
        also = " (dots and dashes too)" if rule is MIX_RULE else ""
        return (
            f"{what} {name!r} is not a valid name: use lowercase letters, digits and "
            f"underscores{also}, starting with a letter or digit (the rule is {shown})"
        )
    return None


def repo_problem(repo: Any) -> str | None:
    """Why `repo` is not a Hub dataset repo id `owner/name` (None when it is)."""
    if not isinstance(repo, str):
        return f"repo {repo!r} is not a string"
    parts = repo.split("/")
    if (
        len(parts) != 2
        or not all(REPO_PART.fullmatch(p) for p in parts)
        or ".." in repo
        or "--" in repo
        or repo.endswith(".git")
    ):
        return (
            f"repo {repo!r} is not a Hub repo id: use OWNER/NAME (letters, digits, `._-`, at most "
            "96 characters each, no `..` or `--`), e.g. tatsu-lab/alpaca"
        )
    return None


def revision_problem(revision: Any) -> str | None:
    """Why `revision` is not a branch, tag or commit name (None when it is)."""
    if not isinstance(revision, str):
        return f"revision {revision!r} is not a string"
    if (
        not REVISION_RULE.fullmatch(revision)
        or ".." in revision
        or "//" in revision
        or revision.endswith(("/", ".lock"))
    ):
        return (
            f"revision {revision!r} is not a branch, tag or commit: use letters, digits and "
            "`._/-` (no `..`, at most 200 characters), e.g. main or a 40-hex commit"
        )
    return None


def hub_file_problem(name: Any) -> str | None:
    """Why `name` is not a file name (or glob) inside a Hub repo (None when it is)."""
    if not isinstance(name, str) or not name:
        return f"file {name!r} is not a file name"
    parts = name.split("/")
    if (
        len(name) > MAX_HUB_NAME_LENGTH
        or name.startswith("/")
        or "\\" in name
        or any(ord(c) < 32 for c in name)
        or any(p in ("..", ".", "") for p in parts)
    ):
        return (
            f"file {name[:80]!r} is not a file name inside the repo: use a relative path such as "
            "data/train.parquet (no leading /, no `..`, no backslash)"
        )
    return None


# --- local paths ---------------------------------------------------------------------------------


def confine_path(root: Path, location: str, *, allow_outside: bool, where: str) -> Path:
    """The file a catalog's local `location` names, resolved (symlinks followed).

    Refuses, naming `where` (the dataset key and field): an absolute path or a `..` component, or a
    path whose target lies outside `root` (the catalog's folder), unless `allow_outside`; and always
    a special file (under /proc, /sys or /dev, a FIFO, socket or device) or a folder. A path that
    does not exist yet is returned (the collector says it is missing).
    """
    if not isinstance(location, str) or not location or "\x00" in location:
        raise CatalogError(f"{where}: {location!r} is not a path")
    path = PurePosixPath(location)
    fix = (
        f"local files must lie inside the catalog's folder {root}; if you trust this catalog, "
        f"pass {OUTSIDE_FLAG}"
    )
    root = root.resolve()
    resolved = (root / location).resolve()
    if any(resolved.is_relative_to(special) for special in SPECIAL_ROOTS):
        raise CatalogError(
            f"{where}: {location!r} is {resolved}, a special system file; a catalog never reads "
            f"/proc, /sys or /dev, even with {OUTSIDE_FLAG}"
        )
    if not allow_outside:
        if path.is_absolute():
            raise CatalogError(f"{where}: {location!r} is an absolute path; {fix}")
        if ".." in path.parts:
            raise CatalogError(f"{where}: {location!r} climbs out with `..`; {fix}")
        if not resolved.is_relative_to(root):
            raise CatalogError(
                f"{where}: {location!r} resolves (through a symbolic link) to {resolved}; {fix}"
            )
    try:
        mode = resolved.stat().st_mode
    except OSError:
        return resolved  # missing: reported by the collector, which checks again
    if not stat.S_ISREG(mode):
        kind = (
            "a folder"
            if stat.S_ISDIR(mode)
            else "a FIFO"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a device"
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file"
        )
        raise CatalogError(
            f"{where}: {location!r} ({resolved}) is {kind}; a source or sample must be a regular "
            "file"
        )
    return resolved
