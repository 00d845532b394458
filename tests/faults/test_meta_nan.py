"""Issue 12, item 8: NaN and Infinity are not JSON, so they never reach a record's meta; they are
written as null (as JavaScript's JSON.stringify writes them)."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow.parquet as pq

from alpacacot.pipeline import encode_meta

from .helpers import run_build, write_sources


def _strict(text: str):
    """Parse as strict JSON: NaN, Infinity and -Infinity are refused."""

    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_non_finite_upstream_values_land_in_meta_as_null(tmp_path):
    # Python's JSON reader (and many upstream dumps) accept these bare words.
    catalog = write_sources(
        tmp_path,
        {
            "scores": [
                '{"instruction": "Rate this.", "output": "Fine.", "score": NaN, '
                '"upper": Infinity, "detail": {"lower": -Infinity, "votes": [1.5, NaN]}}',
                '{"instruction": "Rate that.", "output": "Good.", "score": 0.5}',
            ]
        },
    )
    out = tmp_path / "out"
    assert run_build(catalog, out).returncode == 0
    metas = [
        _strict(m)
        for shard in sorted((out / "scores").glob("*.parquet"))
        for m in pq.read_table(shard).column("meta").to_pylist()
    ]
    assert metas == [
        {"score": None, "upper": None, "detail": {"lower": None, "votes": [1.5, None]}},
        {"score": 0.5},
    ]


def test_encode_meta_writes_strict_json_for_numpy_floats_too():
    meta = {"a": np.float64("nan"), "b": [float("inf"), 2.0], "c": "NaN", "d": math.pi}
    assert _strict(encode_meta(meta)) == {"a": None, "b": [None, 2.0], "c": "NaN", "d": math.pi}
