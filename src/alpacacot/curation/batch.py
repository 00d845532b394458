"""Vectorised text hashing for a batch of texts: tokens, token hashes, n-gram hashes.

The curation passes run over millions of records, so the per-record Python work is kept to a
minimum: texts are normalised (NFKC, lower case) and split into tokens (one per CJK character,
else runs of letters, digits and marks) by Arrow kernels and numpy over their bytes or code points
(`tokenize`: the same tokens as the Arrow regexes), each distinct token is hashed once per
process (blake2b, 64 bits; the same value in every process), and numpy folds token hashes into
n-gram hashes. Near-duplicate shingles, decontamination grams and the repetition signal all read
these arrays; `record_views` makes a record's prompt, whole-record and answer tokens from one
tokenisation of its fields.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd  # at import, so that forked curation workers inherit it (the join needs it)
import pyarrow as pa
import pyarrow.compute as pc

CJK_RE2 = r"[\x{3040}-\x{30ff}\x{3400}-\x{4dbf}\x{4e00}-\x{9fff}\x{ac00}-\x{d7af}\x{f900}-\x{faff}]"
_P = np.uint64(0x100000001B3)  # FNV-64 prime: odd, so the fold is a bijection per step


@dataclass
class Tokens:
    """The tokens of a batch of texts, flat, with per-text offsets."""

    flat: pa.Array  # token strings (of the texts, or of the segments `take` gathers from)
    hashes: np.ndarray  # uint64, one per token
    offsets: np.ndarray  # int64, len(texts) + 1
    cjk: np.ndarray  # bool per text: at least `cjk_share` of its characters are CJK
    chars: np.ndarray | None = None  # int64 per text: characters after normalisation
    cjk_chars: np.ndarray | None = None  # int64 per text: CJK characters among them
    take: np.ndarray | None = None  # when a view of other texts' tokens: flat index per token

    @property
    def strings(self) -> pa.Array:
        """The token strings, one per token (gathered on first use for a view)."""
        if self.take is not None:
            self.flat, self.take = self.flat.take(pa.array(self.take)), None
        return self.flat

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def tokens_of(self, i: int) -> list[str]:
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        if self.take is not None:
            return self.flat.take(pa.array(self.take[lo:hi])).to_pylist()
        return self.flat[lo:hi].to_pylist()


def tokenize(texts: Sequence[str] | pa.Array, cjk_share: float = 0.3) -> Tokens:
    """Normalise and split every text (see the module docstring).

    The definition is `_tokenize_unicode`'s (Arrow: NFKC, lower case, a space around each CJK
    character, runs of other than letters, digits and marks as spaces, split on spaces). The same
    tokens come at a fraction of its cost from numpy: ASCII texts (most of them) are split on their
    bytes (NFKC is the identity, lower case ASCII's, a token a run of letters and digits, no CJK);
    the others, once Arrow has normalised them, on their code points, classified by a table that
    RE2 itself made. Texts with a character beyond the BMP take the regex path.
    """
    arr = texts if isinstance(texts, pa.Array) else pa.array(list(texts), pa.string())
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    arr = pc.fill_null(arr.cast(pa.string()), "")
    ascii_ = pc.string_is_ascii(arr).to_numpy(zero_copy_only=False)
    if ascii_.all():
        return _tokenize_ascii(arr, cjk_share)
    # The other texts: normalised by Arrow, then split on their code points in numpy when every
    # one is in the Basic Multilingual Plane (the regex path for the rare others).
    rows = np.flatnonzero(~ascii_)
    others = arr.take(pa.array(rows)) if len(rows) < len(arr) else arr
    norm = pc.utf8_lower(pc.utf8_normalize(others, "NFKC"))
    bmp = ~pc.match_substring_regex(norm, pattern=r"[\x{10000}-\x{10ffff}]").to_numpy(
        zero_copy_only=False
    )
    groups: list[tuple[np.ndarray, Tokens]] = []
    if len(rows) < len(arr):
        ascii_rows = np.flatnonzero(ascii_)
        groups.append((ascii_rows, _tokenize_ascii(arr.take(pa.array(ascii_rows)), cjk_share)))
    if bmp.all():
        groups.append((rows, _tokenize_bmp(norm, cjk_share)))
    else:
        if bmp.any():
            groups.append((rows[bmp], _tokenize_bmp(norm.filter(pa.array(bmp)), cjk_share)))
        wide = others.filter(pa.array(~bmp))
        groups.append((rows[~bmp], _tokenize_unicode(wide, cjk_share)))
    if len(groups) == 1:
        return groups[0][1]
    # Each kind tokenised on its own, tokens laid out kind after kind and the texts' order
    # restored by an index (`take`; token strings are gathered only when read).
    n = len(arr)
    counts = np.zeros(n, dtype=np.int64)
    source = np.zeros(n, dtype=np.int64)  # first token of each text in the concatenated parts
    chars = np.zeros(n, dtype=np.int64)
    cjk_chars = np.zeros(n, dtype=np.int64)
    base = 0
    for at, part in groups:
        counts[at] = part.lengths
        source[at] = base + part.offsets[:-1]
        chars[at] = part.chars
        cjk_chars[at] = part.cjk_chars
        base += len(part.hashes)
    take = _ranges(source, counts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    flat = pa.concat_arrays([part.flat for _, part in groups])
    hashes = np.concatenate([part.hashes for _, part in groups])[take]
    cjk = (chars > 0) & (cjk_chars >= cjk_share * chars)
    return Tokens(flat, hashes, offsets, cjk, chars, cjk_chars, take=take)


def _tokenize_unicode(arr: pa.Array, cjk_share: float) -> Tokens:
    norm = pc.utf8_lower(pc.utf8_normalize(arr, "NFKC"))
    spaced = pc.replace_substring_regex(norm, pattern=f"({CJK_RE2})", replacement=r" \1 ")
    spaced = pc.replace_substring_regex(spaced, pattern=r"[^\p{L}\p{N}\p{M}]+", replacement=" ")
    lists = pc.utf8_split_whitespace(pc.utf8_trim_whitespace(spaced))
    flat = lists.flatten()
    raw_offsets = lists.offsets.to_numpy().astype(np.int64)
    keep = pc.greater(pc.utf8_length(flat), 0).to_numpy(zero_copy_only=False)
    if not keep.all():
        flat = flat.filter(pa.array(keep))
        kept = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
        offsets = kept[raw_offsets]
    else:
        offsets = raw_offsets
    hashes = _hash_strings(flat)
    cjk_chars = pc.count_substring_regex(norm, pattern=CJK_RE2).to_numpy(zero_copy_only=False)
    chars = pc.utf8_length(norm).to_numpy(zero_copy_only=False)
    cjk = (chars > 0) & (cjk_chars >= cjk_share * chars)
    return Tokens(flat, hashes, offsets, cjk, chars.astype(np.int64), cjk_chars.astype(np.int64))


# ASCII bytes that are letters or digits (\p{L}, \p{N}; no ASCII mark), and ASCII lower case.
_WORD_BYTE = np.zeros(256, dtype=bool)
for _lo, _hi in ((48, 58), (65, 91), (97, 123)):
    _WORD_BYTE[_lo:_hi] = True
_LOWER_BYTE = np.arange(256, dtype=np.uint8)
_LOWER_BYTE[65:91] += 32


def _utf8_bytes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string array's UTF-8 bytes (no copy) and each text's bounds in them, from 0."""
    n = len(arr)
    _, offsets_buf, data_buf = arr.buffers()
    bounds = np.frombuffer(offsets_buf, dtype=np.int32)[arr.offset : arr.offset + n + 1]
    bounds = bounds.astype(np.int64)
    data = (
        np.frombuffer(data_buf, dtype=np.uint8)[bounds[0] : bounds[-1]]
        if data_buf is not None and n
        else np.zeros(0, dtype=np.uint8)
    )
    return data, bounds - (bounds[0] if n else 0)


def _tokenize_ascii(arr: pa.Array, cjk_share: float) -> Tokens:
    """`_tokenize_unicode` for ASCII texts, on their bytes: runs of letters and digits inside
    one text, lower-cased, copied next to each other into one string array."""
    n = len(arr)
    data, bounds = _utf8_bytes(arr)
    word = _WORD_BYTE[data]
    # A token starts at a word byte after a non-word byte or at a text's start; it ends likewise.
    after = np.zeros(len(data), dtype=bool)  # the byte before is a word byte of the same text
    after[1:] = word[:-1]
    before = np.zeros(len(data), dtype=bool)  # the byte after is a word byte of the same text
    before[:-1] = word[1:]
    if n:
        starts_at = bounds[:-1][bounds[:-1] < len(data)]
        ends_at = bounds[1:][bounds[1:] > 0] - 1
        after[starts_at] = False
        before[ends_at] = False
    starts = np.flatnonzero(word & ~after)
    ends = np.flatnonzero(word & ~before) + 1
    token_bounds = np.zeros(len(starts) + 1, dtype=np.int32)
    np.cumsum(ends - starts, out=token_bounds[1:])
    letters = _LOWER_BYTE[data[word]]
    flat = pa.StringArray.from_buffers(
        len(starts), pa.py_buffer(token_bounds), pa.py_buffer(letters)
    )
    owner = np.searchsorted(bounds, starts, side="right") - 1
    per_text = np.bincount(owner, minlength=n).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(per_text)]).astype(np.int64)
    chars = np.diff(bounds)
    cjk_chars = np.zeros(n, dtype=np.int64)
    cjk = (chars > 0) & (cjk_chars >= cjk_share * chars)
    return Tokens(flat, _hash_strings(flat), offsets, cjk, chars, cjk_chars)


