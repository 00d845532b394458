"""The `alpacacot-data` command line: list, help, and the installed entry point."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from .conftest import run_cli
from .helpers import entry, write_catalog


def test_list_shows_every_key_and_mix(bundled_catalog):
    output = run_cli("list").output
    for key in bundled_catalog.datasets:
        assert f"│ {key} " in output, key
    for mix in bundled_catalog.mixes:
        assert mix in output
    assert (
        "alpaca + belle_0_5m + belle_1m + belle_2m + belle_school_math + multiturn_chat + cot"
        in output
    )


def test_list_json_is_the_catalog(bundled_catalog):
    data = json.loads(run_cli("list", "--json").stdout)
    assert list(data["datasets"]) == list(bundled_catalog.datasets)
    assert data["mixes"] == bundled_catalog.mixes
    assert data["datasets"]["cot"]["normalizer"] == "flan_cot"
    assert data["datasets"]["alpaca"]["source"]["sha256"] == (
        "2eddafc6b977608d778aaab8dfc7e50e547b3af9826dfb9e909d9fc362e4a419"
    )


def test_list_of_a_custom_catalog(tmp_path):
    catalog = write_catalog(
        tmp_path / "my.yaml", {"mine": entry({"kind": "local", "path": "x.jsonl"})}
    )
    data = json.loads(run_cli("list", "--json", "--catalog", catalog).stdout)
    assert list(data["datasets"]) == ["mine"]


def test_build_help_documents_the_main_options():
    output = run_cli("build", "--help").output
    for option in ("--sample", "--offline", "--catalog", "--out", "--cache-dir", "--force"):
        assert option in output


def test_build_of_an_unknown_key_lists_the_known_ones(tmp_path):
    result = run_cli("build", "--sample", "--out", tmp_path / "out", "alpaka", ok=False)
    assert "unknown dataset 'alpaka'" in result.output
    assert "Known keys: alpaca, alpaca_cleaned" in result.output
    assert not (tmp_path / "out").exists()


def test_a_mix_name_builds_its_members(tmp_path):
    from .conftest import read_manifest

    run_cli("build", "--sample", "--out", tmp_path / "out", "alpaca-belle-cot")
    assert set(read_manifest(tmp_path / "out")["sources"]) == {
        "alpaca",
        "belle_0_5m",
        "belle_1m",
        "belle_2m",
        "belle_school_math",
        "multiturn_chat",
        "cot",
    }


def test_an_unreadable_catalog_is_a_clear_error(tmp_path):
    result = run_cli("list", "--catalog", tmp_path / "missing.yaml", ok=False)
    assert "missing.yaml" in result.output


def test_installed_entry_point_exits_non_zero_on_a_failed_source(tmp_path):
    exe = shutil.which("alpacacot-data", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("alpacacot-data is not installed next to this Python")
    (tmp_path / "broken.json").write_text(
        '[{"instruction": "a", "output": "b"}, {"instr', encoding="utf-8"
    )
    catalog = write_catalog(
        tmp_path / "catalog.yaml",
        {"broken": entry({"kind": "local", "path": "broken.json"}, fmt="json")},
    )
    env = {
        **os.environ,
        "ALPACACOT_CACHE": str(tmp_path / "cache"),
        "HF_HUB_OFFLINE": "1",
        "COLUMNS": "300",
    }
    proc = subprocess.run(
        [exe, "build", "--catalog", str(catalog), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "broken.json, line 1" in proc.stderr
    assert "Traceback" not in proc.stderr
