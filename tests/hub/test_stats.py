"""`alpacacot-data stats`: per-source counts, languages and lengths, a table and a PNG."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from alpacacot.cli import app
from alpacacot.hub.stats import collect_stats, describe


class WhitespaceTokenizer:
    """Stands in for a transformers tokenizer: one token per word."""

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [t.split() for t in texts]}


def test_collect_stats_counts_languages_and_lengths(collection):
    stats = {s.key: s for s in collect_stats(collection, WhitespaceTokenizer())}
    assert list(stats) == ["alpaca", "belle", "dialog"]
    alpaca = stats["alpaca"]
    assert (alpaca.records, alpaca.read, alpaca.duplicates, alpaca.rejected) == (3, 5, 1, 1)
    assert alpaca.langs == {"en": 3}
    assert alpaca.chars["instruction"].tolist() == [36, 20, 14]
    assert alpaca.tokens["output"].tolist() == [5, 1, 10]
    assert stats["belle"].chars["output"].tolist() == [10, 20]  # characters, not bytes


def test_describe_is_compact():
    assert describe(np.array([1, 2, 3, 100])) == "2/71/100"
    assert describe(np.array([20_000, 40_000])) == "30k/38k/40k"
    assert describe(np.zeros(0)) == "—"


def test_stats_command_prints_tables_writes_png_and_refreshes_card(collection):
    result = CliRunner().invoke(app, ["stats", str(collection)])
    assert result.exit_code == 0, result.output
    assert "Records per source" in result.output and "Lengths per source" in result.output
    assert "belle" in result.output and "zh 100%" in result.output
    png = collection / "stats.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](stats.png)" in (collection / "README.md").read_text()


def test_stats_png_elsewhere_leaves_the_card(collection, tmp_path, monkeypatch):
    import alpacacot.hub.stats as st

    monkeypatch.setattr(st, "load_tokenizer", lambda name: WhitespaceTokenizer())
    target = tmp_path / "fig" / "s.png"
    result = CliRunner().invoke(
        app, ["stats", str(collection), "--png", str(target), "--tokenizer", "words"]
    )
    assert result.exit_code == 0, result.output
    assert target.is_file() and not (collection / "stats.png").exists()
    assert "tokens" in result.output
    assert "stats.png" not in (collection / "README.md").read_text()


def test_stats_on_a_folder_that_is_not_a_build(tmp_path):
    result = CliRunner().invoke(app, ["stats", str(tmp_path)])
    assert result.exit_code == 1
    assert "not a built collection" in result.output


def test_cli_import_stays_light():
    code = (
        "import sys; import alpacacot.cli; "
        "heavy = [m for m in ('matplotlib', 'transformers', 'torch') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_stats_with_a_real_local_tokenizer(collection, tmp_path):
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(["eat well sleep"], trainers.WordLevelTrainer(special_tokens=["[UNK]"]))
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(tmp_path / "t")

    result = CliRunner().invoke(
        app,
        [
            "stats",
            str(collection),
            "--png",
            str(tmp_path / "s.png"),
            "--tokenizer",
            str(tmp_path / "t"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "tokens" in result.output

    result = CliRunner().invoke(
        app, ["stats", str(collection), "--tokenizer", str(tmp_path / "no")]
    )
    assert result.exit_code == 1 and "cannot load tokenizer" in result.output
