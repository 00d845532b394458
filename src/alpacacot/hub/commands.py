"""CLI commands of the hub: publish, stats, export, new.

Each command is a thin shell: parse options, show progress, turn an `AlpacacotError` into one
message and exit code 1. The work lives in publish.py, stats.py, export.py and scaffold.py, which
are imported inside the commands so `alpacacot-data --help` stays fast.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer

CollectionDir = Annotated[
    Path,
    typer.Argument(
        help="A built collection (the --out of `alpacacot-data build`).",
        exists=True,
        file_okay=False,
        dir_okay=True,
    ),
]


class ExportFormat(str, Enum):
    llamafactory = "llamafactory"
    sharegpt = "sharegpt"
    jsonl = "jsonl"
    llamafactory_ranking = "llamafactory_ranking"
    dpo = "dpo"


class SourceFormat(str, Enum):
    json = "json"
    jsonl = "jsonl"
    tsv = "tsv"
    csv = "csv"
    parquet = "parquet"


class TaskTag(str, Enum):
    MT = "MT"
    TS = "TS"


class GenTag(str, Enum):
    HG = "HG"
    SI = "SI"
    MIX = "MIX"
    COL = "COL"


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, soft_wrap=True, highlight=False)


def fail(message: str) -> NoReturn:
    """Print one error message on stderr and exit 1."""
    from rich.markup import escape

    _console(stderr=True).print(f"[bold red]error:[/] {escape(message)}", markup=True)
    raise typer.Exit(1)


def publish(
    out_dir: CollectionDir,
    repo: Annotated[str, typer.Option("--repo", help="Dataset repo on the Hub, ORG/NAME.")],
    revision: Annotated[
        str | None,
        typer.Option(help="Branch to commit to (created from main if missing). Default: main."),
    ] = None,
    create_pr: Annotated[
        bool, typer.Option("--create-pr", help="Open a pull request instead of committing.")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Print the operations (add/change/delete) and touch nothing."
        ),
    ] = False,
    private: Annotated[
        bool, typer.Option("--private", help="Create the repo private (ignored if it exists).")
    ] = False,
) -> None:
    """Upload a built collection to a Hub dataset repo in one commit of only what changed.

    Creates the repo when missing; deletes shards the build no longer has, in the same commit.

    The token comes from HF_TOKEN or `hf auth login`; it is never printed.
    """
    from alpacacot.errors import AlpacacotError
    from alpacacot.hub import publish as pub
    from alpacacot.hub.collection import read_manifest

    console = _console()
    try:
        pub.check_repo_id(repo)
        from huggingface_hub import HfApi

        api = HfApi(endpoint=pub.hub_endpoint())
        target = revision or "main"
        if not dry_run:
            console.print(f"Publishing {out_dir} to {repo} ({target}) at {pub.hub_endpoint()}")
            pub.prepare_remote(api, repo, revision, private=private, create_pr=create_pr)
        with _progress(console, "hashing files") as bar:
            plan = pub.plan_publish(
                api, out_dir, repo, revision, dry_run=dry_run, progress=lambda _: bar.advance()
            )
        _print_plan(console, plan, pub.human_size)
        if read_manifest(out_dir).get("sample"):
            console.print(
                "[yellow]note:[/] this build was made from the bundled samples (--sample), "
                "not the full upstream files."
            )
        if dry_run:
            console.print("dry run: nothing was sent to the Hub.")
            return
        if not plan.changes():
            console.print(f"Nothing to publish: {repo} ({target}) already holds this build.")
            return
        info = pub.execute(api, out_dir, repo, plan, revision=revision, create_pr=create_pr)
    except AlpacacotError as err:
        fail(str(err))
    except Exception as err:  # noqa: BLE001 - every Hub failure gets one clear message
        fail(pub.explain(err, repo, revision))
    url = getattr(info, "pr_url", None) or getattr(info, "commit_url", "")
    what = "Opened pull request" if create_pr else "Committed"
    console.print(f"{what}: {url}")


def _print_plan(console, plan, human_size) -> None:
    if plan.note:
        note = plan.note.rstrip(". ")
        tail = "; every file is listed as add" if plan.parent_commit is None else ""
        console.print(f"[yellow]note:[/] {note}{tail}.")
    width = max((len(op.path) for op in plan.operations), default=0)
    for op in plan.operations:
        if op.kind == "unchanged":
            continue
        console.print(f"{op.kind:<7} {op.path:<{width}}  {human_size(op.size):>9}", markup=False)
    console.print(
        f"{plan.count('add')} to add, {plan.count('change')} to change, "
        f"{plan.count('delete')} to delete, {plan.count('unchanged')} unchanged",
    )


def _progress(console, label: str, total: int | None = None):
    """A rich progress bar with one task; `.advance(n)` moves it."""
    from contextlib import contextmanager

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    @contextmanager
    def bar():
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task(label, total=total)

            class Bar:
                def advance(self, n: int = 1, description: str | None = None) -> None:
                    if description:
                        progress.update(task, description=description)
                    progress.advance(task, n)

            yield Bar()

    return bar()


def stats(
    out_dir: CollectionDir,
    png: Annotated[
        Path | None,
        typer.Option(
            help="Where to write the figure. Default: DIR/stats.png, and the card is refreshed "
            "to show it."
        ),
    ] = None,
    tokenizer: Annotated[
        str | None,
        typer.Option(help="Also count lengths in tokens of this tokenizer (Hub id or local path)."),
    ] = None,
) -> None:
    """Records, languages, lengths, duplicates and rejects per source: a table and a PNG figure."""
    from alpacacot.errors import AlpacacotError
    from alpacacot.hub import stats as st
    from alpacacot.hub.collection import read_manifest

    console = _console()
    try:
        manifest = read_manifest(out_dir)
        total = sum(
            sum(int(s.get("records", 0)) for s in src.get("shards", []))
            for src in manifest["sources"].values()
        )
        tok = st.load_tokenizer(tokenizer) if tokenizer else None
        with _progress(console, "reading shards", total=total) as bar:
            result = st.collect_stats(
                out_dir, tok, progress=lambda key, n: bar.advance(n, f"reading {key}")
            )
        for table in st.stats_tables(result, with_tokens=tok is not None):
            console.print(table)
        target = png or out_dir / "stats.png"
        st.plot_stats(result, target)
        console.print(f"Figure written to {target}")
        if manifest.get("curation"):
            from alpacacot.curation.report import OVERLAP_FIGURE, plot_overlap, summary_tables

            for table in summary_tables(manifest["curation"]["summary"]):
                console.print(table)
            overlap = plot_overlap(manifest["curation"]["summary"], out_dir / OVERLAP_FIGURE)
            console.print(f"Near-duplicate heatmap written to {overlap}")
        if png is None or Path(png).resolve() == (out_dir / "stats.png").resolve():
            from alpacacot.card import refresh_card

            console.print(f"Card updated: {refresh_card(out_dir)}")
    except AlpacacotError as err:
        fail(str(err))


def export(
    out_dir: CollectionDir,
    to: Annotated[ExportFormat, typer.Option("--to", help="Output format.")],
    keys: Annotated[
        list[str] | None,
        typer.Argument(help="Keys or recipes to export. Default: every key of DIR."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder to write into. Default: DIR-<format> next to DIR."),
    ] = None,
) -> None:
    """Write training files plus the dataset_info.json LLaMA-Factory reads.

    llamafactory: alpaca columns (instruction, input, output, history).

    sharegpt: conversations of human/gpt turns.

    jsonl: OpenAI-style {"messages": [...]}, earlier turns expanded.

    llamafactory_ranking: preference pairs (instruction, input, chosen, rejected, history,
    system) with `ranking: true` in dataset_info.json; only records that have a rejected answer.

    dpo: TRL's DPO layout, {"prompt": [messages], "chosen": [...], "rejected": [...]}; only
    records that have a rejected answer.
    """
    from alpacacot.errors import AlpacacotError
    from alpacacot.hub.collection import read_manifest, select_keys
    from alpacacot.hub.export import export_collection, split_recipes

    console = _console()
    dest = out or out_dir.parent / f"{out_dir.name}-{to.value}"
    try:
        manifest = read_manifest(out_dir)
        recipes = split_recipes(keys)
        plain = [k for k in keys or [] if k not in recipes]
        selected = select_keys(manifest, plain) if plain or not recipes else []
        total = sum(
            sum(int(s.get("records", 0)) for s in manifest["sources"][k].get("shards", []))
            for k in selected
        )
        with _progress(console, "exporting", total=total or None) as bar:
            info = export_collection(
                out_dir,
                to.value,
                dest,
                [*selected, *recipes],
                progress=lambda key, n: bar.advance(n, f"exporting {key}"),
            )
    except AlpacacotError as err:
        fail(str(err))
    console.print(f"Wrote {len(info)} file(s) and dataset_info.json to {dest}")


def new(
    key: Annotated[str, typer.Argument(help="Catalog key: lowercase letters, digits and _.")],
    format: Annotated[SourceFormat, typer.Option("--format", help="Upstream file format.")],
    path: Annotated[
        Path | None, typer.Option("--path", help="A local upstream file (kept where it is).")
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="The upstream file's URL.")] = None,
    fields: Annotated[
        str | None,
        typer.Option(
            help="Field mapping, e.g. instruction=instruction,input=context,output=response. "
            "Default: guessed from the file's columns."
        ),
    ] = None,
    license: Annotated[
        str, typer.Option("--license", help="SPDX-like licence id, e.g. cc-by-sa-3.0.")
    ] = "unknown",
    catalog: Annotated[
        Path, typer.Option("--catalog", help="Catalog YAML to append to (created if missing).")
    ] = Path("catalog.yaml"),
    description: Annotated[
        str | None, typer.Option(help="One line on what the dataset is.")
    ] = None,
    language: Annotated[
        list[str] | None, typer.Option("--language", help="ISO 639-1 code(s); default: detected.")
    ] = None,
    normalizer: Annotated[
        bool,
        typer.Option("--normalizer", help="Also write a normalizer skeleton module and its test."),
    ] = False,
    task: Annotated[
        TaskTag, typer.Option(help="Alpaca-CoT task tag: MT multi-task, TS task-specific.")
    ] = TaskTag.MT,
    gen: Annotated[
        GenTag,
        typer.Option(
            help="Alpaca-CoT generation tag: HG human, SI self-instruct, MIX mixed, COL collected."
        ),
    ] = GenTag.SI,
    columns: Annotated[
        str | None,
        typer.Option(help="Column names of a headerless tsv/csv, comma-separated."),
    ] = None,
    rows: Annotated[int, typer.Option(help="Rows in the sample excerpt.")] = 20,
    code_root: Annotated[
        Path | None,
        typer.Option(
            help="Checkout to write the normalizer skeleton into (default: the one alpacacot "
            "runs from).",
            hidden=True,
        ),
    ] = None,
) -> None:
    """Add a dataset to a catalog: entry with sha256, sample excerpt, optional normalizer.

    No Python needed for any instruction/response layout: map its columns with --fields.

    Then run `alpacacot-data validate --catalog FILE` and `build --catalog FILE KEY`.
    """
    from alpacacot.errors import AlpacacotError
    from alpacacot.hub.scaffold import NewDataset, add_dataset

    console = _console()
    try:
        created = add_dataset(
            NewDataset(
                key=key,
                format=format.value,
                path=path,
                url=url,
                fields=fields,
                license=license,
                description=description,
                languages=language or [],
                normalizer=normalizer,
                rows=rows,
                task=task.value,
                gen=gen.value,
                columns=[c.strip() for c in columns.split(",")] if columns else None,
                code_root=code_root,
            ),
            catalog,
        )
    except AlpacacotError as err:
        fail(str(err))
    for what, where in created.items():
        console.print(f"{what}: {where}")
    if normalizer:
        console.print(
            f"Fill in {created['normalizer']}; every module in src/alpacacot/normalizers/ is "
            "imported by the build, so its @register name is found with no further edit."
        )
    # a --path outside the catalog's folder is the user's own choice: say the flag it needs
    outside = ""
    if path is not None and not path.resolve().is_relative_to(catalog.resolve().parent):
        outside = " --allow-outside-catalog"
    console.print(
        f"Next: review the entry in {catalog}, then run "
        f"`alpacacot-data validate{outside} --catalog {catalog}` and "
        f"`alpacacot-data build{outside} --catalog {catalog} --sample --out /tmp/try {key}`."
    )


def register(app: typer.Typer) -> None:
    """Add the hub's commands to the `alpacacot-data` app."""
    app.command()(publish)
    app.command()(stats)
    app.command()(export)
    app.command()(new)
