"""Issue 12, items 3 and 7: names from a catalog are checked in full before anything uses them.

Keys become folder and file names, Hub repo ids and file names become URLs and cache paths. A key
`abc\\n` passed the old check (`$` matches before a final newline), a 300-character key crashed the
build with ENAMETOOLONG, `repo: ../..` and `files: [../x]` crashed it with a ValueError, and the
key-pattern error printed `'^*$'` (rich took `[a-z0-9]` for markup).
"""

from __future__ import annotations

import pytest

from alpacacot.catalog import load_catalog
from alpacacot.errors import CatalogError

from .edges_support import entry, isolated, run_cli, write_catalog  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("isolated")

HUB = {"kind": "hf", "repo": "tatsu-lab/alpaca", "files": ["data/train.parquet"]}


def _load(tmp_path, datasets, **top):
    return load_catalog(write_catalog(tmp_path / "catalog.yaml", datasets, **top))


def _refused(tmp_path, datasets, *words, **top) -> str:
    with pytest.raises(CatalogError) as info:
        _load(tmp_path, datasets, **top)
    for word in words:
        assert word in str(info.value), str(info.value)
    return str(info.value)


def test_a_key_with_a_final_newline_is_refused(tmp_path):
    message = _refused(
        tmp_path, {"abc\n": entry(HUB)}, "dataset key", "'abc\\n'", "[a-z0-9][a-z0-9_]*"
    )
    assert "digits and underscores," in message  # no dashes in a dataset key


def test_a_mix_name_may_hold_dots_and_dashes(tmp_path):
    message = _refused(tmp_path, {"a": entry(HUB)}, "[a-z0-9][a-z0-9_.-]*", mixes={"Mix": ["a"]})
    assert "(dots and dashes too)" in message
    catalog = _load(tmp_path, {"a": entry(HUB), "b": entry(HUB)}, mixes={"a1.5m": ["a", "b"]})
    assert catalog.resolve("a1.5m") == ["a", "b"]


@pytest.mark.parametrize("length", [65, 250, 300])
def test_an_overlong_key_is_refused_with_the_limit(tmp_path, length):
    _refused(tmp_path, {"k" * length: entry(HUB)}, f"{length} characters", "limit is 64")


def test_a_64_character_key_loads(tmp_path):
    key = "k" * 64
    assert list(_load(tmp_path, {key: entry(HUB)}).datasets) == [key]


def test_an_overlong_mix_name_is_refused(tmp_path):
    _refused(tmp_path, {"a": entry(HUB)}, "mixes", "limit is 64", mixes={"m" * 100: ["a"]})


def test_the_key_rule_is_printed_readably(tmp_path):
    catalog = write_catalog(tmp_path / "catalog.yaml", {"Bad Key": entry(HUB)})
    result = run_cli("validate", "--catalog", catalog, ok=False)
    assert "[a-z0-9][a-z0-9_]*" in result.output
    assert "'Bad Key'" in result.output


@pytest.mark.parametrize(
    "repo", ["../..", "owner/..", "owner/name/extra", "/abs", "owner--x/name", "a/b.git", "noowner"]
)
def test_a_bad_hub_repo_id_is_refused(tmp_path, repo):
    message = _refused(tmp_path, {"hubby": entry({**HUB, "repo": repo})}, "hubby", "repo")
    assert "datasets/hubby/source" in message


@pytest.mark.parametrize("name", ["../secret", "data/../../x", "/etc/passwd", "a\\b", "./x"])
def test_a_bad_hub_file_name_is_refused(tmp_path, name):
    _refused(
        tmp_path,
        {"hubby": entry({**HUB, "files": ["ok.parquet", name]})},
        "datasets/hubby/source.files[1]",
        "not a file name inside the repo",
    )


def test_a_bad_per_file_repo_or_revision_is_refused(tmp_path):
    bad_repo = {**HUB, "files": [{"file": "x.json", "repo": "../.."}]}
    _refused(tmp_path, {"hubby": entry(bad_repo)}, "hubby", "repo")
    bad_rev = {**HUB, "files": [{"file": "x.json", "revision": "../../main"}]}
    _refused(tmp_path, {"hubby": entry(bad_rev)}, "source.files[0].revision", "not a branch")


@pytest.mark.parametrize("revision", ["../x", "main/", "a//b", "-rf", "x" * 201])
def test_a_bad_revision_is_refused(tmp_path, revision):
    _refused(tmp_path, {"hubby": entry({**HUB, "revision": revision})}, "source.revision")


def test_good_hub_names_load(tmp_path):
    source = {
        "kind": "hf",
        "repo": "BelleGroup/train_0.5M_CN",
        "revision": "refs/convert/parquet",
        "files": ["data/*.parquet", {"file": "x.json", "repo": "nomic-ai/gpt4all-j_prompt"}],
    }
    files = _load(tmp_path, {"hubby": entry(source)}).datasets["hubby"].files()
    assert [f.location for f in files] == ["data/*.parquet", "x.json"]


def test_a_url_source_names_an_http_url(tmp_path):
    source = {"kind": "url", "files": [{"path": "/etc/passwd"}]}
    _refused(tmp_path, {"web": entry(source)}, "datasets/web/source.files[0].path", "http")


def test_build_reports_a_bad_key_without_a_traceback(tmp_path):
    catalog = write_catalog(tmp_path / "catalog.yaml", {"k" * 300: entry(HUB)})
    result = run_cli("build", "--catalog", catalog, "--out", tmp_path / "out", ok=False)
    assert "limit is 64" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
