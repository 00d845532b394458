"""The per-record steps on Arrow columns, for a work unit that allows it.

A unit of a JSON Lines file (a byte range of one, or a whole small one) whose rows are mapped by
the `fields` or `alpaca` normalizer onto instruction/input/output only is read by Arrow's JSON
reader into three string columns, and the steps of `pipeline.py` run over those columns: cleaning
(ASCII text is only trimmed, other text NFC-normalized in Python and trimmed), the content id (blake2b
in one tight loop over the column's bytes), dedup (numpy), the English function-word rule of
`lang.py` (Arrow kernels over the rule's words; the records it does not settle go to the tagger
itself), the record's columns, and the record schema check.

The output is the same, byte for byte, as the per-record path's: every row this path is not sure
of is handed to that path (the same functions, on the row's own line), and a unit where Arrow and
Python's `json` could read a line differently is not taken at all (`run` returns None):

- taken only when every line is one JSON object (the unit starts with `{`, ends with `}`, every line
  end is `}\\n{`: no blank lines, no CR, no whitespace around an object) and Arrow reads as many rows
  as there are lines, with no field outside the mapping (the reader refuses one), no duplicate key,
  no value that is not a string or null, no lone surrogate (Arrow refuses all of these);
- bytes that are not UTF-8 make the unit fall back (found where the text is turned into Python
  strings, or by decoding the lines that go to the per-record path);
- a row goes to the per-record path when its line holds an escape that makes an ASCII or C1
  character (`\\b`, `\\f`, `\\r`, `\\u0000`-`\\u009f`), a DEL byte or a C1 control character,
  `<noinput>` or `<nooutput>` (the alpaca placeholders), when its instruction or output is null or
  missing, or when either is empty after cleaning (its reject comes from there, with its reason).

A whole JSON array file of at most a few units (UTF-8, uncompressed) is parsed by `json` in the
unit, and the rows a reader hands on (a larger array, any other format) are taken as they are:
their mapped values are gathered into the three columns in one pass. A row goes to the per-record
path when it is not an object holding only the mapped fields with string values (the input may
be null or missing; any other field would go into its meta), or when a value holds a control
character but tab and line feed, or a placeholder. Where `json` and the reader's parser (ijson)
could read the file differently the unit is not taken: NaN or Infinity, an integer past 64 bits,
a number past the largest double, an item that is not an object, bytes that are not UTF-8, a lone
surrogate (Arrow refuses one in a mapped value; the per-record rows are looked through).

So the text this path cleans holds no control character but tab and line feed (Arrow refuses raw
C0 bytes in a string) and no lone surrogate: `record.clean_text` of it is NFC and strip, and of
ASCII text a trim of spaces, tabs and line feeds.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from unicodedata import normalize

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from alpacacot.lang import (
    _FUNCTION_WEIGHTS,
    _LATIN_WORD,
    _RULE_BYTES,
    _WEIGHT,
    HAN_RANGES,
    HANGUL_RANGES,
    KANA_RANGES,
    LATIN_RANGES,
    PREFIX,
    RULE_PREFIX,
    RULE_WORDS,
    char_class,
)
from alpacacot.normalizers.fields import DEFAULT_FIELDS
from alpacacot.readers import _BOM, _is_utf8, read_jsonl
from alpacacot.record import ARROW_SCHEMA
from alpacacot.writer import RowGroup

if TYPE_CHECKING:
    from alpacacot.lang import LanguageTagger
    from alpacacot.pipeline import Refused
    from alpacacot.units import WorkUnit

FAST_NORMALIZERS = ("fields", "alpaca")
_OPEN, _CLOSE, _NL, _TAB = ord("{"), ord("}"), ord("\n"), ord("\t")
# What sends the row of the line holding it to the per-record path (see above): the alpaca
# placeholders, a DEL byte, and escapes of ASCII control or printable characters.
_PLACEHOLDERS = [np.frombuffer(p, dtype=np.uint8) for p in (b"<noinput>", b"<nooutput>")]
_WINDOW = max(map(len, _PLACEHOLDERS))
_LT, _BACKSLASH, _U, _ZERO, _NINE = ord("<"), ord("\\"), ord("u"), ord("0"), ord("9")
_SHORT_ESCAPES = np.frombuffer(b"bfr", dtype=np.uint8)
_TRIM = " \t\n"
SCRIPT_CHARS = 2000  # lang's `of_prompt` judges the first 2,000 characters
# The classes of lang's script ranges, per code point (`script_languages`).
_HAN, _HANGUL, _KANA, _LATIN = 1, 2, 3, 4
_CLASSES = 5
# A text with no character of lang's Han and Hangul ranges is no script rule's.
_SCRIPTS = char_class(*HAN_RANGES, *HANGUL_RANGES)

_WORDS = sorted(_FUNCTION_WEIGHTS)
_WORD_SET = pa.array(_WORDS, pa.string())
_WORD_WEIGHTS = np.array([_FUNCTION_WEIGHTS[w] for w in _WORDS] + [0], dtype=np.int64)

_HISTORY = ARROW_SCHEMA.field("history").type
_TAGS = ARROW_SCHEMA.field("tags").type
_PROVENANCE = ARROW_SCHEMA.field("provenance").type


def text_columns(unit: WorkUnit) -> tuple[str, str | None, str] | None:
    """The instruction, input (None: the mapping has none) and output columns of a unit this path
    can take; None when it cannot."""
    from alpacacot.units import _compressed

    entry, cf = unit.entry, unit.file
    if (
        entry.records
        or (cf.normalizer or entry.normalizer) not in FAST_NORMALIZERS
        or set(entry.fields) - set(DEFAULT_FIELDS)
    ):
        return None
    # Rows handed on are the reader's own values: any format. Otherwise the file's bytes are read
    # here: uncompressed UTF-8 JSON Lines (a byte range or a whole file) or a whole JSON array.
    if unit.rows is None and (
        entry.format not in ("jsonl", "json")
        or (entry.format == "json" and unit.span is not None)
        or not _is_utf8(entry.encoding)
        or _compressed(entry, cf)
    ):
        return None
    mapping = {**DEFAULT_FIELDS, **entry.fields}
    if "input" not in entry.fields and entry.fields:
        mapping.pop("input")
    if len(set(mapping.values())) != len(mapping):
        return None
    return mapping["instruction"], mapping.get("input"), mapping["output"]


def _read(unit: WorkUnit) -> tuple[bytes, int]:
    """The unit's bytes (a leading byte-order mark skipped, as the reader does) and its first row."""
    if unit.span is None:
        start, end, first_row = 0, unit.file.bytes, 0
    else:
        start, end, first_row = unit.span
    with open(unit.file.path, "rb") as fh:
        fh.seek(start)
        data = fh.read(end - start) if unit.span is not None else fh.read()
    if start == 0 and data.startswith(_BOM):
        data = data[len(_BOM) :]
    return data, first_row


