"""`alpacacot-data build`: collect every source, run the pipeline, write the manifest and the card.

Every source is cut into work units (`units.py`) that run on an executor (`executors/`: this
process, local worker processes, or Ray); each source's unit outputs are merged, in order, into
the files a single pass would write. The steps are in `pipeline.py`. A source whose inputs,
catalog entry and pipeline code are unchanged since the last build into the same folder is
skipped; one that fails, whatever the exception (or a worker that dies on every try), leaves its
previous output and the other sources alone.

How the output folder stays consistent (the lock, the swap of each finished source, the manifest
rewritten after each, the recovery after a crash) is `outdir.py`; this module only decides what to
build and calls it. Worker processes die with the build (`lifeline.py`, via `executors/local.py`).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import secrets
import shutil
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from alpacacot import __version__
from alpacacot.catalog import Catalog, DatasetEntry, SourceFile
from alpacacot.collectors import (
    CollectedFile,
    locate_files,
    sha256_file,
    verify_file,
)
from alpacacot.errors import CollectError, SourceFailed, describe_failure
from alpacacot.executors import Executor, close_executor, get_executor
from alpacacot.outdir import (
    OutputLock,
    commit_source,
    read_manifest_file,
    recover,
    staging_dir,
    write_manifest,
)
from alpacacot.pipeline import BuildOptions, MergedSource, run_unit, warm_up
from alpacacot.record import SCHEMA_VERSION
from alpacacot.units import (
    UNIT_BYTES,
    UNIT_ROWS,
    SourceMerge,
    WorkUnit,
    cut_source,
    prepare_staging,
)

__all__ = ["SourceFailed", "build", "describe_failure"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Modules whose code decides what a build writes; a change to any of them rebuilds every source.
PIPELINE_MODULES = (
    "catalog.py",
    "columnar.py",
    "lang.py",
    "pipeline.py",
    "readers.py",
    "record.py",
    "schema_check.py",
    "units.py",
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
    # Where units run (`executors.get_executor`), and how sources are cut into units; none of it
    # changes what is written, so none of it is in the manifest or a source's fingerprint.
    executor: str = "local"
    ray_address: str | None = None
    unit_bytes: int = UNIT_BYTES
    unit_rows: int = UNIT_ROWS


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


def _locate_source(
    catalog: Catalog, key: str, request: BuildRequest
) -> list[tuple[SourceFile, CollectedFile]]:
    """The files of one source, fetched but not hashed yet (`collectors.locate_file`)."""
    entry = catalog.datasets[key]
    specs = entry.sample_files() if request.sample else entry.files()
    if request.sample and not specs:
        raise CollectError(
            f"dataset {key!r} has no `sample` in the catalog; --sample cannot build it"
        )
    return [
        found
        for sf in specs
        for found in locate_files(
            sf, catalog, key, cache_dir=request.cache_dir, offline=request.offline
        )
    ]


def _locate_all(
    catalog: Catalog, request: BuildRequest
) -> list[list[tuple[SourceFile, CollectedFile]] | Exception]:
    """`_locate_source` for every requested key, in order (its error in its place); with several
    workers in as many threads (downloads run side by side)."""

    def locate(key: str) -> list[tuple[SourceFile, CollectedFile]] | Exception:
        try:
            return _locate_source(catalog, key, request)
        except Exception as exc:  # noqa: BLE001 - any error is this source's failure
            return exc

    if request.workers > 1 and len(request.keys) > 1:
        with ThreadPoolExecutor(max_workers=request.workers) as pool:
            return list(pool.map(locate, request.keys))
    return [locate(key) for key in request.keys]


def _hash_source(
    entry: DatasetEntry, located: list[tuple[SourceFile, CollectedFile]], request: BuildRequest
) -> tuple[list[CollectedFile], str]:
    """A located source's files verified, and its fingerprint."""
    files = [verify_file(cf, sf, entry.key, cache_dir=request.cache_dir) for sf, cf in located]
    return files, source_fingerprint(entry, files, request.options)


# A source to build: its entry, its files, and its fingerprint; or, for a source whose units start
# while its files are hashed, the files as located and the hashing's future (files, fingerprint).
Todo = tuple[DatasetEntry, list[CollectedFile], "str | Future[tuple[list[CollectedFile], str]]"]


