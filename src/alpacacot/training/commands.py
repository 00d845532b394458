"""CLI commands of the trainer: train, generate, chat, merge, predict.

Heavy libraries (torch, transformers, peft) are imported inside the commands only. The options of
`train` are generated from `TrainConfig`, so the CLI, `--config FILE.yaml` and the manifest share
one table of names, defaults and help texts.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from alpacacot.training.config import FIELDS, TrainingError, build_config, field_default
from alpacacot.training.seed_args import SeedArgsCommand

log = logging.getLogger("alpacacot.training")

_TYPES: dict[str, Any] = {
    "bool": bool,
    "int": int,
    "float": float,
    "str": str,
    "str | None": str,
    "int | None": int,
    "list[str]": list[str],
}


def setup_logging() -> None:
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s %(levelname)s [rank {rank}] %(name)s: %(message)s"
        if "RANK" in os.environ
        else "%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # The app may have configured logging already (then basicConfig does nothing): still show
    # the trainer's progress messages on rank 0.
    log.setLevel(logging.INFO if rank == 0 else logging.WARNING)


def _fail(err: Exception) -> typer.Exit:
    typer.echo(f"error: {err}", err=True)
    return typer.Exit(2)


def _train_signature() -> inspect.Signature:
    params = [
        inspect.Parameter(
            "config",
            inspect.Parameter.KEYWORD_ONLY,
            default=typer.Option(
                None,
                "--config",
                help="YAML file with any of the options below (same names); flags override it.",
                show_default=False,
            ),
            annotation=Path | None,
        ),
        inspect.Parameter(
            "local_rank",
            inspect.Parameter.KEYWORD_ONLY,
            # torch.distributed.launch appends --local-rank=N (older torch: --local_rank=N).
            default=typer.Option(None, "--local_rank", "--local-rank", hidden=True),
            annotation=int | None,
        ),
    ]
    for name, f in FIELDS.items():
        default = field_default(name)
        shown = "none" if default in (None, []) else default
        kind = _TYPES[str(f.type)]
        if kind is bool:
            decl = f"--{name}/--no_{name}"
        else:
            decl = f"--{name}"
        option = typer.Option(None, decl, help=f.metadata["help"], show_default=str(shown))
        params.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind | None
            )
        )
    return inspect.Signature(params)


def train(**kwargs: Any) -> None:
    """Fine-tune a LoRA adapter on catalog keys or record files.

    Example: alpacacot-data train --model_type llama --model_name_or_path DIR
    --data alpaca-belle-cot --collection BUILD_DIR --output_dir out/
    """
    local_rank = kwargs.pop("local_rank", None)
    if local_rank is not None and "WORLD_SIZE" in os.environ:
        # torch.distributed.launch also sets LOCAL_RANK in the environment (which the trainer
        # reads); the flag fills it in when a launcher did not. Alone, it changes nothing.
        os.environ.setdefault("LOCAL_RANK", str(local_rank))
    setup_logging()
    config_file = kwargs.pop("config", None)
    try:
        cfg = build_config(kwargs, config_file)
        from alpacacot.training.train import run_training

        run_training(cfg)
    except TrainingError as err:
        raise _fail(err) from err


train.__signature__ = _train_signature()  # type: ignore[attr-defined]


# Options shared by generate, chat, merge and predict: one definition, one help text.
ModelOpt = Annotated[
    str | None,
    typer.Option(
        "--model", help="Base model directory or Hub id", show_default="from the adapter's manifest"
    ),
]
AdapterOpt = Annotated[
    str | None, typer.Option("--adapter", help="LoRA adapter directory (a train --output_dir)")
]
ModelTypeOpt = Annotated[
    str | None,
    typer.Option(
        "--model_type", help="Registry model type", show_default="from the manifest, else llama"
    ),
]
TemperatureOpt = Annotated[float, typer.Option("--temperature", help="0 = greedy decoding.")]
RemoteCodeOpt = Annotated[
    bool, typer.Option("--trust_remote_code", help="Allow the model's own code from the Hub.")
]


def generate(
    prompt: str = typer.Argument(..., help="The instruction to answer."),
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    input_: str = typer.Option("", "--input", help="Optional input/context for the instruction."),
    model_type: ModelTypeOpt = None,
    prompt_template: str | None = typer.Option(
        None,
        "--prompt_template",
        help="Template name",
        show_default="from the manifest or registry",
    ),
    max_new_tokens: int = typer.Option(128, "--max_new_tokens", help="Tokens to generate."),
    temperature: TemperatureOpt = 0.0,
    trust_remote_code: RemoteCodeOpt = False,
) -> None:
    """Answer one prompt with a base model plus an adapter."""
    setup_logging()
    from alpacacot.training.infer import generate as run_generate
    from alpacacot.training.infer import load_for_inference

    try:
        loaded = load_for_inference(
            model,
            adapter,
            model_type=model_type,
            prompt_template=prompt_template,
            trust_remote_code=trust_remote_code,
        )
    except TrainingError as err:
        raise _fail(err) from err
    answer = run_generate(
        loaded,
        [{"instruction": prompt, "input": input_}],
        max_new_tokens=max_new_tokens,
        temperature=temperature,
    )[0]
    typer.echo(answer)


def chat(
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    model_type: ModelTypeOpt = None,
    max_new_tokens: int = typer.Option(256, "--max_new_tokens", help="Tokens per answer."),
    temperature: TemperatureOpt = 0.0,
    trust_remote_code: RemoteCodeOpt = False,
) -> None:
    """Talk with the model; earlier turns are kept as history. An empty line or 'exit' ends."""
    setup_logging()
    from alpacacot.training.infer import chat_turns, load_for_inference

    try:
        loaded = load_for_inference(
            model, adapter, model_type=model_type, trust_remote_code=trust_remote_code
        )
    except TrainingError as err:
        raise _fail(err) from err

    def lines():
        interactive = sys.stdin.isatty()
        while True:
            if interactive:
                typer.echo("you> ", nl=False)
            line = sys.stdin.readline()
            if not line or line.strip() in ("", "exit", "quit"):
                return
            yield line.strip()

    for answer in chat_turns(
        loaded, lines(), max_new_tokens=max_new_tokens, temperature=temperature
    ):
        typer.echo(f"model> {answer}")


def merge(
    adapter: str = typer.Option(..., "--adapter", help="LoRA adapter directory."),
    out: str = typer.Option(..., "--out", help="Directory for the merged full model."),
    model: ModelOpt = None,
    trust_remote_code: RemoteCodeOpt = False,
) -> None:
    """Merge an adapter into its base model and save the full model with the tokenizer."""
    setup_logging()
    from alpacacot.training.infer import merge_adapter

    try:
        path = merge_adapter(model, adapter, out, trust_remote_code=trust_remote_code)
    except TrainingError as err:
        raise _fail(err) from err
    log.info("merged model written to %s", path)


def predict(
    input_path: str = typer.Option(
        ..., "--input", help="json/jsonl/parquet records with instruction (input, history optional)"
    ),
    output_path: str = typer.Option(..., "--output", help="JSON Lines: each record + prediction."),
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    model_type: ModelTypeOpt = None,
    batch_size: int = typer.Option(8, "--batch_size", help="Prompts generated together."),
    max_new_tokens: int = typer.Option(128, "--max_new_tokens", help="Tokens per answer."),
    temperature: TemperatureOpt = 0.0,
    trust_remote_code: RemoteCodeOpt = False,
) -> None:
    """Batch prediction over a file of records, written as JSON Lines."""
    setup_logging()
    from alpacacot.training.infer import load_for_inference, predict_file

    try:
        loaded = load_for_inference(
            model, adapter, model_type=model_type, trust_remote_code=trust_remote_code
        )
        n = predict_file(
            loaded,
            input_path,
            output_path,
            batch_size=batch_size,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
        )
    except TrainingError as err:
        raise _fail(err) from err
    log.info("%d predictions written to %s", n, output_path)


def register(app: typer.Typer) -> None:
    """Add the trainer's commands to the `alpacacot-data` app."""
    app.command("train", cls=SeedArgsCommand)(train)
    app.command("generate")(generate)
    app.command("chat")(chat)
    app.command("merge")(merge)
    app.command("predict")(predict)
    from alpacacot.training.eval_commands import eval_command

    app.command("eval")(eval_command)