def _odd_offsets(data: bytes, raw: np.ndarray, decoded: bool = False) -> np.ndarray:
    """Where the bytes that send a row to the per-record path are in the body `raw` (the start of
    `data`; see the module docstring). `decoded`: the bytes are text, not JSON (a string column's
    values): there are no escapes, and a control character other than tab and line feed counts."""
    hits = []
    i = data.find(b"\x7f", 0, len(raw))
    while i >= 0:
        hits.append(i)
        i = data.find(b"\x7f", i + 1, len(raw))
    found = [np.array(hits, dtype=np.int64)]
    # The placeholders: a "<" and the bytes after it (the body ends with "}", so a "<" near its
    # end begins no placeholder).
    lt = np.flatnonzero(raw == _LT)
    lt = lt[lt + _WINDOW <= len(raw)]
    if len(lt):
        window = raw[lt[:, None] + np.arange(_WINDOW)]
        placeholder = np.zeros(len(lt), dtype=bool)
        for needle in _PLACEHOLDERS:
            placeholder |= (window[:, : len(needle)] == needle).all(axis=1)
        found.append(lt[placeholder])
    # A C1 control character (U+0080-U+009F: C2 80-9F in UTF-8).
    c2 = np.flatnonzero(raw[:-1] == 0xC2)
    found.append(c2[(raw[c2 + 1] >= 0x80) & (raw[c2 + 1] <= 0x9F)])
    if decoded:
        found.append(np.flatnonzero((raw < 0x20) & (raw != _TAB) & (raw != _NL)))
        return np.concatenate(found)
    # A backslash before b, f or r, or before u00 and 0-9: an escape of an ASCII or a C1
    # character (an escaped backslash before such a letter counts too: its row only takes the
    # longer way).
    slash = np.flatnonzero(raw[:-1] == _BACKSLASH)
    after = raw[slash + 1]
    odd = np.isin(after, _SHORT_ESCAPES)
    u = np.flatnonzero(after == _U)
    if len(u):
        at = slash[u]
        tail = np.zeros((len(at), 3), dtype=np.uint8)
        for k in range(3):
            ok = at + 2 + k < len(raw)
            tail[ok, k] = raw[at[ok] + 2 + k]
        # (An escape cut short by the end of the body is not valid JSON: Arrow refuses it.)
        odd[u] = (tail[:, 0] == _ZERO) & (tail[:, 1] == _ZERO)
        odd[u] &= (tail[:, 2] >= _ZERO) & (tail[:, 2] <= _NINE)
    found.append(slash[odd])
    return np.concatenate(found)


