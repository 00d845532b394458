"""Local worker processes: `workers` units at once on this machine (`build --executor local -j N`).

Each worker is a process of its own, fed one unit at a time over a pipe, so the parent always knows
which unit a worker holds: when a worker dies (SIGKILL, the OOM killer) its unit is run again on a
fresh worker, and nothing it did counts. Workers ignore Ctrl-C and die with their parent (Linux's
parent-death signal, see `lifeline.py`), so neither an interrupted build nor a killed one
leaves them behind, and closing `map` early kills them at once instead of letting their units finish.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import queue
import signal
import threading
import traceback
from collections import deque
from collections.abc import Iterable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from alpacacot.executors.base import ProgressCallback, UnitFunction, WorkerLost
from alpacacot.lifeline import die_with_parent, parent_alive


def _portable(exc: BaseException) -> BaseException:
    """`exc` if it survives pickling, else a RuntimeError that carries its text and traceback."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any pickling failure gets the same fallback
        text = "".join(traceback.format_exception(exc))
        return RuntimeError(f"{type(exc).__name__}: {exc}\n{text}")


def _worker_main(conn: Connection, parent: int, gc_threshold: tuple[int, ...]) -> None:
    """A worker's life: run the units it is sent until it is sent None or its parent goes."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides what Ctrl-C stops
    gc.set_threshold(*gc_threshold)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        index, fn, unit = task

        def report(n: int, index: int = index) -> None:
            if not parent_alive():
                os._exit(1)
            conn.send(("progress", index, n))

        try:
            result = fn(unit, report)
        except BaseException as exc:  # noqa: BLE001 - handed to the parent, which raises it
            conn.send(("error", index, _portable(exc)))
        else:
            conn.send(("done", index, result))


class _Worker:
    def __init__(self, ctx: Any):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(
            target=_worker_main,
            args=(child, os.getpid(), gc.get_threshold()),
            name="alpacacot-worker",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.task: int | None = None

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(timeout=10)
        self.conn.close()


class _Raise:
    """A unit's outcome that `map` raises at its turn."""

    def __init__(self, exc: BaseException):
        self.exc = exc


class _Run:
    """One `map`: a dispatcher thread feeds the workers and puts results on a queue in unit order,
    so units keep running while the caller works on the results it got."""

    def __init__(self, workers: int, max_tries: int, ahead: int, fn, units, progress):
        self.ctx = multiprocessing.get_context()
        self.fn, self.units, self.progress = fn, iter(units), progress
        self.max_tries, self.ahead = max_tries, ahead
        self.workers = [_Worker(self.ctx) for _ in range(workers)]
        self.pending: dict[int, Any] = {}  # index -> unit, until its result is in
        self.tries: dict[int, int] = {}
        self.retry: deque[int] = deque()
        self.results: dict[int, Any] = {}
        self.next_index = 0  # of the next unit to read
        self.next_out = 0  # of the next result to hand on
        self.consumed = 0  # results the caller took
        self.exhausted = False
        self.out: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="alpacacot-executor", daemon=True)

    # -- the dispatcher thread
    def _next_task(self) -> int | None:
        if self.retry:
            return self.retry.popleft()
        if self.exhausted or self.next_index - self.consumed >= self.ahead:
            return None
        try:
            unit = next(self.units)
        except StopIteration:
            self.exhausted = True
            return None
        index = self.next_index
        self.next_index += 1
        self.pending[index] = unit
        return index

    def _dispatch(self) -> None:
        for worker in self.workers:
            if worker.task is None:
                index = self._next_task()
                if index is None:
                    return
                worker.task = index
                worker.conn.send((index, self.fn, self.pending[index]))

    def _receive(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll():
                kind, index, value = worker.conn.recv()
                if kind == "progress":
                    if self.progress:
                        self.progress(index, value)
                    continue
                self.results[index] = value if kind == "done" else _Raise(value)
                self.pending.pop(index, None)
                worker.task = None
        except (EOFError, OSError):
            pass  # the worker died; handled below

    def _replace(self, worker: _Worker) -> None:
        index = worker.task
        worker.kill()
        self.workers[self.workers.index(worker)] = _Worker(self.ctx)
        if index is None:
            return
        tries = self.tries[index] = self.tries.get(index, 0) + 1
        if tries >= self.max_tries:
            code = worker.process.exitcode
            self.results[index] = WorkerLost(index, tries, f"exit code {code}")
            self.pending.pop(index, None)
        else:
            self.retry.append(index)

    def _loop(self) -> None:
        try:
            while not self.stopping.is_set():
                self._dispatch()
                while self.next_out in self.results:
                    result = self.results.pop(self.next_out)
                    self.next_out += 1
                    if isinstance(result, _Raise):
                        self.out.put(("raise", result.exc))
                        return
                    self.out.put(("result", result))
                if self.exhausted and not self.pending and self.next_out == self.next_index:
                    self.out.put(("end", None))
                    return
                busy = [w.conn for w in self.workers if w.task is not None]
                wait(busy + [w.process.sentinel for w in self.workers], timeout=0.2)
                for worker in list(self.workers):
                    self._receive(worker)
                    if not worker.process.is_alive():
                        self._replace(worker)
        except BaseException as exc:  # noqa: BLE001 - a unit reader's error, handed to the caller
            self.out.put(("raise", exc))

    # -- the caller's side
    def results_in_order(self) -> Iterator[Any]:
        self.thread.start()
        while True:
            kind, value = self.out.get()
            if kind == "end":
                return
            if kind == "raise":
                raise value
            self.consumed += 1
            yield value

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join()
        for worker in self.workers:
            if worker.task is None and worker.process.is_alive():
                try:
                    worker.conn.send(None)
                except OSError:
                    pass
        for worker in self.workers:
            if worker.task is None:
                worker.process.join(timeout=2)
            worker.kill()


class LocalExecutor:
    """Up to `workers` units at once, each in a worker process of this machine.

    `max_tries`: how many times a unit may lose its worker before `map` gives up on it
    (WorkerLost). `ahead`: how many units may be read ahead of the results taken (memory bound)."""

    name = "local"

    def __init__(self, workers: int, *, max_tries: int = 3, ahead: int | None = None):
        self.workers = max(1, workers)
        self.max_tries = max_tries
        self.ahead = ahead or 4 * self.workers

    def map(
        self,
        fn: UnitFunction,
        units: Iterable[Any],
        *,
        progress: ProgressCallback | None = None,
    ) -> Iterator[Any]:
        run = _Run(self.workers, self.max_tries, self.ahead, fn, units, progress)
        try:
            yield from run.results_in_order()
        finally:
            run.stop()
