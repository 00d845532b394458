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


def _one_by_one(record: dict, params: SignalParams) -> dict:
    """The per-record tests, as the signals were computed before the Arrow kernels settled most
    records: the batch must give the same on every record."""
    from alpacacot.curation.signals import (
        _WS,
        _refusal_pattern,
        empty_answer,
        lang_mismatch,
        truncated,
    )
    from alpacacot.curation.text import prompt_text

    output = record.get("output") or ""
    prompt = prompt_text(record)
    low = output.lower() if output.isascii() else _WS.sub(" ", output.lower())
    found = _refusal_pattern(params.refusals).search(low)
    return {
        "refusal": found is not None,
        "refusal_match": found.group(0) if found else None,
        "lang_mismatch": lang_mismatch(prompt, output, params),
        "empty_answer": empty_answer(output),
        "truncated": truncated(output, params),
        "prompt_chars": len(prompt),
        "output_chars": len(output),
    }


def test_kernels_settle_records_as_the_per_record_tests_do() -> None:
    from alpacacot.curation.signals import batch_signals

    long_prose = " ".join(["word"] * 60)
    tricky = [
        "I'm sorry,\u3000but I cannot do that.",  # non-ASCII space inside a phrase
        "I'm SORRY,\n\n  but i CANNOT",
        "As an AI, \u0130 think",  # İ lowers to i + a combining dot
        "作为一个AI语言模型，我无法",
        "N/A",
        "\u3000无\u3000",
        "_____",
        "   ",
        "ａｂｃ",
        long_prose + ".\u3000",  # punctuation, then a space Python strips and RE2's \s does not
        long_prose + ".\n",
        long_prose + ",",
        long_prose + "\n```python\nx = 1",
        "````",
        "这是一个很长的中文回答，" * 20,
    ]
    prompts = ["Say something.", "请回答这个问题，谢谢你的帮助和耐心", "翻译成英文", "", "・・・"]
    records = [
        {"instruction": p, "input": "", "output": o, "history": []} for o in tricky for p in prompts
    ]
    records += sample_records("alpaca_gpt4_zh/alpaca_gpt4_data_zh.json")
    for params in (P, replace(P, cjk_share=0.0), replace(P, refusals=())):
        for record, got in zip(records, batch_signals(records, params), strict=True):
            want = _one_by_one(record, params)
            assert {k: got[k] for k in want} == want, record