def _clean(column: pa.Array, rows: np.ndarray) -> pa.Array:
    """`record.clean_text` of every value at `rows` (values elsewhere are left as they are: their
    rows take the per-record path): a trim for ASCII values, NFC and strip for the others."""
    ascii_ = pc.string_is_ascii(column).to_numpy(zero_copy_only=False)
    out = pc.utf8_trim(column, _TRIM)
    odd = ~ascii_
    odd[~rows] = False
    if odd.any():
        # to_pylist decodes with Python's UTF-8 decoder: bytes that are not UTF-8 raise there.
        # These values hold no lone surrogate (they are UTF-8) and no control character (their
        # rows would take the per-record path), and NFC makes none: clean_text is NFC and strip.
        # Most of them only lose the same spaces, tabs and line feeds as the trim: only values
        # NFC or another whitespace changes are replaced in the column.
        values = column.filter(pa.array(odd)).to_pylist()
        changed = []
        for k, v in enumerate(values):
            cleaned = normalize("NFC", v).strip()
            if cleaned != v.strip(_TRIM):
                changed.append((k, cleaned))
        if changed:
            where = np.zeros(len(column), dtype=bool)
            where[np.flatnonzero(odd)[[k for k, _ in changed]]] = True
            replacements = pa.array([c for _, c in changed], pa.string())
            out = pc.replace_with_mask(out, pa.array(where), replacements)
    return out


def _content_ids(instruction: pa.Array, input_: pa.Array, output: pa.Array) -> bytes:
    """The 16-byte blake2b digests of `record.record_id` (no history), concatenated."""
    joined = pc.binary_join_element_wise(instruction, input_, output, "", "\x1f")
    n = len(joined)
    offsets = np.frombuffer(joined.buffers()[1], dtype=np.int32)[
        joined.offset : joined.offset + n + 1
    ]
    data = joined.buffers()[2]
    view = memoryview(data) if data is not None else memoryview(b"")
    bounds = offsets.tolist()
    blake2b = hashlib.blake2b
    return b"".join(
        [
            blake2b(view[a:b], digest_size=16).digest()
            for a, b in zip(bounds, bounds[1:], strict=False)
        ]
    )


def _hex_ids(digests: bytes, n: int) -> pa.Array:
    """The digests as the 32-character hex strings of `record_id`."""
    text = digests.hex().encode("ascii")
    offsets = np.arange(0, 32 * n + 1, 32, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text)])


def plain_english(heads: pa.Array) -> np.ndarray:
    """`lang._is_plain_english` of every value of `heads`, ASCII strings of at most RULE_PREFIX
    characters: the same translation of the bytes, the same first RULE_WORDS words, the same
    weights."""
    if not len(heads):
        return np.zeros(0, dtype=bool)
    heads = heads.combine_chunks() if isinstance(heads, pa.ChunkedArray) else heads
    _, offsets, data = heads.buffers()
    translated = pa.py_buffer(
        (data.to_pybytes() if data is not None else b"").translate(_RULE_BYTES)
    )
    text = pa.Array.from_buffers(
        pa.string(), len(heads), [None, offsets, translated], 0, heads.offset
    )
    # bytes.split() drops leading and trailing whitespace; Arrow's split keeps an empty first word.
    # Split at most RULE_WORDS times: the words are the first RULE_WORDS pieces (a 25th piece is
    # the rest of the text).
    pieces = pc.ascii_split_whitespace(pc.ascii_trim(text, " "), max_splits=RULE_WORDS)
    counts = pc.list_value_length(pieces).to_numpy(zero_copy_only=False).astype(np.int64)
    flat = pc.list_flatten(pieces)
    index = pc.fill_null(pc.index_in(flat, value_set=_WORD_SET), len(_WORDS))
    weights = _WORD_WEIGHTS[index.to_numpy(zero_copy_only=False)]
    ends = np.cumsum(counts)
    rest = counts > RULE_WORDS
    weights[ends[rest] - 1] = 0
    lengths = np.minimum(counts, RULE_WORDS)
    sums = np.concatenate(([0], np.cumsum(weights)))
    other, english = np.divmod(sums[ends] - sums[ends - counts], _WEIGHT)
    # An empty text is one empty word here and none in Python: fewer than 8 either way.
    return (lengths >= 8) & (8 * english >= lengths) & (english > 2 * other)


