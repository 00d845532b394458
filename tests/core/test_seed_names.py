"""The data names of the seed's trainer (`--data alpaca-belle-cot`, `belle1.5m`, ...) resolve through
the catalog, and the BELLE sets are one key each."""

from __future__ import annotations

import json

import pytest

from alpacacot.catalog import load_catalog
from alpacacot.errors import CatalogError

from .conftest import read_manifest, run_cli
from .helpers import entry, write_catalog

CATALOG = load_catalog()
BELLE = ["belle_0_5m", "belle_1m", "belle_2m", "belle_school_math", "multiturn_chat"]


@pytest.mark.parametrize(
    "name,keys",
    [
        ("alpaca", ["alpaca"]),
        ("belle", BELLE),
        ("alpaca-belle", ["alpaca", *BELLE]),
        ("cot", ["cot"]),
        ("alpaca-cot", ["alpaca", "cot"]),
        ("alpaca-belle-cot", ["alpaca", *BELLE, "cot"]),
        ("belle1.5m", ["belle_0_5m", "belle_1m"]),
        ("finance", ["finance"]),
        ("multiturn_chat", ["multiturn_chat"]),
        ("gpt4all", ["gpt4all"]),
        ("alpaca-belle1.5m", ["alpaca", "belle_0_5m", "belle_1m"]),
        ("cot_zh", ["cot_zh"]),
        ("cot-cot_zh", ["cot", "cot_zh"]),
    ],
)
def test_every_seed_name_resolves(name, keys):
    assert CATALOG.resolve(name) == keys


def test_each_belle_set_has_its_own_upstream_repo():
    repos = [CATALOG.datasets[k].files()[0].repo for k in BELLE]
    assert repos == [
        "BelleGroup/train_0.5M_CN",
        "BelleGroup/train_1M_CN",
        "BelleGroup/train_2M_CN",
        "BelleGroup/school_math_0.25M",
        "BelleGroup/multiturn_chat_0.8M",
    ]
    assert CATALOG.datasets["multiturn_chat"].normalizer == "belle_multiturn"
    # The mixes that named `belle` before the split still hold the same sets.
    assert set(BELLE) <= set(CATALOG.resolve("chinese"))


def test_a_mix_name_may_hold_a_dot_but_a_dataset_key_may_not(tmp_path):
    data = {"a": entry({"kind": "local", "path": "a.jsonl"})}
    path = write_catalog(tmp_path / "ok.yaml", data, mixes={"a1.5m": ["a"]})
    assert load_catalog(path).resolve("a1.5m") == ["a"]
    bad = write_catalog(tmp_path / "bad.yaml", {"a.b": data["a"]})
    with pytest.raises(CatalogError, match=r"dataset key .a\.b. is not a valid name"):
        load_catalog(bad)


def test_building_belle1_5m_builds_its_two_sets(tmp_path):
    run_cli("build", "--sample", "--out", tmp_path / "out", "-j", "1", "belle1.5m")
    assert set(read_manifest(tmp_path / "out")["sources"]) == {"belle_0_5m", "belle_1m"}


def test_list_shows_the_alpaca_cot_row_and_size():
    output = run_cli("list").output
    assert "Natural Instructions" in output and "5,040,134" in output
    data = json.loads(run_cli("list", "--json").stdout)
    assert data["datasets"]["chinese_medical"]["alpaca_cot"] == "Chinese-medical"
    assert data["datasets"]["chinese_medical"]["size"] == 792099
    assert data["mixes"]["belle1.5m"] == ["belle_0_5m", "belle_1m"]
