"""Each quality signal on real records of the bundled excerpts."""

from __future__ import annotations

from dataclasses import replace

from alpacacot.curation.signals import SignalParams, record_signals

from .helpers import sample_records

P = SignalParams()


def _flagged(records: list[dict], signal: str) -> list[dict]:
    return [r for r in records if record_signals(r, P)[signal]]


def test_refusals_in_english_and_chinese_gpt4_answers() -> None:
    en = _flagged(sample_records("alpaca_gpt4_en/alpaca_gpt4_data.json"), "refusal")
    zh = _flagged(sample_records("alpaca_gpt4_zh/alpaca_gpt4_data_zh.json"), "refusal")
    assert en and zh
    assert any("as an ai" in r["output"].lower() for r in en)
    assert all("人工智能" in r["output"] or "ai" in r["output"].lower() for r in zh)
    sig = record_signals(en[0], P)
    assert sig["refusal_match"] in en[0]["output"].lower()


def test_refusal_list_is_configurable() -> None:
    records = sample_records("alpaca/alpaca_data.json")
    phrase = records[0]["output"].lower()[:30]
    custom = replace(P, refusals=(phrase,))
    assert record_signals(records[0], custom)["refusal"]
    assert not record_signals(records[0], P)["refusal"]


def test_placeholder_and_empty_answers_are_empty_of_content() -> None:
    records = sample_records("alpaca/alpaca_data.json")
    empty = _flagged(records, "empty_answer")
    outputs = {r["output"].strip().lower() for r in empty}
    assert outputs <= {"", "<nooutput>", "<noinput>", "n/a"} | {
        o for o in outputs if not any(c.isalnum() for c in o)
    }
    assert "<nooutput>" in outputs or "" in outputs
    assert not record_signals(records[0], P)["empty_answer"]


def test_chinese_prompt_answered_in_english_is_a_mismatch() -> None:
    records = sample_records("alpaca_zh/alpaca_data-0-3252-zh-completed.json")
    mismatched = _flagged(records, "lang_mismatch")
    assert mismatched, "the excerpt holds records left untranslated"
    for r in mismatched:
        assert not any("\u4e00" <= c <= "\u9fff" for c in r["output"])
    # A request for a translation is exempt.
    r = {**mismatched[0], "instruction": "把下面的句子翻译成英文。" + mismatched[0]["instruction"]}
    assert not record_signals(r, P)["lang_mismatch"]
    # An English prompt answered in English is not flagged.
    assert not _flagged(sample_records("alpaca/alpaca_data.json")[:50], "lang_mismatch")


def test_degenerate_repetition() -> None:
    record = sample_records("alpaca_gpt4_en/alpaca_gpt4_data.json")[0]
    assert record_signals(record, P)["repetition"] < 0.2
    sentence = record["output"].split(".")[0] + ". "
    looped = {**record, "output": record["output"] + sentence * 30}
    assert record_signals(looped, P)["repetition"] > 0.5


def test_cut_off_answers_and_open_code_fences() -> None:
    records = sample_records("alpaca_gpt4_en/alpaca_gpt4_data.json")
    long = next(r for r in records if len(r["output"]) > 600 and r["output"].rstrip()[-1] in ".!?")
    assert not record_signals(long, P)["truncated"]
    words = long["output"][:400].rsplit(" ", 1)[0]
    assert record_signals({**long, "output": words}, P)["truncated"]
    code = next(r for r in sample_records("codealpaca/code_alpaca_2k.json") if "\n" in r["output"])
    assert not record_signals({**code, "output": f"```\n{code['output']}\n```"}, P)["truncated"]
    assert record_signals({**code, "output": f"Here it is:\n```\n{code['output']}"}, P)["truncated"]


def test_lengths_are_counted_in_characters() -> None:
    record = sample_records("alpaca_zh/alpaca_data-0-3252-zh-completed.json")[0]
    sig = record_signals(record, P)
    assert sig["output_chars"] == len(record["output"])
    assert sig["prompt_chars"] >= len(record["instruction"])
