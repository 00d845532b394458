"""Resuming training: half-written checkpoints are passed over, a finished run is left alone,
and a resumed run is exactly the uninterrupted one (issue 12, item 2)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from .resume_support import build_tiny_llama, copy_run, manifest, run_train, train_args  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def base_run(tiny, tmp_path_factory) -> Path:
    """4 updates with a checkpoint every 2: checkpoint-2 and checkpoint-4, both complete."""
    out = tmp_path_factory.mktemp("base") / "run"
    code, output = run_train(train_args(tiny, out, "--max_steps", "4", "--save_steps", "2"))
    assert code == 0, output
    return out


def _resume_latest(tiny: Path, out: Path, caplog, *extra: str) -> tuple[int, str]:
    with caplog.at_level(logging.INFO, logger="alpacacot"):
        # the seed's form: the flag alone means the latest checkpoint
        return run_train(train_args(tiny, out, *extra, "--resume_from_checkpoint"))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda c: _truncate(c / "adapter_model.safetensors"), "adapter_model.safetensors has"),
        (lambda c: _truncate(c / "optimizer.pt"), "optimizer.pt has"),
        (lambda c: (c / "trainer_state.json").unlink(), "trainer_state.json is missing"),
        (lambda c: (c / "complete-rank0.json").unlink(), "complete-rank0.json is missing"),
    ],
    ids=["adapter-truncated", "optimizer-truncated", "state-missing", "never-finished"],
)
def test_resume_latest_passes_over_a_half_written_checkpoint(
    tiny, base_run, tmp_path, caplog, damage, reason
):
    out = copy_run(base_run, tmp_path / "run")
    damage(out / "checkpoint-4")
    code, output = _resume_latest(tiny, out, caplog, "--max_steps", "5", "--save_steps", "2")
    assert code == 0, output
    assert f"checkpoint-4: incomplete checkpoint, {reason}" in caplog.text
    m = manifest(out)
    assert m["training"]["resumed_from"] == str(out / "checkpoint-2")  # the path, not "True"
    assert m["training"]["first_step_this_run"] == 3
    assert m["training"]["global_step"] == 5


def test_resume_after_a_kill_while_saving_the_optimizer(tiny, tmp_path, caplog):
    """SIGKILL in the middle of writing checkpoint-4 (adapter written, optimizer not yet)."""
    out = tmp_path / "run"
    script = textwrap.dedent(
        """
        import os, signal, sys
        import transformers
        save = transformers.Trainer._save_optimizer_and_scheduler
        def killed_midway(self, output_dir):
            if output_dir.endswith("checkpoint-4"):
                os.kill(os.getpid(), signal.SIGKILL)
            return save(self, output_dir)
        transformers.Trainer._save_optimizer_and_scheduler = killed_midway
        from alpacacot.cli import main
        sys.argv = ["alpacacot-data", *sys.argv[1:]]
        main()
        """
    )
    args = train_args(tiny, out, "--max_steps", "6", "--save_steps", "2")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", script, *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (out / "checkpoint-4" / "adapter_model.safetensors").is_file()
    assert not (out / "training_manifest.json").exists()

    code, output = _resume_latest(tiny, out, caplog, "--max_steps", "6", "--save_steps", "2")
    assert code == 0, output
    assert "checkpoint-4: incomplete checkpoint, complete-rank0.json is missing" in caplog.text
    m = manifest(out)
    assert m["training"]["resumed_from"] == str(out / "checkpoint-2")
    assert (m["training"]["first_step_this_run"], m["training"]["global_step"]) == (3, 6)


def test_an_incomplete_checkpoint_named_explicitly_is_refused(tiny, base_run, tmp_path):
    out = copy_run(base_run, tmp_path / "run")
    _truncate(out / "checkpoint-4" / "adapter_model.safetensors")
    code, output = run_train(
        train_args(tiny, out, "--max_steps", "6", "--resume_from_checkpoint",
                   str(out / "checkpoint-4"))
    )  # fmt: skip
    assert code == 2, output
    assert "incomplete checkpoint, adapter_model.safetensors has" in output
    assert "'latest'" in output


def test_resuming_a_finished_run_does_nothing_and_says_so(tiny, base_run, tmp_path, caplog):
    out = copy_run(base_run, tmp_path / "run")
    adapter = out / "adapter_model.safetensors"
    before = (adapter.read_bytes(), adapter.stat().st_mtime_ns)
    manifest_before = (out / "training_manifest.json").read_bytes()
    code, output = _resume_latest(tiny, out, caplog, "--max_steps", "4", "--save_steps", "2")
    assert code == 0, output
    assert "nothing to do" in caplog.text and "checkpoint-4 is at step 4" in caplog.text
    assert (adapter.read_bytes(), adapter.stat().st_mtime_ns) == before
    assert (out / "training_manifest.json").read_bytes() == manifest_before
    assert not (out / "checkpoint-5").exists()


def test_a_resumed_run_equals_the_uninterrupted_one(tiny, tmp_path, caplog):
    """Interrupted in the second epoch (5 updates per epoch), resumed: same batches, same dropout,
    same optimizer state, so the same losses and the same adapter, bit for bit, on this CPU."""
    import torch
    from safetensors.torch import load_file

    whole = tmp_path / "whole"
    args = ["--max_steps", "8", "--save_steps", "6"]
    code, output = run_train(train_args(tiny, whole, *args))
    assert code == 0, output
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    copy_run(whole / "checkpoint-6", resumed / "checkpoint-6")
    code, output = _resume_latest(tiny, resumed, caplog, *args)
    assert code == 0, output
    a, b = manifest(whole)["training"], manifest(resumed)["training"]
    assert b["first_step_this_run"] == 7
    assert b["loss_history"] == a["loss_history"]
    wa = load_file(whole / "adapter_model.safetensors")
    wb = load_file(resumed / "adapter_model.safetensors")
    assert wa.keys() == wb.keys()
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) == 0.0
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_length_grouped_order_depends_on_seed_and_epoch_only():
    from alpacacot.training.train import epoch_seeded_sampler

    lengths = [(i * 37) % 101 + 1 for i in range(200)]
    first = epoch_seeded_sampler(lengths, 8, seed=42)
    again = epoch_seeded_sampler(lengths, 8, seed=42)
    first.set_epoch(1)
    again.set_epoch(1)
    assert list(first) == list(again)
    assert sorted(first) == list(range(200))
    again.set_epoch(2)
    assert list(first) != list(again)  # a new order each epoch
