"""`subsets:` and `build --subset KEY=a,b`: build some upstream parts of a large source (one xP3
language, one medical department) without the rest."""

from __future__ import annotations

import pytest

from alpacacot.catalog import load_catalog
from alpacacot.errors import CatalogError

from .conftest import read_manifest, run_cli
from .helpers import entry, write_catalog, write_jsonl


def two_language_catalog(root):
    for lang, text in (("en", "Say hi."), ("fr", "Dis bonjour.")):
        write_jsonl(root / "data" / f"xp3_{lang}.jsonl", [{"inputs": text, "targets": "ok"}])
    files = [
        {"path": f"data/xp3_{lang}.jsonl", "subset": lang, "sha256": "0" * 64}
        for lang in ("en", "fr")
    ]
    for f in files:
        import hashlib

        f["sha256"] = hashlib.sha256((root / f["path"]).read_bytes()).hexdigest()
    return write_catalog(
        root / "cat.yaml",
        {"xp3": entry({"kind": "local", "files": files}, normalizer="inputs_targets")},
    )


def test_subsets_in_the_catalog_choose_the_files(tmp_path):
    cat = load_catalog(two_language_catalog(tmp_path))
    xp3 = cat.datasets["xp3"]
    assert [sf.subset for sf in xp3.files()] == ["en", "fr"]
    assert [sf.subset for sf in xp3.with_subsets(["fr"]).files()] == ["fr"]
    with pytest.raises(CatalogError, match="no subset 'de'.*en, fr"):
        xp3.with_subsets(["de"])


def test_build_subset_builds_one_language_alone(tmp_path):
    catalog = two_language_catalog(tmp_path)
    out = tmp_path / "out"
    run_cli("build", "--catalog", catalog, "--out", out, "-j", "1", "--subset", "xp3=fr")
    source = read_manifest(out)["sources"]["xp3"]
    assert [f["file"] for f in source["inputs"]] == ["data/xp3_fr.jsonl"]
    assert source["counts"]["written"] == 1
    # Choosing the other language is a different build, not a skipped one.
    result = run_cli("build", "--catalog", catalog, "--out", out, "-j", "1", "--subset", "xp3=en")
    assert "built" in result.stdout


def test_a_subset_unknown_to_the_entry_or_a_key_not_built_is_refused(tmp_path):
    catalog = two_language_catalog(tmp_path)
    result = run_cli("build", "--catalog", catalog, "--subset", "xp3=de", ok=False)
    assert "no subset 'de'" in result.output
    result = run_cli("build", "--catalog", catalog, "--subset", "nope=en", "xp3", ok=False)
    assert "'nope' is not among the keys being built" in result.output


def test_catalog_subsets_must_name_existing_parts(tmp_path):
    catalog = two_language_catalog(tmp_path)
    text = catalog.read_text("utf-8").replace(
        "    format: jsonl", "    format: jsonl\n    subsets: [de]"
    )
    catalog.write_text(text, encoding="utf-8")
    with pytest.raises(
        CatalogError, match="datasets/xp3/subsets: no upstream file has subset 'de'"
    ):
        load_catalog(catalog)
