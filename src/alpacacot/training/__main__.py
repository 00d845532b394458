"""`python -m alpacacot.training [train options]`: the same `train` command, for torchrun.

torchrun --nproc_per_node 2 -m alpacacot.training --model_type llama ...
python3 -m torch.distributed.launch --nproc_per_node 2 -m alpacacot.training --model_type llama ...
"""

from __future__ import annotations

import typer

from alpacacot.training.commands import train
from alpacacot.training.seed_args import SeedArgsCommand

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
app.command(cls=SeedArgsCommand)(train)

if __name__ == "__main__":
    app()
