"""`alpacacot-data validate`: what a pull request adding a catalog entry must pass."""

from __future__ import annotations

import hashlib
import json
import re

import pytest

from alpacacot.catalog import load_catalog
from alpacacot.errors import CatalogError

from .conftest import run_cli
from .helpers import entry, write_catalog

UNPINNED_BUNDLED = {
    "belle_1m",
    "belle_2m",
    "belle_school_math",
    "finance",
    "gpt4all",
    "alpaca_gpt4_en",
    "alpaca_gpt4_zh",
} | {"hc3", "moss"}  # Hub revisions not reachable when written (hh_rlhf: URLs at a commit)
UNPINNED_BUNDLED |= {  # breadth-a, entries without a real excerpt (`no_sample:`)
    "webgpt_comparisons",
    "stack_exchange_paired",
    "oig",
    "moss_002",
    "ultrachat",
    "camel",
    "sharegpt52k",
    "prosocial_dialog",
}
# breadth-c, the rest of Alpaca-CoT's table: the others are pinned to Hub commits (or a sha256)
UNPINNED_BUNDLED |= {"firefly_full", "guanaco", "instinwild"}
ROWS = [{"instruction": f"Add {n} and {n}.", "input": "", "output": str(2 * n)} for n in range(10)]
ROWS_BYTES = "".join(json.dumps(r) + "\n" for r in ROWS).encode()
ROWS_SHA = hashlib.sha256(ROWS_BYTES).hexdigest()


def good_entry(**changes):
    data = entry(
        {"kind": "local", "path": "data/rows.jsonl", "sha256": ROWS_SHA}, sample="data/rows.jsonl"
    )
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "rows.jsonl").write_bytes(ROWS_BYTES)
    return tmp_path


def no_sample_bundled() -> set[str]:
    return {k for k, e in load_catalog().datasets.items() if not e.sample}


def test_bundled_catalog_passes():
    result = run_cli("validate")
    assert re.search(r"ok: \d+ entries of .*catalog\.yaml are valid", result.output)
    # The waived entries are reported as notes, not hidden.
    for key in UNPINNED_BUNDLED:
        assert re.search(
            rf"note: {key}: \d+ upstream file\(s\) without a pinned checksum", result.output
        )
    for key in no_sample_bundled():
        assert f"note: {key}: no `sample:` excerpt; waived: " in result.output


def test_strict_fails_on_every_waived_entry():
    result = run_cli("validate", "--strict", ok=False)
    errors = re.findall(r"error: (\w+): ", result.output)
    assert set(errors) == UNPINNED_BUNDLED | no_sample_bundled()
    assert f"{len(errors)} problem(s)" in result.output


def test_a_good_local_entry_passes(project):
    catalog = write_catalog(project / "catalog.yaml", {"mine": good_entry()})
    assert "ok: 1 entries" in run_cli("validate", "--catalog", catalog).output


def test_a_local_file_needs_a_pin_too(project):
    source = {"kind": "local", "path": "data/rows.jsonl"}
    catalog = write_catalog(project / "catalog.yaml", {"mine": good_entry(source=source)})
    result = run_cli("validate", "--catalog", catalog, ok=False)
    assert "mine: 1 upstream file(s) without a pinned checksum (data/rows.jsonl)" in result.output