def _code_points(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Every code point of a string column (no nulls) in one array, and where each row's begin
    (n + 1 bounds): the column's UTF-8 bytes decoded by Python at once, as UTF-32."""
    n = len(texts)
    _, offsets, data = texts.buffers()
    at = np.frombuffer(offsets, dtype=np.int32)[texts.offset : texts.offset + n + 1]
    raw = data.to_pybytes()[at[0] : at[-1]] if data is not None and n else b""
    points = np.frombuffer(raw.decode("utf-8").encode("utf-32-le"), dtype=np.uint32)
    lengths = pc.utf8_length(texts).to_numpy(zero_copy_only=False).astype(np.int64)
    return points, np.concatenate(([0], np.cumsum(lengths)))


def _script_classes() -> np.ndarray:
    """The class of every code point for the script rules: 0 none, then HAN, HANGUL, KANA and
    LATIN (lang's ranges)."""
    table = np.zeros(0x110000, dtype=np.uint8)
    for cls, ranges in (
        (_LATIN, LATIN_RANGES),
        (_HAN, HAN_RANGES),
        (_HANGUL, HANGUL_RANGES),
        (_KANA, KANA_RANGES),
    ):
        for low, high in ranges:
            table[low : high + 1] = cls
    return table


_SCRIPT_CLASSES = _script_classes()


def script_languages(texts: pa.Array) -> np.ndarray:
    """`lang._script_language` of every value of a string column (no nulls): "ko", "ja", "zh"
    or None, by the same code point ranges: Hangul anywhere is Korean; with Han characters, Kana
    is Japanese, and Chinese needs at least as many Han characters as Latin words (runs of two
    or more of lang's Latin letters, as `_LATIN_WORD.findall` counts them)."""
    n = len(texts)
    found = np.full(n, None, dtype=object)
    if not n:
        return found
    points, bounds = _code_points(texts)
    classes = _SCRIPT_CLASSES[points]
    row = np.repeat(np.arange(n), np.diff(bounds))
    counts = np.bincount(row * _CLASSES + classes, minlength=n * _CLASSES).reshape(n, _CLASSES)
    # A Latin word (run of two or more) starts at a Latin letter whose predecessor in its row is
    # not one and whose successor in its row is.
    latin = classes == _LATIN
    starts = latin.copy()
    starts[1:] &= ~latin[:-1]
    firsts = bounds[:-1][bounds[:-1] < len(points)]
    starts[firsts] = latin[firsts]
    starts[:-1] &= latin[1:]
    starts[-1:] = False
    lasts = bounds[1:][bounds[1:] > 0] - 1
    starts[lasts] = False
    words = np.bincount(row[starts], minlength=n)
    han = counts[:, _HAN]
    found[(han > 0) & (han >= words)] = "zh"
    found[(han > 0) & (counts[:, _KANA] > 0)] = "ja"
    found[counts[:, _HANGUL] > 0] = "ko"
    return found


def _ascii_head(texts: pa.Array, chars: int) -> pa.Array:
    """The first `chars` characters of ASCII strings: their first bytes (`binary_slice`, ~10x
    faster than `utf8_slice_codeunits`, which decodes every character)."""
    return pc.binary_slice(texts.view(pa.binary()), 0, chars).view(pa.string())


def _languages(
    tagger: LanguageTagger, instruction: pa.Array, input_: pa.Array, output: pa.Array
) -> list[str]:
    """`tagger(instruction, input, output)` of every row. Where the texts are ASCII, no script
    rule applies: the English rule runs on Arrow columns, and the model on what it leaves. Where
    they are not, the script rules run on the code points of whole columns (`script_languages`),
    and the tagger on the rows they leave."""
    n = len(instruction)
    if tagger._model is None or not n:
        texts = [c.to_pylist() for c in (instruction, input_, output)]
        return [tagger(a, b, c) for a, b, c in zip(*texts, strict=True)]
    langs = ["en"] * n
    prompt = pc.if_else(
        pc.equal(pc.binary_length(input_), 0),
        instruction,
        pc.binary_join_element_wise(instruction, input_, "\n"),
    )
    ascii_ = pc.and_(pc.string_is_ascii(prompt), pc.string_is_ascii(output))
    ascii_ = ascii_.to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(ascii_)
    if len(rows):
        take = pa.array(rows)
        prompt_head = _ascii_head(pc.take(prompt, take), PREFIX)
        text = pc.binary_join_element_wise(
            prompt_head, _ascii_head(pc.take(output, take), PREFIX), " "
        )
        english = plain_english(_ascii_head(text, RULE_PREFIX))
        # The prompt alone decides too (every output here is non-empty).
        rest = np.flatnonzero(~english)
        if len(rest):
            head = _ascii_head(pc.take(prompt_head, pa.array(rest)), RULE_PREFIX)
            english[rest[plain_english(head)]] = True
            rest = np.flatnonzero(~english)
            guess = tagger.model_guess
            for i, t in zip(
                rows[rest].tolist(), pc.take(text, pa.array(rest)).to_pylist(), strict=True
            ):
                langs[i] = guess(t)
    rows = np.flatnonzero(~ascii_)
    if len(rows):
        take = pa.array(rows)
        prompts, outputs = pc.take(prompt, take), pc.take(output, take)
        heads = pc.utf8_slice_codeunits(prompts, 0, SCRIPT_CHARS)
        output_heads = pc.utf8_slice_codeunits(outputs, 0, SCRIPT_CHARS)
        # `tagger.of_prompt`: the script of the prompt's first 2,000 characters; else Chinese
        # when the output's is and the prompt has no Latin word; else `unscripted`, in Python.
        # Rows with no character of a script rule's ranges skip to that (one Arrow pass).
        scripted = np.full(len(rows), None, dtype=object)
        output_zh = np.zeros(len(rows), dtype=bool)
        has_script = pc.or_(
            pc.match_substring_regex(heads, _SCRIPTS),
            pc.match_substring_regex(output_heads, _SCRIPTS),
        ).to_numpy(zero_copy_only=False)
        some = np.flatnonzero(has_script)
        if len(some):
            pick = pa.array(some)
            scripted[some] = script_languages(pc.take(heads, pick))
            output_zh[some] = script_languages(pc.take(output_heads, pick)) == "zh"
        settled = scripted != None  # noqa: E711 - numpy's element-wise comparison
        for i, lang in zip(rows[settled].tolist(), scripted[settled].tolist(), strict=True):
            langs[i] = lang
        rest = np.flatnonzero(~settled)
        if len(rest):
            rest_prompts = pc.take(prompts, pa.array(rest)).to_pylist()
            rest_outputs = pc.take(outputs, pa.array(rest)).to_pylist()
            unscripted, latin = tagger.unscripted, _LATIN_WORD.search
            for i, p, o, zh in zip(
                rows[rest].tolist(),
                rest_prompts,
                rest_outputs,
                output_zh[rest].tolist(),
                strict=True,
            ):
                langs[i] = "zh" if zh and not latin(p) else unscripted(p, o)
    return langs


def _constant_list(values: list[str], n: int) -> pa.Array:
    k = len(values)
    offsets = pa.array(
        np.arange(0, k * n + 1, k, dtype=np.int32) if k else np.zeros(n + 1, np.int32)
    )
    return pa.ListArray.from_arrays(offsets, pa.array(values * n, pa.string()), type=_TAGS)


def _fast_batch(
    unit: WorkUnit,
    ids: pa.Array,
    instruction: pa.Array,
    input_: pa.Array,
    output: pa.Array,
    langs: list[str],
    rows: np.ndarray,
) -> pa.RecordBatch:
    """The records of the rows this path settled, as the shard's columns."""
    entry, cf = unit.entry, unit.file
    n = len(ids)
    history = pa.ListArray.from_arrays(
        pa.array(np.zeros(n + 1, dtype=np.int32)), pa.array([], _HISTORY.value_type), type=_HISTORY
    )
    provenance = pa.StructArray.from_arrays(
        [
            pa.repeat(pa.scalar(cf.display, pa.string()), n),
            pa.repeat(pa.scalar(cf.revision, pa.string()), n),
            pa.array(rows, pa.int64()),
            pa.repeat(pa.scalar(entry.license, pa.string()), n),
        ],
        fields=list(_PROVENANCE),
    )
    columns = [
        ids,
        instruction,
        input_,
        output,
        history,
        pa.repeat(pa.scalar(entry.key, pa.string()), n),
        pa.array(langs, pa.string()),
        _constant_list(entry.record_tags, n),
        provenance,
        pa.repeat(pa.scalar("{}", pa.string()), n),
        pa.nulls(n, pa.string()),
        pa.nulls(n, pa.string()),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=ARROW_SCHEMA)


class _NotTaken(Exception):
    """This unit goes the per-record way after all."""


def run(unit: WorkUnit, tagger: LanguageTagger) -> tuple[Any, ...] | None:
    """Take `unit` through the steps on Arrow columns: (the candidates' table, their short ids,
    their text lengths, the record schema's reject lines by candidate, the rejects as (candidates
    before, line), counts), as the per-record path makes them; None when the unit must take that
    path."""
    columns = text_columns(unit)
    if columns is None:
        return None
    try:
        return _run(unit, tagger, columns)
    except (_NotTaken, pa.ArrowException, UnicodeError):
        # (Arrow's UTF-8 kernels refuse bytes that are not UTF-8, as Python's decoder does.)
        return None


def _run(unit: WorkUnit, tagger: LanguageTagger, columns: tuple[str, str | None, str]) -> tuple:
    if unit.rows is None and unit.entry.format == "jsonl":
        return _steps(unit, tagger, *_jsonl_columns(unit, columns))
    return _steps(unit, tagger, *_array_columns(unit, columns))


# What a reader hands the steps: every row's number, the instruction, input (no nulls) and output
# columns, the rows that take the per-record path, and a function giving those rows as the
# per-record path reads them ((row, value) pairs, one per row).
Texts = tuple[
    np.ndarray,
    pa.Array,
    pa.Array,
    pa.Array,
    np.ndarray,
    Callable[[list[int]], list[tuple[int, Any]]],
]


def _jsonl_columns(unit: WorkUnit, columns: tuple[str, str | None, str]) -> Texts:
    """A JSON Lines unit read by Arrow's JSON reader (see the module docstring)."""
    entry, cf = unit.entry, unit.file
    inst_col, input_col, out_col = columns
    data, first_row = _read(unit)
    # The body: the unit without its last line end (a view, not a copy).
    size = len(data) - 1 if data.endswith(b"\n") else len(data)
    if not size or data[0] != _OPEN or data[size - 1] != _CLOSE:
        raise _NotTaken
    raw = np.frombuffer(data, dtype=np.uint8, count=size)
    newlines = np.flatnonzero(raw == _NL)
    if len(newlines) and not (
        (raw[newlines - 1] == _CLOSE).all() and (raw[newlines + 1] == _OPEN).all()
    ):
        raise _NotTaken
    n = len(newlines) + 1
    fields = [pa.field(inst_col, pa.string())]
    if input_col:
        fields.append(pa.field(input_col, pa.string()))
    fields.append(pa.field(out_col, pa.string()))
    try:
        table = pj.read_json(
            pa.BufferReader(pa.py_buffer(data).slice(0, size)),
            read_options=pj.ReadOptions(use_threads=False, block_size=max(1 << 20, size + 1)),
            parse_options=pj.ParseOptions(
                explicit_schema=pa.schema(fields), unexpected_field_behavior="error"
            ),
        )
    except (pa.ArrowException, ValueError):
        raise _NotTaken from None
    if table.num_rows != n:
        raise _NotTaken
    inst = table.column(inst_col).combine_chunks()
    out = table.column(out_col).combine_chunks()
    inp = (
        pc.fill_null(table.column(input_col).combine_chunks(), "")
        if input_col
        else pa.repeat(pa.scalar("", pa.string()), n)
    )
    slow = np.zeros(n, dtype=bool)
    hits = _odd_offsets(data, raw)
    if len(hits):
        slow[np.searchsorted(newlines, hits)] = True
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [size]))

    def lines(slow_rows: list[int]) -> list[tuple[int, Any]]:
        """The rows' own lines, read as read_jsonl reads them."""
        found = []
        for i in slow_rows:
            line = data[starts[i] : ends[i]]
            try:
                line.decode(entry.encoding)
            except UnicodeDecodeError:
                raise _NotTaken from None  # an undecodable row: the reader's own rules apply
            found.extend(read_jsonl(io.BytesIO(line), cf.display, entry.encoding, first_row + i))
        return found

    return np.arange(first_row, first_row + n, dtype=np.int64), inst, inp, out, slow, lines


