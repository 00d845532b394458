"""The Alpaca-CoT seed's training commands, run as its README writes them.

Source: PhoebusSi/Alpaca-CoT, README.md @ 00663ed1b4eacd5af3809acbb04c8c723aaba2e4, section
"Instruction Finetuning" (LLaMA, single GPU and multiple GPUs). Only the model path
(decapoda-research/llama-7b-hf -> a tiny random llama), the script (`uniform_finetune.py` ->
`alpacacot-data train` / `-m alpacacot.training`), the launcher's address, port and process count
(xxx/yyy/4 -> 127.0.0.1/a free port/2 CPU processes), and the collection (`--collection`, plus
`--output_dir`) change.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alpacacot.catalog import load_catalog
from alpacacot.cli import app
from alpacacot.training.seed_args import expand_seed_args

SEED_KEYS = load_catalog().resolve("alpaca-belle-cot")

runner = CliRunner()

SEED_SINGLE = """python3 uniform_finetune.py --model_type llama --model_name_or_path decapoda-research/llama-7b-hf \\
    --data alpaca-belle-cot --lora_target_modules q_proj v_proj \\
    --per_gpu_train_batch_size 4 --learning_rate 3e-4 --epochs 1"""  # noqa: E501
SEED_LAUNCH = """python3 -m torch.distributed.launch --nproc_per_node 4  \\
    --nnodes=1 --node_rank=0 --master_addr=xxx --master_port=yyy uniform_finetune.py \\
    --model_type llama --model_name_or_path decapoda-research/llama-7b-hf \\
    --data alpaca-belle-cot --lora_target_modules q_proj v_proj \\
    --per_gpu_train_batch_size 4 --learning_rate 3e-4 --epochs 1"""


def seed_argv(command: str, model: Path) -> list[str]:
    """The seed command's words, with the model path swapped."""
    words = shlex.split(command.replace("\\\n", " "))  # the shell joins continued lines
    return [str(model) if w == "decapoda-research/llama-7b-hf" else w for w in words]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_seed_argument_forms_are_rewritten_for_click():
    assert expand_seed_args(["--data", "alpaca", "belle", "cot", "--lora_r", "8"]) == [
        "--data", "alpaca", "--data", "belle", "--data", "cot", "--lora_r", "8",
    ]  # fmt: skip
    assert expand_seed_args(["--lora_target_modules", "q_proj", "v_proj"]) == [
        "--lora_target_modules", "q_proj", "--lora_target_modules", "v_proj",
    ]  # fmt: skip
    assert expand_seed_args(["--lora_target_modules=q_proj,v_proj", "k_proj"]) == [
        "--lora_target_modules=q_proj,v_proj", "--lora_target_modules", "k_proj",
    ]  # fmt: skip
    assert expand_seed_args(["--resume_from_checkpoint"]) == ["--resume_from_checkpoint", "latest"]
    assert expand_seed_args(["--resume_from_checkpoint", "--epochs", "1"])[:2] == [
        "--resume_from_checkpoint", "latest",
    ]  # fmt: skip
    assert expand_seed_args(["--resume_from_checkpoint", "out/checkpoint-2"]) == [
        "--resume_from_checkpoint", "out/checkpoint-2",
    ]  # fmt: skip


