"""Publish a built collection to a Hub dataset repo: one atomic commit of what changed.

The plan compares each local file with what the repo holds at the target revision (LFS sha256, or
the git blob id of regular files), so an unchanged shard is never uploaded again, and a shard that
the build no longer produces is deleted in the same commit. The token is resolved by
huggingface_hub (HF_TOKEN, then the login cache) and never read, printed or logged here.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alpacacot.card import REPO_PLACEHOLDER, STATS_FIGURE, render_card
from alpacacot.errors import AlpacacotError
from alpacacot.hub.collection import MANIFEST, declared_file, read_manifest

# Remote paths a build owns: deleted when the build no longer has them. Anything else in the repo
# (.gitattributes, hand-written files) is left alone.
MANAGED = re.compile(
    r"^(?:[a-z0-9][a-z0-9_]*/train-\d+-of-\d+\.parquet|rejects/[a-z0-9][a-z0-9_]*\.jsonl"
    rf"|{re.escape(STATS_FIGURE)}"
    r"|curation/(?:signals/[a-z0-9][a-z0-9_]*\.parquet|[a-z]+\.(?:parquet|json|png)))$"
)
# Besides the shards and rejects the manifest declares (`collection.declared_file`), the files
# publish uploads; nothing else in the folder is ever read (docs/THREAT_MODEL.md).
CURATION_FILES = (
    "curation/manifest.json",
    "curation/clusters.parquet",
    "curation/contamination.parquet",
    "curation/overlap.png",
)
UPLOADED_AS_IS = (MANIFEST, STATS_FIGURE, "README.md", *CURATION_FILES)
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
SUMMARY_KEYS = 6  # sources named in the commit summary before "+N more"


class PublishError(AlpacacotError):
    """Publishing failed; the message says why and what to do. The remote is unchanged."""


@dataclass(frozen=True)
class LocalFile:
    """A file to publish: its repo path, its bytes on disk (or in memory) and its checksums."""

    path: str
    source: Path | bytes
    size: int
    sha256: str
    git_sha1: str


@dataclass(frozen=True)
class Operation:
    """One line of the plan: `add`, `change`, `delete` or `unchanged`."""

    kind: str
    path: str
    size: int
    local: LocalFile | None = None


@dataclass
class Plan:
    """What a publish would do, and against which remote state."""

    operations: list[Operation]
    parent_commit: str | None  # the remote head the plan was made against
    note: str | None = None  # why the remote could not be compared (dry run)

    def changes(self) -> list[Operation]:
        return [op for op in self.operations if op.kind != "unchanged"]

    def count(self, kind: str) -> int:
        return sum(op.kind == kind for op in self.operations)

    def _noted(self, note: str) -> Plan:
        self.note = f"{note}; {self.note}" if self.note else note
        return self


def hub_endpoint() -> str:
    """The Hub the client talks to: HF_ENDPOINT, read at call time (not at import)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def check_repo_id(repo_id: str) -> None:
    if not REPO_ID.match(repo_id or ""):
        raise PublishError(
            f"--repo {repo_id!r} is not a dataset repo id: use ORG/NAME, "
            "e.g. --repo my-org/alpaca-cot"
        )


def local_files(
    out_dir: Path,
    manifest: dict[str, Any],
    repo_id: str,
    progress: Callable[[str], None] | None = None,
) -> dict[str, LocalFile]:
    """The build's files for the repo, hashed; shards checked against the manifest."""
    out_dir = Path(out_dir)
    files: dict[str, LocalFile] = {}

    def add(rel: str, expected_sha256: str | None = None, owner: str | None = None) -> None:
        path = declared_file(out_dir, rel, owner, fixed=UPLOADED_AS_IS)
        if not path.is_file():
            raise PublishError(f"{path} is listed in {MANIFEST} but missing: rebuild {out_dir}.")
        if progress:
            progress(rel)
        entry = _hash_file(rel, path)
        if expected_sha256 and entry.sha256 != expected_sha256:
            raise PublishError(
                f"{path} changed since the build (sha256 differs from {MANIFEST}): "
                f"rebuild {out_dir}."
            )
        files[rel] = entry

    files["README.md"] = _hash_bytes("README.md", _card_bytes(out_dir, manifest, repo_id))
    add(MANIFEST)
    if (out_dir / STATS_FIGURE).is_file():
        add(STATS_FIGURE)
    for key in sorted(manifest.get("sources", {})):
        source = manifest["sources"][key]
        for shard in source.get("shards", []):
            if not shard.get("sha256"):
                raise PublishError(
                    f"{out_dir / MANIFEST}: sources/{key}: shard {shard.get('path')!r} has no "
                    f"sha256; a build always writes one: rebuild {out_dir}."
                )
            add(shard.get("path"), shard["sha256"], key)
        rejects = source.get("rejects")
        if rejects and declared_file(out_dir, rejects, key, fixed=UPLOADED_AS_IS).is_file():
            add(rejects, owner=key)
    if manifest.get("curation"):
        # Curation results travel with the collection (their own configs in the card).
        for rel in CURATION_FILES:
            if (out_dir / rel).is_file():
                add(rel)
        for key in sorted(manifest["curation"].get("sources", {})):
            rel = f"curation/signals/{key}.parquet"  # checked by `declared_file` in `add`
            if (out_dir / rel).is_file():
                add(rel)
    return files


