"""The in-process executor: units run one after the other in the calling process (`-j 1`)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from alpacacot.executors.base import ProgressCallback, UnitFunction, no_progress


class InProcessExecutor:
    """Runs each unit in this process, in order; no pickling, no worker to lose."""

    name = "inprocess"
    workers = 1

    def map(
        self,
        fn: UnitFunction,
        units: Iterable[Any],
        *,
        progress: ProgressCallback | None = None,
    ) -> Iterator[Any]:
        for index, unit in enumerate(units):
            report = (lambda n, i=index: progress(i, n)) if progress else no_progress
            yield fn(unit, report)
