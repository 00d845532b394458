"""The Alpaca-CoT seed's argument forms, rewritten into the ones click parses.

The seed's `uniform_finetune.py` uses argparse: `--data a b c` and `--lora_target_modules q_proj
v_proj` take several values (`nargs="*"`), `--resume_from_checkpoint` may come alone (resume from the
latest checkpoint), and `torch.distributed.launch` appends `--local-rank=N` (or `--local_rank N`).
Scripts full of these forms keep working: the command's argument list is rewritten before click
parses it. Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click
from typer.core import TyperCommand

# Options that take one or more values, as the seed's argparse `nargs="*"`.
MULTI_VALUE = ("--data", "--lora_target_modules")
# Options whose value may be left out, and what they mean then.
OPTIONAL_VALUE = {"--resume_from_checkpoint": "latest"}


def _is_option(token: str) -> bool:
    return token.startswith("--") or (token.startswith("-") and len(token) == 2)


def expand_seed_args(args: Sequence[str]) -> list[str]:
    """`--data a b` -> `--data a --data b`; a bare `--resume_from_checkpoint` -> `... latest`.

    Tokens after `--` are left alone.
    """
    out: list[str] = []
    i = 0
    args = list(args)
    while i < len(args):
        token = args[i]
        if token == "--":
            out.extend(args[i:])
            break
        name = token.split("=", 1)[0]
        if name in MULTI_VALUE:
            if "=" in token:
                out.append(token)
                i += 1
            else:
                out.append(token)
                i += 1
                if i < len(args):
                    out.append(args[i])
                    i += 1
            while i < len(args) and not _is_option(args[i]):
                out.extend([name, args[i]])
                i += 1
            continue
        if token in OPTIONAL_VALUE:
            out.append(token)
            i += 1
            if i >= len(args) or _is_option(args[i]):
                out.append(OPTIONAL_VALUE[token])
            continue
        out.append(token)
        i += 1
    return out


class SeedArgsCommand(TyperCommand):
    """A typer command that accepts the seed's argparse forms (see `expand_seed_args`)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> Any:
        return super().parse_args(ctx, expand_seed_args(args))