_BMP_TABLES: tuple[np.ndarray, np.ndarray] | None = None


def _bmp_tables() -> tuple[np.ndarray, np.ndarray]:
    """Per BMP code point: a letter, digit or mark by RE2's tables (what the regex path's
    `[^\\p{L}\\p{N}\\p{M}]` leaves), and in `CJK_RE2`. Made once per process (~10 ms)."""
    global _BMP_TABLES
    if _BMP_TABLES is None:
        cps = np.r_[0:0xD800, 0xE000:0x10000].astype(np.uint32)  # no surrogates in UTF-8
        width = np.where(cps < 0x80, 1, np.where(cps < 0x800, 2, 3))
        ends = np.cumsum(width)
        data = np.zeros(int(ends[-1]), dtype=np.uint8)
        one, two, three = width == 1, width == 2, width == 3
        at = ends - width
        data[at[one]] = cps[one]
        data[at[two]] = 0xC0 | (cps[two] >> 6)
        data[at[two] + 1] = 0x80 | (cps[two] & 0x3F)
        data[at[three]] = 0xE0 | (cps[three] >> 12)
        data[at[three] + 1] = 0x80 | ((cps[three] >> 6) & 0x3F)
        data[at[three] + 2] = 0x80 | (cps[three] & 0x3F)
        bounds = np.concatenate([[0], ends]).astype(np.int32)
        chars = pa.StringArray.from_buffers(len(cps), pa.py_buffer(bounds), pa.py_buffer(data))
        word = np.zeros(0x10000, dtype=bool)
        cjk = np.zeros(0x10000, dtype=bool)
        for table, pattern in ((word, r"^[\p{L}\p{N}\p{M}]$"), (cjk, f"^{CJK_RE2}$")):
            table[cps] = pc.match_substring_regex(chars, pattern=pattern).to_numpy(
                zero_copy_only=False
            )
        _BMP_TABLES = word, cjk
    return _BMP_TABLES


