"""The trainer end to end on tiny random models (no network, CPU)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from training_helpers import TINY_CONFIGS, train_data_args
from typer.testing import CliRunner

from alpacacot.cli import app

runner = CliRunner()

FAST = ["--per_gpu_train_batch_size", "4", "--gradient_accumulation_steps", "1"]


def train_cli(*args: str) -> dict:
    result = runner.invoke(app, ["train", *args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    out = Path(args[args.index("--output_dir") + 1])
    return json.loads((out / "training_manifest.json").read_text())


# ------------------------------------------------------------------------------- fast unit tests
def test_cli_import_is_light():
    code = (
        "import sys, alpacacot.cli, alpacacot.training.commands, alpacacot.training.config;"
        "bad=[m for m in ('torch','transformers','peft') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_config_file_then_cli_overrides(tmp_path):
    from alpacacot.training.config import TrainingError, build_config

    cfg_file = tmp_path / "train.yaml"
    cfg_file.write_text("model_type: bloom\nlora_r: 4\ndata: a-b\ntrain_on_inputs: true\n")
    cfg = build_config({"lora_r": 16, "train_on_inputs": None, "data": []}, cfg_file)
    assert (cfg.model_type, cfg.lora_r, cfg.data, cfg.train_on_inputs) == (
        "bloom",
        16,
        ["a-b"],
        True,
    )
    assert cfg.lora_alpha == 16 and cfg.cutoff_len == 256
    cfg_file.write_text("lora_rank: 4\n")
    with pytest.raises(TrainingError, match="unknown option.*lora_rank"):
        build_config({}, cfg_file)


def test_train_help_lists_seed_flags():
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    for flag in (
        "--model_type", "--model_name_or_path", "--data", "--collection", "--lora_target_modules",
        "--lora_r", "--lora_alpha", "--lora_dropout", "--per_gpu_train_batch_size",
        "--gradient_accumulation_steps", "--learning_rate", "--epochs", "--max_steps",
        "--cutoff_len", "--val_set_size", "--train_on_inputs", "--load_in_8bit", "--load_in_4bit",
        "--output_dir", "--resume_from_checkpoint", "--seed", "--report_to", "--config",
    ):  # fmt: skip
        assert flag in result.output, flag


@pytest.fixture(scope="module")
def tokenizer(tiny_model):
    from transformers import AutoTokenizer

    from alpacacot.training.models import MODELS, load_tokenizer

    del AutoTokenizer
    return load_tokenizer(str(tiny_model("llama")), MODELS["llama"])


def test_prompt_masking_matches_alpaca_template(tokenizer):
    from alpacacot.training.data import IGNORE_INDEX, encode_records

    record = {"id": "x", "instruction": "Name a color.", "input": "", "output": "Blue."}
    [example], _ = encode_records([record], tokenizer, "alpaca", cutoff_len=256)
    prompt = (
        "Below is an instruction that describes a task. Write a response that appropriately "
        "completes the request.\n\n### Instruction:\nName a color.\n\n### Response:\n"
    )
    prompt_ids = [tokenizer.bos_token_id] + tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer("Blue.</s>", add_special_tokens=False)["input_ids"]
    assert example["input_ids"] == prompt_ids + answer_ids
    assert example["labels"] == [IGNORE_INDEX] * len(prompt_ids) + answer_ids
    assert example["labels"][-1] == tokenizer.eos_token_id

    [full], _ = encode_records([record], tokenizer, "alpaca", cutoff_len=256, train_on_inputs=True)
    assert full["labels"] == full["input_ids"]


def test_history_turns_are_rendered_and_every_answer_is_learned(tokenizer):
    from alpacacot.training.data import IGNORE_INDEX, encode_records

    record = {
        "id": "y",
        "instruction": "And in French?",
        "input": "",
        "output": "Bleu.",
        "history": [{"user": "Name a color.", "assistant": "Blue."}],
    }
    [example], _ = encode_records([record], tokenizer, "alpaca", cutoff_len=256)
    learned = tokenizer.decode([t for t in example["labels"] if t != IGNORE_INDEX])
    assert learned == "Blue.</s>Bleu.</s>"
    text = tokenizer.decode(example["input_ids"])
    assert text.index("### Instruction:\nName a color.") < text.index(
        "### Instruction:\nAnd in French?"
    )


def test_truncation_and_prompt_too_long(tokenizer):
    from alpacacot.training.data import encode_records

    long = {"id": "z", "instruction": "word " * 300, "input": "", "output": "ok"}
    short = {"id": "w", "instruction": "Hi", "input": "", "output": "answer " * 300}
    examples, stats = encode_records([long, short], tokenizer, "alpaca", cutoff_len=128)
    assert stats.dropped == 1 and stats.truncated == 1
    assert len(examples) == 1 and len(examples[0]["input_ids"]) == 128


def test_local_file_errors_name_row_and_field(tmp_path):
    from alpacacot.training.config import TrainingError
    from alpacacot.training.data import read_record_file

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "a", "input": "", "output": "b"}\n{"instruction": "a"}\n')
    with pytest.raises(TrainingError, match=r"bad.jsonl, row 1, field 'output'"):
        read_record_file(bad)


def test_packed_examples_do_not_see_each_other(tiny_model, tokenizer):
    import torch

    from alpacacot.training.config import build_config
    from alpacacot.training.data import PaddingCollator, encode_records, pack_examples
    from alpacacot.training.models import MODELS, load_model_for_training

    cfg = build_config({"model_name_or_path": str(tiny_model("llama")), "data": ["x.json"]})
    model, _, _ = load_model_for_training(cfg, MODELS["llama"])  # exactly as training loads it
    model.eval()
    records = [
        {"id": "a", "instruction": "Name a color.", "input": "", "output": "Blue."},
        {"id": "b", "instruction": "Add 2 and 3.", "input": "", "output": "5"},
    ]
    examples, _ = encode_records(records, tokenizer, "alpaca", cutoff_len=256)
    [row] = pack_examples(examples, cutoff_len=256, seed=0)
    batch = PaddingCollator(tokenizer.pad_token_id)([row])
    assert "attention_mask" not in batch
    with torch.no_grad():
        packed = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
        start = 0
        for i in sorted(range(2), key=lambda i: -len(examples[i]["input_ids"])):
            ids = torch.tensor([examples[i]["input_ids"]])
            alone = model(input_ids=ids).logits[0]
            torch.testing.assert_close(packed[start : start + ids.shape[1]], alone)
            start += ids.shape[1]


@pytest.mark.parametrize("model_type", list(TINY_CONFIGS))
def test_targets_only_head_gives_the_models_own_loss_and_gradients(
    tiny_model, tokenizer, model_type
):
    # The trainer applies the LM head to labelled positions only; the loss it optimizes and the
    # gradients of the LoRA weights must be the model's own, with padding and masked prompts.
    import torch

    from alpacacot.training.config import build_config
    from alpacacot.training.data import PaddingCollator, encode_records
    from alpacacot.training.models import MODELS, load_model_for_training
    from alpacacot.training.train import TargetsOnlyLoss, targets_only_loss

    path = str(tiny_model(model_type))
    cfg = build_config({"model_type": model_type, "model_name_or_path": path, "data": ["x.json"]})
    model, tok, _ = load_model_for_training(cfg, MODELS[model_type])
    model.eval()  # no dropout: both passes must see the same network
    torch.manual_seed(0)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # zero at init; give the adapter a say in the outputs
            torch.nn.init.normal_(param, std=0.1)
    records = [
        {"id": "a", "instruction": "Name a color.", "input": "", "output": "Blue, like the sky."},
        {"id": "b", "instruction": "Add 2 and 3.", "input": "Show the sum.", "output": "5"},
    ]
    examples, _ = encode_records(records, tok, MODELS[model_type].template, cutoff_len=256)
    batch = PaddingCollator(tok.pad_token_id)(examples)
    loss_fn = targets_only_loss(model, MODELS[model_type])
    assert isinstance(loss_fn, TargetsOnlyLoss)

    def loss_and_grads(fn):
        model.zero_grad()
        loss = fn()
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        return loss.detach(), grads

    n_items = (batch["labels"][:, 1:] != -100).sum()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    for items in (None, n_items):
        extra = {} if items is None else {"num_items_in_batch": items}
        own, own_grads = loss_and_grads(lambda extra=extra: model(**batch, **extra).loss)
        ours, our_grads = loss_and_grads(
            lambda items=items: loss_fn(
                model(**inputs, **TargetsOnlyLoss.model_kwargs()), batch["labels"], items
            )
        )
        torch.testing.assert_close(ours, own)
        for a, b in zip(our_grads, own_grads, strict=True):
            torch.testing.assert_close(a, b)


# ------------------------------------------------------------------------- registry and loading
@pytest.mark.parametrize("model_type", list(TINY_CONFIGS))
def test_each_registered_type_trains_with_its_default_targets(tiny_model, tmp_path, model_type):
    from alpacacot.training.models import MODELS

    out = tmp_path / "out"
    manifest = train_cli(
        "--model_type", model_type, "--model_name_or_path", str(tiny_model(model_type)),
        *train_data_args(), *FAST, "--max_steps", "2", "--output_dir", str(out),
        "--save_steps", "100",
    )  # fmt: skip
    expected = [list(alt) for alt in MODELS[model_type].lora_targets]
    assert manifest["lora_target_modules"] in expected
    assert manifest["prompt_template"] == MODELS[model_type].template
    assert (out / "adapter_model.safetensors").is_file()


def test_unknown_type_falls_back_to_all_linear(tiny_model, tmp_path):
    manifest = train_cli(
        "--model_type", "somenewlm", "--model_name_or_path", str(tiny_model("llama")),
        *train_data_args(), *FAST, "--max_steps", "1", "--output_dir", str(tmp_path / "o"),
    )  # fmt: skip
    assert manifest["lora_target_modules"] == "all-linear"
    assert manifest["model"]["registered"] is False


def test_missing_target_module_lists_real_names(tiny_model, tmp_path):
    result = runner.invoke(
        app,
        ["train", "--model_type", "bloom", "--model_name_or_path", str(tiny_model("bloom")),
         *train_data_args(), "--lora_target_modules", "q_proj,v_proj",
         "--output_dir", str(tmp_path / "o")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "no module named q_proj, v_proj" in result.output
    for name in ("query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"):
        assert name in result.output


@pytest.mark.parametrize("flag", ["--load_in_8bit", "--load_in_4bit"])
def test_quantized_flags_fail_fast_without_cuda(tmp_path, flag):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = runner.invoke(
        app,
        ["train", "--model_name_or_path", str(tmp_path / "not-even-there"), "--data", "x.json",
         flag, "--output_dir", str(tmp_path / "o")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert f"{flag} needs a CUDA GPU" in result.output
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------- training and using results
@pytest.fixture(scope="module")
def trained(tiny_model, tmp_path_factory):
    """A llama adapter trained for 40 updates on the fixture records (logged every step)."""
    out = tmp_path_factory.mktemp("trained") / "adapter"
    manifest = train_cli(
        "--model_type", "llama", "--model_name_or_path", str(tiny_model("llama")),
        *train_data_args(), *FAST, "--max_steps", "40", "--learning_rate", "5e-2",
        "--lora_r", "16", "--lora_alpha", "32",
        "--logging_steps", "1", "--save_steps", "1000", "--val_set_size", "10",
        "--output_dir", str(out),
    )  # fmt: skip
    return out, manifest


@pytest.mark.slow
def test_loss_falls_and_manifest_is_complete(trained):
    out, manifest = trained
    losses = [loss for _, loss in manifest["training"]["loss_history"]]
    assert len(losses) == 40
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.9 * first, (first, last)

    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json"):
        assert (out / name).is_file(), name
    assert manifest["arguments"]["lora_r"] == 16
    assert manifest["data"]["train_examples"] + manifest["data"]["val_examples"] == 190
    assert len(manifest["data"]["record_ids_sha256"]) == 64
    assert manifest["data"]["inputs"][0]["kind"] in ("file", "catalog")
    assert manifest["batching"]["mode"] == "group_by_length"
    assert manifest["batching"]["non_padding_share"] > 0.9
    assert manifest["versions"]["transformers"] and manifest["versions"]["peft"]


@pytest.mark.slow
def test_adapter_reloads_generates_predicts_and_merges(trained, tiny_model, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from alpacacot.training.infer import generate, load_for_inference

    out, _ = trained
    result = runner.invoke(
        app, ["generate", "--adapter", str(out), "--max_new_tokens", "8", "Name a color."]
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip()

    records = tmp_path / "in.jsonl"
    records.write_text(
        "\n".join(json.dumps({"instruction": f"Count to {i}.", "input": ""}) for i in range(3))
    )
    preds = tmp_path / "preds.jsonl"
    result = runner.invoke(
        app,
        ["predict", "--adapter", str(out), "--input", str(records), "--output", str(preds),
         "--batch_size", "2", "--max_new_tokens", "6"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in preds.read_text().splitlines()]
    assert [r["instruction"] for r in rows] == ["Count to 0.", "Count to 1.", "Count to 2."]
    assert all(isinstance(r["prediction"], str) for r in rows)

    result = runner.invoke(app, ["chat", "--adapter", str(out), "--max_new_tokens", "4"],
                           input="Hello\nAnd again\n\n")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.output.count("model>") == 2

    merged = tmp_path / "merged"
    result = runner.invoke(app, ["merge", "--adapter", str(out), "--out", str(merged)])
    assert result.exit_code == 0, result.output
    assert (merged / "tokenizer.json").is_file()
    full = AutoModelForCausalLM.from_pretrained(merged).eval()
    with_adapter = load_for_inference(None, str(out))
    ids = torch.tensor([[1, 50, 60, 70, 80]])
    with torch.no_grad():
        torch.testing.assert_close(
            full(ids).logits, with_adapter.model(ids).logits, atol=1e-4, rtol=1e-4
        )
    base = load_for_inference(str(tiny_model("llama")), None)
    assert generate(base, [{"instruction": "x"}], max_new_tokens=3) is not None


@pytest.mark.slow
def test_resume_continues_at_the_checkpoint_step(tiny_model, tmp_path):
    out = tmp_path / "run"
    common = [
        "--model_type", "llama", "--model_name_or_path", str(tiny_model("llama")),
        *train_data_args(), *FAST, "--max_steps", "4", "--save_steps", "2",
        "--logging_steps", "1", "--output_dir", str(out),
    ]  # fmt: skip
    first = train_cli(*common)
    assert first["training"]["first_step_this_run"] == 1
    assert (out / "checkpoint-2").is_dir() and (out / "checkpoint-4").is_dir()
    resumed = train_cli(*common, "--resume_from_checkpoint", str(out / "checkpoint-2"))
    assert resumed["training"]["first_step_this_run"] == 3
    assert resumed["training"]["global_step"] == 4
    assert [s for s, _ in resumed["training"]["loss_history"]][-2:] == [3, 4]
    latest = train_cli(*common[:-2], "--max_steps", "5", "--output_dir", str(out),
                       "--resume_from_checkpoint", "latest")  # fmt: skip
    assert latest["training"]["first_step_this_run"] == 5


@pytest.mark.slow
def test_torchrun_two_processes_write_one_adapter(tiny_model, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", "29533", "-m", "alpacacot.training",
        "--model_type", "llama", "--model_name_or_path", str(tiny_model("llama")),
        *train_data_args(), *FAST, "--max_steps", "3", "--save_steps", "100",
        "--output_dir", str(out),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "training_manifest.json").read_text())
    assert manifest["training"]["world_size"] == 2
    assert manifest["training"]["global_step"] == 3
    assert sorted(p.name for p in out.glob("adapter_model*")) == ["adapter_model.safetensors"]
    assert proc.stderr.count("adapter, tokenizer and training_manifest.json written") == 1


@pytest.fixture(scope="module")
def sample_collection(tmp_path_factory):
    """`alpacacot-data build alpaca cot --sample`: the collection built from bundled excerpts."""
    out = tmp_path_factory.mktemp("collection")
    result = runner.invoke(app, ["build", "alpaca", "cot", "--sample", "--out", str(out)])
    if result.exit_code != 0:
        pytest.skip(f"build --sample does not work here: {result.output[-500:]}")
    return out


def test_trains_on_catalog_keys_of_a_built_collection(tiny_model, tmp_path, sample_collection):
    import pyarrow.parquet as pq

    from alpacacot.training.data import ids_sha256

    manifest = train_cli(
        "--model_type", "llama", "--model_name_or_path", str(tiny_model("llama")),
        "--data", "alpaca-cot", "--collection", str(sample_collection), *FAST,
        "--max_steps", "2", "--cutoff_len", "512", "--output_dir", str(tmp_path / "o"),
    )  # fmt: skip
    data = manifest["data"]
    assert data["dropped_prompt_too_long"] == 0
    assert data["catalog_keys"] == ["alpaca", "cot"]
    built = json.loads((sample_collection / "manifest.json").read_text())
    assert data["collection"]["built_at"] == built["built_at"]
    assert data["collection"]["code_version"] == built["code_version"]
    ids = [
        i for key in ("alpaca", "cot")
        for f in sorted((sample_collection / key).glob("*.parquet"))
        for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()
    ]  # fmt: skip
    assert data["record_ids_used"] == len(set(ids)) == data["train_examples"]
    assert data["record_ids_sha256"] == ids_sha256(set(ids))