def _card_bytes(out_dir: Path, manifest: dict[str, Any], repo_id: str) -> bytes:
    """The card as uploaded: the build's README.md with the real repo id in its examples."""
    card = declared_file(out_dir, "README.md", fixed=UPLOADED_AS_IS)
    if card.is_file():
        text = card.read_text(encoding="utf-8")
    else:
        text = render_card(manifest, None, has_stats=(out_dir / STATS_FIGURE).is_file())
    return text.replace(f'"{REPO_PLACEHOLDER}"', f'"{repo_id}"').encode("utf-8")


def _hash_file(rel: str, path: Path) -> LocalFile:
    size = path.stat().st_size
    sha256 = hashlib.sha256()
    sha1 = hashlib.sha1()
    sha1.update(f"blob {size}\0".encode())
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            sha256.update(chunk)
            sha1.update(chunk)
    return LocalFile(rel, path, size, sha256.hexdigest(), sha1.hexdigest())


def _hash_bytes(rel: str, data: bytes) -> LocalFile:
    git = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
    return LocalFile(rel, data, len(data), hashlib.sha256(data).hexdigest(), git)


def diff(local: dict[str, LocalFile], remote: dict[str, Any] | None) -> list[Operation]:
    """Compare local files with the remote siblings ({path: RepoSibling}); None means all new."""
    ops = []
    remote = remote or {}
    for path in sorted(local):
        mine = local[path]
        theirs = remote.get(path)
        if theirs is None:
            ops.append(Operation("add", path, mine.size, mine))
        elif _same(mine, theirs):
            ops.append(Operation("unchanged", path, mine.size, mine))
        else:
            ops.append(Operation("change", path, mine.size, mine))
    for path in sorted(set(remote) - set(local)):
        if MANAGED.match(path):
            ops.append(Operation("delete", path, int(getattr(remote[path], "size", 0) or 0)))
    return ops


def _same(mine: LocalFile, theirs: Any) -> bool:
    lfs = getattr(theirs, "lfs", None)
    if lfs is not None:
        return getattr(lfs, "sha256", None) == mine.sha256
    return getattr(theirs, "blob_id", None) == mine.git_sha1


def remote_state(api: Any, repo_id: str, revision: str | None) -> tuple[str | None, dict[str, Any]]:
    """The head commit of `revision` and its files, in one request (a consistent snapshot)."""
    info = api.dataset_info(repo_id, revision=revision, files_metadata=True)
    return info.sha, {s.rfilename: s for s in (info.siblings or [])}


def plan_publish(
    api: Any,
    out_dir: Path,
    repo_id: str,
    revision: str | None,
    *,
    dry_run: bool,
    progress: Callable[[str], None] | None = None,
) -> Plan:
    """Hash the build and compare it with the repo. In a dry run an unreachable repo is a note."""
    manifest = read_manifest(out_dir)
    if manifest.get("errors"):
        # Publishing would delete the remote shards of the sources that failed to build.
        failed = ", ".join(sorted(manifest["errors"]))
        raise PublishError(
            f"{out_dir} is an incomplete build (failed: {failed}); fix them and rebuild "
            "before publishing, or build only the keys you mean to publish."
        )
    local = local_files(out_dir, manifest, repo_id, progress)
    try:
        head, remote = remote_state(api, repo_id, revision)
    except Exception as err:  # noqa: BLE001 - classified below; a real publish re-raises
        if not dry_run:
            raise
        from huggingface_hub.errors import RevisionNotFoundError

        if isinstance(err, RevisionNotFoundError) and revision not in (None, "main"):
            # publish would branch off main: compare with main (an error there is a note too)
            return plan_publish(api, out_dir, repo_id, None, dry_run=True)._noted(
                f"branch {revision!r} does not exist in {repo_id} yet: publish would create it "
                "from main (compared with main below)"
            )
        return Plan(diff(local, None), None, note=_dry_run_note(err, repo_id, revision))
    return Plan(diff(local, remote), head)


def _dry_run_note(err: Exception, repo_id: str, revision: str | None) -> str:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(err, RevisionNotFoundError):
        return f"branch {revision!r} does not exist in {repo_id} yet: publish would create it"
    if isinstance(err, RepositoryNotFoundError) and _status(err) == 404:
        return f"dataset repo {repo_id} does not exist yet (or is private): publish would create it"
    return f"cannot reach {repo_id} to compare: {explain(err, repo_id)}"


