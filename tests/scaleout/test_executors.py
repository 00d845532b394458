"""The executors' contract: results in unit order from a lazy iterable, progress per unit, a lost
worker's unit rerun (or given up on with WorkerLost), fn's own errors raised, workers stopped."""

from __future__ import annotations

import multiprocessing
from collections import Counter

import pytest
from scaleout_helpers import KillOnce, die_always, fail_on_three, square_slowly

from alpacacot.errors import AlpacacotError
from alpacacot.executors import InProcessExecutor, LocalExecutor, WorkerLost, get_executor


class _Unit(int):
    """An int that names itself as a source's unit, for KillOnce."""

    key = "numbers"

    @property
    def seq(self) -> int:
        return int(self)


@pytest.mark.parametrize("executor", [InProcessExecutor(), LocalExecutor(2)], ids=["in", "local"])
def test_results_come_in_unit_order_with_progress(executor):
    read: list[int] = []

    def units():  # lazy, as a reader hands units on
        for i in range(12):
            read.append(i)
            yield i

    progress: Counter[int] = Counter()
    results = list(
        executor.map(square_slowly, units(), progress=lambda i, n: progress.update({i: n}))
    )
    assert results == [i * i for i in range(12)]
    assert read == list(range(12))
    assert progress == {i: 2 for i in range(12)}
    assert multiprocessing.active_children() == []


def test_a_killed_worker_is_replaced_and_its_unit_run_once_more(tmp_path):
    marker = tmp_path / "killed"
    fn = KillOnce(square_slowly, "numbers", 5, marker)
    results = list(LocalExecutor(2).map(fn, [_Unit(i) for i in range(10)]))
    assert marker.exists()
    assert results == [i * i for i in range(10)]


def test_a_unit_that_always_kills_its_worker_gives_worker_lost_and_the_rest_goes_on():
    results = list(LocalExecutor(2, max_tries=2).map(die_always, range(5)))
    assert results[:2] == [0, 1] and results[3:] == [3, 4]
    assert isinstance(results[2], WorkerLost) and results[2].tries == 2


def test_an_error_of_the_function_is_raised_at_its_turn_and_stops_the_workers():
    got = []
    with pytest.raises(ValueError, match="unit 3 is bad"):
        for result in LocalExecutor(2).map(fail_on_three, range(8)):
            got.append(result)
    assert got == [0, 1, 2]
    assert multiprocessing.active_children() == []


def test_closing_the_results_early_stops_the_workers():
    results = LocalExecutor(2).map(square_slowly, range(100))
    assert next(results) == 0
    results.close()
    assert multiprocessing.active_children() == []


def test_get_executor_names():
    assert isinstance(get_executor("local", 1), InProcessExecutor)
    assert isinstance(get_executor("local", 3), LocalExecutor)
    with pytest.raises(AlpacacotError, match="unknown executor 'spark'"):
        get_executor("spark", 2)
