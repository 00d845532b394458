"""`curate`: run the curation passes over a built collection and write `DIR/curation/`.

Layout (every table keyed by record `id` plus `source`; shards are never touched):

    curation/signals/<key>.parquet     quality signals of every record of a source
    curation/contamination.parquet     one row per (record, benchmark item) hit
    curation/clusters.parquet          near-duplicate clusters (records in a cluster of 2+ only)
    curation/manifest.json             parameters, per-source fingerprints, summary
    curation/cache/<key>.*.parquet     per-source band keys and hits, reused by the next run

The benchmark index is kept in the download cache (`curation/benchmarks-<fingerprint>.pkl`).

Incremental: a source's signals, band keys and hits are redone only when its shards
(manifest fingerprint) or the parameters of that pass changed, or, for hits, the benchmark files;
clusters and the overlap matrix are always joined again from the cached band keys (cheap).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from alpacacot.curation.batch import record_views
from alpacacot.curation.contamination import (
    BenchmarkIndex,
    DecontamParams,
    build_index,
    match_texts,
)
from alpacacot.curation.executor import map_units
from alpacacot.curation.neardup import VIEWS, NearDupParams, band_keys, clusters
from alpacacot.curation.signals import COLUMNS as SIGNAL_COLUMNS
from alpacacot.curation.signals import SignalParams, arrow_signals
from alpacacot.hub.collection import read_manifest, shard_paths, source_keys

CURATION = "curation"
FORMAT_VERSION = 1
READ_COLUMNS = ["id", "instruction", "input", "output", "history"]
PASSES = ("signals", "neardup", "contamination")
SIGNALS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("refusal", pa.bool_()),
        ("refusal_match", pa.string()),
        ("lang_mismatch", pa.bool_()),
        ("empty_answer", pa.bool_()),
        ("repetition", pa.float64()),
        ("truncated", pa.bool_()),
        ("prompt_chars", pa.int64()),
        ("output_chars", pa.int64()),
    ]
)
CONTAMINATION_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source", pa.string()),
        ("benchmark", pa.string()),
        ("item", pa.int64()),
        ("match", pa.string()),
        ("share", pa.float64()),
    ]
)


@dataclass(frozen=True)
class CurationParams:
    """Every setting of the three passes."""

    neardup: NearDupParams = field(default_factory=NearDupParams)
    decontam: DecontamParams = field(default_factory=DecontamParams)
    signals: SignalParams = field(default_factory=SignalParams)

    def to_dict(self) -> dict[str, Any]:
        return {
            "neardup": self.neardup.to_dict(),
            "decontamination": self.decontam.to_dict(),
            "signals": self.signals.to_dict(),
        }

    def pass_fingerprints(self, benchmarks: str) -> dict[str, str]:
        return {
            "signals": _digest(self.signals.to_dict()),
            "neardup": _digest(self.neardup.to_dict()),
            "contamination": _digest([self.decontam.to_dict(), benchmarks]),
        }


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Unit:
    """One shard and the passes to run on it."""

    source: str
    shard: str
    passes: tuple[str, ...]
    params: CurationParams
    index_path: str | None
    # np.packbits of the rows to compute (None: all); the others are copies of a record computed
    # in an earlier unit (same content id) and are filled in from its results by `curate`.
    rows: bytes | None = None


@dataclass
class CurationReport:
    summary: dict[str, Any]
    redone: dict[str, list[str]]  # source -> passes redone
    reused: list[str]


# ----------------------------------------------------------------------------------- the unit
_INDEX: dict[str, BenchmarkIndex] = {}


def _index(path: str) -> BenchmarkIndex:
    import pickle

    if path not in _INDEX:
        with open(path, "rb") as fh:
            _INDEX.clear()
            _INDEX[path] = pickle.load(fh)  # noqa: S301 - written by this run, in DIR/curation
    return _INDEX[path]


def run_unit(unit: Unit) -> dict[str, Any]:
    """Read one shard and compute the requested passes on its rows to compute; columns come back
    (numpy arrays, and Arrow ids), for the computed rows only."""
    ids: list[pa.Array] = []
    computed: list[np.ndarray] = []
    signals: dict[str, list] = {c: [] for c in SIGNAL_COLUMNS}
    keys: dict[str, list[np.ndarray]] = {v: [] for v in VIEWS}
    hits: dict[str, list] = {c: [] for c in ("row", "benchmark", "item", "match", "share")}
    index = _index(unit.index_path) if "contamination" in unit.passes and unit.index_path else None
    parquet = pq.ParquetFile(unit.shard)
    n_rows = parquet.metadata.num_rows
    wanted = (
        np.unpackbits(np.frombuffer(unit.rows, np.uint8), count=n_rows).astype(bool)
        if unit.rows is not None
        else None
    )
    at = done = 0
    # A unit whose every row is a copy reads its ids only.
    columns = READ_COLUMNS if wanted is None or wanted.any() else ["id"]
    for batch in parquet.iter_batches(batch_size=4096, columns=columns):
        ids.append(batch.column("id"))
        if wanted is not None:
            mask = wanted[at : at + batch.num_rows]
            rows = at + np.flatnonzero(mask)
            batch = batch.filter(pa.array(mask))
        else:
            rows = at + np.arange(batch.num_rows)
        at += len(ids[-1])
        computed.append(rows)
        if not batch.num_rows:
            continue
        views = record_views(batch, unit.params.signals.cjk_share)
        if "signals" in unit.passes:
            for k, v in arrow_signals(batch, views, unit.params.signals).items():
                signals[k].append(v)
        if "neardup" in unit.passes:
            keys["prompt"].append(band_keys(views.prompt, unit.params.neardup))
            keys["record"].append(band_keys(views.record, unit.params.neardup))
        if index is not None:
            for i, found in enumerate(match_texts(views.record, index)):
                for h in found:
                    hits["row"].append(done + i)
                    hits["benchmark"].append(h.benchmark)
                    hits["item"].append(h.item)
                    hits["match"].append(h.match)
                    hits["share"].append(h.share)
        done += batch.num_rows
    bands = unit.params.neardup.bands
    return {
        "ids": pa.concat_arrays(ids) if ids else pa.array([], pa.string()),
        "rows": np.concatenate(computed) if computed else np.zeros(0, np.int64),
        "signals": {
            c: [x for part in v for x in part] if c == "refusal_match" else _cat(v)
            for c, v in signals.items()
        }
        if "signals" in unit.passes
        else None,
        "keys": {
            v: (np.concatenate(k) if k else np.zeros((0, bands), np.uint64))
            for v, k in keys.items()
        }
        if "neardup" in unit.passes
        else None,
        "hits": hits if index is not None else None,
    }


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


# ------------------------------------------------------------------------------ orchestration
def curate(
    out_dir: Path,
    *,
    catalog: Any = None,
    params: CurationParams | None = None,
    sample_benchmarks: bool | None = None,
    cache_dir: Path | None = None,
    offline: bool = False,
    workers: int = 1,
    executor: str = "local",
    ray_address: str | None = None,
    force: bool = False,
    on_unit: Callable[[str, int], None] | None = None,
    total: Callable[[int], None] | None = None,
) -> CurationReport:
    """Run the curation passes over `out_dir` and write `out_dir/curation/`.

    Args:
        out_dir: a collection built by `alpacacot-data build`.
        catalog: the catalog naming the benchmarks; default the build's, else the bundled one.
        params: settings of the passes (defaults: see each pass's module).
        sample_benchmarks: match against the benchmarks' bundled excerpts instead of their full
            pinned files; default: as the collection was built (`--sample` or not).
        workers: shards processed at once.
        executor: where the per-shard work runs: "local" (this process, or worker processes) or
            "ray" (`ray_address`: "auto", "HOST:PORT", or None for a Ray started for the run).
        force: redo every pass of every source.
        on_unit: progress, called with (source, records) after each shard.
        total: called once with the number of records to process.
    """
    from alpacacot.curation import benchmarks as bm

    out_dir = Path(out_dir)
    params = params or CurationParams()
    manifest = read_manifest(out_dir)
    catalog = catalog or _catalog_of(manifest)
    sample = manifest.get("sample", False) if sample_benchmarks is None else sample_benchmarks
    cur_dir = out_dir / CURATION
    cache = cur_dir / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    (cur_dir / "signals").mkdir(exist_ok=True)
    previous = _read_json(cur_dir / "manifest.json")

    # Benchmarks: files, index, fingerprint.
    bench_files = {
        key: bm.collect(catalog, entry, sample=sample, cache_dir=cache_dir, offline=offline)
        for key, entry in catalog.benchmarks.items()
    }
    bench_fp = bm.fingerprint(bench_files)
    pass_fp = params.pass_fingerprints(bench_fp)
    # The index depends on the benchmark files and the matcher's settings only: it is kept in the
    # download cache, shared by every collection, and rebuilt when one of those changes.
    from alpacacot.collectors import default_cache_dir

    index_dir = (cache_dir or default_cache_dir()) / "curation"
    index_path = index_dir / f"benchmarks-{pass_fp['contamination']}.pkl"
    index = _load_index(index_path)
    if index is None:
        index = build_index(
            (
                (key, i, text)
                for key, entry in catalog.benchmarks.items()
                for i, text in bm.read_items(entry, [p for p, _ in bench_files[key]])
            ),
            params.decontam,
        )
        for old_index in index_dir.glob("benchmarks-*.pkl"):
            old_index.unlink(missing_ok=True)
        index.save(index_path)
    # The units read it from here: in this process, and in workers forked from it, without
    # loading the file again (Ray's workers load it).
    _INDEX.clear()
    _INDEX[str(index_path)] = index

    keys = [k for k in source_keys(manifest) if manifest["sources"][k].get("split") != "eval"]
    old_sources = (previous or {}).get("sources", {})
    units: list[Unit] = []
    redone: dict[str, list[str]] = {}
    reused: list[str] = []
    state: dict[str, dict[str, Any]] = {}
    for key in keys:
        src_fp = manifest["sources"][key].get("fingerprint") or _digest(
            manifest["sources"][key].get("shards")
        )
        old = old_sources.get(key, {})
        todo = tuple(
            p
            for p in PASSES
            if force
            or old.get("fingerprint") != src_fp
            or old.get("passes", {}).get(p) != pass_fp[p]
            or not _cached(cur_dir, key, p)
        )
        state[key] = {"fingerprint": src_fp, "passes": dict(pass_fp)}
        if not todo:
            reused.append(key)
            state[key]["records"] = old.get("records", 0)
            continue
        redone[key] = list(todo)
        for shard in shard_paths(out_dir, manifest, key):
            units.append(Unit(key, str(shard), todo, params, str(index_path)))
    if total:
        total(sum(pq.ParquetFile(u.shard).metadata.num_rows for u in units))
    # Records that are exact copies (same content id) are computed once, in their first unit.
    units, slots, copies, plan = _plan_copies(units, params.neardup.bands)

    # Each source is written as soon as its last unit is back, then its results are dropped.
    left = Counter(u.source for u in units)  # units of each source not back yet
    pending: dict[str, dict[int, dict[str, Any]]] = {}
    finished: set[int] = set()
    # What the join needs of the sources written here (it reads the others' files).
    written: dict[str, dict[str, Any]] = {}

    def finish(i: int, result: dict[str, Any]) -> None:
        key = units[i].source
        result = copies.expand(result, slots[i])
        slots[i] = None
        pending.setdefault(key, {})[i] = result
        finished.add(i)
        if on_unit:
            on_unit(key, len(result["ids"]))
        left[key] -= 1
        if not left[key]:
            got = pending.pop(key)
            parts = [got[j] for j in sorted(got)]  # shard order
            del got
            state[key]["records"] = sum(len(p["ids"]) for p in parts)
            writer.submit(_write_source, cur_dir, key, parts, redone[key], params, written)
            del parts

    # Units with rows to compute go to the workers, heaviest first (a long unit last would leave
    # the other workers idle); a unit made only of copies reads its ids only, and does so in this
    # process as soon as the units holding its originals are back, while the workers compute.
    order = plan.dispatch_order()
    copy_only = [i for i in range(len(units)) if not plan.computed[i]]

    def copies_ready() -> None:
        for i in [j for j in copy_only if plan.deps[j] <= finished]:
            copy_only.remove(i)
            finish(i, run_unit(units[i]))

    def done(k: int, result: dict[str, Any]) -> None:
        finish(order[k], result)
        copies_ready()

    # The per-source files are written by threads (Parquet encodes and compresses without the
    # GIL) while this thread expands the next results; with one worker, in this thread.
    writer = _Writer(workers if workers > 1 else 0)
    try:
        copies_ready()
        map_units(
            run_unit,
            [units[i] for i in order],
            workers=workers,
            on_done=done,
            keep=False,
            executor=executor,
            address=ray_address,
        )
    finally:
        writer.close()
    assert not copy_only and not pending

    from alpacacot.curation.report import OVERLAP_FIGURE

    summary, drawing, clusters_written = _join(
        cur_dir, keys, params, index, catalog, out_dir / OVERLAP_FIGURE, written
    )
    record = {
        "format": "alpacacot-curation",
        "format_version": FORMAT_VERSION,
        "curated_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "parameters": params.to_dict(),
        "benchmarks": {
            key: {
                "files": [
                    {"file": str(getattr(p, "name", p)), "sha256": digest}
                    for p, digest in bench_files[key]
                ],
                "items": index.items.get(key, 0),
                "too_short": index.skipped.get(key, 0),
                "sample": sample,
            }
            for key in catalog.benchmarks
        },
        "benchmarks_fingerprint": bench_fp,
        "sources": state,
        "files": {
            "signals": "curation/signals/*.parquet",
            "contamination": "curation/contamination.parquet",
            "clusters": "curation/clusters.parquet",
        },
        "summary": summary,
    }
    clusters_written.result()
    _write_json(cur_dir / "manifest.json", record)
    manifest["curation"] = record
    _write_json(out_dir / "manifest.json", manifest)
    from alpacacot.card import write_card

    if drawing is not None:
        drawing.result()  # the card shows the figure
    write_card(out_dir, manifest, catalog)
    return CurationReport(summary=summary, redone=redone, reused=reused)


def _load_index(path: Path) -> BenchmarkIndex | None:
    import pickle

    try:
        with open(path, "rb") as fh:
            index = pickle.load(fh)  # noqa: S301 - written by curate in DIR/curation/cache
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError):
        return None
    return index if isinstance(index, BenchmarkIndex) else None


def _catalog_of(manifest: dict[str, Any]) -> Any:
    from alpacacot.card import _catalog_of as build_catalog
    from alpacacot.catalog import load_catalog

    found = build_catalog(manifest)
    return found if found is not None and found.benchmarks else load_catalog()


def _cached(cur_dir: Path, key: str, name: str) -> bool:
    return _pass_file(cur_dir, key, name).is_file()


def _pass_file(cur_dir: Path, key: str, name: str) -> Path:
    if name == "signals":
        return cur_dir / "signals" / f"{key}.parquet"
    return cur_dir / "cache" / f"{key}.{name}.parquet"


def _plan_copies(
    units: list[Unit], bands: int
) -> tuple[list[Unit], list[np.ndarray | None], _Copies, _Plan]:
    """Mark, in each unit, the rows whose content id was already seen in an earlier unit (or row)
    with the same passes: those rows are not computed but copied from the first one's results.

    Returns the units (with `rows` set where some rows are copies), per unit the slot in the
    copy store of each row (-1: no copy of it anywhere; None: no row with copies), the store,
    and per unit the rows it computes and the units holding the originals of its copies.
    """
    import pyarrow.compute as pc

    out = list(units)
    slots: list[np.ndarray | None] = [None] * len(units)
    plan = _Plan(
        computed=[0] * len(units),
        deps=[set() for _ in units],
        weight=[0.0] * len(units),
    )
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, u in enumerate(units):
        groups.setdefault(u.passes, []).append(i)
    n_slots = 0
    for members in groups.values():
        # Read by threads (Arrow decodes without the GIL); no worker has started yet.
        with ThreadPoolExecutor(max(1, min(4, os.cpu_count() or 1))) as pool:
            ids = list(pool.map(lambda i: _read(units[i].shard, ["id"]).column("id"), members))
        lengths = [len(c) for c in ids]
        if not sum(lengths):
            continue
        flat = pa.concat_arrays([c.combine_chunks().cast(pa.string()) for c in ids])
        codes = pc.dictionary_encode(flat).indices.to_numpy(zero_copy_only=False)
        del flat, ids
        _, first_at = np.unique(codes, return_index=True)
        first = np.zeros(len(codes), dtype=bool)
        first[first_at] = True
        counts = np.bincount(codes)
        slot_of = np.full(len(counts), -1, dtype=np.int32)
        multi = np.flatnonzero(counts > 1)
        slot_of[multi] = n_slots + np.arange(len(multi), dtype=np.int32)
        n_slots += len(multi)
        starts = np.cumsum([0, *lengths])
        at = 0
        for i, n in zip(members, lengths, strict=True):
            unit_slots = slot_of[codes[at : at + n]]
            if (unit_slots >= 0).any():
                slots[i] = unit_slots
            mine = first[at : at + n]
            plan.computed[i] = int(mine.sum())
            if plan.computed[i] < n:
                out[i] = replace(units[i], rows=np.packbits(mine).tobytes())
                # the units of the first occurrences of this unit's copies
                owner = np.searchsorted(starts, first_at[codes[at : at + n][~mine]], "right") - 1
                plan.deps[i] = {members[j] for j in np.unique(owner).tolist()} - {i}
            if n:
                plan.weight[i] = os.path.getsize(units[i].shard) * plan.computed[i] / n
            at += n
    return out, slots, _Copies(n_slots, bands), plan


@dataclass
class _Plan:
    """Per unit: the rows it computes, the units whose results its copies read, its cost (the
    shard's bytes times the share of rows computed)."""

    computed: list[int]
    deps: list[set[int]]
    weight: list[float]

    def dispatch_order(self) -> list[int]:
        """The units with rows to compute, the heaviest first, each preceded by the units its
        copies read (their results must be back first; they are earlier units, so this ends)."""
        order: list[int] = []
        placed: set[int] = set()

        def place(i: int) -> None:
            for d in sorted(self.deps[i] - placed):
                place(d)
            if i not in placed:
                placed.add(i)
                order.append(i)

        todo = [i for i, n in enumerate(self.computed) if n]
        for i in sorted(todo, key=lambda i: (-self.weight[i], i)):
            place(i)
        return order


_SIGNAL_DTYPES = {
    c: (object if c == "refusal_match" else SIGNALS_SCHEMA.field(c).type.to_pandas_dtype())
    for c in SIGNAL_COLUMNS
}
_HIT_COLUMNS = ("benchmark", "item", "match", "share")


class _Copies:
    """The results of records that have copies, by slot (one per content id with copies): filled
    from the unit that computes a record, read by the units holding its copies."""

    def __init__(self, n_slots: int, bands: int):
        self.n = n_slots
        self.signals: dict[str, np.ndarray] = {}
        self.keys: dict[str, np.ndarray] = {}
        self.hits: dict[int, list[tuple]] = {}
        self.bands = bands

    def expand(self, result: dict[str, Any], slots: np.ndarray | None) -> dict[str, Any]:
        """A unit's results for every row: its computed rows, then the copied ones."""
        n = len(result["ids"])
        rows = result["rows"]
        if slots is None and len(rows) == n:
            slots = np.full(n, -1, dtype=np.int32)  # nothing to keep or to copy
        assert slots is not None
        own = slots[rows]
        keep = own >= 0
        copy = np.ones(n, dtype=bool)
        copy[rows] = False
        copy_rows = np.flatnonzero(copy)
        from_slot = slots[copy_rows]
        out: dict[str, Any] = {"ids": result["ids"]}
        if result["signals"] is not None:
            out["signals"] = {}
            for c in SIGNAL_COLUMNS:
                dtype = _SIGNAL_DTYPES[c]
                values = np.empty(len(rows), dtype=dtype)
                values[:] = result["signals"][c]
                store = self.signals.setdefault(c, np.empty(self.n, dtype=dtype))
                store[own[keep]] = values[keep]
                full = np.empty(n, dtype=dtype)
                full[rows] = values
                full[copy_rows] = store[from_slot]
                out["signals"][c] = full
        else:
            out["signals"] = None
        if result["keys"] is not None:
            out["keys"] = {}
            for v in VIEWS:
                store = self.keys.setdefault(v, np.zeros((self.n, self.bands), dtype=np.uint64))
                store[own[keep]] = result["keys"][v][keep]
                full = np.zeros((n, self.bands), dtype=np.uint64)
                full[rows] = result["keys"][v]
                full[copy_rows] = store[from_slot]
                out["keys"][v] = full
        else:
            out["keys"] = None
        if result["hits"] is not None:
            h = result["hits"]
            found = [
                (int(rows[r]), *t)
                for r, *t in zip(h["row"], *(h[c] for c in _HIT_COLUMNS), strict=True)
            ]
            for row, *t in found:
                if slots[row] >= 0:
                    self.hits.setdefault(int(slots[row]), []).append(tuple(t))
            if self.hits:
                for row, slot in zip(copy_rows.tolist(), from_slot.tolist(), strict=True):
                    found += [(row, *t) for t in self.hits.get(slot, ())]
            found.sort(key=lambda f: f[0])
            out["hits"] = {
                "row": [f[0] for f in found],
                **{c: [f[j + 1] for f in found] for j, c in enumerate(_HIT_COLUMNS)},
            }
        else:
            out["hits"] = None
        return out


def _write_source(
    cur_dir: Path,
    key: str,
    parts: list[dict[str, Any]],
    passes: list[str],
    params: CurationParams,
    written: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Write a source's files; with `written`, also keep there what the join reads of them when
    every pass was redone (ids, signal counts, hits)."""
    ids = (
        pa.concat_arrays([p["ids"].cast(pa.string()) for p in parts])
        if parts
        else pa.array([], pa.string())
    )
    if "signals" in passes:
        cols: dict[str, Any] = {"id": ids, "source": pa.array([key] * len(ids), pa.string())}
        for c in SIGNAL_COLUMNS:
            values = np.concatenate([p["signals"][c] for p in parts])
            cols[c] = pa.array(values, SIGNALS_SCHEMA.field(c).type, from_pandas=False)
        table = pa.table(cols, schema=SIGNALS_SCHEMA)
        _write_table(table, _pass_file(cur_dir, key, "signals"))
        signal_counts = _signal_counts(table)
        del table
    if "neardup" in passes:
        bands = params.neardup.bands
        cols = {"id": ids}
        for view in VIEWS:
            flat = np.concatenate([p["keys"][view] for p in parts]).reshape(-1)
            cols[f"{view}_bands"] = pa.FixedSizeListArray.from_arrays(pa.array(flat), bands)
        # Band keys and ids are hashes: zstd spends half the write on the keys and saves no
        # byte, and a dictionary (parquet's default) is tried on every column chunk in vain.
        _write_table(
            pa.table(cols),
            _pass_file(cur_dir, key, "neardup"),
            {"id": "zstd", **{f"{view}_bands": "none" for view in VIEWS}},
            use_dictionary=False,
        )
    if "contamination" in passes:
        rows, at = [], 0
        for p in parts:
            rows += [at + r for r in p["hits"]["row"]]
            at += len(p["ids"])
        hits: dict[str, Any] = {
            "id": ids.take(pa.array(rows, pa.int64())),
            "source": pa.array([key] * len(rows), pa.string()),
        }
        for c in _HIT_COLUMNS:
            hits[c] = pa.array(
                [v for p in parts for v in p["hits"][c]], CONTAMINATION_SCHEMA.field(c).type
            )
        hit_table = pa.table(hits, schema=CONTAMINATION_SCHEMA)
        _write_table(hit_table, _pass_file(cur_dir, key, "contamination"))
    if written is not None and set(PASSES) <= set(passes):
        written[key] = {"ids": ids, "signals": signal_counts, "hits": hit_table}


class _Writer:
    """Runs writes in `threads` threads (none: in the caller's), at most 2 per thread queued
    (each holds a source's results); `close` waits for them all and raises the first error."""

    def __init__(self, threads: int):
        import threading

        self.pool = ThreadPoolExecutor(threads, "alpacacot-curation-writer") if threads else None
        self.room = threading.BoundedSemaphore(2 * threads) if threads else None
        self.futures: list[Future[None]] = []

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        if self.pool is None or self.room is None:
            fn(*args)
            return
        self.room.acquire()
        future = self.pool.submit(fn, *args)
        future.add_done_callback(lambda _: self.room.release())
        self.futures.append(future)
        for f in [f for f in self.futures if f.done()]:
            self.futures.remove(f)
            f.result()

    def close(self) -> None:
        if self.pool is None:
            return
        self.pool.shutdown(wait=True)
        for f in self.futures:
            f.result()


def _write_table(
    table: pa.Table,
    path: Path,
    compression: str | dict[str, str] = "zstd",
    use_dictionary: bool = True,
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    pq.write_table(table, tmp, compression=compression, use_dictionary=use_dictionary)
    tmp.replace(path)


def _read(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file (pq.read_table would import pyarrow.dataset, ~0.25 CPU-s, for nothing)."""
    return pq.ParquetFile(path).read(columns=columns)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


# ------------------------------------------------------------------------------------- the join
def _join(
    cur_dir: Path,
    keys: list[str],
    params: CurationParams,
    index: BenchmarkIndex,
    catalog: Any,
    figure: Path | None = None,
    written: dict[str, dict[str, Any]] | None = None,
) -> tuple[dict[str, Any], Future[Path | None] | None, Future[None]]:
    """Clusters, overlap matrix, contamination table and signal counts over every source.

    With `figure`, the prompt view's overlap heatmap is drawn there in a thread as soon as that
    view is clustered, while the rest of the join runs; the second value is that drawing, the
    third the write of clusters.parquet (in a thread)."""
    # Band keys of every source go straight into one preallocated array, one view at a time (no
    # second copy): the keys of one view are the largest thing the join holds (bands x 8 B/record).
    bands = params.neardup.bands
    paths = [_pass_file(cur_dir, key, "neardup") for key in keys]
    written = written or {}
    # Ids stay in Arrow (no Python string per record); those of the sources written by this run
    # are the ones it wrote, the others are read.
    ids = [
        written[k]["ids"] if k in written else _read(p, ["id"]).column("id").combine_chunks()
        for k, p in zip(keys, paths, strict=True)
    ]
    counts = [len(i) for i in ids]
    total = sum(counts)
    src = np.repeat(np.arange(len(keys), dtype=np.int32), counts)
    all_ids = pa.concat_arrays(ids) if ids else pa.array([], pa.string())
    del ids
    # Exact copies (the same content id) have the same band keys, so they are always in the
    # cluster of their first occurrence: only first occurrences are clustered, and a copy takes
    # its first occurrence's label. Labels are the cluster's first row, a first occurrence, so
    # this gives the labels clustering every row would. A source of copies only is not read.
    first = _first_occurrences(all_ids)
    distinct = np.flatnonzero(first == np.arange(total))
    position = np.full(total, -1, dtype=np.int64)
    position[distinct] = np.arange(len(distinct))
    labels = {}
    overlap: dict[str, dict[str, dict[str, int]]] = {}
    drawing: Future[Path | None] | None = None
    for v in VIEWS:
        view = np.zeros((len(distinct), bands), dtype=np.uint64)
        at = filled = 0
        for path, n in zip(paths, counts, strict=True):
            keep = position[at : at + n] >= 0
            at += n
            if not keep.any():
                continue
            column = _read(path, [f"{v}_bands"]).column(0).combine_chunks()
            values = column.values.to_numpy(zero_copy_only=False).reshape(n, bands)
            k = int(keep.sum())
            view[filled : filled + k] = values if k == n else values[keep]
            filled += k
            del column, values
        labels[v] = distinct[clusters(view)][position[first]]
        del view
        overlap[v] = _overlap(labels[v], src, keys)
        if v == FIGURE_VIEW and figure is not None:
            drawing = _draw_overlap(dict(zip(keys, counts, strict=True)), overlap[v], figure)
    sizes = {v: np.bincount(labels[v], minlength=len(all_ids)) for v in VIEWS}
    in_cluster = np.zeros(len(all_ids), dtype=bool)
    for v in VIEWS:
        in_cluster |= sizes[v][labels[v]] > 1
    rows = np.flatnonzero(in_cluster)
    names = pa.array(keys, pa.string())
    table = pa.table(
        {
            "id": all_ids.take(pa.array(rows)),
            "source": names.take(pa.array(src[rows])),
            **{f"{v}_cluster": all_ids.take(pa.array(labels[v][rows])) for v in VIEWS},
            **{f"{v}_cluster_size": pa.array(sizes[v][labels[v][rows]], pa.int64()) for v in VIEWS},
        }
    )
    # Written by a thread (Parquet encodes without the GIL) while the summary is made; `curate`
    # waits for it before the manifest names it.
    pool = ThreadPoolExecutor(max_workers=1)
    clusters_written = pool.submit(_write_table, table, cur_dir / "clusters.parquet")
    pool.shutdown(wait=False)
    del table, rows, in_cluster  # ~3 ids per clustered record: not held through the summary

    contamination = [
        written[k]["hits"] if k in written else _read(_pass_file(cur_dir, k, "contamination"))
        for k in keys
    ] or [CONTAMINATION_SCHEMA.empty_table()]
    hits = pa.concat_tables(contamination)
    _write_table(hits, cur_dir / "contamination.parquet")

    summary = {
        "records": int(len(all_ids)),
        "near_duplicates": {
            v: {
                "records_in_clusters": int((sizes[v][labels[v]] > 1).sum()),
                "clusters": int((sizes[v] > 1).sum()),
                "overlap": overlap[v],
                "largest": _largest(labels[v], sizes[v], src, keys, all_ids, cur_dir),
            }
            for v in VIEWS
        },
        "contamination": _contamination_summary(hits, keys, catalog),
        "signals": {
            k: written[k]["signals"] if k in written else _signal_summary(cur_dir, [k])[k]
            for k in keys
        },
    }
    return summary, drawing, clusters_written


def _first_occurrences(ids: pa.Array) -> np.ndarray:
    """For each row, the first row with the same id."""
    import pyarrow.compute as pc

    if not len(ids):
        return np.zeros(0, dtype=np.int64)
    codes = pc.dictionary_encode(ids).indices.to_numpy(zero_copy_only=False)
    _, first_at = np.unique(codes, return_index=True)
    return first_at.astype(np.int64)[codes]


FIGURE_VIEW = "prompt"  # the view of the card's overlap heatmap


def _draw_overlap(
    records: dict[str, int], overlap: dict[str, dict[str, int]], figure: Path
) -> Future[Path | None]:
    """Draw the overlap heatmap in a thread of its own (what it reads is final already)."""
    from alpacacot.curation.report import plot_overlap

    partial = {
        "near_duplicates": {FIGURE_VIEW: {"overlap": overlap}},
        "signals": {key: {"records": n} for key, n in records.items()},
    }
    pool = ThreadPoolExecutor(max_workers=1)
    drawing = pool.submit(plot_overlap, partial, figure, FIGURE_VIEW)
    pool.shutdown(wait=False)
    return drawing


def _overlap(labels: np.ndarray, src: np.ndarray, keys: list[str]) -> dict[str, dict[str, int]]:
    """matrix[a][b]: records of source a with a near-duplicate in source b (a == b: within a).

    Per chunk of clusters, a (clusters x sources) count matrix C; the matrix is C^T (C > 0),
    with the diagonal counting only clusters that hold 2+ records of the source. Memory is
    bounded by the chunk, whatever the number of sources per cluster.
    """
    out: dict[str, dict[str, int]] = {k: {} for k in keys}
    if not len(labels):
        return out
    sizes = np.bincount(labels, minlength=len(labels))
    member = np.flatnonzero(sizes[labels] > 1)
    if not member.size:
        return out
    # Clusters numbered by their root (labels are root indices: no sort needed to number them);
    # rows grouped by cluster (any order inside a cluster: the sums do not depend on it).
    roots = np.flatnonzero(sizes > 1)
    number = np.zeros(len(labels), dtype=np.int64)
    number[roots] = np.arange(len(roots))
    inverse = number[labels[member]]
    order = np.argsort(inverse)
    inv, srcs = inverse[order], src[member][order]
    cluster = roots
    n_src = len(keys)
    matrix = np.zeros((n_src, n_src), dtype=np.int64)
    bounds = np.searchsorted(inv, np.arange(0, len(cluster) + 1, 20_000))
    bounds = np.append(bounds, len(inv)) if bounds[-1] != len(inv) else bounds
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if lo == hi:
            continue
        rows = inv[lo:hi] - inv[lo]
        n_rows = int(rows[-1]) + 1
        counts = np.bincount(rows * n_src + srcs[lo:hi], minlength=n_rows * n_src)
        counts = counts.reshape(n_rows, n_src)
        np.fill_diagonal(matrix, matrix.diagonal() - (counts * (counts == 1)).sum(axis=0))
        # Clusters with the same counts per source add the same row products: each distinct
        # row once, times how many clusters have it. Few distinct rows (the usual case): a small
        # integer matmul, exact, without BLAS threads (they spin when the cores are busy); many:
        # float64 BLAS (exact below 2**53), not numpy's slow integer matmul.
        counts, times = _distinct_rows(counts)
        if len(counts) <= 2048:
            matrix += (counts.T * times) @ (counts > 0).astype(np.int64)
        else:
            product = (counts.T * times).astype(np.float64) @ (counts > 0).astype(np.float64)
            matrix += np.rint(product).astype(np.int64)
    for a in range(n_src):
        for b in range(n_src):
            if matrix[a, b]:
                out[keys[a]][keys[b]] = int(matrix[a, b])
    return out


def _distinct_rows(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows of `counts` (int64) and how many times each occurs.

    Rows are grouped by a 64-bit hash (pandas.factorize) and checked against their group's
    first row; should two different rows share a hash, every row is kept (times 1)."""
    import pandas as pd

    if not len(counts):
        return counts, np.ones(0, dtype=np.int64)
    weights = np.random.default_rng(0).integers(1, 2**63, counts.shape[1], dtype=np.int64) | 1
    with np.errstate(over="ignore"):
        hashes = (counts * weights).sum(axis=1)
    codes, distinct = pd.factorize(hashes)
    first = np.empty(len(distinct), dtype=np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
    if not np.array_equal(counts, counts[first[codes]]):
        return counts, np.ones(len(counts), dtype=np.int64)
    return counts[first], np.bincount(codes, minlength=len(distinct))


def _largest(
    labels: np.ndarray,
    sizes: np.ndarray,
    src: np.ndarray,
    keys: list[str],
    ids: pa.Array,
    cur_dir: Path,
    top: int = 10,
) -> list[dict[str, Any]]:
    if not len(labels):
        return []
    roots = np.argsort(-sizes, kind="stable")[:top]
    out = []
    for root in roots:
        if sizes[root] < 2:
            break
        members = np.flatnonzero(labels == root)
        counts = np.bincount(src[members], minlength=len(keys))
        out.append(
            {
                "cluster": ids[int(root)].as_py(),
                "size": int(sizes[root]),
                "sources": {keys[i]: int(n) for i, n in enumerate(counts) if n},
            }
        )
    return out


def _contamination_summary(hits: pa.Table, keys: list[str], catalog: Any) -> dict[str, Any]:
    per: dict[str, dict[str, int]] = {}
    examples: list[dict[str, Any]] = []
    if hits.num_rows:
        df = hits.to_pandas()
        for (source, bench), group in df.groupby(["source", "benchmark"]):
            per.setdefault(source, {})[bench] = int(group["id"].nunique())
            first = group.iloc[0]
            examples.append(
                {
                    "source": source,
                    "benchmark": bench,
                    "item": int(first["item"]),
                    "id": first["id"],
                    "match": first["match"][:200],
                }
            )
    return {"records_hit": per, "examples": examples}


def _signal_summary(cur_dir: Path, keys: list[str]) -> dict[str, Any]:
    return {key: _signal_counts(_read(_pass_file(cur_dir, key, "signals"))) for key in keys}


def _signal_counts(t: pa.Table) -> dict[str, Any]:
    """One source's line of the signal summary, from its signals table."""
    import pyarrow.compute as pc

    return {
        "records": t.num_rows,
        **{
            c: int(pc.sum(t.column(c)).as_py() or 0)
            for c in ("refusal", "lang_mismatch", "empty_answer", "truncated")
        },
        "repetition_over_0.5": int(pc.sum(pc.greater(t.column("repetition"), 0.5)).as_py() or 0),
        "output_chars_p50": _pct(t.column("output_chars"), 50),
        "output_chars_p99": _pct(t.column("output_chars"), 99),
    }


def _pct(column: pa.ChunkedArray, q: float) -> int:
    arr = column.to_numpy()
    return int(np.percentile(arr, q)) if arr.size else 0
