#!/usr/bin/env python
"""Curation quality on real files: near-duplicate precision/recall and decontamination recall.

    python bench/curation_quality.py [--real-data DIR] [--cache DIR] [--json FILE]

Near-duplicates: a labelled set of prompt pairs built from the real upstream files of DIR
(default ../shared/real-data), clustered at the default settings (14 bands x 8 rows, word/CJK
5-gram shingles) with both MinHash libraries; a labelled pair is predicted "duplicate" when both
prompts land in one cluster.

  true pairs    same-prompt: an Alpaca prompt and the same prompt in Alpaca-GPT4 (LLaMA-Factory's
                sample of GPT-4-LLM's file);
                gsm8k: a GSM8K train question in AlpacaDataCleaned's gsm_8k_train.json and in
                FLAN's gsm8k_train.tsv (the same question, two sources);
                light-edit: an Alpaca prompt of 20+ words with one word dropped;
                whitespace/punct: an Alpaca prompt re-spaced, re-cased, punctuation changed
  non-pairs     same-instruction: two Alpaca records with one instruction and different inputs;
                same-template: two FLAN CoT (Alpaca-CoT rendering) AQuA prompts, i.e. one FLAN
                template around different questions (sharing under half of their words:
                AQuA repeats questions with one number changed, those are near-duplicates);
                same-opening: two Alpaca prompts that share their first five words

Reported apart (not in the headline): templated, the FLAN question of cot-flan/aqua_train.tsv
against Alpaca-CoT's rendering of it with a template around it.

Decontamination (needs the benchmarks' full files in the cache, --cache; `alpacacot-data curate`
downloads them there): every GSM8K test question planted in a real Alpaca record (as is,
re-spaced, upper-cased, first half of the first sentence reworded, and the whole first sentence
replaced), and 10,000 real Alpaca records (seeded sample) checked for false hits against every
benchmark of the catalog.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL_DATA = REPO.parent / "shared" / "real-data"
sys.path.insert(0, str(REPO / "src"))

from alpacacot.curation.neardup import NearDupParams, band_keys, clusters  # noqa: E402


def _prompt(r: dict) -> str:
    return "\n".join(p for p in (r["instruction"], r.get("input", "")) if p)


def _first_sentence(q: str) -> tuple[str, str, str]:
    parts = re.split(r"(?<=[.!?])(\s+)", q.strip(), maxsplit=1)
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else (parts[0], "", "")


def _word_jaccard(a: str, b: str) -> float:
    x, y = set(a.lower().split()), set(b.lower().split())
    return len(x & y) / max(len(x | y), 1)


def labelled_pairs(
    real: Path, rng: random.Random
) -> tuple[list[str], list[tuple[int, int, str, bool]]]:
    """Texts and (i, j, category, is_duplicate) pairs over them."""
    texts: list[str] = []
    pairs: list[tuple[int, int, str, bool]] = []

    def add(a: str, b: str, cat: str, dup: bool) -> None:
        texts.extend([a, b])
        pairs.append((len(texts) - 2, len(texts) - 1, cat, dup))

    alpaca = json.loads((real / "alpaca/alpaca_data.json").read_text("utf-8"))
    gpt4 = json.loads((real / "alpaca-gpt4-en/alpaca_en_demo.json").read_text("utf-8"))
    by_prompt = {_prompt(r): r for r in alpaca}
    for r in gpt4:
        if _prompt(r) in by_prompt:
            add(_prompt(r), _prompt(by_prompt[_prompt(r)]), "same-prompt", True)
    gsm_alpaca = json.loads((real / "gsm8k-alpaca/gsm_8k_train.json").read_text("utf-8"))
    with open(real / "cot-flan/gsm8k_train.tsv", encoding="utf-8") as fh:
        flan = [row[0].replace("\\n", "\n") for row in csv.reader(fh, delimiter="\t")]
    for r, q in list(zip(gsm_alpaca, flan, strict=False))[:1000]:
        add(_prompt(r), q, "gsm8k", True)
    long = [_prompt(r) for r in alpaca if len(_prompt(r).split()) >= 20]
    for p in rng.sample(long, 1000):
        words = p.split()
        i = rng.randrange(len(words))
        add(p, " ".join(words[:i] + words[i + 1 :]), "light-edit", True)
    for p in rng.sample(long, 1000):
        edited = "  ".join(p.split()).replace(",", " ;").rstrip(".?!").upper() + " !"
        add(p, edited, "whitespace/punct", True)
    # Non-pairs.
    by_instruction: dict[str, list[dict]] = {}
    for r in alpaca:
        if r["input"] and len(r["input"].split()) >= 3:
            by_instruction.setdefault(r["instruction"], []).append(r)
    groups = [g for g in by_instruction.values() if len({x["input"] for x in g}) > 1]
    for g in rng.sample(groups, min(1000, len(groups))):
        a, b = rng.sample(g, 2)
        if a["input"] != b["input"]:
            add(_prompt(a), _prompt(b), "same-instruction", False)
    cot = json.loads((real / "cot-alpacacot/aqua_train.json").read_text("utf-8"))
    by_suffix: dict[str, list[str]] = {}
    for r in cot:
        suffix = " ".join(r["instruction"].split()[-6:])
        by_suffix.setdefault(suffix, []).append(r["instruction"])
    templated = [g for g in by_suffix.values() if len(g) > 1]
    made = 0
    while made < 1000:
        g = rng.choice(templated)
        a, b = rng.sample(g, 2)
        # AQuA repeats questions with one number changed: those are near-duplicates, not
        # different prompts; a non-pair shares under half of its words (outside the template).
        if _word_jaccard(a, b) < 0.5:
            add(a, b, "same-template", False)
            made += 1
    by_opening: dict[str, list[str]] = {}
    for p in long:
        by_opening.setdefault(" ".join(p.split()[:5]), []).append(p)
    openings = [g for g in by_opening.values() if len(set(g)) > 1]
    for g in rng.sample(openings, min(1000, len(openings))):
        a, b = rng.sample(sorted(set(g)), 2)
        add(a, b, "same-opening", False)
    with open(real / "cot-flan/aqua_train.tsv", encoding="utf-8") as fh:
        flan_aqua = [row[0].replace("\\n", "\n") for row in csv.reader(fh, delimiter="\t")]
    for r, q in list(zip(cot, flan_aqua, strict=False))[:500]:
        add(r["instruction"].replace("\\n", "\n"), q, "templated (apart)", True)
    return texts, pairs


def neardup(real: Path, seed: int) -> dict:
    rng = random.Random(seed)
    texts, pairs = labelled_pairs(real, rng)
    out: dict = {"texts": len(texts), "pairs": len(pairs), "backends": {}}
    for backend in ("rensa", "datasketch"):
        params = NearDupParams(backend=backend)
        t0 = time.perf_counter()
        keys = band_keys(texts, params)
        seconds = time.perf_counter() - t0
        labels = clusters(keys)
        per: dict[str, dict[str, int]] = {}
        tp = fp = fn = tn = 0
        for i, j, cat, dup in pairs:
            same = bool(labels[i] == labels[j])
            c = per.setdefault(cat, {"pairs": 0, "predicted": 0})
            c["pairs"] += 1
            c["predicted"] += same
            if cat.endswith("(apart)"):
                continue
            tp += same and dup
            fp += same and not dup
            fn += (not same) and dup
            tn += (not same) and not dup
        out["backends"][backend] = {
            "precision": tp / max(tp + fp, 1),
            "recall": tp / max(tp + fn, 1),
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            "signature_seconds": seconds,
            "texts_per_second": len(texts) / seconds,
            "categories": per,
        }
    return out


def decontamination(real: Path, cache: Path | None, seed: int) -> dict:
    from alpacacot.catalog import load_catalog
    from alpacacot.curation import benchmarks as bm
    from alpacacot.curation.contamination import build_index, match_texts

    catalog = load_catalog()
    files = {
        k: bm.collect(catalog, e, sample=False, cache_dir=cache, offline=True)
        for k, e in catalog.benchmarks.items()
    }
    t0 = time.perf_counter()
    index = build_index(
        (k, i, text)
        for k, e in catalog.benchmarks.items()
        for i, text in bm.read_items(e, [p for p, _ in files[k]])
    )
    index_seconds = time.perf_counter() - t0
    gsm_entry = catalog.benchmarks["gsm8k_test"]
    gsm = [text for _, text in bm.read_items(gsm_entry, [p for p, _ in files["gsm8k_test"]])]
    alpaca = json.loads((real / "alpaca/alpaca_data.json").read_text("utf-8"))
    rng = random.Random(seed)
    host = alpaca[5]

    def reword_half(q: str) -> str:
        first, sep, rest = _first_sentence(q)
        words = first.split()
        return (
            " ".join(["Consider", "the", "following", "case:", *words[(len(words) + 1) // 2 :]])
            + sep
            + rest
        )

    def replace_first(q: str) -> str:
        first, sep, rest = _first_sentence(q)
        return "Here is a situation worth thinking about carefully. " + (rest or first)

    variants = {
        "as is": lambda q: q,
        "re-spaced": lambda q: "  ".join(q.split(" ")).replace(", ", " ,"),
        "upper-cased": str.upper,
        "first sentence half reworded": reword_half,
        "first sentence replaced": replace_first,
    }
    found = {}
    # A question of one sentence has no first sentence apart from itself: rewording "the first
    # sentence" then rewords the whole question; those are counted apart.
    multi = [len(re.split(r"(?<=[.!?])\s+", q.strip())) > 1 for q in gsm]
    for name, fn in variants.items():
        texts = [f"{host['instruction']}\n{fn(q)}\n{host['output']}" for q in gsm]
        hits = match_texts(texts, index)
        ok = [
            any(h.benchmark == "gsm8k_test" and h.item == i for h in hs)
            for i, hs in enumerate(hits)
        ]
        if name.startswith("first sentence"):
            both = list(zip(ok, multi, strict=True))
            found[f"{name} (2+ sentences: {sum(multi)})"] = sum(o for o, m in both if m)
            found[f"{name} (1 sentence: {len(gsm) - sum(multi)})"] = sum(
                o for o, m in both if not m
            )
        else:
            found[name] = sum(ok)
    unrelated = rng.sample(alpaca, 10_000)
    texts = [
        "\n".join(p for p in (r["instruction"], r["input"], r["output"]) if p) for r in unrelated
    ]
    t0 = time.perf_counter()
    hits = match_texts(texts, index)
    match_seconds = time.perf_counter() - t0
    false = [
        (texts[i][:120], [(h.benchmark, h.item, h.match[:80]) for h in hs])
        for i, hs in enumerate(hits)
        if hs
    ]
    return {
        "benchmark_items": index.items,
        "too_short": index.skipped,
        "indexed_grams": index.grams,
        "index_seconds": index_seconds,
        "gsm8k_test_questions": len(gsm),
        "found": found,
        "unrelated_records": len(texts),
        "unrelated_with_a_hit": len(false),
        "false_hit_examples": false[:5],
        "match_records_per_second": len(texts) / match_seconds,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--real-data", type=Path, default=DEFAULT_REAL_DATA)
    ap.add_argument(
        "--cache", type=Path, default=None, help="alpacacot cache with the benchmark files"
    )
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    result = {"neardup": neardup(args.real_data, args.seed)}
    for backend, r in result["neardup"]["backends"].items():
        print(
            f"near-dup {backend}: precision {r['precision']:.3f} recall {r['recall']:.3f} "
            f"(tp {r['tp']} fp {r['fp']} fn {r['fn']} tn {r['tn']}); "
            f"{r['texts_per_second']:,.0f} prompts/s"
        )
        for cat, c in r["categories"].items():
            print(f"    {cat:22s} {c['predicted']:5d} / {c['pairs']:5d} clustered together")
    result["decontamination"] = decontamination(args.real_data, args.cache, args.seed)
    d = result["decontamination"]
    print(
        f"decontamination: index of {sum(d['benchmark_items'].values()):,} items "
        f"({d['indexed_grams']:,} grams) in {d['index_seconds']:.1f} s"
    )
    for name, n in d["found"].items():
        print(f"    GSM8K test planted, {name:55s} found {n}")
    print(
        f"    unrelated real records with a hit: {d['unrelated_with_a_hit']} / {d['unrelated_records']}"
        f" ({d['match_records_per_second']:,.0f} records/s)"
    )
    for ex in d["false_hit_examples"]:
        print("      ", ex)
    if args.json:
        args.json.write_text(
            json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )


if __name__ == "__main__":
    main()