@pytest.mark.parametrize(
    "key,changes,message",
    [
        ("placeholder_licence", {"license": "unknown"}, "`license: unknown` is not a licence"),
        ("no_sample", {"sample": None}, "no `sample:` excerpt"),
        ("missing_sample", {"sample": "data/nope.jsonl"}, "local file data/nope.jsonl not found"),
        (
            "unpinned_url",
            {"source": {"kind": "url", "url": "https://example.org/data/rows.jsonl"}},
            "without a pinned checksum (https://example.org/data/rows.jsonl): add `sha256:`",
        ),
        (
            "unpinned_hub",
            {"source": {"kind": "hf", "repo": "org/name", "files": ["rows.jsonl"]}},
            "set `revision:` to the 40-hex commit",
        ),
        (
            "wrong_column",
            {"fields": {"instruction": "instruction", "output": "answer"}},
            "10 of 10 sample rows are rejected",
        ),
        ("wrong_format", {"format": "json"}, "is `format: jsonl`"),
        ("unknown_normalizer", {"normalizer": "alpaka"}, "unknown normalizer 'alpaka'"),
    ],
)
def test_a_bad_entry_fails_naming_its_key(project, key, changes, message):
    catalog = write_catalog(
        project / "catalog.yaml", {"fine": good_entry(), key: good_entry(**changes)}
    )
    result = run_cli("validate", "--catalog", catalog, ok=False)
    assert f"error: {key}: " in result.output
    assert message in result.output
    assert "error: fine" not in result.output


def test_an_entry_without_a_licence_fails_naming_the_key(project):
    catalog = write_catalog(project / "catalog.yaml", {"no_licence": good_entry(license=None)})
    result = run_cli("validate", "--catalog", catalog, ok=False)
    assert "datasets/no_licence: 'license' is a required property" in result.output


def test_a_key_that_appears_twice_fails(project):
    path = write_catalog(project / "catalog.yaml", {"twice": good_entry()})
    text = path.read_text("utf-8")
    body = text.split("datasets:\n", 1)[1]
    path.write_text(text + body, encoding="utf-8")
    result = run_cli("validate", "--catalog", path, ok=False)
    assert "key 'twice' appears twice" in result.output
    with pytest.raises(CatalogError, match="'twice' appears twice"):
        load_catalog(path)


def test_a_mix_with_an_unknown_key_fails(project):
    catalog = write_catalog(
        project / "catalog.yaml", {"mine": good_entry()}, mixes={"my_mix": ["mine", "nope"]}
    )
    result = run_cli("validate", "--catalog", catalog, ok=False)
    assert "unknown dataset 'nope' (in 'my_mix')" in result.output
    assert "Known keys: mine" in result.output


@pytest.mark.parametrize("bad_key", ["Upper", "with-dash"])
def test_keys_must_be_lowercase_without_dashes(project, bad_key):
    catalog = write_catalog(project / "catalog.yaml", {bad_key: good_entry()})
    result = run_cli("validate", "--catalog", catalog, ok=False)
    assert bad_key in result.output


def test_validate_only_the_named_keys(project):
    catalog = write_catalog(
        project / "catalog.yaml", {"fine": good_entry(), "no_sample": good_entry(sample=None)}
    )
    run_cli("validate", "--catalog", catalog, "fine")
    result = run_cli("validate", "--catalog", catalog, "fine", "nope", ok=False)
    assert "unknown dataset 'nope'" in result.output


def test_no_sample_waives_the_excerpt_but_not_under_strict(project):
    waived = good_entry(sample=None, no_sample="no real copy of the upstream file was found")
    catalog = write_catalog(project / "catalog.yaml", {"mine": waived})
    result = run_cli("validate", "--catalog", catalog)
    assert "ok: 1 entries" in result.output
    assert "mine: no `sample:` excerpt; waived: no real copy of the upstream file" in result.output
    strict = run_cli("validate", "--strict", "--catalog", catalog, ok=False)
    assert "error: mine: no `sample:` excerpt; add a few rows cut from the upstream" in (
        strict.output
    )


def test_a_missing_sample_without_a_reason_is_an_error(project):
    catalog = write_catalog(project / "catalog.yaml", {"mine": good_entry(sample=None)})
    result = run_cli("validate", "--catalog", catalog, ok=False)
    assert "mine: no `sample:` excerpt; add a few rows cut from the upstream file" in result.output


def test_sample_and_no_sample_together_are_refused(project):
    both = good_entry(no_sample="none found")
    catalog = write_catalog(project / "catalog.yaml", {"mine": both})
    with pytest.raises(CatalogError, match=r"datasets/mine: `sample:` and `no_sample:` together"):
        load_catalog(catalog)
