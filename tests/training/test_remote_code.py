"""The seed's remote-code model types (chatglm2, chatglm3, moss, baichuan, internlm): a checkpoint
that ships its own modeling file, loaded through `auto_map` and trust_remote_code, no download.

The model directory is built here from `fixtures/remote_code/` (a config and modeling file written
for these tests, with ChatGLM's module names) plus random weights and the test tokenizer.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from training_helpers import FIXTURES, train_data_args
from typer.testing import CliRunner

from alpacacot.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def remote_code_model(tmp_path_factory, tokenizer_dir) -> Path:
    """config.json with `auto_map` pointing at configuration_tinyglm.py / modeling_tinyglm.py."""
    import torch
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("tinyglm")
    for name in ("configuration_tinyglm.py", "modeling_tinyglm.py"):
        shutil.copy(FIXTURES / "remote_code" / name, out / name)
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = {
        "model_type": "tinyglm",
        "architectures": ["TinyGlmForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_tinyglm.TinyGlmConfig",
            "AutoModelForCausalLM": "modeling_tinyglm.TinyGlmForCausalLM",
        },
        "vocab_size": len(tokenizer) + 12,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "bos_token_id": 1,
        "eos_token_id": 2,
    }
    (out / "config.json").write_text(json.dumps(config))
    from transformers import AutoConfig, AutoModelForCausalLM

    cfg = AutoConfig.from_pretrained(out, trust_remote_code=True)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg, trust_remote_code=True).save_pretrained(out)
    # save_pretrained rewrites config.json; keep the auto_map that makes it a remote-code model
    saved = json.loads((out / "config.json").read_text())
    assert saved["auto_map"]["AutoModelForCausalLM"].endswith("TinyGlmForCausalLM")
    tokenizer.save_pretrained(out)
    return out


def test_registry_has_the_seed_remote_code_types():
    from alpacacot.training.models import MODELS

    for name in ("chatglm2", "chatglm3", "moss", "baichuan", "internlm"):
        assert MODELS[name].trust_remote_code, name


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["chatglm2", "chatglm3"])
def test_remote_code_model_trains_and_generates(remote_code_model, tmp_path, model_type):
    from alpacacot.training.infer import generate, load_for_inference

    out = tmp_path / "adapter"
    result = runner.invoke(
        app,
        ["train", "--model_type", model_type, "--model_name_or_path", str(remote_code_model),
         *train_data_args(), "--max_records", "16", "--per_gpu_train_batch_size", "4",
         "--gradient_accumulation_steps", "1", "--cutoff_len", "192", "--max_steps", "2",
         "--output_dir", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output + repr(result.exception)
    manifest = json.loads((out / "training_manifest.json").read_text())
    assert manifest["model"]["class"] == "TinyGlmForCausalLM"  # the checkpoint's own code ran
    assert manifest["model"]["config_model_type"] == "tinyglm"
    assert manifest["lora_target_modules"] == ["query_key_value"]
    loaded = load_for_inference(None, str(out))
    assert type(loaded.model.get_base_model()).__name__ == "TinyGlmForCausalLM"
    [answer] = generate(loaded, [{"instruction": "Name a color."}], max_new_tokens=4)
    assert isinstance(answer, str)


def test_remote_code_needs_consent_for_an_unregistered_type(remote_code_model, tmp_path):
    result = runner.invoke(
        app,
        ["train", "--model_type", "tinyglm", "--model_name_or_path", str(remote_code_model),
         *train_data_args(), "--max_records", "8", "--max_steps", "1",
         "--output_dir", str(tmp_path / "o")],
    )  # fmt: skip
    assert result.exit_code == 2, result.output + repr(result.exception)
    assert "ships its own model code: add --trust_remote_code" in result.output
