"""Ray: units run as Ray tasks on a cluster (`build --executor ray --ray-address auto|HOST:PORT`),
or on a Ray started on this machine for the run when no address is given.

Ray schedules the tasks over the cluster's CPUs and reruns a task whose worker process or node was
lost (`max_retries`); an exception raised by the unit function itself is not retried. Progress is
reported when a unit finishes (a Ray task cannot call back into this process while it runs), so a
bar moves in steps of one unit. Ray is an optional dependency: `pip install "alpacacot[ray]"`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from alpacacot.errors import AlpacacotError
from alpacacot.executors.base import ProgressCallback, UnitFunction, WorkerLost


class RayMissingError(AlpacacotError):
    """`--executor ray` without Ray installed."""


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RayMissingError(
            '--executor ray needs Ray: pip install "alpacacot[ray]" (or use --executor local)'
        ) from None
    return ray


def _ready(fn: UnitFunction) -> None:
    """A task that only receives the unit function: unpickling it imports its module."""


def _run_counted(fn: UnitFunction, unit: Any) -> tuple[Any, int]:
    """The Ray task: the unit's result and the progress it reported."""
    done = 0

    def report(n: int) -> None:
        nonlocal done
        done += n

    return fn(unit, report), done


class RayExecutor:
    """Units as Ray tasks, `ahead` of them submitted at a time, results in unit order.

    `address`: "auto" (the cluster this machine belongs to), "HOST:PORT", or None to start a Ray
    for this run with `workers` CPUs (stopped again when the executor is closed). `max_retries`:
    how many times Ray reruns a task whose worker was lost."""

    name = "ray"

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        *,
        max_retries: int = 3,
        ahead: int | None = None,
        init_options: dict[str, Any] | None = None,
    ):
        self.address = address
        self.max_retries = max_retries
        self.init_options = init_options or {}
        self._requested = workers
        self._started = False  # a Ray started here, stopped by close()
        self._initialized = False  # ray.init called here (a cluster joined: close() leaves it)
        self.workers = workers or 1
        self.ahead = ahead
        self._prepared: tuple[Any, Any, list[Any]] | None = None  # (fn, its ref, warm-up tasks)

    def _connect(self):
        ray = _import_ray()
        if not ray.is_initialized():
            options: dict[str, Any] = {"log_to_driver": False, **self.init_options}
            self._initialized = True
            if self.address:
                ray.init(address=self.address, **options)
            else:
                ray.init(
                    address="local", num_cpus=self._requested, include_dashboard=False, **options
                )
                self._started = True
        self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        return ray

    def prepare(self, fn: UnitFunction) -> None:
        """Connect (or start Ray), and have each CPU's worker receive `fn` once, without waiting:
        worker processes start and import `fn`'s module while this process does other work
        (`map` would otherwise pay for that on its first units)."""
        ray = self._connect()
        fn_ref = ray.put(fn)
        ready = ray.remote(num_cpus=1, max_retries=0)(_ready)
        self._prepared = (fn, fn_ref, [ready.remote(fn_ref) for _ in range(self.workers)])

    def close(self) -> None:
        """Stop the Ray this executor started, or disconnect from the cluster it joined (which
        keeps running). Disconnecting here takes ~0.3 s; left to Ray's exit handler it took
        ~0.9 s at the end of every build (2-CPU head on the dev VM)."""
        self._prepared = None
        if self._initialized:
            _import_ray().shutdown()
            self._started = self._initialized = False

    def map(
        self,
        fn: UnitFunction,
        units: Iterable[Any],
        *,
        progress: ProgressCallback | None = None,
    ) -> Iterator[Any]:
        ray = self._connect()
        task = ray.remote(max_retries=self.max_retries, retry_exceptions=False)(_run_counted)
        prepared = self._prepared
        fn_ref = prepared[1] if prepared and prepared[0] is fn else ray.put(fn)
        ahead = self.ahead or 2 * self.workers + 2
        units = iter(units)
        submitted: dict[int, Any] = {}  # unit index -> object ref, until its result is taken
        done: dict[int, tuple[bool, Any]] = {}  # unit index -> (ok, result or exception)
        next_index = first = 0
        exhausted = False
        try:
            while True:
                while not exhausted and next_index - first < ahead:
                    try:
                        unit = next(units)
                    except StopIteration:
                        exhausted = True
                        break
                    submitted[next_index] = task.remote(fn_ref, unit)
                    next_index += 1
                if first == next_index:
                    return
                waiting = [ref for i, ref in submitted.items() if i not in done]
                if waiting:
                    ready, _ = ray.wait(waiting, num_returns=1, timeout=1.0)
                    ready_ids = set(ready)
                    for index, ref in submitted.items():
                        if index in done or ref not in ready_ids:
                            continue
                        try:
                            result, count = ray.get(ref)
                        except (
                            ray.exceptions.WorkerCrashedError,
                            ray.exceptions.NodeDiedError,
                        ) as exc:
                            lost = WorkerLost(index, self.max_retries + 1, type(exc).__name__)
                            done[index] = (True, lost)
                            continue
                        except Exception as exc:  # noqa: BLE001 - raised at the unit's turn
                            done[index] = (False, _unwrap(ray, exc))
                            continue
                        done[index] = (True, result)
                        if progress and count:
                            progress(index, count)
                while first in done:
                    ok, value = done.pop(first)
                    del submitted[first]
                    first += 1
                    if not ok:
                        raise value
                    yield value
        finally:
            for index, ref in submitted.items():
                if index not in done:
                    ray.cancel(ref, force=True)


def _unwrap(ray: Any, exc: Exception) -> BaseException:
    """The unit function's own exception out of Ray's wrapper, where Ray kept it."""
    if isinstance(exc, ray.exceptions.RayTaskError):
        try:
            return exc.as_instanceof_cause()
        except Exception:  # noqa: BLE001 - keep Ray's error when its cause cannot be rebuilt
            return exc
    return exc
