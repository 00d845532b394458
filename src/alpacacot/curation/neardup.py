"""Near-duplicates: MinHash signatures per unit, LSH band keys, then clusters over the collection.

The work is split so it maps over units (one shard at a time) and joins cheaply:

1. `band_keys(texts)`: per record, a MinHash signature of `bands * rows` permutations (rensa's
   Rust MinHash by default; datasketch gives the same scheme in numpy), folded into one 64-bit key
   per band. Only the band keys are kept: `bands * 8` bytes per record and view.
2. `clusters(keys)`: records that share a key in any band are candidates (classic LSH banding,
   Leskovec et al., Mining of Massive Datasets ch. 3); connected components of that graph are
   the clusters. The probability that two records with Jaccard similarity s share a band is
   1 - (1 - s**rows)**bands: with 14 x 8 it is 0.5 at s = 0.72, 0.92 at s = 0.8, 0.003 at
   s = 0.4.

Two views are hashed: the prompt (history user turns + instruction + input) and the whole record.
Shingles are word 5-grams for space-separated text and character 5-grams for CJK text.
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from alpacacot.curation.batch import Tokens, shingle_hashes, tokenize

BACKENDS = ("rensa", "datasketch")
VIEWS = ("prompt", "record")
# An odd 64-bit multiplier (from splitmix64) to fold a band's rows into one key.
_MIX = np.uint64(0x9E3779B97F4A7C15)
# array.array's typecode for unsigned 32-bit items (rensa's digests).
_U32 = next(code for code in "IL" if array.array(code).itemsize == 4)


@dataclass(frozen=True)
class NearDupParams:
    """How near-duplicates are found (recorded in the manifest; all configurable)."""

    bands: int = 14
    rows: int = 8
    word_ngram: int = 5
    char_ngram: int = 5
    seed: int = 1
    backend: str = "rensa"

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    @property
    def threshold(self) -> float:
        """The Jaccard similarity at which two records collide with probability about one half."""
        return float((1 / self.bands) ** (1 / self.rows))

    def collision_probability(self, jaccard: float) -> float:
        return float(1 - (1 - jaccard**self.rows) ** self.bands)

    def to_dict(self) -> dict:
        return {**asdict(self), "threshold": round(self.threshold, 3)}


def signatures(
    texts: Sequence[str] | Tokens, params: NearDupParams
) -> tuple[np.ndarray, np.ndarray]:
    """MinHash signatures, shape (len(texts), num_perm), uint64, and which texts had no token.

    `texts` may be given already tokenized (the decontamination pass reads the same tokens).
    """
    tok = texts if isinstance(texts, Tokens) else tokenize(texts)
    n_texts = len(tok.offsets) - 1
    out = np.zeros((n_texts, params.num_perm), dtype=np.uint64)
    hashes, offsets = shingle_hashes(tok, params.word_ngram, params.char_ngram)
    empty = np.diff(offsets) == 0
    if not n_texts:
        return out, empty
    if params.backend == "rensa":
        from rensa import RMinHash

        # One call for the whole unit: no Python object per record.
        matrix = RMinHash.digest_matrix_from_flat_token_hashes(
            hashes, offsets, params.num_perm, params.seed
        )
        # rensa 0.5 exports digests as Python lists only (to_rows); the rows are appended to a
        # 32-bit array.array (C loops; a value that does not fit raises) and seen by numpy
        # without a copy: ~1.5x cheaper than numpy's nested-list conversion.
        flat = array.array(_U32)
        for row in matrix.to_rows():
            flat.extend(row)
        out[:] = np.frombuffer(flat, dtype=np.uint32).reshape(n_texts, params.num_perm)
    elif params.backend == "datasketch":
        from datasketch import MinHash

        perms = _datasketch_permutations(params.num_perm, params.seed)
        for i in np.flatnonzero(~empty):
            m = MinHash(
                num_perm=params.num_perm,
                seed=params.seed,
                hashfunc=_low32,
                permutations=perms,
                scheme="affine32",
            )
            m.update_batch(hashes[offsets[i] : offsets[i + 1]].tolist())
            out[i] = m.hashvalues
    else:
        raise ValueError(f"unknown MinHash backend {params.backend!r}; choose one of {BACKENDS}")
    return out, empty


def _low32(value: int) -> int:
    """datasketch's hash function over shingles that are already 64-bit hashes."""
    return value & 0xFFFFFFFF


_PERMS: dict[tuple[int, int], object] = {}


def _datasketch_permutations(num_perm: int, seed: int):
    """datasketch's permutations, made once per process (MinHash() would redraw them each time)."""
    if (num_perm, seed) not in _PERMS:
        from datasketch import MinHash

        _PERMS[num_perm, seed] = MinHash(num_perm=num_perm, seed=seed).permutations
    return _PERMS[num_perm, seed]


def band_keys(texts: Sequence[str] | Tokens, params: NearDupParams) -> np.ndarray:
    """One 64-bit key per band and record, shape (len(texts), bands); 0 for an empty text."""
    sig, empty = signatures(texts, params)
    n = sig.shape[0]
    sig = sig.reshape(n, params.bands, params.rows)
    keys = np.zeros((n, params.bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for r in range(params.rows):
            keys = keys * _MIX + sig[:, :, r] + np.uint64(r + 1)
    keys[empty] = 0
    return keys


def clusters(keys: np.ndarray) -> np.ndarray:
    """Connected components of the records sharing a band key (a 0 key never matches).

    Args:
        keys: (records, bands) band keys of the whole collection, in collection order.

    Returns:
        For each record, the index of the first record of its cluster (itself when alone).
    """
    import pandas as pd

    n = keys.shape[0]
    labels = np.arange(n, dtype=np.int64)
    pos = np.arange(n, dtype=np.int64)
    # Band by band: one band's edges at a time (bounded memory), merged into the partition so far
    # by joining the current cluster roots of each edge's ends. The records sharing a key are
    # grouped by hashing (pandas.factorize, no sort) and joined to one of them (a star: the same
    # components as any other tree over the group); edges inside one cluster so far are dropped.
    for b in range(keys.shape[1]):
        col = keys[:, b]
        codes, distinct = pd.factorize(col)
        center = np.empty(len(distinct), dtype=np.int64)
        center[codes] = pos
        star = center[codes]
        edge = (star != pos) & (col != 0)
        ends_a, ends_b = labels[pos[edge]], labels[star[edge]]
        new = ends_a != ends_b
        del codes, center, star, edge
        if new.any():
            labels = components(n, ends_a[new], ends_b[new])[labels]
    return labels


def components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Label each of `n` nodes with the smallest node of its component (edges a[i]-b[i]).

    Min-label propagation with pointer jumping, all in numpy: a handful of passes over the edges.
    """
    labels = np.arange(n, dtype=np.int64)
    if a.size == 0:
        return labels
    while True:
        low = np.minimum(labels[a], labels[b])
        before = labels.copy()
        np.minimum.at(labels, a, low)
        np.minimum.at(labels, b, low)
        while True:  # pointer jumping: every node points at its root
            jumped = labels[labels]
            if np.array_equal(jumped, labels):
                break
            labels = jumped
        if np.array_equal(labels, before):
            return labels
