"""What the catalog workflow runs on a pull request: the changed keys since the base branch, strict
validation of only those, and the Markdown report of their sample build."""

from __future__ import annotations

import hashlib
import subprocess

from .conftest import run_cli
from .helpers import entry, write_catalog, write_jsonl

ROWS = [{"instruction": f"Name {n} colours.", "output": "Red."} for n in range(3)]


def git(root, *args):
    subprocess.run(
        ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t", *args],
        check=True,
        capture_output=True,
    )


def repo_with_two_entries(root):
    datasets = {}
    for key in ("first", "second"):
        data = write_jsonl(root / "data" / f"{key}.jsonl", ROWS)
        sample = write_jsonl(root / "samples" / key / f"{key}.jsonl", ROWS[:2])
        datasets[key] = entry(
            {
                "kind": "local",
                "path": f"data/{key}.jsonl",
                "sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
            },
            sample=str(sample.relative_to(root)),
            homepage="https://example.org",
        )
    catalog = write_catalog(root / "catalog.yaml", datasets)
    git(root, "init", "-q")
    git(root, "add", ".")
    git(root, "commit", "-qm", "base")
    return catalog, datasets


def test_only_the_changed_entry_and_the_one_whose_sample_changed_are_listed(tmp_path):
    catalog, datasets = repo_with_two_entries(tmp_path)
    assert run_cli("changed", "HEAD", "--catalog", catalog).stdout == ""
    datasets["first"]["description"] = "a better description"
    write_catalog(catalog, datasets)
    assert run_cli("changed", "HEAD", "--catalog", catalog).stdout.split() == ["first"]
    write_jsonl(tmp_path / "samples" / "second" / "second.jsonl", ROWS[1:])
    assert run_cli("changed", "HEAD", "--catalog", catalog).stdout.split() == ["first", "second"]


def test_strict_validation_of_changed_entries_only(tmp_path):
    catalog, datasets = repo_with_two_entries(tmp_path)
    datasets["second"]["homepage"] = ""
    write_catalog(catalog, datasets)
    result = run_cli(
        "validate", "--strict", "--catalog", catalog, "--changed-from", "HEAD", ok=False
    )
    assert "changed since HEAD: second" in result.output
    assert "second: no `homepage:`" in result.output and "1 problem(s)" in result.output
    # Without --strict a missing homepage is allowed.
    run_cli("validate", "--catalog", catalog, "--changed-from", "HEAD")


def test_report_of_a_sample_build(tmp_path):
    catalog, _ = repo_with_two_entries(tmp_path)
    out = tmp_path / "out"
    run_cli("build", "--sample", "--catalog", catalog, "--out", out, "-j", "1", "first")
    table = run_cli("report", out).stdout
    assert table.splitlines()[0] == "| key | read | written | rejected | languages | licence |"
    assert "| `first` | 2 | 2 | 0 | en 100% | cc-by-4.0 |" in table
    result = run_cli("report", out, "second", ok=False)
    assert "'second' is not in" in result.output


def test_a_ref_that_git_would_read_as_an_option_is_refused(tmp_path):
    catalog, _ = repo_with_two_entries(tmp_path)
    target = tmp_path / "written-by-git"
    result = run_cli("changed", "--catalog", catalog, "--", f"--output={target}", ok=False)
    assert "is not a git ref" in result.output and not target.exists()
    result = run_cli("changed", "no-such-branch", "--catalog", catalog, ok=False)
    assert "names no commit" in result.output
