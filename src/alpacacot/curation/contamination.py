"""Decontamination: which training records contain a benchmark item, by long n-gram overlap.

Practice followed: GPT-3's 13-gram overlap test (Brown et al. 2020, appendix C): text is
normalised (NFKC, lower case, punctuation and whitespace dropped, digits kept), split into tokens
(words; one token per CJK character, so 13 Chinese characters make one gram), and a training
record overlaps a benchmark item when they share a 13-gram. As in GPT-3, an item shorter than 13
tokens is matched as a whole when it has at least 8 tokens and skipped (counted) below that, and
grams that are not specific to one item are ignored: a gram found in more than
`max_items_per_gram` items of the benchmark set (option letters, code boilerplate, exam headers).

Threshold: a record hits an item when it holds at least `min_share` (10%) of the item's distinct
grams, and at least one. One shared 13-gram already says "this text was copied"; asking a tenth of
the item keeps a single common phrase inside a long item (a GAOKAO passage) from counting, and is
far below what survives a reworded first sentence (the rest of the item is untouched).
"""

from __future__ import annotations

import hashlib
import math
import pickle
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from zlib import crc32

from alpacacot.curation.text import tokens


@dataclass(frozen=True)
class DecontamParams:
    """The matcher's settings (recorded in the manifest)."""

    n: int = 13
    min_tokens: int = 8
    min_share: float = 0.1
    max_items_per_gram: int = 10

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BenchmarkIndex:
    """Every benchmark item's grams, hashed, with the item each gram points to."""

    params: DecontamParams
    # gram hash -> (benchmark, item) pairs; a gram in too many items is dropped.
    grams: dict[int, list[tuple[str, int]]] = field(default_factory=dict)
    # (benchmark, item) -> distinct grams it keeps, and how many a record must share to hit it
    sizes: dict[tuple[str, int], int] = field(default_factory=dict)
    need: dict[tuple[str, int], int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)  # items per benchmark
    skipped: dict[str, int] = field(default_factory=dict)  # too short to match, per benchmark

    def fingerprint(self) -> str:
        h = hashlib.sha256(repr(sorted(self.params.to_dict().items())).encode())
        for key in sorted(self.sizes):
            h.update(f"{key}:{self.sizes[key]};".encode())
        h.update(repr(sorted(self.grams)[:1000]).encode())
        return h.hexdigest()[:16]

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial")
        with open(tmp, "wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)


def item_grams(text: str, params: DecontamParams) -> tuple[list[str], set[int]]:
    """An item's tokens and the hashes of its distinct grams (empty when too short).

    A long item is indexed by its `n`-grams; an item of `min_tokens` to `n - 1` tokens by its
    `min_tokens`-grams, all of which a record must then hold (the whole item, in order).
    """
    toks = tokens(text)
    if len(toks) < params.min_tokens:
        return toks, set()
    n = params.n if len(toks) >= params.n else params.min_tokens
    return toks, set(gram_hashes(toks, n))


def gram_hashes(toks: Sequence[str], n: int) -> list[int]:
    """Hashes of every contiguous `n`-gram of `toks`, in order.

    Deterministic across processes (crc32 per token, then the tuple hash of ints), unlike
    `hash(str)`, so an index built once is valid in every worker.
    """
    th = [crc32(t.encode()) for t in toks]
    return [hash(tuple(th[i : i + n])) for i in range(len(th) - n + 1)]


def build_index(
    items: Iterable[tuple[str, int, str]], params: DecontamParams | None = None
) -> BenchmarkIndex:
    """Index benchmark items given as (benchmark key, item index, text)."""
    params = params or DecontamParams()
    index = BenchmarkIndex(params=params)
    owners: dict[int, list[tuple[str, int]]] = defaultdict(list)
    short: set[tuple[str, int]] = set()
    for bench, item, text in items:
        index.items[bench] = index.items.get(bench, 0) + 1
        toks, grams = item_grams(text, params)
        if not grams:
            index.skipped[bench] = index.skipped.get(bench, 0) + 1
            continue
        if len(toks) < params.n:
            short.add((bench, item))
        for g in grams:
            owners[g].append((bench, item))
    kept: dict[tuple[str, int], int] = defaultdict(int)
    for g, who in owners.items():
        if len(who) > params.max_items_per_gram:
            continue
        index.grams[g] = who
        for w in who:
            kept[w] += 1
    index.sizes = dict(kept)
    index.need = {w: _need(params, w, size, short) for w, size in kept.items()}
    return index


def _need(params: DecontamParams, item: tuple[str, int], size: int, short: set) -> int:
    if item in short:
        return size
    return max(1, math.ceil(params.min_share * size))


@dataclass(frozen=True)
class Hit:
    benchmark: str
    item: int
    match: str  # the longest run of the record's normalised tokens covered by the item's grams
    share: float


def match_text(text: str, index: BenchmarkIndex) -> list[Hit]:
    """The benchmark items a text contains (see the module docstring for the rule)."""
    toks = tokens(text)
    p = index.params
    if len(toks) < p.min_tokens:
        return []
    found: dict[tuple[str, int], set[int]] = defaultdict(set)
    spans: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    grams = index.grams
    # Long items are indexed by n-grams, short ones by min_tokens-grams: probe both lengths.
    for n in (p.n, p.min_tokens):
        for i, h in enumerate(gram_hashes(toks, n)):
            who = grams.get(h)
            if who is None:
                continue
            for w in who:
                found[w].add(h)
                spans[w].append((i, i + n))
    hits = []
    for w, hs in found.items():
        need = index.need.get(w, 0)
        if need and len(hs) >= need:
            share = round(len(hs) / index.sizes[w], 4)
            hits.append(Hit(w[0], w[1], _longest_run(toks, spans[w]), share))
    return sorted(hits, key=lambda h: (h.benchmark, h.item))


def _longest_run(toks: list[str], spans: list[tuple[int, int]]) -> str:
    spans.sort()
    best = cur = spans[0]
    for s, e in spans[1:]:
        if s <= cur[1]:
            cur = (cur[0], max(cur[1], e))
        else:
            cur = (s, e)
        if cur[1] - cur[0] > best[1] - best[0]:
            best = cur
    if cur[1] - cur[0] > best[1] - best[0]:
        best = cur
    sep = "" if all(len(t) == 1 and not t.isascii() for t in toks[best[0] : best[1]]) else " "
    return sep.join(toks[best[0] : best[1]])
