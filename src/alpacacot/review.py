"""Reviewing a catalog pull request: which entries changed since a git ref, and a short report of
what their samples build into (records, languages, licence) for the pull request's summary.

`alpacacot-data changed REF` lists the changed keys, `validate --changed-from REF` checks only them,
and `alpacacot-data report OUT` writes the Markdown table that `.github/workflows/catalog.yml` puts
in the job summary.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from alpacacot.catalog import Catalog
from alpacacot.errors import AlpacacotError, CatalogError
from alpacacot.guards import MAX_CATALOG_BYTES, load_yaml


def _git(root: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, check=False
        )
    except OSError as exc:
        raise CatalogError(f"cannot run git to compare the catalog: {exc}") from exc
    if done.returncode != 0:
        raise CatalogError(f"git {' '.join(args)} failed: {done.stderr.strip() or done.stdout}")
    return done.stdout


def resolve_ref(root: Path, ref: str) -> str:
    """The commit `ref` names. A ref comes from a pull request's workflow: one that git would read
    as an option (`--output=FILE` makes `git diff` write a file) is refused before git sees it."""
    if not ref or ref.startswith("-"):
        raise CatalogError(f"{ref!r} is not a git ref (a branch, tag or commit, e.g. origin/main)")
    try:
        return _git(root, "rev-parse", "--verify", "--end-of-options", f"{ref}^{{commit}}").strip()
    except CatalogError:
        raise CatalogError(f"{ref!r} names no commit of {root}; fetch it first") from None


def changed_keys(catalog: Catalog, ref: str) -> list[str]:
    """Keys whose entry differs from `ref`'s catalog (new ones included) or whose sample files
    changed since `ref`, in catalog order. Needs the catalog inside a git work tree."""
    root = Path(_git(catalog.root, "rev-parse", "--show-toplevel").strip())
    rel = catalog.path.relative_to(root).as_posix()
    ref = resolve_ref(root, ref)
    try:
        old_text = _git(root, "show", f"{ref}:{rel}")
    except CatalogError:
        old_text = ""  # the catalog is new in this pull request
    # The base ref's catalog is read under the same limits as any catalog (size, aliases).
    old_bytes = old_text.encode("utf-8")
    if len(old_bytes) > MAX_CATALOG_BYTES:
        raise CatalogError(
            f"{ref}:{rel} is over the catalog size limit ({MAX_CATALOG_BYTES} bytes)"
        )
    old = (load_yaml(old_bytes) or {}).get("datasets") or {}
    touched = set(_git(root, "diff", "--name-only", ref, "--", ".").splitlines())
    keys = []
    for key, entry in catalog.datasets.items():
        samples = {(catalog.root / s).resolve().relative_to(root).as_posix() for s in entry.sample}
        if old.get(key) != entry.raw or samples & touched:
            keys.append(key)
    return keys


def report_rows(out_dir: Path, keys: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per built source: records read/written/rejected, languages, licence."""
    manifest_path = out_dir / "manifest.json"
    try:
        sources = json.loads(manifest_path.read_text("utf-8"))["sources"]
    except (OSError, ValueError, KeyError) as exc:
        raise AlpacacotError(f"{manifest_path}: not a built collection ({exc})") from exc
    rows = []
    for key in keys or list(sources):
        src = sources.get(key)
        if src is None:
            raise AlpacacotError(f"{key!r} is not in {manifest_path}; build it first")
        counts, langs = src["counts"], src["lang_counts"]
        total = sum(langs.values()) or 1
        rows.append(
            {
                "key": key,
                "read": counts["read"],
                "written": counts["written"],
                "rejected": counts["rejected"],
                "languages": ", ".join(f"{k} {v / total:.0%}" for k, v in langs.items() if v),
                "license": src["license"],
            }
        )
    return rows


def report_markdown(rows: list[dict[str, Any]]) -> str:
    head = "| key | read | written | rejected | languages | licence |\n|---|--:|--:|--:|---|---|\n"
    body = "".join(
        f"| `{r['key']}` | {r['read']:,} | {r['written']:,} | {r['rejected']:,} | "
        f"{r['languages']} | {r['license']} |\n"
        for r in rows
    )
    return head + body


def changed(
    ref: Annotated[str, typer.Argument(help="Git ref to compare with, e.g. origin/main.")],
    catalog: Annotated[
        Path | None, typer.Option("--catalog", help="Catalog file (default: the bundled one).")
    ] = None,
) -> None:
    """Print the catalog keys whose entry or sample changed since REF, one per line."""
    from alpacacot.cli import load_catalog_or_exit

    cat = load_catalog_or_exit(catalog)
    try:
        keys = changed_keys(cat, ref)
    except AlpacacotError as exc:
        _fail(exc)
    for key in keys:
        typer.echo(key)


def report(
    out: Annotated[Path, typer.Argument(help="A built collection (the --out of build).")],
    keys: Annotated[list[str] | None, typer.Argument(help="Only these keys.")] = None,
) -> None:
    """Print a Markdown table of the built keys: records, rejects, languages, licence."""
    try:
        rows = report_rows(out, keys or None)
    except AlpacacotError as exc:
        _fail(exc)
    typer.echo(report_markdown(rows), nl=False)


def _fail(exc: AlpacacotError) -> NoReturn:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add `changed` and `report` to the `alpacacot-data` app."""
    app.command()(changed)
    app.command()(report)