def commit_message(manifest: dict[str, Any], plan: Plan) -> tuple[str, str]:
    """A summary naming the sources and the build, and a description with every detail."""
    keys = sorted(manifest.get("sources", {}))
    named = ", ".join(keys[:SUMMARY_KEYS]) + (
        f" +{len(keys) - SUMMARY_KEYS} more" if len(keys) > SUMMARY_KEYS else ""
    )
    summary = (
        f"alpacacot build {manifest.get('built_at', '?')}: {named} "
        f"(code {manifest.get('code_version', '?')})"
    )
    lines = [
        f"Built at {manifest.get('built_at', '?')} "
        f"by alpacacot {manifest.get('code_version', '?')}, "
        f"record schema {manifest.get('schema_version', '?')}.",
        f"Catalog sha256: {(manifest.get('catalog') or {}).get('sha256', '?')}",
        "",
        "Sources (fingerprint):",
        *(f"- {k}: {manifest['sources'][k].get('fingerprint', '?')}" for k in keys),
        "",
        f"{plan.count('add')} added, {plan.count('change')} changed, "
        f"{plan.count('delete')} deleted, {plan.count('unchanged')} unchanged.",
    ]
    return summary, "\n".join(lines)


def execute(
    api: Any,
    out_dir: Path,
    repo_id: str,
    plan: Plan,
    *,
    revision: str | None,
    create_pr: bool,
) -> Any:
    """Send the plan's changes as one commit; `parent_commit` makes the Hub refuse it (412) if the
    branch moved since the plan was made, so nothing half-applied can happen."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    manifest = read_manifest(out_dir)
    operations: list[Any] = []
    for op in plan.changes():
        if op.kind == "delete":
            operations.append(CommitOperationDelete(path_in_repo=op.path))
        else:
            src = op.local.source if op.local else None
            operations.append(
                CommitOperationAdd(
                    path_in_repo=op.path, path_or_fileobj=str(src) if isinstance(src, Path) else src
                )
            )
    summary, description = commit_message(manifest, plan)
    return api.create_commit(
        repo_id,
        operations,
        commit_message=summary,
        commit_description=description,
        repo_type="dataset",
        revision=revision,
        create_pr=create_pr,
        parent_commit=plan.parent_commit,
    )


def prepare_remote(
    api: Any, repo_id: str, revision: str | None, *, private: bool, create_pr: bool
) -> None:
    """Create the dataset repo (and the target branch) when they do not exist yet."""
    api.create_repo(repo_id, repo_type="dataset", private=private or None, exist_ok=True)
    if revision and revision != "main" and not create_pr:
        api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True)


def _status(err: Exception) -> int | None:
    response = getattr(err, "response", None)
    return getattr(response, "status_code", None)


def explain(err: Exception, repo_id: str, revision: str | None = None) -> str:
    """One clear sentence for a failure of the Hub client, with what to do. Never the token."""
    import httpx2
    from huggingface_hub.errors import (
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RevisionNotFoundError,
    )

    endpoint = hub_endpoint()
    if isinstance(err, OfflineModeIsEnabled):
        return "HF_HUB_OFFLINE is set: unset it to publish (a dry run works offline)."
    if isinstance(err, (httpx2.TransportError, ConnectionError, TimeoutError)):
        return (
            f"cannot reach the Hub at {endpoint} ({type(err).__name__}): check your network, "
            "proxy or HF_ENDPOINT, then run publish again."
        )
    if isinstance(err, RevisionNotFoundError):
        return (
            f"branch {revision!r} not found in {repo_id}: --create-pr needs an existing branch; "
            "publish without --create-pr to create it."
        )
    status = _status(err)
    if status == 401:
        return (
            f"authentication failed (401) for {repo_id}: no valid token. Set HF_TOKEN to a write "
            "token or run `hf auth login`."
        )
    if status == 403:
        return (
            f"permission denied (403) on {repo_id}: your token cannot write there. "
            "Use a write token "
            "of a member of that organisation, or publish under your own namespace."
        )
    if status == 404:
        return (
            f"{repo_id} not found (404): check --repo and --revision, and that your token can see "
            "the repo."
        )
    if status == 429:
        return (
            f"rate limited by the Hub (429) on {repo_id}: wait a few minutes, "
            "then run publish again."
        )
    if status in (409, 412):
        return (
            f"conflict ({status}): {repo_id} changed while publishing (another commit landed). "
            "Nothing was committed; run publish again to compare with the new state."
        )
    if isinstance(err, HfHubHTTPError):
        server = getattr(err, "server_message", None) or ""
        detail = f": {server.strip()}" if server.strip() else ""
        return f"the Hub answered {status} for {repo_id}{detail}. Nothing was committed."
    if isinstance(err, ValueError) and "README.md" in str(err):
        return f"the Hub rejected the card's metadata: {err}. Rebuild the card, then publish again."
    return f"publishing to {repo_id} failed ({type(err).__name__}: {err}). Nothing was committed."


def human_size(n: int) -> str:
    """Bytes for people: 999 B, 1.2 kB, 3.4 MB."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
