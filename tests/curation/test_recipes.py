"""Recipe rules: decontamination, signal thresholds, prefer-order dedup, caps; catalog checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from alpacacot.catalog import PACKAGE_CATALOG, load_catalog
from alpacacot.errors import CatalogError
from alpacacot.recipes import find_recipe, parse_recipe, select


def _signals(n: int, **flags) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "refusal": [False] * n,
            "lang_mismatch": [False] * n,
            "empty_answer": [False] * n,
            "truncated": [False] * n,
            "repetition": [0.0] * n,
            "prompt_chars": [50] * n,
            "output_chars": [200] * n,
        }
    )
    for col, rows in flags.items():
        for r, v in rows.items():
            df.loc[r, col] = v
    return df


RECIPE = {
    "sources": ["alpaca", "alpaca_gpt4_en"],
    "dedup": {"exact": True, "near": "prompt", "prefer": ["alpaca_gpt4_en"]},
    "decontaminate": True,
    "signals": {"refusal": True, "max_repetition": 0.5, "min_output_chars": 2},
}


def test_rules_apply_in_order_and_the_preferred_source_wins() -> None:
    recipe = parse_recipe("r", RECIPE)
    ids = {
        "alpaca": np.array(["a0", "a1", "a2", "a3", "shared"], dtype=object),
        "alpaca_gpt4_en": np.array(["g0", "g1", "g2", "shared"], dtype=object),
    }
    signals = {
        "alpaca": _signals(5, repetition={2: 0.9}, output_chars={3: 1}),
        "alpaca_gpt4_en": _signals(4, refusal={1: True}),
    }
    clusters = {
        ("alpaca", "a0"): "c0",
        ("alpaca_gpt4_en", "g0"): "c0",
        ("alpaca", "a1"): "c1",
        ("alpaca_gpt4_en", "g2"): "c1",
    }
    contaminated = {"gsm8k_test": {"g2"}}
    sel = select(recipe, ids, signals=signals, contaminated=contaminated, clusters=clusters)
    kept = {k: [ids[k][i] for i in rows] for k, rows in sel.rows.items()}
    # g2 is contaminated, so a1 (its near-duplicate) survives; a0 loses to g0; shared stays in
    # the preferred source.
    assert kept == {"alpaca": ["a1"], "alpaca_gpt4_en": ["g0", "shared"]}
    assert sel.removed["alpaca_gpt4_en"]["decontaminated"] == 1
    assert sel.removed["alpaca_gpt4_en"]["refusal"] == 1
    assert sel.removed["alpaca"]["repetition"] == 1
    assert sel.removed["alpaca"]["length"] == 1
    assert sel.removed["alpaca"]["near_duplicate"] == 1
    assert sel.removed["alpaca"]["exact_duplicate"] == 1
    for counts in sel.counts().values():
        assert counts["kept"] + sum(counts["removed"].values()) == counts["read"]


def test_decontamination_can_be_limited_or_turned_off() -> None:
    ids = {"alpaca": np.array(["a0", "a1"], dtype=object)}
    hits = {"gsm8k_test": {"a0"}, "cmmlu": {"a1"}}
    only = parse_recipe("r", {"sources": ["alpaca"], "decontaminate": ["cmmlu"]})
    off = parse_recipe("r", {"sources": ["alpaca"], "decontaminate": False})
    assert select(only, ids, contaminated=hits).rows["alpaca"].tolist() == [0]
    assert select(off, ids, contaminated=hits).rows["alpaca"].tolist() == [0, 1]


def test_cap_keeps_a_seeded_sample() -> None:
    recipe = parse_recipe("r", {"sources": [{"key": "alpaca", "cap": 3}], "decontaminate": False})
    ids = {"alpaca": np.array([f"a{i}" for i in range(10)], dtype=object)}
    first = select(recipe, ids).rows["alpaca"]
    assert len(first) == 3 and first.tolist() == select(recipe, ids).rows["alpaca"].tolist()
    assert select(recipe, ids).removed["alpaca"]["cap"] == 7


def test_catalog_recipes_resolve_and_bad_ones_name_the_field(tmp_path: Path) -> None:
    assert find_recipe("alpaca-gpt4-curated").order[0] == "alpaca_gpt4_en"
    assert find_recipe("alpaca-belle-cot") is None  # a mix stays a mix
    data = yaml.safe_load(PACKAGE_CATALOG.read_text("utf-8"))
    data["recipes"]["broken"] = {"sources": ["alpaca"], "decontaminate": ["no_such_bench"]}
    path = tmp_path / "catalog.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    # Sample paths are relative to the catalog; the check fails before they matter.
    with pytest.raises(CatalogError, match="recipes/broken/decontaminate/0.*no_such_bench"):
        load_catalog(path)
    data["recipes"]["broken"] = {"sources": ["alpaca", "nope"]}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(CatalogError, match="recipes/broken/sources/1.*'nope'"):
        load_catalog(path)


def test_every_benchmark_is_pinned_and_has_an_excerpt() -> None:
    catalog = load_catalog()
    assert set(catalog.benchmarks) >= {
        "gsm8k_test",
        "aqua_test",
        "cmmlu",
        "gaokao_bench",
        "mmcu",
        "belle_eval",
        "humaneval",
    }
    for entry in catalog.benchmarks.values():
        assert all(f.sha256 for f in entry.files()), entry.key
        assert all(catalog.local_path(f.location).is_file() for f in entry.sample_files())


def test_near_duplicates_within_one_source_stay_unless_asked() -> None:
    ids = {"gpteacher": np.array(["t0", "t1", "t2"], dtype=object)}
    clusters = {("gpteacher", "t0"): "c", ("gpteacher", "t1"): "c", ("gpteacher", "t2"): "c"}
    raw = {"sources": ["gpteacher"], "decontaminate": False, "dedup": {"near": "prompt"}}
    across = parse_recipe("r", raw)
    assert select(across, ids, clusters=clusters).rows["gpteacher"].tolist() == [0, 1, 2]
    raw["dedup"]["near_scope"] = "all"
    everything = parse_recipe("r", raw)
    assert select(everything, ids, clusters=clusters).rows["gpteacher"].tolist() == [0]


def test_a_recipe_file_is_read_under_the_catalogs_limits(tmp_path: Path) -> None:
    from alpacacot.recipes import RecipeError

    twice = tmp_path / "twice.yaml"
    twice.write_text("sources: [alpaca]\nsources: [cot]\n", "utf-8")
    with pytest.raises(RecipeError, match="appears twice"):
        find_recipe(str(twice))
    bomb = tmp_path / "bomb.yaml"
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    bomb.write_text("\n".join(lines) + "\nsources: [alpaca]\n", "utf-8")
    with pytest.raises(RecipeError, match="aliases"):
        find_recipe(str(bomb))
    assert find_recipe(str(tmp_path / "missing.yaml")) is None  # not a file: not a recipe
