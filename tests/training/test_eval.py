"""`alpacacot-data eval` on real benchmark excerpts (fixtures/benchmarks, origins in SOURCES.md):
answer extraction, option scoring, two adapters scored with a table, JSON and chart, refusal of a
contaminated benchmark, and a judge on a loopback server."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from training_helpers import FIXTURES, train_data_args
from typer.testing import CliRunner

from alpacacot.cli import app
from alpacacot.training.benchmarks import load_task
from alpacacot.training.evaluate import extract_letter, extract_number, is_correct

runner = CliRunner()
BENCH = FIXTURES / "benchmarks"
GSM8K = BENCH / "gsm8k_test" / "test.jsonl"
CMMLU = BENCH / "cmmlu"


def test_gsm8k_answers_are_read_and_extracted_from_real_solutions():
    items = load_task("gsm8k_test", GSM8K)
    assert len(items) == 12
    assert [i.answer for i in items[:4]] == ["18", "3", "70000", "540"]
    rows = [json.loads(line) for line in GSM8K.read_text().splitlines()]
    # the reference solutions themselves, as a model would write them, extract to the gold answer
    for item, row in zip(items, rows, strict=True):
        assert extract_number(row["answer"]) == item.answer
        cot = row["answer"].split("####")[0] + f"So the answer is {item.answer}."
        assert is_correct(item, cot)
    house = items[2]  # "$70,000" written with a thousands separator and a dollar sign
    assert is_correct(house, "He made a profit of $70,000.")
    assert not is_correct(house, "The answer is 7000, not 130,000")
    assert extract_number("答案是 18 元") == "18"
    assert extract_number("no number here") is None


def test_option_letters_are_extracted():
    assert extract_letter("Let's see... the answer is (C).") == "C"
    assert extract_letter("答案：B") == "B"
    assert extract_letter("I pick A, no wait, D") == "D"
    assert extract_letter("nothing") is None


def test_cmmlu_items_keep_their_options_and_answers():
    items = load_task("cmmlu", CMMLU)
    assert len(items) == 20  # 12 elementary mathematics + 8 high school biology rows
    first = items[0]
    assert first.options == {"A": "6", "B": "5", "C": "7", "D": "8"} and first.answer == "D"
    assert first.question.startswith("在某校班际篮球联赛中")
    fraction = items[3]  # LaTeX in the question, kept as written
    assert fraction.question.startswith("$\\frac{2}{5}$") and fraction.options["A"] == "6倍"
    assert items[12].question.startswith("研究发现，直肠癌患者") and items[12].answer == "A"
    assert {i.answer for i in items} <= set("ABCD")


@pytest.fixture(scope="module")
def base(tiny_model):
    from alpacacot.training.infer import load_for_inference

    return load_for_inference(str(tiny_model("llama")), None)


def test_option_scoring_is_the_models_log_likelihood_of_each_letter(base):
    import torch

    from alpacacot.training.evaluate import choice_prompt, prompt_ids, score_choices

    items = load_task("cmmlu", CMMLU)[:5]
    chosen = score_choices(base, items, batch_size=3)  # batched, right-padded
    tok = base.tokenizer
    for item, pick in zip(items, chosen, strict=True):
        ctx = prompt_ids(base, choice_prompt(item))
        assert "答案：" in tok.decode(ctx)
        scores = {}
        for letter in item.options:  # one at a time, no padding: the reference computation
            cont = tok(letter, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                logits = base.model(input_ids=torch.tensor([ctx + cont])).logits[0]
            logp = torch.log_softmax(logits.float(), -1)
            scores[letter] = sum(logp[len(ctx) + j - 1, t].item() for j, t in enumerate(cont))
        assert pick == max(scores, key=scores.get)


@pytest.fixture(scope="module")
def two_adapters(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("adapters")
    made = []
    for name, lr in (("alpaca_lr", "1e-3"), ("alpaca_hi", "5e-2")):
        result = runner.invoke(
            app,
            ["train", "--model_name_or_path", str(tiny_model("llama")), *train_data_args(),
             "--max_records", "16", "--per_gpu_train_batch_size", "4",
             "--gradient_accumulation_steps", "1", "--max_steps", "2", "--learning_rate", lr,
             "--output_dir", str(out / name)],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        made.append(out / name)
    return made


@pytest.mark.slow
def test_eval_scores_two_adapters_on_gsm8k_and_cmmlu(two_adapters, tmp_path):
    out = tmp_path / "eval"
    result = runner.invoke(
        app,
        ["eval", "--adapter", str(two_adapters[0]), "--adapter", str(two_adapters[1]),
         "--task", f"gsm8k_test={GSM8K}", "--task", f"cmmlu={CMMLU}", "--max-items", "6",
         "--max_new_tokens", "8", "--out", str(out)],
        env={"COLUMNS": "160"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    results = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in results["runs"]] == ["base", "alpaca_lr", "alpaca_hi"]
    assert results["tasks"] == {"gsm8k_test": {"items": 6, "kind": "generate"},
                                "cmmlu": {"items": 6, "kind": "choice"}}  # fmt: skip
    for run, adapter in zip(results["runs"][1:], two_adapters, strict=True):
        manifest = json.loads((adapter / "training_manifest.json").read_text())
        assert run["adapter"] == str(adapter)
        assert run["data_hash"] == manifest["data"]["record_ids_sha256"]
        assert run["peft_type"] == "lora"
    for run in results["runs"]:
        for task in ("gsm8k_test", "cmmlu"):
            t = run["tasks"][task]
            assert t["items"] == 6 and 0 <= t["correct"] <= 6
            assert t["score"] == t["correct"] / 6
    assert (out / "scores.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for name in ("base", "alpaca_lr", "alpaca_hi", "cmmlu", "gsm8k_test"):
        assert name in result.output


def _contaminated_collection(tmp_path: Path, adapter: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids = gzip.decompress((adapter / "record_ids.txt.gz").read_bytes()).decode().split()
    collection = tmp_path / "collection"
    (collection / "curation").mkdir(parents=True)
    rows = [
        {"id": ids[0], "source": "x", "benchmark": "cmmlu", "item": 3, "match": "..."},
        {"id": ids[1], "source": "x", "benchmark": "cmmlu", "item": 5, "match": "..."},
        {"id": "not-trained-on", "source": "x", "benchmark": "gsm8k_test", "item": 1, "match": ""},
    ]
    pq.write_table(pa.Table.from_pylist(rows), collection / "curation" / "contamination.parquet")
    return collection


@pytest.mark.slow
def test_eval_refuses_a_benchmark_found_in_the_training_data(two_adapters, tmp_path):
    collection = _contaminated_collection(tmp_path, two_adapters[0])
    args = ["eval", "--adapter", str(two_adapters[0]), "--skip-base", "--collection",
            str(collection), "--task", f"cmmlu={CMMLU}", "--task", f"gsm8k_test={GSM8K}",
            "--max-items", "2", "--max_new_tokens", "4", "--out", str(tmp_path / "e")]  # fmt: skip
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "contain 2 item(s) of cmmlu" in result.output and "--allow-contaminated" in result.output
    assert "gsm8k_test" not in result.output.split("contain")[1].split("(")[0]
    assert not (tmp_path / "e" / "results.json").exists()
    result = runner.invoke(app, [*args, "--allow-contaminated"])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "e" / "results.json").read_text())
    assert results["runs"][0]["tasks"]["cmmlu"]["contaminated_items"] == 2
    assert "contaminated_items" not in results["runs"][0]["tasks"]["gsm8k_test"]


class _Judge(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        _Judge.seen.append((self.path, body))
        reply = {"choices": [{"message": {"role": "assistant", "content": "得分: 0.5"}}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_belle_eval_generations_go_to_a_judge_on_loopback(tiny_model, tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "eval"
        result = runner.invoke(
            app,
            ["eval", "--model", str(tiny_model("llama")), "--task",
             f"belle_eval={BENCH / 'belle_eval' / 'eval_set.json'}", "--belle-prompts",
             str(BENCH / "belle_eval" / "eval_prompt.json"), "--judge-url",
             f"http://127.0.0.1:{server.server_port}/v1", "--judge-model", "judge-1",
             "--max_new_tokens", "4", "--out", str(out)],
        )  # fmt: skip
    finally:
        server.shutdown()
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert len(_Judge.seen) == 4
    path, body = _Judge.seen[0]
    assert path == "/v1/chat/completions" and body["model"] == "judge-1"
    message = body["messages"][0]["content"]
    assert message.startswith("你是一个计算机科学老师")  # BELLE's prompt for the `code` class
    assert "问题：请你写出一个可以生成五个不同随机数的 Python 程序。" in message
    rows = [json.loads(line) for line in (out / "base.belle_eval.jsonl").read_text().splitlines()]
    assert [r["class"] for r in rows] == ["code", "open qa", "open qa", "brainstorming"]
    assert all(r["score"] == 0.5 and r["judge_message"] for r in rows)
    task = json.loads((out / "results.json").read_text())["runs"][0]["tasks"]["belle_eval"]
    assert (task["score"], task["judged"], task["items"]) == (0.5, 4, 4)


def test_aqua_mmcu_and_gaokao_readers_on_real_items():
    from alpacacot.training.evaluate import choice_prompt, generation_prompt

    aqua = load_task("aqua_test", BENCH / "aqua_test")
    assert [i.answer for i in aqua] == ["A", "E", "A", "B", "B"]
    assert aqua[2].options == {"A": "36", "B": "15", "C": "17", "D": "5", "E": "7"}
    assert generation_prompt(aqua[2]).endswith("E) 7\nLet's think step by step.")
    assert is_correct(aqua[2], "36 has both factors, so the answer is (A).")
    [mmcu] = load_task("mmcu", BENCH / "mmcu")
    assert mmcu.question == "＿不是社会化的载体。" and mmcu.answer == "D"
    assert mmcu.options == {"A": "家庭", "B": "大学", "C": "杂志", "D": "意识"}
    assert choice_prompt(mmcu) == "＿不是社会化的载体。\nA. 家庭\nB. 大学\nC. 杂志\nD. 意识\n答案："
    gaokao = load_task("gaokao_bench", BENCH / "gaokao_bench")
    assert [i.answer for i in gaokao] == ["D", "A", "A", "C", "B", "B"]
    assert set(gaokao[1].options) == set("ABCD") and gaokao[1].options["C"] == "1"
    assert gaokao[1].question.startswith("2. (5 分) 已知复数") and "\nA." not in gaokao[1].question


def test_a_task_named_alone_reads_the_catalogs_benchmark_files(tmp_path):
    from alpacacot.catalog import load_catalog
    from alpacacot.training.benchmarks import parse_task
    from alpacacot.training.config import TrainingError

    # KEY=sample: the excerpt the catalog's `benchmarks:` bundles (40 GSM8K test problems)
    key, files = parse_task("gsm8k_test=sample")
    excerpt = load_catalog().benchmarks["gsm8k_test"].sample_files()
    assert key == "gsm8k_test" and len(files) == len(excerpt) == 1
    items = load_task(key, files)
    assert len(items) == 40 and all(i.answer.lstrip("-").isdigit() for i in items)
    key, files = parse_task("cmmlu=sample")
    assert {i.answer for i in load_task(key, files)} <= set("ABCD")
    # KEY alone: the pinned full files, from the cache (none here, and no network)
    with pytest.raises(TrainingError, match="gsm8k_test.*not in the cache"):
        parse_task("gsm8k_test", offline=True, cache_dir=tmp_path)
    with pytest.raises(TrainingError, match="no benchmark 'ceval'"):
        parse_task("ceval")
