"""What every executor offers: map a function over work units, results in unit order.

An executor knows nothing of what it runs (no catalog, record or stage): it takes an iterable of
picklable units and a picklable function `fn(unit, report)`, where `report(n)` tells the caller's
progress bars that the unit got `n` steps further. `map` yields `fn`'s results in the order of the
units, while later units already run, and reruns a unit whose worker was lost (killed, out of
memory, its machine gone). A unit that loses its worker every time it is tried gives a
`WorkerLost` as its result (returned, not raised: the caller fails that unit alone). An exception
raised by `fn` itself is not retried: it is raised from `map` at that unit's turn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from alpacacot.errors import WorkerLost

__all__ = ["Executor", "ProgressCallback", "UnitFunction", "WorkerLost", "no_progress"]

# fn(unit, report) -> result; report(n) adds n to the unit's progress.
UnitFunction = Callable[[Any, Callable[[int], None]], Any]
# progress(unit_index, n): unit `unit_index` (0-based, in the order of the units) did n more steps.
ProgressCallback = Callable[[int, int], None]


class Executor(Protocol):
    """Where work units run. `workers` is how many units run at once."""

    name: str
    workers: int

    def map(
        self,
        fn: UnitFunction,
        units: Iterable[Any],
        *,
        progress: ProgressCallback | None = None,
    ) -> Iterator[Any]:
        """Yield `fn(unit, report)` for every unit, in the order of `units`.

        `units` is read lazily (a reader may hand units on as it goes), a few units ahead of the
        results being consumed. Close the returned generator (or exhaust it) to stop the workers."""
        ...


# An executor may also offer `prepare(fn)`: get ready to run `fn` (connect, start and warm its
# workers) without waiting for it, so that the caller can do other work meanwhile (RayExecutor).


def no_progress(_n: int) -> None:
    """The `report` a unit gets when nobody watches."""
