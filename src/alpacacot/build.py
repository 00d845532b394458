"""`alpacacot-data build`: collect every source, run the pipeline, write the manifest and the card.

The engine (in-process, or one worker process per source) is kept apart from the steps in
`pipeline.py`. A source whose inputs, catalog entry and pipeline code are unchanged since the last build
into the same folder is skipped; one that fails, whatever the exception (or a worker process that
dies), leaves its previous output and the other sources alone.

How the output folder stays consistent (the lock, the swap of each finished source, the manifest
rewritten after each, the recovery after a crash) is `outdir.py`; this module only decides what to
build and calls it. Worker processes die with the build (`lifeline.py`).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
import signal
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from alpacacot import __version__
from alpacacot.catalog import Catalog, DatasetEntry
from alpacacot.collectors import CollectedFile, collect_files, sha256_file
from alpacacot.errors import AlpacacotError, CollectError
from alpacacot.faults import fault_point
from alpacacot.lifeline import die_with_parent, parent_alive
from alpacacot.outdir import (
    OutputLock,
    commit_source,
    read_manifest_file,
    recover,
    staging_dir,
    write_manifest,
)
from alpacacot.pipeline import BuildOptions, process_source
from alpacacot.record import SCHEMA_VERSION

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Modules whose code decides what a build writes; a change to any of them rebuilds every source.
PIPELINE_MODULES = (
    "catalog.py",
    "lang.py",
    "pipeline.py",
    "readers.py",
    "record.py",
    "schema_check.py",
    "writer.py",
    "normalizers",
    "schema",
)


# The pipeline holds a row group of records (10,000; each with its draft dict and history list,
# which the cyclic GC tracks) until it writes them: at the default gen-0 threshold (700) the GC runs
# every few hundred records and scans that buffer each time, ~5% of a worker's time. Records are
# freed by reference counting; a threshold above the buffer's size leaves the collector for the
# rare garbage cycle.
GC_THRESHOLD = 50_000


@contextmanager
def _gc_threshold(gen0: int):
    """Run the block with the cyclic GC's gen-0 threshold at `gen0`; restore it afterwards."""
    old = gc.get_threshold()
    gc.set_threshold(gen0, *old[1:])
    try:
        yield
    finally:
        gc.set_threshold(*old)


@cache
def code_fingerprint() -> str:
    """Hash of the package version and the source of the modules that shape the output."""
    root = resources.files("alpacacot")
    h = hashlib.sha256(__version__.encode())
    for name in PIPELINE_MODULES:
        node = root / name
        files = sorted(node.iterdir(), key=lambda p: p.name) if node.is_dir() else [node]
        for f in files:
            if f.name.endswith((".py", ".json")):
                h.update(f.name.encode())
                h.update(f.read_bytes())
    return h.hexdigest()