def _tokenize_bmp(norm: pa.Array, cjk_share: float) -> Tokens:
    """`_tokenize_unicode` for texts already normalised (NFKC, lower case) whose characters are
    all in the BMP (1 to 3 UTF-8 bytes): on their code points. A token is a CJK letter alone or a
    run of other letters, digits and marks, inside one text."""
    word_table, cjk_table = _bmp_tables()
    n = len(norm)
    data, bounds = _utf8_bytes(norm)
    # Code points: one per lead byte, from it and the one or two continuation bytes after it.
    lead = (data & 0xC0) != 0x80
    at = np.flatnonzero(lead)
    padded = np.concatenate([data, np.zeros(2, dtype=np.uint8)]).astype(np.uint32)
    b0, b1, b2 = padded[at], padded[at + 1], padded[at + 2]
    cp = np.where(
        b0 < 0x80,
        b0,
        np.where(
            b0 < 0xE0,
            ((b0 & 0x1F) << 6) | (b1 & 0x3F),
            ((b0 & 0x0F) << 12) | ((b1 & 0x3F) << 6) | (b2 & 0x3F),
        ),
    )
    word = word_table[cp]
    cjk_char = cjk_table[cp]
    single = word & cjk_char  # a CJK letter is a token of its own
    run = word & ~cjk_char  # other letters, digits and marks run together
    # Text bounds in code points: the lead bytes before each text's first byte.
    char_bounds = np.concatenate([[0], np.cumsum(lead)])[bounds]
    m = len(cp)
    after = np.zeros(m, dtype=bool)  # the code point before is part of the same run
    after[1:] = run[:-1]
    before = np.zeros(m, dtype=bool)  # the code point after is part of the same run
    before[:-1] = run[1:]
    if n:
        after[char_bounds[:-1][char_bounds[:-1] < m]] = False
        before[char_bounds[1:][char_bounds[1:] > 0] - 1] = False
    starts = np.flatnonzero(single | (run & ~after))
    ends = np.flatnonzero(single | (run & ~before)) + 1
    # Byte extent of each token, and its bytes next to each other (the word code points' bytes).
    byte_at = np.append(at, len(data))
    token_bounds = np.zeros(len(starts) + 1, dtype=np.int32)
    np.cumsum(byte_at[ends] - byte_at[starts], out=token_bounds[1:])
    in_word = np.repeat(word, np.diff(byte_at))
    flat = pa.StringArray.from_buffers(
        len(starts), pa.py_buffer(token_bounds), pa.py_buffer(data[in_word])
    )
    owner = np.searchsorted(char_bounds, starts, side="right") - 1
    per_text = np.bincount(owner, minlength=n).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(per_text)]).astype(np.int64)
    chars = np.diff(char_bounds).astype(np.int64)
    cjk_chars = np.diff(np.concatenate([[0], np.cumsum(cjk_char)])[char_bounds]).astype(np.int64)
    cjk = (chars > 0) & (cjk_chars >= cjk_share * chars)
    return Tokens(flat, _hash_strings(flat), offsets, cjk, chars, cjk_chars)


