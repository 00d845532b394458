"""Every `--peft_type` of the seed (and DoRA) trains, saves, reloads and generates on the tiny
llama, bloom and chatglm models; the training manifest records the method."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from training_helpers import train_data_args
from typer.testing import CliRunner

from alpacacot.cli import app

runner = CliRunner()

METHODS = {
    "lora": [],
    "dora": [],
    "adalora": ["--adalora_init_r", "6", "--lora_r", "2", "--adalora_tinit", "1",
                "--adalora_tfinal", "1", "--adalora_delta_t", "1"],
    "prompt": ["--num_virtual_tokens", "4"],
    "p_tuning": ["--num_virtual_tokens", "4", "--prompt_encoder_hidden_size", "32"],
    "prefix": ["--num_virtual_tokens", "4"],
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["llama", "bloom", "chatglm"])
@pytest.mark.parametrize("peft_type", list(METHODS))
def test_each_peft_type_trains_saves_reloads_and_generates(
    tiny_model, tmp_path, model_type, peft_type
):
    import torch
    from peft import get_peft_model_state_dict
    from safetensors.torch import load_file

    from alpacacot.training.infer import generate, load_for_inference

    out = tmp_path / "adapter"
    result = runner.invoke(
        app,
        ["train", "--model_type", model_type, "--model_name_or_path", str(tiny_model(model_type)),
         *train_data_args(), "--max_records", "24", "--per_gpu_train_batch_size", "4",
         "--gradient_accumulation_steps", "1", "--cutoff_len", "192", "--max_steps", "3",
         "--learning_rate", "1e-2", "--save_steps", "100", "--output_dir", str(out),
         "--peft_type", peft_type, *METHODS[peft_type]],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    manifest = json.loads((out / "training_manifest.json").read_text())
    assert manifest["peft"]["type"] == peft_type
    config = json.loads((out / "adapter_config.json").read_text())
    expected = {"lora": "LORA", "dora": "LORA", "adalora": "ADALORA", "prompt": "PROMPT_TUNING",
                "p_tuning": "P_TUNING", "prefix": "PREFIX_TUNING"}[peft_type]  # fmt: skip
    assert config["peft_type"] == expected
    assert config.get("use_dora", False) == (peft_type == "dora")
    if peft_type in ("prompt", "p_tuning", "prefix"):
        assert config["num_virtual_tokens"] == 4
    assert manifest["peft"]["trainable_parameters"] > 0
    weights = load_file(out / "adapter_model.safetensors")
    assert weights and all(torch.isfinite(w).all() for w in weights.values())

    loaded = load_for_inference(None, str(out))
    [answer] = generate(loaded, [{"instruction": "Name a color."}], max_new_tokens=4)
    assert isinstance(answer, str)
    # the reloaded adapter is the trained one, every tensor of it
    reloaded = get_peft_model_state_dict(loaded.model)
    assert reloaded.keys() == weights.keys()
    assert all(torch.equal(reloaded[k].cpu(), weights[k]) for k in weights)


def test_quantization_bit_and_fp16_need_cuda(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    for flags, message in (
        (["--quantization_bit", "4"], "--quantization_bit 4 needs a CUDA GPU"),
        (["--quantization_bit", "8"], "--quantization_bit 8 needs a CUDA GPU"),
        (["--compute_dtype", "fp16"], "--compute_dtype fp16 needs a CUDA GPU"),
        (["--quantization_bit", "3"], "--quantization_bit must be 4 or 8"),
        (["--peft_type", "ia3"], "--peft_type ia3: unknown"),
    ):
        result = runner.invoke(
            app,
            ["train", "--model_name_or_path", str(tmp_path / "absent"), "--data", "x.json",
             *flags, "--output_dir", str(tmp_path / "o")],
        )  # fmt: skip
        assert result.exit_code == 2, result.output
        assert message in result.output
        assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_compute_dtype_bf16_trains_on_cpu(tiny_model, tmp_path):
    out = tmp_path / "bf16"
    result = runner.invoke(
        app,
        ["train", "--model_name_or_path", str(tiny_model("llama")), *train_data_args(),
         "--max_records", "16", "--per_gpu_train_batch_size", "4", "--gradient_accumulation_steps",
         "1", "--cutoff_len", "192", "--max_steps", "2", "--compute_dtype", "bf16",
         "--output_dir", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    manifest = json.loads((out / "training_manifest.json").read_text())
    assert manifest["arguments"]["compute_dtype"] == "bf16"
    assert Path(out / "adapter_model.safetensors").is_file()
