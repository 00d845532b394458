"""CLI commands of curation: `curate DIR` and `mix RECIPE --out DIR`.

Registered on the main app by `register(app)`, like the hub's commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, NoReturn

import typer

CollectionDir = Annotated[
    Path,
    typer.Argument(
        help="A collection built by `alpacacot-data build` (its --out folder).",
        exists=True,
        file_okay=False,
    ),
]


def _fail(message: str) -> NoReturn:
    from rich.console import Console

    Console(stderr=True, soft_wrap=True, highlight=False).print(
        f"[bold red]error:[/] {message}", markup=True
    )
    raise typer.Exit(1)


def curate(
    out_dir: CollectionDir,
    catalog: Annotated[
        Path | None, typer.Option(help="Catalog naming the benchmarks. Default: the build's.")
    ] = None,
    sample_benchmarks: Annotated[
        bool | None,
        typer.Option(
            "--sample-benchmarks/--full-benchmarks",
            help="Match against the benchmarks' bundled excerpts, or their full pinned files. "
            "Default: excerpts for a `build --sample` collection, full files otherwise.",
        ),
    ] = None,
    bands: Annotated[int, typer.Option(help="LSH bands.")] = 14,
    rows: Annotated[int, typer.Option(help="MinHash rows per band.")] = 8,
    ngram: Annotated[int, typer.Option(help="Word n-gram shingles (space-separated text).")] = 5,
    char_ngram: Annotated[int, typer.Option(help="Character n-gram shingles (CJK text).")] = 5,
    backend: Annotated[str, typer.Option(help="MinHash library: rensa or datasketch.")] = "rensa",
    decontam_n: Annotated[int, typer.Option(help="Decontamination n-gram length.")] = 13,
    refusals: Annotated[
        Path | None,
        typer.Option(
            help="File of refusal/boilerplate phrases, one per line (replaces the list).",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    workers: Annotated[int, typer.Option("--workers", "-j", help="Shards processed at once.")] = 1,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="Where the per-shard work runs: local (processes on this machine) or ray "
            "(needs the \\[ray] extra).",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="With --executor ray: auto or HOST:PORT of a running cluster; default a Ray "
            "started for the run.",
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(help="Download cache of benchmark files.")
    ] = None,
    offline: Annotated[bool, typer.Option(help="Never download benchmark files.")] = False,
    force: Annotated[bool, typer.Option(help="Redo every pass of every source.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Near-duplicates, decontamination and quality signals over a built collection.

    Writes DIR/curation/ (signals, clusters, contamination; keyed by record id), adds a `curation`
    section to the manifest and the card. Shards are never changed; a rerun redoes only the
    sources whose shards or settings changed.
    """
    from dataclasses import replace

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from alpacacot.catalog import load_catalog
    from alpacacot.curation.contamination import DecontamParams
    from alpacacot.curation.neardup import BACKENDS, NearDupParams
    from alpacacot.curation.report import summary_tables
    from alpacacot.curation.run import CurationParams
    from alpacacot.curation.run import curate as run_curate
    from alpacacot.curation.signals import SignalParams
    from alpacacot.errors import AlpacacotError

    if backend not in BACKENDS:
        _fail(f"--backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    signal_params = SignalParams()
    if refusals is not None:
        phrases = [p.strip().lower() for p in refusals.read_text("utf-8").splitlines() if p.strip()]
        signal_params = replace(signal_params, refusals=tuple(phrases))
    params = CurationParams(
        neardup=NearDupParams(
            bands=bands, rows=rows, word_ngram=ngram, char_ngram=char_ngram, backend=backend
        ),
        decontam=DecontamParams(n=decontam_n),
        signals=signal_params,
    )
    console = Console(stderr=True, soft_wrap=True, highlight=False)
    try:
        cat = load_catalog(catalog) if catalog else None
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("curating", total=None)
            report = run_curate(
                out_dir,
                catalog=cat,
                params=params,
                sample_benchmarks=sample_benchmarks,
                cache_dir=cache_dir,
                offline=offline,
                workers=workers,
                executor=executor,
                ray_address=ray_address,
                force=force,
                on_unit=lambda key, n: progress.update(
                    task, advance=n, description=f"curating {key}"
                ),
                total=lambda n: progress.update(task, total=n),
            )
    except AlpacacotError as err:
        _fail(str(err))
    if as_json:
        out = {"redone": report.redone, "reused": report.reused, **report.summary}
        typer.echo(json.dumps(out, indent=2, ensure_ascii=False))
        return
    out = Console(soft_wrap=True, highlight=False)
    for table in summary_tables(report.summary):
        out.print(table)
    if report.redone:
        out.print("Redone: " + "; ".join(f"{k} ({', '.join(v)})" for k, v in report.redone.items()))
    if report.reused:
        out.print(f"Unchanged, reused: {', '.join(report.reused)}")
    out.print(f"Curation written to {out_dir / 'curation'}; card updated.")


def mix(
    recipe: Annotated[
        str, typer.Argument(help="A recipe name of the catalog, or a recipe .yaml file.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder of the training set.")],
    collection: Annotated[
        Path, typer.Option(help="The curated collection (build --out, then curate).")
    ] = Path("out"),
    catalog: Annotated[Path | None, typer.Option(help="Catalog defining the recipe.")] = None,
) -> None:
    """Write a recipe's training set: DIR/train-00000-of-00001.parquet and DIR/manifest.json
    (the ids used, and per source how many records each rule removed)."""
    from alpacacot.catalog import load_catalog
    from alpacacot.curation.mix import write_mix
    from alpacacot.errors import AlpacacotError
    from alpacacot.recipes import find_recipe

    try:
        cat = load_catalog(catalog) if catalog else None
        found = find_recipe(recipe, cat)
        if found is None:
            known = ", ".join(sorted((cat or load_catalog()).recipes)) or "none"
            _fail(f"unknown recipe {recipe!r} (recipes: {known}; or pass a recipe .yaml file)")
        manifest = write_mix(found, collection, out)
    except AlpacacotError as err:
        _fail(str(err))
    typer.echo(
        f"{manifest['records']:,} records of {len(manifest['sources'])} source(s) written to {out}"
    )
    for key, c in manifest["sources"].items():
        rules = ", ".join(f"{r} {n:,}" for r, n in c["removed"].items() if n) or "nothing removed"
        typer.echo(f"  {key}: kept {c['kept']:,} of {c['read']:,} ({rules})")


def register(app: typer.Typer) -> None:
    """Add `curate` and `mix` to the `alpacacot-data` app."""
    app.command()(curate)
    app.command()(mix)
