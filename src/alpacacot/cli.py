"""The `alpacacot-data` command line."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alpacacot.curation.commands import register as register_curation
from alpacacot.errors import AlpacacotError
from alpacacot.hub.commands import register as register_hub
from alpacacot.review import register as register_review
from alpacacot.training.commands import register as register_training

app = typer.Typer(
    name="alpacacot-data",
    help="Build, inspect, publish and train on the unified instruction-tuning collection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)

CatalogOpt = Annotated[
    Path | None,
    typer.Option(
        "--catalog",
        help="Catalog YAML file. Default: the catalog bundled with alpacacot.",
        dir_okay=False,
    ),
]
AllowOutsideOpt = Annotated[
    bool,
    typer.Option(
        "--allow-outside-catalog",
        help="Let the catalog's local paths (source, files, sample) point outside its folder, "
        "for a catalog you trust. Special files (/proc, /sys, /dev) stay refused.",
    ),
]


def fail(message: str, code: int = 1) -> typer.Exit:
    # escape: a message quoting a rule such as [a-z0-9_] would otherwise lose it as rich markup
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def load_catalog_or_exit(path: Path | None, allow_outside: bool = False):
    from alpacacot.catalog import load_catalog

    try:
        return load_catalog(path, allow_outside=allow_outside)
    except AlpacacotError as exc:
        raise fail(str(exc)) from None


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug messages.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command()
def build(
    keys: Annotated[
        list[str] | None,
        typer.Argument(
            help="Dataset keys or mixes to build (e.g. alpaca cot, or alpaca-belle-cot). "
            "Default: every dataset of the catalog."
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder of the collection.")
    ] = Path("out"),
    catalog: CatalogOpt = None,
    allow_outside: AllowOutsideOpt = False,
    sample: Annotated[
        bool,
        typer.Option(
            "--sample",
            help="Build from the small real excerpts shipped with the package (no network).",
        ),
    ] = False,
    offline: Annotated[
        bool,
        typer.Option(
            "--offline", help="Use only files already in the cache; never touch the network."
        ),
    ] = False,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir", help="Download cache. Default: $ALPACACOT_CACHE or ~/.cache/alpacacot."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Rebuild sources even when their inputs and code did not change."
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            "-j",
            min=1,
            help="Work units built at once (a source is cut into units: files, parts of large "
            "files). Default: one per CPU core this process may use, at most 8; 1 builds in this "
            "process. With --executor ray: the CPUs of a Ray started for the run.",
            show_default=False,
        ),
    ] = None,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="Where units run: local (worker processes on this machine) or ray (Ray tasks; "
            'needs the Ray extra: pip install "alpacacot\\[ray]").',
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="With --executor ray: auto (the cluster this machine is part of) or HOST:PORT "
            "of a running cluster's head. Default: start a Ray on this machine for the run.",
        ),
    ] = None,
    lang_backend: Annotated[
        str,
        typer.Option(
            "--lang-backend",
            help="Language detector for non-CJK text: fasttext, langdetect or none.",
        ),
    ] = "fasttext",
    max_shard_mb: Annotated[
        int,
        typer.Option(
            "--max-shard-mb", min=1, help="Bound on the text held by one parquet shard, in MB."
        ),
    ] = 256,
    subset: Annotated[
        list[str] | None,
        typer.Option(
            "--subset",
            help="KEY=NAME[,NAME...]: build only these upstream parts of KEY (e.g. xp3=zh for one "
            "xP3 language); overrides the entry's `subsets:`. Repeat for several keys.",
        ),
    ] = None,
) -> None:
    """Regenerate the unified collection: parquet shards, manifest.json, rejects/ and README.md."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from alpacacot.build import BuildRequest, default_workers
    from alpacacot.build import build as run_build
    from alpacacot.executors import EXECUTORS
    from alpacacot.lang import BACKENDS
    from alpacacot.pipeline import BuildOptions

    if lang_backend not in BACKENDS:
        raise fail(f"--lang-backend must be one of {', '.join(BACKENDS)}, not {lang_backend!r}")
    cat = load_catalog_or_exit(catalog, allow_outside)
    try:
        resolved: list[str] = []
        for name in keys or list(cat.datasets):
            resolved += [k for k in cat.resolve(name) if k not in resolved]
        for choice in subset or []:
            _select_subsets(cat, choice, resolved)
    except AlpacacotError as exc:
        raise fail(str(exc)) from None
    request = BuildRequest(
        keys=resolved,
        out_dir=out,
        sample=sample,
        offline=offline,
        cache_dir=cache_dir,
        force=force,
        workers=workers or default_workers(),
        executor=executor,
        ray_address=ray_address,
        options=BuildOptions(lang_backend=lang_backend, max_shard_bytes=max_shard_mb * 1024 * 1024),
    )
    progress = Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description:<20}"),
        BarColumn(),
        TextColumn("{task.completed:>9,} records"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    tasks: dict[str, int] = {}

    def task_for(key: str) -> int:
        if key not in tasks:
            tasks[key] = progress.add_task(key, total=None, status="")
        return tasks[key]

    def on_start(key: str, nbytes: int) -> None:
        progress.update(task_for(key), status=f"reading {nbytes / 1e6:,.1f} MB")

    def on_progress(key: str, n: int) -> None:
        progress.advance(task_for(key), n)

    def on_done(key: str, status: str) -> None:
        color = {"built": "green", "unchanged": "cyan", "failed": "red"}[status]
        task = task_for(key)
        progress.update(
            task,
            total=1,
            completed=progress.tasks[task].completed or 0,
            status=f"[{color}]{status}",
        )

    if executor not in EXECUTORS:
        raise fail(f"--executor must be one of {', '.join(EXECUTORS)}, not {executor!r}")
    if ray_address and executor != "ray":
        raise fail("--ray-address goes with --executor ray")
    if executor == "ray" and workers is None and ray_address:
        request.workers = 0  # the cluster's CPUs
    try:
        with progress:
            report = run_build(
                cat, request, on_start=on_start, on_progress=on_progress, on_done=on_done
            )
    except AlpacacotError as exc:  # another build holds --out; Ray missing
        raise fail(str(exc)) from None
    except KeyboardInterrupt:
        raise fail(
            f"interrupted: the sources that finished are recorded in {out / 'manifest.json'} "
            "and the others keep their previous output; run the same command again to build "
            "the rest (finished sources are skipped).",
            code=130,
        ) from None
    sources = report.manifest["sources"]
    table = Table(title=f"Collection in {out}", show_lines=False)
    for col in ("key", "read", "written", "dups", "rejects", "lang", "status"):
        numeric = col in {"read", "written", "dups", "rejects"}
        table.add_column(
            col,
            justify="right" if numeric else "left",
            no_wrap=col != "lang",
        )
    for key in (k for k in resolved if k not in report.unsampled):
        status = (
            "built"
            if key in report.built
            else "unchanged"
            if key in report.skipped
            else "[red]failed"
        )
        s = sources.get(key)
        if s and key not in report.failed:
            c = s["counts"]
            langs = ", ".join(f"{k} {v}" for k, v in list(s["lang_counts"].items())[:3])
            table.add_row(
                key,
                f"{c['read']:,}",
                f"{c['written']:,}",
                f"{c['duplicates']:,}",
                f"{c['rejected']:,}",
                langs,
                status,
            )
        else:
            table.add_row(key, "", "", "", "", "", status)
    Console().print(table)
    for key, reason in report.unsampled.items():
        console.print(
            f"note: {key} skipped: no bundled excerpt ({reason}); build it from upstream, "
            "without --sample",
            highlight=False,
            soft_wrap=True,
        )
    for key, message in report.failed.items():
        console.print(
            f"[bold red]{key} failed:[/] {escape(message)}", highlight=False, soft_wrap=True
        )
    if report.failed:
        raise typer.Exit(1)


def _upstream(entry) -> str:
    """Where an entry's files come from, in a few words: the repo, the URL, or the repos of its
    files (GitHub raw URLs shown as `org/repo`) with their count."""
    import re

    src = entry.source
    if src.get("repo") or src.get("url") or src.get("path"):
        return src.get("repo") or src.get("url") or src.get("path")
    files = entry.all_files()
    repos = []
    for sf in files:
        raw = re.match(r"https://raw\.githubusercontent\.com/([^/]+/[^/]+)/", sf.location)
        repo = sf.repo or (f"github.com/{raw.group(1)}" if raw else sf.location)
        if repo not in repos:
            repos.append(repo)
    return f"{', '.join(repos)} ({len(files)} files)"


def _select_subsets(cat, choice: str, resolved: list[str]) -> None:
    """Apply one `--subset KEY=a,b` to the catalog in memory (the build sees only those files)."""
    from alpacacot.errors import CatalogError

    key, sep, names = choice.partition("=")
    parts = [n.strip() for n in names.split(",") if n.strip()]
    if not sep or not parts:
        raise CatalogError(f"--subset {choice!r}: write KEY=NAME[,NAME...], e.g. --subset xp3=zh")
    if key not in resolved:
        raise CatalogError(
            f"--subset {choice!r}: {key!r} is not among the keys being built "
            f"({', '.join(resolved)})"
        )
    cat.datasets[key] = cat.datasets[key].with_subsets(parts)


@app.command("list")
def list_(
    catalog: CatalogOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the catalog as JSON.")] = False,
) -> None:
    """Show the catalog: every dataset key with its languages, tags, licence and source."""
    cat = load_catalog_or_exit(catalog)
    if as_json:
        data = {
            "datasets": {k: e.raw for k, e in cat.datasets.items()},
            "mixes": cat.mixes,
        }
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return
    table = Table(title=f"Catalog {cat.path}")
    for col in (
        "key",
        "description",
        "lang",
        "tags",
        "license",
        "size",
        "alpaca-cot row",
        "format",
        "normalizer",
        "source",
    ):
        table.add_column(
            col,
            overflow="fold",
            justify="right" if col == "size" else "left",
            no_wrap=col == "key",
        )
    for key, e in cat.datasets.items():
        src = e.source
        where = _upstream(e)
        tags = "/".join(e.record_tags)
        table.add_row(
            key,
            e.description,
            ",".join(e.languages),
            tags,
            e.license,
            f"{e.size:,}" if e.size is not None else "",
            e.alpaca_cot,
            e.format,
            e.normalizer,
            f"{src['kind']}: {where}" + (f" ({', '.join(e.subsets)})" if e.subsets else ""),
        )
    console_out = Console()
    console_out.print(table)
    if cat.mixes:
        mixes = Table(title="Mixes")
        mixes.add_column("mix")
        mixes.add_column("datasets")
        for name in cat.mixes:
            mixes.add_row(name, " + ".join(cat.resolve(name)))
        console_out.print(mixes)


@app.command()
def validate(
    catalog: CatalogOpt = None,
    allow_outside: AllowOutsideOpt = False,
    keys: Annotated[list[str] | None, typer.Argument(help="Only these keys. Default: all.")] = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="What a catalog pull request must pass: also fail on unpinned sources that carry "
            "an `unpinned:` reason, and on entries without a homepage.",
        ),
    ] = False,
    changed_from: Annotated[
        str | None,
        typer.Option(
            "--changed-from",
            metavar="REF",
            help="Check only the entries whose entry or sample changed since this git ref.",
        ),
    ] = None,
) -> None:
    """Check the catalog and schemas, and that every entry's sample normalizes cleanly."""
    from alpacacot.validate import validate_catalog

    cat = load_catalog_or_exit(catalog, allow_outside)
    if changed_from:
        from alpacacot.review import changed_keys

        try:
            keys = [k for k in changed_keys(cat, changed_from) if not keys or k in keys]
        except AlpacacotError as exc:
            raise fail(str(exc)) from None
        if not keys:
            console.print(f"[green]ok:[/] no catalog entry changed since {changed_from}")
            return
        console.print(f"changed since {changed_from}: {', '.join(keys)}", highlight=False)
    problems, notes = validate_catalog(cat, keys or None, strict=strict)
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    for problem in problems:
        console.print(f"[bold red]error:[/] {escape(problem)}", highlight=False, soft_wrap=True)
    checked = len(keys or cat.datasets)
    if problems:
        console.print(f"[bold red]{len(problems)} problem(s)[/] in {checked} entries of {cat.path}")
        raise typer.Exit(1)
    console.print(f"[green]ok:[/] {checked} entries of {cat.path} are valid")


register_hub(app)
register_curation(app)
register_training(app)
register_review(app)


def main() -> None:
    from alpacacot.collectors.url import install_sigterm_cleanup

    install_sigterm_cleanup()  # downloads in collector threads leave no .part file on SIGTERM
    try:
        app()
    except AlpacacotError as exc:
        console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
