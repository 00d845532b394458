"""The prompt, whole-record and answer views gathered from one tokenisation of the fields are the
tokens of the joined texts (text.prompt_text / text.record_text / the output) tokenised alone."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from alpacacot.curation.batch import record_views, tokenize
from alpacacot.curation.text import prompt_text, record_text

from .helpers import sample_records

TURN = pa.struct([("user", pa.string()), ("assistant", pa.string())])
ODD = [
    {"instruction": "", "input": "", "output": "", "history": []},
    {
        "instruction": "Ｆｕｌｌ　ｗｉｄｔｈ",
        "input": None,
        "output": "e\u0301 cafe\u0301",
        "history": None,
    },
    {
        "instruction": "继续",
        "input": "",
        "output": "好的，ｶﾀｶﾅ and 한국어 mixed 123",
        "history": [
            {"user": "第一轮：你好", "assistant": "\u0301combining first"},
            {"user": "", "assistant": "no user text"},
        ],
    },
    {"instruction": "a" * 3, "input": "\n\n", "output": "x\ny", "history": []},
]


def _table(records: list[dict]) -> pa.Table:
    return pa.table(
        {
            "instruction": pa.array([r.get("instruction") for r in records], pa.string()),
            "input": pa.array([r.get("input") for r in records], pa.string()),
            "output": pa.array([r.get("output") for r in records], pa.string()),
            "history": pa.array([r.get("history") for r in records], pa.list_(TURN)),
        }
    )


def test_views_equal_the_joined_texts_tokenised() -> None:
    records = ODD + sample_records("alpaca_gpt4_zh/alpaca_gpt4_data_zh.json")[:50]
    views = record_views(_table(records))
    for view, texts in (
        (views.prompt, [prompt_text(r) for r in records]),
        (views.record, [record_text(r) for r in records]),
        (views.answer, [r.get("output") or "" for r in records]),
    ):
        alone = tokenize(texts)
        assert np.array_equal(view.offsets, alone.offsets)
        assert np.array_equal(view.hashes, alone.hashes)
        assert np.array_equal(view.cjk, alone.cjk)
        assert view.tokens_of(2) == alone.tokens_of(2)
        assert view.strings.equals(alone.strings)
    assert views.prompt_chars.tolist() == [len(prompt_text(r)) for r in records]
    assert views.output_chars.tolist() == [len(r.get("output") or "") for r in records]


def test_numpy_paths_tokenise_as_the_regex_path_does():
    """ASCII texts are split on their bytes, BMP texts on their code points, the others by Arrow
    regexes; alone, mixed, sliced or null, the tokens, hashes and character counts are the regex
    path's."""
    from alpacacot.curation.batch import _tokenize_unicode

    rng = np.random.default_rng(7)
    alphabet = list("abzXYZ09 .,!\n\t-_'\"é中文ー・\u0301Ａ한ﬁ½Σ\u3000ｶ\U0001f600")
    texts: list[str | None] = [
        "".join(rng.choice(alphabet, size=int(rng.integers(0, 40)))) for _ in range(2000)
    ]
    texts += [None, "", "Hello, World!", "  a  ", "x", "snake_case-and 123abc", " \n", "中\u0301文"]
    arr = pa.array(texts, pa.string())
    ascii_only = pa.array([t for t in texts if t is None or t.isascii()], pa.string())
    bmp = pa.array([t for t in texts if t and max(map(ord, t)) < 0x10000], pa.string())
    for sub in (arr, arr.slice(5, 300), ascii_only, ascii_only.slice(3, 50), bmp, bmp.slice(9)):
        fast = tokenize(sub)
        slow = _tokenize_unicode(pc.fill_null(sub, ""), 0.3)
        assert np.array_equal(fast.offsets, slow.offsets)
        assert np.array_equal(fast.hashes, slow.hashes)
        assert np.array_equal(fast.cjk, slow.cjk)
        assert np.array_equal(fast.chars, slow.chars)
        assert np.array_equal(fast.cjk_chars, slow.cjk_chars)
        assert fast.strings.to_pylist() == slow.strings.to_pylist()
        assert all(fast.tokens_of(i) == slow.tokens_of(i) for i in range(len(sub)))
