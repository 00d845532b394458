"""One function that maps a picklable function over work units, results in unit order.

A small local stand-in for `alpacacot.executors` (branch `scaleout`): in-process for one worker,
a process pool otherwise. The curation passes only call `map_units`, so moving them onto the
shared executors (local processes, Ray) is a change to this file alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

U = TypeVar("U")
R = TypeVar("R")


def map_units(
    fn: Callable[[U], R],
    units: Sequence[U],
    *,
    workers: int = 1,
    on_done: Callable[[int, R], None] | None = None,
    keep: bool = True,
) -> list[R]:
    """`[fn(u) for u in units]`, on `workers` processes; `on_done(i, result)` in unit order as
    each finishes. With `keep=False` the results are only handed to `on_done` (the list holds
    None), so a caller that writes them as they come holds one unit's result at a time."""
    results: list[Any] = [None] * len(units)
    if workers <= 1 or len(units) <= 1:
        for i, unit in enumerate(units):
            result = fn(unit)
            if on_done:
                on_done(i, result)
            results[i] = result if keep else None
        return results
    with ProcessPoolExecutor(max_workers=min(workers, len(units))) as pool:
        for i, result in enumerate(pool.map(fn, units)):
            if on_done:
                on_done(i, result)
            results[i] = result if keep else None
    return results