def _array_columns(unit: WorkUnit, columns: tuple[str, str | None, str]) -> Texts:
    """The rows of a whole JSON array (parsed here) or the rows a reader handed on, gathered into
    columns: a row goes to the per-record path unless it is an object holding only the mapped
    fields, the instruction and output strings and the input a string or null (a field the
    mapping does not use would go into its meta)."""
    inst_col, input_col, out_col = columns
    items = unit.rows
    parsed = items is None
    if items is None:
        items = _parse_array(unit)
    n = len(items)
    if not n:
        raise _NotTaken
    allowed = {inst_col, out_col}
    if input_col:
        allowed.add(input_col)
    slow = np.zeros(n, dtype=bool)
    insts: list[str] = []
    inps: list[str | None] = []
    outs: list[str] = []
    for k, (_, value) in enumerate(items):
        if type(value) is dict and value.keys() <= allowed:
            a, c = value.get(inst_col), value.get(out_col)
            b = value.get(input_col) if input_col else None
            if type(a) is str and type(c) is str and (b is None or type(b) is str):
                insts.append(a)
                inps.append(b)
                outs.append(c)
                continue
        slow[k] = True
        insts.append("")
        inps.append("")
        outs.append("")
    try:
        inst, inp, out = (pa.array(v, pa.string()) for v in (insts, inps, outs))
    except UnicodeEncodeError:  # a lone surrogate: the per-record path cleans it
        raise _NotTaken from None
    inp = pc.fill_null(inp, "")
    for column in (inst, inp, out):
        slow |= _odd_values(column)
    rows = (
        np.arange(n, dtype=np.int64)
        if parsed
        else np.fromiter((row for row, _ in items), dtype=np.int64, count=n)
    )

    def values(slow_rows: list[int]) -> list[tuple[int, Any]]:
        found = [items[i] for i in slow_rows]
        if parsed:
            # json and the reader's parser (ijson) read a lone surrogate escape differently.
            for _, value in found:
                try:
                    json.dumps(value, ensure_ascii=False).encode("utf-8")
                except UnicodeEncodeError:
                    raise _NotTaken from None
        return found

    return rows, inst, inp, out, slow, values


