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

import math
import pickle
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from alpacacot.curation.batch import Tokens, gram_hashes, tokenize


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
    """Every benchmark item's grams, hashed, with the items each gram points to.

    Kept as flat numpy arrays (a few bytes per gram), so each worker loads it in milliseconds:
    `keys[n]` are the sorted gram hashes of length n (n-grams of long items, min_tokens-grams of
    short ones); the owners of `keys[n][i]` are `owners[n][starts[n][i]:starts[n][i + 1]]`,
    indices into `items_list`.
    """

    params: DecontamParams
    keys: dict[int, np.ndarray] = field(default_factory=dict)
    starts: dict[int, np.ndarray] = field(default_factory=dict)
    owners: dict[int, np.ndarray] = field(default_factory=dict)
    items_list: list[tuple[str, int]] = field(default_factory=list)
    # (benchmark, item) -> distinct grams it keeps, and how many a record must share to hit it
    sizes: dict[tuple[str, int], int] = field(default_factory=dict)
    need: dict[tuple[str, int], int] = field(default_factory=dict)
    items: dict[str, int] = field(default_factory=dict)  # items per benchmark
    skipped: dict[str, int] = field(default_factory=dict)  # too short to match, per benchmark

    @property
    def grams(self) -> int:
        return int(sum(len(k) for k in self.keys.values()))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".partial")
        with open(tmp, "wb") as fh:
            pickle.dump(self, fh, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)


def build_index(
    items: Iterable[tuple[str, int, str]], params: DecontamParams | None = None
) -> BenchmarkIndex:
    """Index benchmark items given as (benchmark key, item index, text).

    A long item is indexed by its `n`-grams; an item of `min_tokens` to `n - 1` tokens by its
    `min_tokens`-grams, all of which a record must then hold (the whole item, in order).
    """
    params = params or DecontamParams()
    index = BenchmarkIndex(params=params)
    items = list(items)
    for bench, _, _ in items:
        index.items[bench] = index.items.get(bench, 0) + 1
    owners: dict[int, list[tuple[str, int]]] = defaultdict(list)
    short: set[tuple[str, int]] = set()
    by_n: dict[int, set[int]] = {params.n: set(), params.min_tokens: set()}
    for lo in range(0, len(items), 4096):
        chunk = items[lo : lo + 4096]
        tok = tokenize([text for _, _, text in chunk])
        lengths = tok.lengths
        for n in (params.n, params.min_tokens):
            h, text, _ = gram_hashes(tok, n)
            wanted = (
                lengths >= params.n
                if n == params.n
                else ((lengths >= params.min_tokens) & (lengths < params.n))
            )
            sel = wanted[text]
            for g, t in zip(h[sel].tolist(), text[sel].tolist(), strict=True):
                who = (chunk[t][0], chunk[t][1])
                lst = owners[g]
                if not lst or lst[-1] != who:
                    lst.append(who)
                by_n[n].add(g)
            if n == params.min_tokens:
                short.update((chunk[t][0], chunk[t][1]) for t in np.flatnonzero(wanted))
        for t in np.flatnonzero(lengths < params.min_tokens):
            index.skipped[chunk[t][0]] = index.skipped.get(chunk[t][0], 0) + 1
    kept: dict[tuple[str, int], int] = defaultdict(int)
    number: dict[tuple[str, int], int] = {}
    for n, grams in by_n.items():
        rows: list[tuple[int, list[int]]] = []
        for g in grams:
            who = list(dict.fromkeys(owners[g]))
            if len(who) > params.max_items_per_gram:
                continue
            ids = []
            for w in who:
                kept[w] += 1
                if w not in number:
                    number[w] = len(index.items_list)
                    index.items_list.append(w)
                ids.append(number[w])
            rows.append((g, ids))
        rows.sort()
        index.keys[n] = np.array([g for g, _ in rows], dtype=np.uint64)
        index.starts[n] = np.concatenate([[0], np.cumsum([len(ids) for _, ids in rows])]).astype(
            np.int64
        )
        index.owners[n] = np.array([i for _, ids in rows for i in ids], dtype=np.int32)
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
    return match_texts([text], index)[0]


def match_texts(texts: Sequence[str] | Tokens, index: BenchmarkIndex) -> list[list[Hit]]:
    """`match_text` for a batch (or its tokens): grams are hashed and looked up with numpy, only
    the few candidate grams reach Python."""
    p = index.params
    tok = texts if isinstance(texts, Tokens) else tokenize(texts)
    found: dict[tuple[int, tuple[str, int]], set[int]] = defaultdict(set)
    spans: dict[tuple[int, tuple[str, int]], list[tuple[int, int]]] = defaultdict(list)
    for n in (p.n, p.min_tokens):
        keys = index.keys.get(n)
        if keys is None or not len(keys):
            continue
        h, text, start = gram_hashes(tok, n)
        maybe = np.flatnonzero(_maybe_in(index, n, h))
        pos = np.zeros(len(h), dtype=np.int64)
        pos[maybe] = np.minimum(np.searchsorted(keys, h[maybe]), len(keys) - 1)
        cand = maybe[keys[pos[maybe]] == h[maybe]]
        starts, owners = index.starts[n], index.owners[n]
        for g, k, t, s in zip(
            h[cand].tolist(),
            pos[cand].tolist(),
            text[cand].tolist(),
            start[cand].tolist(),
            strict=True,
        ):
            base = int(tok.offsets[t])
            for o in owners[starts[k] : starts[k + 1]].tolist():
                w = index.items_list[o]
                found[t, w].add(g)
                spans[t, w].append((s - base, s - base + n))
    out: list[list[Hit]] = [[] for _ in range(len(tok.offsets) - 1)]
    for (t, w), hs in found.items():
        need = index.need.get(w, 0)
        if need and len(hs) >= need:
            share = round(len(hs) / index.sizes[w], 4)
            out[t].append(Hit(w[0], w[1], _longest_run(tok.tokens_of(t), spans[t, w]), share))
    for hits in out:
        hits.sort(key=lambda h: (h.benchmark, h.item))
    return out


_FILTER_BITS = 26  # 8 MiB per gram length: about 1% of the grams not in the index pass
_FILTER: dict[str, object] = {}


def _maybe_in(index: BenchmarkIndex, n: int, h: np.ndarray) -> np.ndarray:
    """False for most grams not in `index.keys[n]` (a bitmap of their top bits), True for all
    grams in it: the sorted search then runs on the few that pass."""
    if _FILTER.get("index") is not index:
        _FILTER.clear()
        _FILTER["index"] = index
    bitmaps: dict[int, np.ndarray] = _FILTER.setdefault("bitmaps", {})  # type: ignore[assignment]
    shift = np.uint64(64 - _FILTER_BITS)
    if n not in bitmaps:
        bitmap = np.zeros(1 << (_FILTER_BITS - 3), dtype=np.uint8)
        top = index.keys[n] >> shift
        np.bitwise_or.at(bitmap, top >> np.uint64(3), (1 << (top & np.uint64(7))).astype(np.uint8))
        bitmaps[n] = bitmap
    top = h >> shift
    return ((bitmaps[n][top >> np.uint64(3)] >> (top & np.uint64(7)).astype(np.uint8)) & 1).astype(
        bool
    )


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