def test_space_and_comma_lists_and_local_rank_reach_the_config(monkeypatch):
    seen = {}

    def fake_run(cfg):
        seen["cfg"] = cfg
        seen["local_rank"] = os.environ.get("LOCAL_RANK")

    monkeypatch.setattr("alpacacot.training.train.run_training", fake_run)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")  # as under a launcher
    result = runner.invoke(
        app,
        ["train", "--model_name_or_path", "m", "--data", "alpaca", "belle", "x.jsonl",
         "--lora_target_modules", "q_proj,k_proj", "v_proj", "--local-rank=1"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert seen["cfg"].data == ["alpaca", "belle", "x.jsonl"]
    assert seen["cfg"].lora_target_modules == ["q_proj", "k_proj", "v_proj"]
    assert seen["local_rank"] == "1"
    os.environ.pop("LOCAL_RANK")
    monkeypatch.delenv("WORLD_SIZE")
    result = runner.invoke(
        app, ["train", "--model_name_or_path", "m", "--data", "a", "--local_rank", "0"]
    )
    assert result.exit_code == 0, result.output
    assert seen["local_rank"] is None  # no launcher: one process, the flag changes nothing


def test_seed_data_names_resolve_or_say_what_to_do(seed_collection, tmp_path):
    from alpacacot.catalog import CatalogError, load_catalog
    from alpacacot.training.data import SEED_DATA_NAMES

    catalog = load_catalog()
    missing = []
    for name in SEED_DATA_NAMES:
        try:
            assert catalog.resolve(name), name
        except CatalogError:
            missing.append(name)
    for name in missing:  # keys that the catalog does not have (yet): a clear error, no traceback
        result = runner.invoke(
            app,
            ["train", "--model_name_or_path", str(tmp_path), "--data", name,
             "--collection", str(seed_collection), "--output_dir", str(tmp_path / "o")],
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        assert f"'{name}' is a data name of Alpaca-CoT's trainer" in result.output
        assert "add the dataset to the catalog" in result.output


@pytest.mark.slow
def test_seed_single_process_command_as_written(tiny_model, seed_collection, tmp_path):
    argv = seed_argv(SEED_SINGLE, tiny_model("llama"))
    assert argv[:2] == ["python3", "uniform_finetune.py"]
    out = tmp_path / "adapter"
    result = runner.invoke(
        app,
        ["train", *argv[2:], "--collection", str(seed_collection), "--output_dir", str(out)],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "training_manifest.json").read_text())
    assert manifest["lora_target_modules"] == ["q_proj", "v_proj"]
    # `belle` is a mix of its five upstream sets
    assert manifest["data"]["catalog_keys"] == SEED_KEYS
    assert manifest["arguments"]["epochs"] == 1 and manifest["arguments"]["learning_rate"] == 3e-4
    # one epoch of every example: ceil(examples / (4 per batch * 8 accumulated)) updates
    examples = manifest["data"]["train_examples"]
    assert manifest["training"]["global_step"] == -(-examples // 32)
    assert (out / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_seed_launcher_command_as_written_with_two_cpu_processes(
    tiny_model, seed_collection, tmp_path
):
    argv = seed_argv(SEED_LAUNCH, tiny_model("llama"))
    port = str(free_port())
    argv = [
        {"--master_addr=xxx": "--master_addr=127.0.0.1",
         "--master_port=yyy": f"--master_port={port}"}.get(w, w)
        for w in argv
    ]  # fmt: skip
    argv[argv.index("--nproc_per_node") + 1] = "2"
    script = argv.index("uniform_finetune.py")
    argv[script : script + 1] = ["-m", "alpacacot.training"]
    argv[0] = sys.executable
    out = tmp_path / "ddp"
    argv += ["--collection", str(seed_collection), "--output_dir", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("LOCAL_RANK", None)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "training_manifest.json").read_text())
    assert manifest["training"]["world_size"] == 2
    assert manifest["lora_target_modules"] == ["q_proj", "v_proj"]
    # `belle` is a mix of its five upstream sets
    assert manifest["data"]["catalog_keys"] == SEED_KEYS
    # the two processes share each update: half the single-process updates (batch 4 x 8 x 2)
    assert manifest["training"]["global_step"] == -(-manifest["data"]["train_examples"] // 64), (
        proc.stderr[-4000:]
    )
    assert proc.stderr.count("adapter, tokenizer and training_manifest.json written") == 1
    # the final checkpoint is complete: each process recorded its own files (its RNG state)
    from alpacacot.training.checkpoints import incomplete_reason

    last = out / f"checkpoint-{manifest['training']['global_step']}"
    assert (last / "complete-rank1.json").is_file() and (last / "rng_state_1.pth").is_file()
    assert incomplete_reason(last) is None
    (last / "rng_state_1.pth").write_bytes(b"")
    assert incomplete_reason(last).startswith("rng_state_1.pth has 0 bytes")
