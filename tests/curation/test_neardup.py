"""Near-duplicates on real prompts: the same Alpaca prompt across sources, light edits, templates."""

from __future__ import annotations

import numpy as np
import pytest

from alpacacot.curation.neardup import NearDupParams, band_keys, clusters, components
from alpacacot.curation.text import prompt_text, shingles

from .helpers import sample_records


def _same_cluster(texts: list[str], params: NearDupParams) -> np.ndarray:
    labels = clusters(band_keys(texts, params))
    return labels == labels[0]


@pytest.mark.parametrize("backend", ["rensa", "datasketch"])
def test_same_prompt_in_two_sources_and_light_edits_cluster(backend: str) -> None:
    pytest.importorskip(backend)  # datasketch comes with the [curate] extra (make test installs it)
    params = NearDupParams(backend=backend)
    gpt4 = sample_records("alpaca_gpt4_en/alpaca_gpt4_data.json")
    alpaca = sample_records("alpaca/alpaca_data.json")
    by_prompt = {r["instruction"]: r for r in alpaca}
    shared = [r for r in gpt4 if r["instruction"] in by_prompt]
    assert shared, "the excerpts share an Alpaca prompt"
    for r in shared:
        pair = [prompt_text(r), prompt_text(by_prompt[r["instruction"]])]
        assert _same_cluster(pair, params).all()
    # Whitespace, case and punctuation edits of real prompts (long enough for 5-grams).
    for r in [r for r in alpaca if len(prompt_text(r).split()) >= 12][:30]:
        p = prompt_text(r)
        edited = "  ".join(p.split()).rstrip(".!?").upper().replace(",", " ,") + " ?"
        assert _same_cluster([p, edited], params).all(), p


def test_different_prompts_of_one_template_do_not_cluster() -> None:
    # Real Alpaca records that share an instruction but not an input are different prompts.
    records = sample_records("alpaca/alpaca_data.json") + sample_records(
        "alpaca_gpt4_en/alpaca_gpt4_data.json"
    )
    texts = [prompt_text(r) for r in records if r["input"] and len(r["input"].split()) > 8]
    labels = clusters(band_keys(texts, NearDupParams()))
    distinct = {t: i for i, t in enumerate(texts)}
    # Only identical prompts may share a cluster here.
    for i, t in enumerate(texts):
        others = [texts[j] for j in np.flatnonzero(labels == labels[i])]
        assert all(o == t for o in others) or len(set(others)) == 1, (t, distinct)


def test_cjk_text_is_shingled_by_characters() -> None:
    zh = sample_records("alpaca_gpt4_zh/alpaca_gpt4_data_zh.json")[0]["instruction"]
    grams = shingles(zh, word_n=5, char_n=5)
    assert all(len(g) == 5 for g in grams[:-1]) and " " not in grams[0]
    en = shingles("Give three tips for staying healthy today please", 5, 5)
    assert en[0] == "give three tips for staying"


def test_components_joins_chains() -> None:
    a, b = np.array([0, 2, 1]), np.array([1, 3, 3])
    assert components(5, a, b).tolist() == [0, 0, 0, 0, 4]


def test_empty_text_never_collides() -> None:
    keys = band_keys(["", "", "Give three tips for staying healthy."], NearDupParams())
    assert clusters(keys).tolist() == [0, 1, 2]