def _run_units(
    todo: list[Todo],
    request: BuildRequest,
    executor: Executor,
    finish: Callable[[DatasetEntry, str, dict[str, Any]], None],
    fail: Callable[[DatasetEntry, BaseException], None],
    on_start: Callable[[str, int], None] | None,
    on_progress: Callable[[str, int], None] | None,
) -> None:
    """Cut every source into units, run them on `executor`, and merge each source's outputs as
    they come back in order (while later units still run). A source whose files are still being
    hashed has its units run meanwhile; its merge waits for the hash, and puts the files' revisions
    in the records. A source whose unit fails, or whose file fails its pin, is failed
    alone; on Ctrl-C (or an unexpected error) the executor's workers are stopped at once, the
    unfinished output removed, and the error raised."""
    # In parallel, largest sources first, so that the build does not end with one worker on a big
    # source while the others have nothing left to do; in one process, in the order asked for.
    by_size = (
        todo if executor.workers <= 1 else sorted(todo, key=lambda t: -sum(cf.bytes for cf in t[1]))
    )
    # unit index -> (source key, last of it?, its file's place among the source's files)
    unit_keys: list[tuple[str, bool, int]] = []

    # Workers leave their records in the staging folder (the page cache is cheaper than a pipe or
    # Ray's object store): local ones always, Ray ones where they find this build's token in it
    # (this machine, or a file system they share); elsewhere, and in this process, the records
    # come back with the result.
    local = executor.name == "local"
    spill = local or executor.name == "ray"
    token = secrets.token_hex(16) if executor.name == "ray" else None
    prepared: list[str] = []  # sources whose staging folder exists

    def units() -> Iterator[WorkUnit]:
        for entry, files, _ in by_size:
            folder = prepare_staging(request.out_dir, entry.key, token)
            prepared.append(entry.key)
            place = {id(cf): i for i, cf in enumerate(files)}
            for unit in cut_source(
                entry, files, request.options, request.unit_bytes, request.unit_rows
            ):
                i = place[id(unit.file)]
                if spill:
                    unit.spill, unit.spill_token = str(folder), token
                if local and unit.seq == 0 and unit.last:
                    # Merged where it runs, with its file's revision, once its source is hashed
                    # (never waited for here: until then, and if hashing failed, merged below).
                    hashed = hashed_files(entry.key)
                    if hashed is not None:
                        unit.file = hashed[i]
                        unit.merge_into = str(request.out_dir)
                unit_keys.append((entry.key, unit.last, i))
                yield unit

    def progress(index: int, n: int) -> None:
        if on_progress:
            on_progress(unit_keys[index][0], n)

    sources = {e.key: (e, f, fp) for e, f, fp in by_size}

    def resolve(key: str) -> tuple[list[CollectedFile], str]:
        """The source's hashed files and fingerprint (waiting for its hashing; raising its error)."""
        _, files, fp = sources[key]
        return fp.result() if isinstance(fp, Future) else (files, fp)

    def hashed_files(key: str) -> list[CollectedFile] | None:
        """The source's hashed files if they are ready (None while hashing, or if it failed)."""
        _, files, fp = sources[key]
        if not isinstance(fp, Future):
            return files
        return fp.result()[0] if fp.done() and fp.exception() is None else None

    merges: dict[str, SourceMerge | None] = {}  # None: the source failed
    starts: dict[str, float] = {}

    def close(key: str) -> None:
        merge = merges[key]
        if merge is None:
            return
        merges[key] = None
        entry = sources[key][0]
        files, fp = resolve(key)
        try:
            result = merge.finish(files, starts[key])
        except Exception as exc:  # noqa: BLE001 - any error is this source's failure
            fail(entry, exc)
            return
        finish(entry, fp, result)

    results = executor.map(run_unit, units(), progress=progress if on_progress else None)
    try:
        for index, result in enumerate(results):
            key, last, place = unit_keys[index]
            entry = sources[key][0]
            if key not in merges:
                starts[key] = time.perf_counter()
                if on_start:
                    on_start(key, sum(cf.bytes for cf in sources[key][1]))
                try:
                    fp = resolve(key)[1]
                except Exception as exc:  # noqa: BLE001 - the source's files failed to hash
                    merges[key] = None
                    shutil.rmtree(staging_dir(request.out_dir, key), ignore_errors=True)
                    fail(entry, exc)
                    continue
                if isinstance(result, MergedSource):  # its worker merged it
                    merges[key] = None
                    finish(entry, fp, result.entry)
                    continue
                merges[key] = SourceMerge(entry, request.out_dir, request.options)
            merge = merges[key]
            if merge is None:
                continue
            if isinstance(result, BaseException):  # the unit failed, or lost its worker
                merge.abort()
                merges[key] = None
                fail(entry, result)
                continue
            located, hashed = sources[key][1][place], resolve(key)[0][place]
            merge.add(result, hashed.revision if located.revision != hashed.revision else None)
            if last:
                close(key)
    finally:
        results.close()
        for key in prepared:
            merge = merges.get(key)
            if merge is not None:
                merge.abort()
            elif key not in merges:  # no unit of it came back
                shutil.rmtree(staging_dir(request.out_dir, key), ignore_errors=True)