def _refuse(value: str) -> Any:
    raise _NotTaken


def _int(text: str) -> int:
    value = int(text)
    if abs(value) >= 1 << 62:  # the reader's parser refuses integers past 64 bits
        raise _NotTaken
    return value


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # the reader's parser refuses a number past the largest double
        raise _NotTaken
    return value


def _parse_array(unit: WorkUnit) -> list[tuple[int, Any]]:
    """A whole JSON array file, parsed by `json` where it reads as the reader's parser would (no
    NaN or Infinity, no number past 64 bits or a double; lone surrogates are looked for in the
    rows that take the per-record path, the others' strings go to Arrow, which refuses them),
    every item an object."""
    data, _ = _read(unit)
    try:
        value = json.loads(
            data.decode("utf-8"), parse_int=_int, parse_float=_float, parse_constant=_refuse
        )
    except (ValueError, RecursionError):
        raise _NotTaken from None
    if type(value) is not list or not all(type(v) is dict for v in value):
        raise _NotTaken
    return list(enumerate(value))


def _odd_values(column: pa.Array) -> np.ndarray:
    """The rows of a string column (made by pa.array: its offsets start at 0) whose value holds
    what sends a row to the per-record path (see the module docstring) or a control character
    other than tab and line feed."""
    n = len(column)
    odd = np.zeros(n, dtype=bool)
    _, offsets_buf, data_buf = column.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int32)[column.offset : column.offset + n + 1]
    if data_buf is None or not offsets[-1]:
        return odd
    # Padded with spaces: a placeholder at the very end is looked for in a full window.
    text = data_buf.to_pybytes()[: offsets[-1]] + b" " * _WINDOW
    hits = _odd_offsets(text, np.frombuffer(text, dtype=np.uint8), decoded=True)
    if len(hits):
        odd[np.searchsorted(offsets, hits, side="right") - 1] = True
    return odd


