"""Issue 12, item 1: a catalog's local paths stay inside its folder; special files never.

A catalog from a pull request named `../../etc/passwd`, an absolute path, a symlink, or
/proc/self/environ, and the build copied each line into rejects/<key>.jsonl, which `publish` uploads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from alpacacot.catalog import PACKAGE_CATALOG, load_catalog
from alpacacot.errors import CatalogError

from .edges_support import entry, isolated, run_cli, write_catalog  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("isolated")

ROW = {"instruction": "Name a primary colour.", "input": "", "output": "Red."}
SECRET = "HF_TOKEN=hf_secretDoNotLeak\n"


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """project/ holds the catalog and data/ok.jsonl; a secret file lies beside project/."""
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "data" / "ok.jsonl").write_text(json.dumps(ROW) + "\n", encoding="utf-8")
    (tmp_path / "secret.env").write_text(SECRET, encoding="utf-8")
    return root


def _catalog(root: Path, **fields) -> Path:
    source = fields.pop("source", {"kind": "local", "path": "data/ok.jsonl"})
    return write_catalog(root / "catalog.yaml", {"leaky": entry(source, **fields)})


def _refused(catalog: Path, *words: str, allow_outside: bool = False) -> str:
    with pytest.raises(CatalogError) as info:
        load_catalog(catalog, allow_outside=allow_outside)
    message = str(info.value)
    for word in words:
        assert word in message, message
    return message


@pytest.mark.parametrize(
    ("source", "field", "shown"),
    [
        ({"kind": "local", "path": "../secret.env"}, "source.path", "../secret.env"),
        ({"kind": "local", "path": "data/../../secret.env"}, "source.path", "data/../../secret"),
        ({"kind": "local", "files": ["data/ok.jsonl", "../secret.env"]}, "source.files[1]", ".."),
        (
            {"kind": "local", "files": [{"path": "../secret.env", "subset": "x"}]},
            "source.files[0].path",
            "../secret.env",
        ),
    ],
)
def test_a_path_that_climbs_out_is_refused_naming_key_field_and_path(layout, source, field, shown):
    message = _refused(_catalog(layout, source=source), "leaky", field, shown)
    assert "--allow-outside-catalog" in message


def test_an_absolute_path_is_refused(layout, tmp_path):
    secret = str(tmp_path / "secret.env")
    _refused(
        _catalog(layout, source={"kind": "local", "path": secret}),
        "datasets/leaky/source.path",
        "absolute path",
        secret,
        "--allow-outside-catalog",
    )


def test_a_sample_outside_the_folder_is_refused(layout):
    _refused(_catalog(layout, sample="../secret.env"), "datasets/leaky/sample[0]", "../secret.env")


def test_a_symlink_inside_the_folder_to_a_file_outside_is_refused(layout, tmp_path):
    (layout / "data" / "innocent.jsonl").symlink_to(tmp_path / "secret.env")
    _refused(
        _catalog(layout, source={"kind": "local", "path": "data/innocent.jsonl"}),
        "datasets/leaky/source.path",
        "symbolic link",
        str((tmp_path / "secret.env").resolve()),
    )


@pytest.mark.parametrize("allow_outside", [False, True])
def test_proc_files_are_refused_even_with_the_flag(layout, allow_outside):
    # a symlink inside the folder, and an absolute path, both to the process's environment
    (layout / "data" / "env.jsonl").symlink_to("/proc/self/environ")
    for path in ("data/env.jsonl", "/proc/self/environ"):
        _refused(
            _catalog(layout, source={"kind": "local", "path": path}),
            "special system file",
            "/proc",
            allow_outside=allow_outside,
        )


@pytest.mark.parametrize("allow_outside", [False, True])
def test_a_fifo_is_refused_even_with_the_flag(layout, allow_outside):
    os.mkfifo(layout / "data" / "pipe.jsonl")
    _refused(
        _catalog(layout, source={"kind": "local", "path": "data/pipe.jsonl"}),
        "datasets/leaky/source.path",
        "a FIFO",
        allow_outside=allow_outside,
    )


def test_with_the_flag_a_trusted_catalog_reads_a_regular_file_outside(layout, tmp_path):
    outside = tmp_path / "shared" / "rows.jsonl"
    outside.parent.mkdir()
    outside.write_text(json.dumps(ROW) + "\n", encoding="utf-8")
    catalog = _catalog(layout, source={"kind": "local", "path": "../shared/rows.jsonl"})
    out = tmp_path / "out"

    refused = run_cli("build", "--catalog", catalog, "--out", out, ok=False)
    assert "--allow-outside-catalog" in refused.output
    assert not (out / "leaky").exists()

    run_cli("build", "--catalog", catalog, "--out", out, "--allow-outside-catalog")
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["sources"]["leaky"]["counts"]["written"] == 1


def test_build_never_copies_an_outside_file_into_rejects(layout, tmp_path):
    """The reported attack: every line of the file lands in the rejects file that publish uploads."""
    catalog = _catalog(layout, source={"kind": "local", "path": "../secret.env"})
    out = tmp_path / "out"
    result = run_cli("build", "--catalog", catalog, "--out", out, ok=False)
    assert "datasets/leaky/source.path" in result.output
    written = [p.read_text("utf-8", errors="replace") for p in out.rglob("*") if p.is_file()]
    assert not any("hf_secretDoNotLeak" in text for text in written)


def test_validate_refuses_the_catalog_too(layout):
    catalog = _catalog(layout, sample="../secret.env")
    result = run_cli("validate", "--catalog", catalog, ok=False)
    assert "datasets/leaky/sample[0]" in result.output


def test_the_bundled_catalog_and_its_samples_stay_inside_the_package():
    catalog = load_catalog()
    root = PACKAGE_CATALOG.parent.resolve()
    samples = [s for e in catalog.datasets.values() for s in e.sample_files()]
    assert samples
    for sf in samples:
        assert catalog.local_path(sf.location).is_relative_to(root)


def test_new_with_a_file_outside_the_folder_says_the_flag_it_needs(tmp_path):
    """`new --path FILE` is the user's own choice: the entry is written, and the next steps say
    `--allow-outside-catalog`, which build then needs."""
    upstream = tmp_path / "downloads" / "dolly.jsonl"
    upstream.parent.mkdir()
    rows = [
        {"instruction": f"Question {i}?", "context": "", "response": f"Answer {i}."}
        for i in range(5)
    ]
    upstream.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    catalog = tmp_path / "project" / "catalog.yaml"
    created = run_cli(
        "new", "dolly", "--format", "jsonl", "--path", upstream, "--catalog", catalog,
        "--fields", "instruction=instruction,input=context,output=response",
        "--license", "cc-by-sa-3.0", "--language", "en", "--gen", "HG",
        "--description", "Dolly-style questions",
    )  # fmt: skip
    assert "build --allow-outside-catalog" in created.output
    out = tmp_path / "out"
    refused = run_cli("build", "--catalog", catalog, "--out", out, ok=False)
    assert "datasets/dolly/source.path" in refused.output
    run_cli("build", "--catalog", catalog, "--out", out, "--allow-outside-catalog")
    manifest = json.loads((out / "manifest.json").read_text("utf-8"))
    assert manifest["sources"]["dolly"]["counts"]["written"] == 5


def test_benchmark_entries_are_held_to_the_same_rules(layout):
    """`benchmarks:` (evaluation sets, pinned like a dataset source) name files the same way."""
    from alpacacot.catalog import check_locations

    catalog = load_catalog(_catalog(layout))
    benchmark = {"source": {"kind": "local", "path": "data/ok.jsonl"}, "sample": "data/ok.jsonl"}
    check_locations(catalog, "benchmarks/gsm8k_test", benchmark)
    with pytest.raises(CatalogError, match=r"benchmarks/gsm8k_test/sample\[0\]: '../secret.env'"):
        check_locations(catalog, "benchmarks/gsm8k_test", {**benchmark, "sample": "../secret.env"})
    hub = {"source": {"kind": "hf", "repo": "openai/gsm8k", "files": ["../main/test.parquet"]}}
    with pytest.raises(CatalogError, match=r"benchmarks/gsm8k_test/source.files\[0\]"):
        check_locations(catalog, "benchmarks/gsm8k_test", hub)