# Token -> hash, kept by each process across batches: most tokens of a batch were hashed before.
_HASHED: dict[str, int] = {}
_HASHED_MAX = 1_000_000


def _hash_strings(flat: pa.Array) -> np.ndarray:
    if len(flat) == 0:
        return np.zeros(0, dtype=np.uint64)
    encoded = pc.dictionary_encode(flat)
    values = encoded.dictionary.to_pylist()
    known = _HASHED
    if len(known) + len(values) > _HASHED_MAX:
        known.clear()
    for v in values:
        if v not in known:
            known[v] = int.from_bytes(hashlib.blake2b(v.encode(), digest_size=8).digest(), "little")
    table = np.fromiter(map(known.__getitem__, values), dtype=np.uint64, count=len(values))
    return table[encoded.indices.to_numpy(zero_copy_only=False)]


def gram_hashes(tok: Tokens, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hashes of every n-gram inside one text: (hashes, text index, start position in the flat
    token array). Grams never cross two texts."""
    t = tok.hashes
    total = len(t)
    if total < n:
        return (np.zeros(0, np.uint64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    # The rolling hash at every position (in place), then the starts inside one text only.
    m = total - n + 1
    h = t[:m].copy()
    with np.errstate(over="ignore"):
        for k in range(1, n):
            np.multiply(h, _P, out=h)
            np.add(h, t[k : m + k], out=h)
    counts = np.maximum(tok.lengths - (n - 1), 0)
    starts = _ranges(tok.offsets[:-1], counts)
    text = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    return h[starts], text, starts


def whole_hashes(tok: Tokens, rows: np.ndarray) -> np.ndarray:
    """One hash over all tokens of each text in `rows` (texts shorter than one gram)."""
    out = np.zeros(len(rows), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j, i in enumerate(rows):
            h = np.uint64(0)
            for v in tok.hashes[tok.offsets[i] : tok.offsets[i + 1]]:
                h = h * _P + v
            out[j] = h
    return out


def shingle_hashes(tok: Tokens, word_n: int, char_n: int) -> tuple[np.ndarray, np.ndarray]:
    """MinHash shingles of each text, flat with offsets: word `word_n`-grams, or CJK character
    `char_n`-grams (characters are tokens); a text shorter than its n is one shingle (the whole
    text), and an empty text none."""
    n_texts = len(tok.offsets) - 1
    parts_h: list[np.ndarray] = []
    parts_t: list[np.ndarray] = []
    for n, which in ((word_n, ~tok.cjk), (char_n, tok.cjk)):
        if not which.any():
            continue
        h, text, _ = gram_hashes(tok, n)
        sel = which[text]
        parts_h.append(h[sel])
        parts_t.append(text[sel])
        if word_n == char_n:
            parts_h[-1], parts_t[-1] = h, text
            break
    lengths = tok.lengths
    short = np.flatnonzero((lengths > 0) & (lengths < np.where(tok.cjk, char_n, word_n)))
    if short.size:
        parts_h.append(whole_hashes(tok, short))
        parts_t.append(short)
    h = np.concatenate(parts_h) if parts_h else np.zeros(0, np.uint64)
    text = np.concatenate(parts_t) if parts_t else np.zeros(0, np.int64)
    order = np.argsort(text, kind="stable")
    counts = np.bincount(text, minlength=n_texts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint64)
    return h[order], offsets


def repetition(tok: Tokens, n: int, min_tokens: int) -> np.ndarray:
    """Share of repeated n-grams per text (0 for texts under `min_tokens` tokens)."""
    n_texts = len(tok.offsets) - 1
    out = np.zeros(n_texts, dtype=np.float64)
    h, text, _ = gram_hashes(tok, n)
    if not len(h):
        return out
    # Distinct (text, gram) pairs by hashing, not sorting: grams numbered by pandas.factorize,
    # then the distinct pair numbers (text * grams + gram) by pandas.unique.
    codes, grams = pd.factorize(h)
    pairs = pd.unique(text * len(grams) + codes)
    distinct = np.bincount(pairs // len(grams), minlength=n_texts)
    total = np.bincount(text, minlength=n_texts)
    scored = (tok.lengths >= min_tokens) & (total > 0)
    out[scored] = np.round(1 - distinct[scored] / total[scored], 4)
    return out


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of range(start, start + length) for each pair, as one index array."""
    lengths = lengths.astype(np.int64)
    total = int(lengths.sum())
    ends = np.cumsum(lengths)
    return np.arange(total, dtype=np.int64) + np.repeat(
        starts.astype(np.int64) - (ends - lengths), lengths
    )


@dataclass
class RecordViews:
    """The token views of a batch of records, made from one tokenisation of their fields.

    Each field (every history turn, instruction, input, output) is tokenised once as a segment;
    a view is the concatenation of some segments' tokens, in record order. This gives the tokens
    of `prompt_text`/`record_text`/the output tokenised on their own: those texts join the fields
    with a newline, where no token, Unicode normalisation or CJK split ever crosses.
    """

    prompt: Tokens
    record: Tokens
    answer: Tokens
    prompt_chars: np.ndarray  # len(prompt_text(record))
    output_chars: np.ndarray  # len(output)
    segments: pa.Array  # the raw field texts, in record order
    segment_owner: np.ndarray  # record of each segment
    segment_role: np.ndarray  # USER, ASSISTANT, INSTRUCTION, INPUT, OUTPUT


USER, ASSISTANT, INSTRUCTION, INPUT, OUTPUT = range(5)


def _column(batch: pa.RecordBatch | pa.Table, name: str) -> pa.Array:
    col = batch.column(name)
    return col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col


def _text(arr: pa.Array) -> pa.Array:
    return pc.fill_null(arr.cast(pa.string()), "")


def record_views(batch: pa.RecordBatch | pa.Table, cjk_share: float = 0.3) -> RecordViews:
    """Prompt, whole-record and answer tokens of a batch (columns instruction, input, output and,
    when present, history: a list of {user, assistant})."""
    n = batch.num_rows
    fields = [_text(_column(batch, c)) for c in ("instruction", "input", "output")]
    if "history" in batch.schema.names and n:
        hist = _column(batch, "history")
        h = pc.fill_null(pc.list_value_length(hist), 0).to_numpy(zero_copy_only=False)
        h = h.astype(np.int64)
        turns = hist.flatten()  # the turns of the batch's lists (slicing and nulls applied)
        parts = turns.flatten()  # the fields of those turns (the same)
        users, assistants = (
            _text(parts[turns.type.get_field_index(f)]) for f in ("user", "assistant")
        )
    else:
        h = np.zeros(n, dtype=np.int64)
        users = assistants = pa.array([], pa.string())
    nt = len(users)
    per = 2 * h + 3
    first = np.cumsum(per) - per  # position of each record's first segment
    take = np.empty(int(per.sum()), dtype=np.int64)
    role = np.empty(len(take), dtype=np.int8)
    turn_rec = np.repeat(np.arange(n, dtype=np.int64), h)
    turn_pos = first[turn_rec] + 2 * (np.arange(nt, dtype=np.int64) - (np.cumsum(h) - h)[turn_rec])
    take[turn_pos], role[turn_pos] = np.arange(nt), USER
    take[turn_pos + 1], role[turn_pos + 1] = nt + np.arange(nt), ASSISTANT
    for j, r in enumerate((INSTRUCTION, INPUT, OUTPUT)):
        take[first + 2 * h + j], role[first + 2 * h + j] = 2 * nt + j * n + np.arange(n), r
    segments = pa.concat_arrays([users, assistants, *fields]).take(pa.array(take))
    owner = np.repeat(np.arange(n, dtype=np.int64), per)
    tok = tokenize(segments, cjk_share)
    raw = pc.utf8_length(segments).to_numpy(zero_copy_only=False).astype(np.int64)

    def view(selected: np.ndarray) -> tuple[Tokens, np.ndarray]:
        segs = np.flatnonzero(selected)
        lengths = tok.lengths[segs]
        idx = _ranges(tok.offsets[segs], lengths)
        who = owner[segs]

        def per_record(values: np.ndarray) -> np.ndarray:
            return np.bincount(who, weights=values, minlength=n).astype(np.int64)

        newlines = np.maximum(per_record(raw[segs] > 0) - 1, 0)
        chars = per_record(tok.chars[segs]) + newlines
        cjk_chars = per_record(tok.cjk_chars[segs])
        cjk = (chars > 0) & (cjk_chars >= cjk_share * chars)
        offsets = np.concatenate([[0], np.cumsum(per_record(lengths))]).astype(np.int64)
        take = idx if tok.take is None else tok.take[idx]
        out = Tokens(tok.flat, tok.hashes[idx], offsets, cjk, chars, cjk_chars, take=take)
        return out, per_record(raw[segs]) + newlines

    prompt, prompt_chars = view((role == USER) | (role == INSTRUCTION) | (role == INPUT))
    record, _ = view(np.ones(len(role), dtype=bool))
    answer, output_chars = view(role == OUTPUT)
    return RecordViews(prompt, record, answer, prompt_chars, output_chars, segments, owner, role)
