"""Where work units run: in this process, in local worker processes, or on a Ray cluster.

    executor = get_executor("local", workers=2)
    for result in executor.map(fn, units, progress=on_progress):
        ...

`fn(unit, report)` must be picklable (a module-level function, or a functools.partial of one);
results come back in the order of `units`; a unit whose worker is lost is run again. See
`base.py` for the contract. Executors know nothing of catalogs, records or stages.
"""

from __future__ import annotations

from alpacacot.errors import AlpacacotError
from alpacacot.executors.base import Executor, ProgressCallback, UnitFunction, WorkerLost
from alpacacot.executors.inprocess import InProcessExecutor
from alpacacot.executors.local import LocalExecutor

EXECUTORS = ("local", "ray")

__all__ = [
    "EXECUTORS",
    "Executor",
    "InProcessExecutor",
    "LocalExecutor",
    "ProgressCallback",
    "UnitFunction",
    "WorkerLost",
    "close_executor",
    "get_executor",
]


def get_executor(name: str = "local", workers: int = 1, address: str | None = None) -> Executor:
    """The executor called `name` with `workers` units at once.

    - "local": worker processes on this machine; with one worker, units run in this process.
    - "ray": Ray tasks; `address` is "auto", "HOST:PORT" or None (a Ray started for this run with
      `workers` CPUs). Call `close_executor` when done, to stop a Ray started here.
    """
    if name == "local":
        if address:
            raise AlpacacotError("--ray-address goes with --executor ray, not --executor local")
        return InProcessExecutor() if workers <= 1 else LocalExecutor(workers)
    if name == "ray":
        from alpacacot.executors.ray import RayExecutor

        return RayExecutor(workers, address)
    raise AlpacacotError(f"unknown executor {name!r}; use one of {', '.join(EXECUTORS)}")


def close_executor(executor: Executor) -> None:
    """Release what the executor holds beyond a `map` (a Ray it started)."""
    close = getattr(executor, "close", None)
    if close:
        close()