def source_fingerprint(
    entry: DatasetEntry, files: list[CollectedFile], options: BuildOptions
) -> str:
    data = {
        "code": code_fingerprint(),
        "entry": entry.fingerprint_data(),
        "inputs": [[cf.display, cf.sha256, cf.subset, cf.normalizer] for cf in files],
        "lang_backend": options.lang_backend,
        "max_shard_bytes": options.max_shard_bytes,
    }
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def default_workers() -> int:
    """One worker per CPU core this process may run on, at most 8 (each holds ~200 MiB)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(cores or 1, 8))


@dataclass
class BuildRequest:
    keys: list[str]
    out_dir: Path
    sample: bool = False
    offline: bool = False
    cache_dir: Path | None = None
    force: bool = False
    workers: int = 1
    options: BuildOptions = field(default_factory=BuildOptions)


@dataclass
class BuildReport:
    manifest: dict[str, Any]
    built: list[str]
    skipped: list[str]
    failed: dict[str, str]
    # --sample only: the keys left out because the catalog bundles no excerpt of them, and why.
    unsampled: dict[str, str] = field(default_factory=dict)


def unsampled_keys(catalog: Catalog, keys: list[str]) -> dict[str, str]:
    """Of `keys`, those whose entry has no bundled excerpt, with the catalog's `no_sample:` reason.
    `--sample` builds only what is bundled; these are built from upstream (without `--sample`)."""
    return {
        k: catalog.datasets[k].no_sample or "the catalog entry has no `sample:`"
        for k in keys
        if not catalog.datasets[k].sample
    }


def read_manifest(out_dir: Path) -> dict[str, Any] | None:
    """The manifest of the previous build into `out_dir`, when it is one this version reads."""
    data = read_manifest_file(out_dir)
    if data is None or data.get("format_version") != FORMAT_VERSION:
        return None
    return data


class SourceFailed(AlpacacotError):
    """A source failed in a worker process: its message and the worker's traceback, as plain
    text (any exception, even one that cannot be pickled, reaches the parent this way)."""

    def __init__(self, message: str, trace: str = ""):
        super().__init__(message)
        self.trace = trace

    def __reduce__(self):
        return type(self), (str(self), self.trace)


def describe_failure(exc: BaseException) -> str:
    """The message a failed source is reported with: ours as they are, any other exception with
    its type (a RecursionError, an OSError, a library's ValueError...)."""
    if isinstance(exc, AlpacacotError):
        return str(exc)
    if isinstance(exc, BrokenProcessPool):
        return (
            "the worker process building it died (killed, or out of memory), also when it "
            "was built again alone"
        )
    return f"{type(exc).__name__}: {exc} (run with -v for the traceback)"


def is_current(old: dict[str, Any] | None, fingerprint: str, out_dir: Path) -> bool:
    """The previous output of a source is complete and was made from the same inputs and code."""
    if not old or old.get("fingerprint") != fingerprint:
        return False
    for shard in old.get("shards", []):
        path = out_dir / shard["path"]
        if (
            not path.is_file()
            or path.stat().st_size != shard["bytes"]
            or sha256_file(path) != shard["sha256"]
        ):
            return False
    return (out_dir / old["rejects"]).is_file()


def entry_summary(entry: DatasetEntry) -> dict[str, Any]:
    return {
        "description": entry.description,
        "license": entry.license,
        "homepage": entry.homepage,
        "citation": entry.citation,
        "languages": entry.languages,
        "tags": entry.tags,
        "split": entry.split,
        "normalizer": entry.normalizer,
    }


def _collect_source(
    catalog: Catalog, key: str, request: BuildRequest
) -> list[CollectedFile] | Exception:
    """The collected (fetched and hashed) files of one source, or the error that stopped it."""
    entry = catalog.datasets[key]
    try:
        specs = entry.sample_files() if request.sample else entry.files()
        if request.sample and not specs:
            raise CollectError(
                f"dataset {key!r} has no `sample` in the catalog; --sample cannot build it"
            )
        return [
            cf
            for sf in specs
            for cf in collect_files(
                sf, catalog, key, cache_dir=request.cache_dir, offline=request.offline
            )
        ]
    except Exception as exc:  # noqa: BLE001 - any error is this source's failure, not the build's
        return exc


def _collect_all(catalog: Catalog, request: BuildRequest) -> list[list[CollectedFile] | Exception]:
    """`_collect_source` for every requested key, in order. With several workers the sources are
    collected in as many threads: hashing the inputs (sha256 releases the GIL) then uses every core
    instead of one while the others wait for the first source."""
    if request.workers > 1 and len(request.keys) > 1:
        with ThreadPoolExecutor(max_workers=request.workers) as pool:
            return list(pool.map(lambda k: _collect_source(catalog, k, request), request.keys))
    return [_collect_source(catalog, k, request) for k in request.keys]


# In a worker process: the pipe that carries progress to the parent, set by `_init_worker`.
_progress_pipe: Any = None


def _init_worker(gc_threshold: tuple[int, ...], pipe: Any, build_pid: int) -> None:
    """Worker-process initializer: die with the build (see `lifeline.py`), the parent's GC
    threshold (spawned workers do not inherit it), the pipe that carries progress back, and
    Ctrl-C left to the parent, which stops the workers."""
    global _progress_pipe
    die_with_parent(build_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.set_threshold(*gc_threshold)
    _progress_pipe = pipe


def _run_source(
    entry: DatasetEntry, files: list[CollectedFile], out_dir: Path, options: BuildOptions
) -> dict[str, Any]:
    """Worker-process entry point (module level so it pickles). Any failure comes back as a
    `SourceFailed` carrying the message and the traceback."""
    pipe = _progress_pipe
    key = entry.key

    def progress(n: int) -> None:
        fault_point(f"worker.progress.{key}")
        if not parent_alive():
            os._exit(1)
        pipe.send(("progress", key, n))

    try:
        if pipe is None:
            return process_source(entry, files, out_dir, options)
        pipe.send(("start", key, sum(cf.bytes for cf in files)))
        return process_source(entry, files, out_dir, options, progress)
    except Exception as exc:
        raise SourceFailed(describe_failure(exc), traceback.format_exc()) from None


class _Workers:
    """The parent's side of the worker processes: a pipe they report progress on, a thread that
    hands it to the callbacks, and a way to stop them at once on Ctrl-C (`ProcessPoolExecutor`'s
    shutdown would let every running source finish first).

    The pipe has no lock: each message is far below PIPE_BUF, so the kernel writes it whole, and a
    worker killed at any moment can neither leave half a message nor hold a lock that the others
    (or the parent) would wait on forever. The relay thread polls, so stopping it never writes to
    the pipe."""

    def __init__(
        self,
        on_start: Callable[[str, int], None] | None,
        on_progress: Callable[[str, int], None] | None,
    ):
        self.reader, self.writer = multiprocessing.get_context().Pipe(duplex=False)
        self._callbacks = {"start": on_start, "progress": on_progress}
        self._thread = threading.Thread(target=self._relay, name="alpacacot-workers", daemon=True)
        self._stopping = threading.Event()
        self._others: set[int] = set()

    def _relay(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            while self.reader.poll(0 if stopping else 0.1):
                kind, key, n = self.reader.recv()
                if callback := self._callbacks[kind]:
                    callback(key, n)
            if stopping:
                return

    def __enter__(self) -> _Workers:
        # Child processes that exist before the pool are not ours to stop.
        self._others = {p.pid for p in multiprocessing.active_children() if p.pid}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join()
        self.reader.close()
        self.writer.close()

    def stop(self) -> None:
        """End every worker process now (their unfinished output stays in .tmp-* folders)."""
        ours = [p for p in multiprocessing.active_children() if p.pid not in self._others]
        for process in ours:
            process.terminate()
        for process in ours:
            process.join(timeout=10)


Todo = list[tuple[DatasetEntry, list[CollectedFile], str]]
Finish = Callable[[DatasetEntry, str, dict[str, Any]], None]
Fail = Callable[[DatasetEntry, BaseException], None]


def _build_in_workers(
    todo: Todo,
    request: BuildRequest,
    finish: Finish,
    fail: Fail,
    on_start: Callable[[str, int], None] | None,
    on_progress: Callable[[str, int], None] | None,
) -> None:
    """One worker process per source, `request.workers` at a time. On Ctrl-C (or an unexpected
    error) the workers are stopped at once, their unfinished output removed, and the error raised.

    A worker that dies (killed, out of memory) breaks the pool: every source it was running beside
    is lost with it. Those are built again one at a time, each in a pool of its own, so that only
    the source whose worker dies again fails."""
    # Largest sources first, so that the build does not end with one worker on a big source while
    # the others have nothing left to do.
    by_size = sorted(todo, key=lambda t: -sum(cf.bytes for cf in t[1]))
    try:
        with _Workers(on_start, on_progress) as workers:
            lost = _run_pool(by_size, request.workers, workers, request, finish, fail)
            for item in lost:
                for entry, _, _ in _run_pool([item], 1, workers, request, finish, fail):
                    fail(entry, BrokenProcessPool())
    finally:
        # What a stopped or dead worker left (a committed source's staging folder is gone).
        for entry, _, _ in todo:
            shutil.rmtree(staging_dir(request.out_dir, entry.key), ignore_errors=True)


def _run_pool(
    todo: Todo,
    max_workers: int,
    workers: _Workers,
    request: BuildRequest,
    finish: Finish,
    fail: Fail,
) -> Todo:
    """Build `todo` in a pool of `max_workers` processes; return the sources lost to a worker
    that died (BrokenProcessPool), in `todo`'s order."""
    lost: Todo = []
    with ProcessPoolExecutor(
        max_workers=min(max_workers, len(todo)),
        initializer=_init_worker,
        initargs=(gc.get_threshold(), workers.writer, os.getpid()),
    ) as pool:
        futures = {
            pool.submit(_run_source, item[0], item[1], request.out_dir, request.options): item
            for item in todo
        }
        try:
            for fut in as_completed(futures):
                entry, _, fp = futures[fut]
                try:
                    result = fut.result()
                except BrokenProcessPool:
                    lost.append(futures[fut])
                except Exception as exc:  # noqa: BLE001 - SourceFailed: the source's own error
                    fail(entry, exc)
                else:
                    finish(entry, fp, result)
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            workers.stop()
            raise
    order = {id(item): i for i, item in enumerate(todo)}
    return sorted(lost, key=lambda item: order[id(item)])


def build(
    catalog: Catalog,
    request: BuildRequest,
    *,
    on_start: Callable[[str, int], None] | None = None,
    on_progress: Callable[[str, int], None] | None = None,
    on_done: Callable[[str, str], None] | None = None,
) -> BuildReport:
    """Build `request.keys` into `request.out_dir`; see the module docstring.

    The folder is locked for the whole build (`outdir.OutputLock`: OutputBusyError when another
    build holds it), and what an earlier, killed build left is recovered first (`outdir.recover`).
    """
    request.out_dir.mkdir(parents=True, exist_ok=True)
    with OutputLock(request.out_dir):
        for note in recover(request.out_dir):
            log.warning("%s: %s", request.out_dir, note)
        return _build_locked(catalog, request, on_start, on_progress, on_done)


def _build_locked(
    catalog: Catalog,
    request: BuildRequest,
    on_start: Callable[[str, int], None] | None,
    on_progress: Callable[[str, int], None] | None,
    on_done: Callable[[str, str], None] | None,
) -> BuildReport:
    out_dir = request.out_dir
    previous = read_manifest(out_dir) or {}
    old_sources: dict[str, Any] = dict(previous.get("sources", {}))
    unsampled = unsampled_keys(catalog, request.keys) if request.sample else {}
    if unsampled:
        request = replace(request, keys=[k for k in request.keys if k not in unsampled])
    # What the manifest on disk says, kept up to date: an entry changes only through `publish`
    # (the swap's commit point), so the sources not built yet keep their previous output.
    sources: dict[str, Any] = dict(old_sources)
    built, skipped, failed = [], [], {}
    todo: list[tuple[DatasetEntry, list[CollectedFile], str]] = []

    def render() -> dict[str, Any]:
        manifest = {
            "format": "alpacacot-collection",
            "format_version": FORMAT_VERSION,
            "schema_version": SCHEMA_VERSION,
            "code_version": __version__,
            "code_fingerprint": code_fingerprint(),
            "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "sample": request.sample,
            "build_options": asdict(request.options),
            "catalog": {"path": str(catalog.path), "sha256": catalog.sha256},
            "sources": dict(sorted(sources.items())),
            "mixes": {
                name: members
                for name, members in catalog.mixes.items()
                if all(k in sources for k in catalog.resolve(name))
            },
        }
        if failed:
            manifest["errors"] = dict(failed)
        if unsampled:
            manifest["no_sample"] = unsampled
        return manifest

    def publish(key: str) -> Callable[[dict[str, Any] | None], None]:
        def write(entry: dict[str, Any] | None) -> None:
            if entry is None:
                sources.pop(key, None)
            else:
                sources[key] = entry
            write_manifest(out_dir, render())

        return write

    def fail(entry: DatasetEntry, exc: BaseException) -> None:
        failed[entry.key] = describe_failure(exc)
        trace = getattr(exc, "trace", "") or "".join(traceback.format_exception(exc))
        log.debug("%s failed:\n%s", entry.key, trace)
        write_manifest(out_dir, render())
        if on_done:
            on_done(entry.key, "failed")

    def finish(entry: DatasetEntry, fp: str, result: dict[str, Any]) -> None:
        new = {"fingerprint": fp, **entry_summary(entry), **result}
        try:
            commit_source(out_dir, entry.key, new, sources.get(entry.key), publish(entry.key))
        except Exception as exc:  # noqa: BLE001 - the swap was undone; the source failed
            shutil.rmtree(staging_dir(out_dir, entry.key), ignore_errors=True)
            fail(entry, exc)
            return
        built.append(entry.key)
        if on_done:
            on_done(entry.key, "built")

    for key, files in zip(request.keys, _collect_all(catalog, request), strict=True):
        entry = catalog.datasets[key]
        try:
            if isinstance(files, Exception):
                raise files
            fp = source_fingerprint(entry, files, request.options)
            current = not request.force and is_current(old_sources.get(key), fp, out_dir)
        except Exception as exc:  # noqa: BLE001 - any error is this source's failure
            fail(entry, exc)
            continue
        if current:
            skipped.append(key)
            if on_done:
                on_done(key, "unchanged")
            continue
        todo.append((entry, files, fp))

    interrupted = False
    with _gc_threshold(GC_THRESHOLD):
        try:
            if request.workers > 1 and len(todo) > 1:
                _build_in_workers(todo, request, finish, fail, on_start, on_progress)
            else:
                for entry, files, fp in todo:
                    if on_start:
                        on_start(entry.key, sum(cf.bytes for cf in files))
                    progress = (lambda n, k=entry.key: on_progress(k, n)) if on_progress else None
                    try:
                        result = process_source(entry, files, out_dir, request.options, progress)
                    except Exception as exc:  # noqa: BLE001 - any error is this source's failure
                        fail(entry, exc)
                    else:
                        finish(entry, fp, result)
        except KeyboardInterrupt:
            # Keep what finished: the manifest below records it (and the previous build of the
            # sources that did not finish), so the next build skips it.
            interrupted = True
            for entry, _, _ in todo:
                if entry.key not in built and entry.key not in failed:
                    failed[entry.key] = "interrupted"

    manifest = render()
    write_manifest(out_dir, manifest)
    from alpacacot.card import write_card

    write_card(out_dir, manifest, catalog)
    if interrupted:
        raise KeyboardInterrupt
    return BuildReport(
        manifest=manifest, built=built, skipped=skipped, failed=failed, unsampled=unsampled
    )