def build(
    catalog: Catalog,
    request: BuildRequest,
    *,
    on_start: Callable[[str, int], None] | None = None,
    on_progress: Callable[[str, int], None] | None = None,
    on_done: Callable[[str, str], None] | None = None,
    executor: Executor | None = None,
) -> BuildReport:
    """Build `request.keys` into `request.out_dir`; see the module docstring.

    The folder is locked for the whole build (`outdir.OutputLock`: OutputBusyError when another
    build holds it), and what an earlier, killed build left is recovered first (`outdir.recover`).
    """
    request.out_dir.mkdir(parents=True, exist_ok=True)
    with OutputLock(request.out_dir):
        for note in recover(request.out_dir):
            log.warning("%s: %s", request.out_dir, note)
        return _build_locked(catalog, request, on_start, on_progress, on_done, executor)


def _prepare_executor(request: BuildRequest, executor: Executor | None) -> Executor | None:
    """While the inputs are collected: a Ray executor of this build connected and its workers
    warmed (returned), or the column steps imported for local workers to inherit."""
    if executor is None and request.executor == "ray":
        executor = get_executor(request.executor, request.workers, request.ray_address)
        try:
            executor.prepare(run_unit)
        except BaseException:
            close_executor(executor)
            raise
    elif request.executor == "local":
        warm_up()
    return executor


def _build_locked(
    catalog: Catalog,
    request: BuildRequest,
    on_start: Callable[[str, int], None] | None,
    on_progress: Callable[[str, int], None] | None,
    on_done: Callable[[str, str], None] | None,
    executor: Executor | None = None,
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
            manifest["errors"] = dict(sorted(failed.items()))
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

    own_executor = executor is None
    workers = executor.workers if executor is not None else request.workers
    # The inputs are located (downloaded), then hashed in threads (sha256 leaves the interpreter
    # free), largest source first. With --force, or into a folder with no source built yet, every
    # source that collects is built: meanwhile this process imports the column steps its workers
    # inherit, and a Ray executor connects and warms its workers (each imports the pipeline); with
    # several workers the units do not wait for the hashes either, and each source's merge waits
    # for its own (at the scale of the full collection, ~1 s of hashing per GB before the first
    # unit could start). Otherwise the hashes first say which sources changed.
    build_all = request.force or not old_sources
    hashing = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="alpacacot-hash")

    def collect() -> tuple[
        list[list[tuple[SourceFile, CollectedFile]] | Exception],
        dict[str, Future[tuple[list[CollectedFile], str]]],
    ]:
        located = _locate_all(catalog, request)
        found = {k: f for k, f in zip(request.keys, located, strict=True) if isinstance(f, list)}
        hashed = {
            key: hashing.submit(_hash_source, catalog.datasets[key], found[key], request)
            for key in sorted(found, key=lambda k: -sum(cf.bytes for _, cf in found[k]))
        }
        return located, hashed

    try:
        if build_all:
            with ThreadPoolExecutor(max_workers=1) as pool:
                collecting = pool.submit(collect)
                executor = _prepare_executor(request, executor)
                located, hashed = collecting.result()
        else:
            located, hashed = collect()
        for key, where in zip(request.keys, located, strict=True):
            entry = catalog.datasets[key]
            if isinstance(where, Exception):
                fail(entry, where)
                continue
            if build_all and workers > 1:
                todo.append((entry, [cf for _, cf in where], hashed[key]))
                continue
            try:
                files, fp = hashed[key].result()
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
    except BaseException:
        hashing.shutdown(wait=True, cancel_futures=True)
        raise

    interrupted = False
    with _gc_threshold(GC_THRESHOLD):
        try:
            if todo:
                if request.executor == "local":
                    warm_up()  # before local workers fork: they inherit it (Ray's import it)
                if executor is None:
                    executor = get_executor(request.executor, request.workers, request.ray_address)
                _run_units(todo, request, executor, finish, fail, on_start, on_progress)
        except KeyboardInterrupt:
            # Keep what finished: the manifest below records it (and the previous build of the
            # sources that did not finish), so the next build skips it.
            interrupted = True
            for entry, _, _ in todo:
                if entry.key not in built and entry.key not in failed:
                    failed[entry.key] = "interrupted"
        finally:
            hashing.shutdown(wait=True, cancel_futures=True)
            if own_executor and executor is not None:
                close_executor(executor)

    manifest = render()
    write_manifest(out_dir, manifest)
    from alpacacot.card import write_card

    write_card(out_dir, manifest, catalog)
    if interrupted:
        raise KeyboardInterrupt
    return BuildReport(
        manifest=manifest, built=built, skipped=skipped, failed=failed, unsampled=unsampled
    )
