"""Cut the bundled sample excerpts (src/alpacacot/samples/) from real upstream files.

Maintainers run this once with a folder of upstream files (default ../shared/real-data, see its
SOURCES.md); a fresh clone does not need it. Excerpts keep the upstream format byte for byte where
the format allows (line-based files are cut by lines; JSON arrays are re-serialized in the
upstream's own style). Formats with no file here are built in their exact shape from real text
(samples/README.md says which). The excerpts cut from repositories that are not in that folder
(GAOKAO-Bench, pCLUE, Natural Instructions, ...) are listed with their commits in samples/README.md.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parents[1] / "src" / "alpacacot" / "samples"


def head_lines(src: Path, dst: Path, n: int) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, "rb") as fh:
        lines = [next(fh) for _ in range(n)]
    dst.write_bytes(b"".join(lines))


def array_prefix(data: bytes, n: int) -> bytes:
    """The bytes of a JSON array up to the end of its n-th item, then the closing bracket: a cut
    of the upstream file itself, whatever its indentation."""
    text = data.decode("utf-8")
    decoder = json.JSONDecoder()
    pos = text.index("[") + 1
    for _ in range(n):
        while text[pos] in " \t\r\n,":
            pos += 1
        _, pos = decoder.raw_decode(text, pos)
    return (text[:pos] + "\n]").encode("utf-8")


def json_array(records: list, dst: Path, indent: int, ascii_: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(json.dumps(records, indent=indent, ensure_ascii=ascii_), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument(
        "--real", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "real-data"
    )
    real = ap.parse_args().real

    alpaca = json.loads((real / "alpaca/alpaca_data.json").read_text())
    quirky = [
        i
        for i, r in enumerate(alpaca)
        if "<noinput>" in r["input"] or "<nooutput>" in r["output"] or not r["output"].strip()
    ][:8]
    picked = sorted(set(range(120)) | set(quirky))
    picked.append(0)  # an exact duplicate of the first record, as upstream files have
    json_array([alpaca[i] for i in picked], OUT / "alpaca/alpaca_data.json", 4, True)
    # AlpacaDataCleaned (alpaca_cleaned) is a real excerpt cut from a public copy of the cleaned
    # file, not from this folder: see samples/README.md.

    for tsv in sorted((real / "cot-flan").glob("*.tsv")):
        head_lines(tsv, OUT / "cot" / tsv.name, 25)

    # train_0.5M/1M/2M_CN and school_math_0.25M share dev1K.json's format: 40 of its lines each.
    dev = (real / "belle/dev1K.json").read_bytes().splitlines(keepends=True)
    for i, (key, name) in enumerate(
        [
            ("belle_0_5m", "Belle_open_source_0.5M.json"),
            ("belle_1m", "Belle_open_source_1M.json"),
            ("belle_2m", "train_2M_CN.json"),
            ("belle_school_math", "school_math_0.25M.json"),
        ]
    ):
        (OUT / key).mkdir(parents=True, exist_ok=True)
        (OUT / key / name).write_bytes(b"".join(dev[40 * i : 40 * (i + 1)]))

    # BELLE multiturn_chat_0.8M shape, from real ShareGPT-zh dialogues.
    rows = []
    with open(real / "sharegpt-zh/sharegpt_zh_1K_format.jsonl", encoding="utf-8") as fh:
        for line in fh:
            conv = json.loads(line)["conversations"]
            turns = [(m["from"], m["value"]) for m in conv]
            if len(turns) < 4 or len(turns) > 6 or len(line) > 6000:
                continue
            dialogue = (
                "".join(
                    f"{'Human' if who == 'human' else 'Assistant'}:{text}\n"
                    for who, text in turns[:-1]
                )
                + "Assistant:"
            )
            rows.append({"instruction": dialogue, "input": "", "output": turns[-1][1]})
            if len(rows) == 30:
                break
    (OUT / "multiturn_chat").mkdir(parents=True, exist_ok=True)
    (OUT / "multiturn_chat/multiturn_chat_0.8M.json").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )

    # finance-alpaca shape {instruction, input, output, text}, from Alpaca's money questions.
    words = (
        "stock",
        "invest",
        "financ",
        "budget",
        "money",
        "bank",
        "loan",
        "tax",
        "economy",
        "saving",
    )
    fin = [dict(r, text="") for r in alpaca if any(w in r["instruction"].lower() for w in words)][
        :60
    ]
    json_array(fin, OUT / "finance/Cleaned_date.json", 4, False)

    # GPT4All prompt generations: parquet columns prompt, response, source.
    code = json.loads((real / "codealpaca/code_alpaca_2k.json").read_text())[:60]
    table = pa.table(
        {
            "prompt": [f"{r['instruction']}\n{r['input']}".strip() for r in code],
            "response": [r["output"] for r in code],
            "source": ["sahil2801/CodeAlpaca-20k"] * len(code),
        }
    )
    (OUT / "gpt4all").mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    (OUT / "gpt4all/train-00000-of-00001.parquet").write_bytes(buf.getvalue())

    en = json.loads((real / "alpaca-gpt4-en/alpaca_en_demo.json").read_text())
    json_array(en[:100], OUT / "alpaca_gpt4_en/alpaca_gpt4_data.json", 2, False)
    zh = json.loads((real / "alpaca-gpt4-zh/alpaca_zh_demo.json").read_text())
    json_array(zh[:100], OUT / "alpaca_gpt4_zh/alpaca_gpt4_data_zh.json", 2, False)

    json_array(code, OUT / "codealpaca/code_alpaca_2k.json", 6, True)
    hik = json.loads(
        (real / "alpaca-zh-hikariming/alpaca_data-0-3252-zh-completed.json").read_text()
    )
    json_array(hik[:80], OUT / "alpaca_zh/alpaca_data-0-3252-zh-completed.json", 4, False)
    gpt = json.loads((real / "gpteacher/toolformer-dedupe-only-dataset.json").read_text())
    json_array(gpt[:60], OUT / "gpteacher/toolformer-dedupe-only-dataset.json", 4, False)
    head_lines(
        real / "sharegpt-zh/sharegpt_zh_1K_format.jsonl",
        OUT / "sharegpt_zh/sharegpt_zh_1K_format.jsonl",
        20,
    )
    head_lines(real / "firefly/dummy_data.jsonl", OUT / "firefly/dummy_data.jsonl", 12)
    head_lines(
        real / "chinese-vicuna/chat_data_sample.jsonl",
        OUT / "chinese_vicuna_chat/chat_data_sample.jsonl",
        3,
    )
    head_lines(
        real / "chinese-vicuna/instruct_data_sample.jsonl",
        OUT / "chinese_vicuna_instruct/instruct_data_sample.jsonl",
        10,
    )
    head_lines(real / "alpaca/seed_tasks.jsonl", OUT / "alpaca_seed_tasks/seed_tasks.jsonl", 20)
    head_lines(real / "belle/zh_seed_tasks.json", OUT / "belle_seed_tasks/zh_seed_tasks.json", 20)
    gsm = (real / "gsm8k-alpaca/gsm_8k_train.json").read_bytes()
    (OUT / "gsm8k").mkdir(parents=True, exist_ok=True)
    (OUT / "gsm8k/gsm_8k_train.json").write_bytes(array_prefix(gsm, 30))


if __name__ == "__main__":
    main()
