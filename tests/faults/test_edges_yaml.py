"""Issue 12, items 3 and 10: a catalog's size and its YAML aliases are bounded.

A 762-byte "billion laughs" catalog took 77 s and 3.2 GB before a MemoryError (and `validate`
accepted it); a 50 MB catalog took over 400 s and 4 GB.
"""

from __future__ import annotations

import json

import pytest
import yaml

from alpacacot import guards
from alpacacot.catalog import load_catalog
from alpacacot.errors import CatalogError

from .edges_support import entry, isolated, run_cli, write_catalog  # noqa: F401 - a fixture

pytestmark = pytest.mark.usefixtures("isolated")

SOURCE = {"kind": "hf", "repo": "tatsu-lab/alpaca", "files": ["data/train.parquet"]}


def bomb_catalog(levels: int = 9) -> str:
    """A valid catalog whose `options` expands to 9**levels strings through nested aliases."""
    body = yaml.safe_dump({"version": 1, "datasets": {"boom": entry(SOURCE)}}, sort_keys=False)
    laughs = ['    l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        laughs.append(f"    l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 9) + "]")
    return body + "    options:\n  " + "\n  ".join(laughs) + "\n"


def test_an_alias_bomb_is_refused(tmp_path):
    text = bomb_catalog()
    assert len(text.encode()) < 1200
    path = tmp_path / "bomb.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert "aliases" in str(info.value)
    assert f"{guards.MAX_ALIAS_NODES:,}" in str(info.value)
    result = run_cli("validate", "--catalog", path, ok=False)
    assert "aliases" in result.output


def test_a_few_aliases_still_load(tmp_path):
    """Aliases for a shared block are fine: what they add is small."""
    text = yaml.safe_dump(
        {"version": 1, "datasets": {"a": entry(SOURCE), "b": entry(SOURCE)}}, sort_keys=False
    )
    text = text.replace("  a:\n    description", "  a: &shared\n    description", 1)
    text = text.replace("  b:\n", "  b:\n    <<: *shared\n", 1)
    text = text.replace(
        "    description: test source\n    license", "    description: other\n    license", 2
    )
    path = tmp_path / "catalog.yaml"
    path.write_text(text, encoding="utf-8")
    catalog = load_catalog(path)
    assert catalog.datasets["b"].source == catalog.datasets["a"].source


def test_an_alias_that_contains_itself_is_refused(tmp_path):
    text = yaml.safe_dump({"version": 1, "datasets": {"a": entry(SOURCE)}}, sort_keys=False)
    path = tmp_path / "catalog.yaml"
    path.write_text(text + "    options: &loop {again: *loop}\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="refers to itself"):
        load_catalog(path)


def test_a_catalog_over_the_size_cap_is_refused_before_parsing(tmp_path):
    path = write_catalog(tmp_path / "catalog.yaml", {"a": entry(SOURCE)})
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(("# padding\n" * 1000) * (guards.MAX_CATALOG_BYTES // 10_000 + 1))
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    assert "over 5 MB" in str(info.value)
    assert str(path) in str(info.value)


def test_a_catalog_just_under_the_cap_loads(tmp_path):
    path = write_catalog(tmp_path / "catalog.yaml", {"a": entry(SOURCE)})
    size = path.stat().st_size
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("#" * (guards.MAX_CATALOG_BYTES - size - 1) + "\n")
    assert path.stat().st_size == guards.MAX_CATALOG_BYTES
    assert list(load_catalog(path).datasets) == ["a"]


def test_the_c_loader_still_refuses_a_duplicate_key(tmp_path):
    path = tmp_path / "catalog.yaml"
    one = json.dumps(entry(SOURCE))
    path.write_text(f"version: 1\ndatasets:\n  a: {one}\n  a: {one}\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="line 4: key 'a' appears twice"):
        load_catalog(path)


def test_deep_nesting_is_a_clear_error(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text("version: 1\ndatasets: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(CatalogError, match="not valid YAML"):
        load_catalog(path)


def test_a_catalog_that_is_a_fifo_is_refused_without_waiting(tmp_path):
    import os

    path = tmp_path / "catalog.yaml"
    os.mkfifo(path)
    with pytest.raises(CatalogError, match="not a regular file"):
        load_catalog(path)


def test_deep_nesting_without_libyaml_is_a_clear_error(tmp_path, monkeypatch):
    """Where PyYAML has no libyaml, its Python composer recurses: still a CatalogError."""
    from alpacacot import guards

    monkeypatch.setattr(guards, "UniqueKeyLoader", yaml.SafeLoader)
    path = tmp_path / "catalog.yaml"
    path.write_text("version: 1\ndatasets: " + "[" * 50_000 + "]" * 50_000 + "\n")
    with pytest.raises(CatalogError, match="not valid YAML: nested too deeply"):
        load_catalog(path)
