"""The curation passes' one door to the shared executors (`alpacacot.executors`).

Curation maps a plain function over per-shard units; this module runs it on the executor the user
chose (in-process, local worker processes, or Ray), results in unit order, the same way the build
runs its units. A unit whose worker is lost is rerun by the executor; one lost every time fails the
run with `WorkerLost`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

from alpacacot.errors import WorkerLost
from alpacacot.executors import close_executor, get_executor

U = TypeVar("U")
R = TypeVar("R")


def _plain(fn: Callable[[Any], Any], unit: Any, _report: Callable[[int], None]) -> Any:
    """Adapt `fn(unit)` to the executors' `fn(unit, report)` (module level, so it pickles)."""
    return fn(unit)


def map_units(
    fn: Callable[[U], R],
    units: Sequence[U],
    *,
    workers: int = 1,
    on_done: Callable[[int, R], None] | None = None,
    keep: bool = True,
    executor: str = "local",
    address: str | None = None,
) -> list[R]:
    """`[fn(u) for u in units]` on `executor` with `workers` units at once; `on_done(i, result)`
    in unit order as each comes back. With `keep=False` the results are only handed to `on_done`
    (the list holds None), so a caller that writes them as they come holds one unit's result at a
    time."""
    results: list[Any] = [None] * len(units)
    if not units:
        return results
    runner = get_executor(executor, workers if len(units) > 1 else 1, address)
    try:
        for i, result in enumerate(runner.map(partial(_plain, fn), units)):
            if isinstance(result, WorkerLost):
                raise result
            if on_done:
                on_done(i, result)
            results[i] = result if keep else None
    finally:
        close_executor(runner)
    return results