def _steps(
    unit: WorkUnit,
    tagger: LanguageTagger,
    row_numbers: np.ndarray,
    inst: pa.Array,
    inp: pa.Array,
    out: pa.Array,
    slow: np.ndarray,
    slow_values: Callable[[list[int]], list[tuple[int, Any]]],
) -> tuple:
    """The steps over a unit's columns, the rows marked `slow` through the per-record functions."""
    from alpacacot.pipeline import Counts, complete, iter_drafts, settle

    entry, cf = unit.entry, unit.file
    n = len(inst)
    slow |= inst.is_null().to_numpy(zero_copy_only=False)
    slow |= out.is_null().to_numpy(zero_copy_only=False)
    inst, out = pc.fill_null(inst, ""), pc.fill_null(out, "")
    try:
        inst, inp, out = (_clean(c, ~slow) for c in (inst, inp, out))
    except UnicodeDecodeError:
        raise _NotTaken from None
    slow |= pc.equal(pc.binary_length(inst), 0).to_numpy(zero_copy_only=False)
    slow |= pc.equal(pc.binary_length(out), 0).to_numpy(zero_copy_only=False)

    # The rows the per-record path settles.
    slow_rows = np.flatnonzero(slow)
    key, prov_file = entry.key, cf.display
    slow_settled = [
        settle(key, prov_file, row, item)
        for row, item in iter_drafts(entry, cf, slow_values(slow_rows.tolist()))
    ]
    if len(slow_settled) != len(slow_rows):
        raise _NotTaken

    fast_rows = np.flatnonzero(~slow)
    keep_fast = pa.array(~slow)
    inst, inp, out = (c.filter(keep_fast) for c in (inst, inp, out))
    digests = _content_ids(inst, inp, out)
    shorts = np.zeros(n, dtype=np.uint64)
    shorts[fast_rows] = np.frombuffer(digests, dtype=">u8")[::2]
    candidate = ~slow
    rejects_at: list[tuple[int, str]] = []
    for i, settled in zip(slow_rows.tolist(), slow_settled, strict=True):
        if type(settled) is str:
            rejects_at.append((i, settled))
        else:
            candidate[i] = True
            shorts[i] = settled[0]
    cand_rows = np.flatnonzero(candidate)
    _, first = np.unique(shorts[cand_rows], return_index=True)
    kept = np.zeros(len(cand_rows), dtype=bool)
    kept[first] = True
    survivors = cand_rows[kept]
    counts = Counts(read=n, duplicates=int(len(cand_rows) - len(survivors)))
    rejects = [
        (int(b), line)
        for b, (_, line) in zip(
            np.searchsorted(survivors, [i for i, _ in rejects_at]), rejects_at, strict=True
        )
    ]

    # The fast survivors, as columns.
    is_survivor = np.zeros(n, dtype=bool)
    is_survivor[survivors] = True
    fast_kept = is_survivor[fast_rows]
    fast_survivors = fast_rows[fast_kept]
    if not fast_kept.all():
        take = pa.array(np.flatnonzero(fast_kept))
        inst, inp, out = (pc.take(c, take) for c in (inst, inp, out))
        digests = np.frombuffer(digests, dtype=np.uint8).reshape(-1, 16)[fast_kept].tobytes()
    ids = _hex_ids(digests, len(fast_survivors))
    text_bytes = np.zeros(n, dtype=np.int64)
    text_bytes[fast_survivors] = pc.add(
        pc.add(pc.utf8_length(inst), pc.utf8_length(inp)), pc.utf8_length(out)
    ).to_numpy(zero_copy_only=False)
    langs = _languages(tagger, inst, inp, out)
    batch = _fast_batch(unit, ids, inst, inp, out, langs, row_numbers[fast_survivors])

    # The slow survivors, through the per-record steps.
    slow_survivors = [
        (i, s)
        for i, s in zip(slow_rows.tolist(), slow_settled, strict=True)
        if type(s) is not str and is_survivor[i]
    ]
    group = RowGroup(key, entry.license, prov_file, cf.revision)
    for i, settled in slow_survivors:
        record = complete(settled, int(row_numbers[i]), tagger, entry.record_tags)
        text_bytes[i] = record[1]
        group.append(*record[2:])
    try:
        slow_batch = group.to_batch()
    except (pa.ArrowException, ValueError, TypeError):
        raise _NotTaken from None
    table, broken = _in_order(
        batch,
        slow_batch,
        np.searchsorted(survivors, [i for i, _ in slow_survivors]),
        unit.options.validate,
    )
    return table, shorts[survivors], text_bytes[survivors], broken, rejects, counts


def _in_order(
    fast: pa.RecordBatch, slow: pa.RecordBatch, at: np.ndarray, validate: bool
) -> tuple[pa.Table, dict[int, Refused]]:
    """The fast and the slow records in one table, the slow ones at positions `at`, checked
    against the record schema: the records it accepts and the others, by position (as
    `pipeline.check_table` finds them)."""
    from alpacacot.pipeline import check_table, columnar_validator

    if validate and (columnar_validator()(fast) or (len(slow) and columnar_validator()(slow))):
        # A record the schema refuses (rare): the whole table in order, checked as one.
        order = np.argsort(
            np.concatenate((np.setdiff1d(np.arange(len(fast) + len(slow)), at), at)),
            kind="stable",
        )
        table = pa.Table.from_batches([fast, slow]).take(pa.array(order))
        return check_table(table)
    # Zero-copy: slices of the fast records between the slow ones.
    pieces, done = [], 0
    for k, position in enumerate(at.tolist()):
        pieces.append(fast.slice(done, position - k - done))
        pieces.append(slow.slice(k, 1))
        done = position - k
    pieces.append(fast.slice(done))
    return pa.Table.from_batches(pieces, schema=ARROW_SCHEMA), {}
