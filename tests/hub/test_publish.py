"""`alpacacot-data publish` against a fake Hub: the real huggingface_hub client code runs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from hub_helpers import BELLE_ROWS, TOKEN, default_sources, make_records, write_collection
from typer.testing import CliRunner

from alpacacot.card import write_card
from alpacacot.cli import app

REPO = "org/ds"


def publish(*args: str):
    return CliRunner().invoke(app, ["publish", *args])


def commit_ops(request) -> dict[str, str]:
    """{path: operation key} of one recorded commit request."""
    return {line["value"]["path"]: line["key"] for line in request.body[1:]}


def assert_no_token(result, caplog) -> None:
    assert TOKEN not in result.output
    assert TOKEN not in caplog.text
    assert TOKEN[3:] not in result.output  # not even partly


def rebuild_changed(out: Path) -> None:
    """Same collection with belle changed and dialog removed."""
    sources = default_sources()
    sources["belle"]["records"] = make_records(
        "belle", BELLE_ROWS + [("再写一首。", "", "好的。")], "zh"
    )
    del sources["dialog"]
    manifest = write_collection(out, sources, built_at="2026-11-26T09:00:00Z")
    write_card(out, manifest, None)


def test_first_publish_creates_repo_and_uploads_everything(collection, hub, caplog):
    caplog.set_level(logging.DEBUG)
    result = publish(str(collection), "--repo", REPO)
    assert result.exit_code == 0, result.output
    assert "Committed: " in result.output
    assert REPO in hub.repos
    [commit] = hub.commits()
    ops = commit_ops(commit)
    assert set(ops.values()) == {"file"}
    assert set(ops) == {
        "README.md",
        "manifest.json",
        "rejects/alpaca.jsonl",
        "rejects/belle.jsonl",
        "rejects/dialog.jsonl",
        "alpaca/train-00000-of-00001.parquet",
        "belle/train-00000-of-00001.parquet",
        "dialog/train-00000-of-00001.parquet",
    }
    header = commit.body[0]["value"]
    assert "alpaca, belle, dialog" in header["summary"]
    assert "2026-11-25T18:00:00Z" in header["summary"] and "0.1.0" in header["summary"]
    assert "belle: " in header["description"] and "Catalog sha256" in header["description"]
    files = hub.head_files(REPO)
    assert (
        files["alpaca/train-00000-of-00001.parquet"]
        == (collection / "alpaca/train-00000-of-00001.parquet").read_bytes()
    )
    # The card names the real repo in its examples.
    assert f'load_dataset("{REPO}", "alpaca"' in files["README.md"].decode()
    # The token was sent to the Hub, and shown nowhere.
    auth = {r.headers.get("authorization") for r in hub.requests}
    assert auth == {f"Bearer {TOKEN}"}
    assert_no_token(result, caplog)


def test_second_publish_uploads_only_changes_and_deletes_removed_shards(collection, hub, caplog):
    caplog.set_level(logging.DEBUG)
    assert publish(str(collection), "--repo", REPO).exit_code == 0
    rebuild_changed(collection)

    result = publish(str(collection), "--repo", REPO)
    assert result.exit_code == 0, result.output
    first, second = hub.commits()
    assert commit_ops(second) == {
        "README.md": "file",
        "manifest.json": "file",
        "belle/train-00000-of-00001.parquet": "file",
        "dialog/train-00000-of-00001.parquet": "deletedFile",
        "rejects/dialog.jsonl": "deletedFile",
    }
    # Unchanged files were not even offered for upload.
    preuploads = [r for r in hub.requests if "/preupload/" in r.path]
    assert {f["path"] for f in preuploads[-1].body["files"]} == {
        "README.md",
        "manifest.json",
        "belle/train-00000-of-00001.parquet",
    }
    # The commit was made against the head the plan compared with.
    assert (
        second.body[0]["value"]["parentCommit"]
        == hub.repos[REPO].commits[hub.repos[REPO].branches["main"]]["parent"]
    )
    files = hub.head_files(REPO)
    assert "dialog/train-00000-of-00001.parquet" not in files
    assert ".gitattributes" in files  # not ours: left alone
    assert "1 to change" not in result.output  # three changed: README, manifest, belle
    assert "3 to change, 2 to delete" in result.output
    assert_no_token(result, caplog)


def test_publish_without_changes_makes_no_commit(collection, hub):
    assert publish(str(collection), "--repo", REPO).exit_code == 0
    result = publish(str(collection), "--repo", REPO)
    assert result.exit_code == 0, result.output
    assert "Nothing to publish" in result.output
    assert len(hub.commits()) == 1


def test_dry_run_prints_operations_with_sizes_and_sends_nothing(collection, hub):
    assert publish(str(collection), "--repo", REPO).exit_code == 0
    rebuild_changed(collection)
    before = len(hub.requests)

    result = publish(str(collection), "--repo", REPO, "--dry-run")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    size = (collection / "belle/train-00000-of-00001.parquet").stat().st_size
    assert any(
        line.startswith("change ")
        and "belle/train-00000-of-00001.parquet" in line
        and f"{size / 1000:.1f} kB" in line
        for line in lines
    ), result.output
    assert any(
        line.startswith("delete ") and "dialog/train-00000-of-00001.parquet" in line
        for line in lines
    )
    assert any(line.startswith("delete ") and "rejects/dialog.jsonl" in line for line in lines)
    assert not any("alpaca/train" in line for line in lines)  # unchanged: not an operation
    assert "nothing was sent" in result.output
    new_requests = hub.requests[before:]
    assert new_requests and all(r.method == "GET" for r in new_requests)
    assert len(hub.commits()) == 1


def test_dry_run_of_a_new_repo_lists_everything_as_add(collection, hub):
    result = publish(str(collection), "--repo", "org/new", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "does not exist yet" in result.output
    adds = [line for line in result.output.splitlines() if line.startswith("add ")]
    assert len(adds) == 8
    assert "org/new" not in hub.repos


def test_dry_run_when_the_hub_is_unreachable(collection, dead_endpoint, caplog):
    result = publish(str(collection), "--repo", REPO, "--dry-run")
    assert result.exit_code == 0, result.output
    assert "cannot reach" in result.output and dead_endpoint in result.output
    assert len([line for line in result.output.splitlines() if line.startswith("add ")]) == 8
    assert_no_token(result, caplog)


def test_connection_refused_is_one_clear_error(collection, dead_endpoint, caplog):
    caplog.set_level(logging.DEBUG)
    result = publish(str(collection), "--repo", REPO)
    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "cannot reach the Hub" in errors[0], result.output
    assert "Traceback" not in result.output
    assert_no_token(result, caplog)


@pytest.mark.parametrize(
    ("method", "pattern", "status", "code", "expected"),
    [
        ("POST", r"^/api/repos/create$", 401, None, "authentication failed (401)"),
        ("POST", r"^/api/repos/create$", 403, None, "permission denied (403)"),
        ("POST", r"^/api/repos/create$", 429, None, "rate limited by the Hub (429)"),
        ("GET", r"^/api/datasets/org/ds$", 404, "RepoNotFound", "not found (404)"),
        ("POST", r"/commit/", 409, None, "conflict (409)"),
        ("POST", r"/commit/", 412, None, "conflict (412)"),
        ("POST", r"/preupload/", 403, None, "permission denied (403)"),
    ],
)
def test_hub_failures_end_with_one_message_and_no_commit(
    collection, hub, caplog, method, pattern, status, code, expected
):
    caplog.set_level(logging.DEBUG)
    hub.fail(method, pattern, status, error_code=code)
    result = publish(str(collection), "--repo", REPO)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and expected in errors[0], result.output
    assert "Traceback" not in result.output
    repo = hub.repos.get(REPO)
    assert repo is None or len(repo.commits) == 1  # only the initial commit of create_repo
    assert_no_token(result, caplog)


def test_a_commit_landing_meanwhile_fails_the_publish_as_a_conflict(collection, hub, monkeypatch):
    """parent_commit makes the Hub refuse a commit on a branch that moved after the plan."""
    import alpacacot.hub.publish as pub

    real_plan = pub.plan_publish

    def plan_then_someone_commits(*args, **kwargs):
        plan = real_plan(*args, **kwargs)
        hub._commit(
            REPO,
            hub.repos[REPO],
            "main",
            [{"key": "header", "value": {"summary": "other", "description": ""}}],
            False,
        )
        return plan

    monkeypatch.setattr(pub, "plan_publish", plan_then_someone_commits)
    result = publish(str(collection), "--repo", REPO)
    assert result.exit_code == 1
    assert "conflict (412)" in result.output and "run publish again" in result.output
    files = hub.head_files(REPO)
    assert list(files) == [".gitattributes"]  # the failed publish left the repo as it was


def test_create_pr_leaves_main_alone(collection, hub):
    assert publish(str(collection), "--repo", REPO).exit_code == 0
    rebuild_changed(collection)
    main_before = hub.repos[REPO].branches["main"]
    result = publish(str(collection), "--repo", REPO, "--create-pr")
    assert result.exit_code == 0, result.output
    assert "Opened pull request" in result.output and "/discussions/1" in result.output
    assert hub.repos[REPO].branches["main"] == main_before
    assert hub.commits()[-1].query == {"create_pr": ["1"]}
    pr_files = hub.head_files(REPO, "refs/pr/1")
    assert "dialog/train-00000-of-00001.parquet" not in pr_files


def test_revision_creates_the_branch_and_commits_there(collection, hub):
    result = publish(str(collection), "--repo", REPO, "--revision", "dev", "--private")
    assert result.exit_code == 0, result.output
    repo = hub.repos[REPO]
    assert repo.private
    create = next(r for r in hub.requests if r.path == "/api/repos/create")
    assert create.body["visibility"] == "private" and create.body["type"] == "dataset"
    assert "manifest.json" in hub.head_files(REPO, "dev")
    assert list(hub.head_files(REPO, "main")) == [".gitattributes"]
    assert hub.commits()[-1].path.endswith("/commit/dev")


def test_bad_repo_id_and_missing_build_are_clear_errors(tmp_path, hub):
    result = publish(str(tmp_path), "--repo", "not a repo")
    assert result.exit_code == 1 and "ORG/NAME" in result.output
    result = publish(str(tmp_path), "--repo", REPO)
    assert result.exit_code == 1 and "manifest.json" in result.output
    assert "alpacacot-data build" in result.output
    assert not hub.commits()


def test_a_shard_edited_after_the_build_is_refused(collection, hub):
    shard = collection / "alpaca/train-00000-of-00001.parquet"
    shard.write_bytes(shard.read_bytes() + b"x")
    result = publish(str(collection), "--repo", REPO)
    assert result.exit_code == 1
    assert "changed since the build" in result.output and "rebuild" in result.output
    assert not hub.commits()


def test_manifest_is_valid_json_on_the_hub(collection, hub):
    assert publish(str(collection), "--repo", REPO).exit_code == 0
    manifest = json.loads(hub.head_files(REPO)["manifest.json"])
    assert sorted(manifest["sources"]) == ["alpaca", "belle", "dialog"]


def test_an_incomplete_build_is_not_published(collection, hub):
    manifest_path = collection / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["errors"] = {"dialog": "download failed"}
    manifest_path.write_text(json.dumps(manifest))
    result = publish(str(collection), "--repo", REPO)
    assert result.exit_code == 1
    assert "incomplete build (failed: dialog)" in result.output
    assert not hub.commits()


def test_token_absent_from_verbose_logs_of_a_real_process(collection, hub):
    """The CLI as users run it, with --verbose debug logging of every library."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_DISABLE_XET": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_HUB_OFFLINE", None)
    for args in (
        ["publish", str(collection), "--repo", REPO],
        ["publish", str(collection), "--repo", "org/other", "--revision", "nope", "--create-pr"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "alpacacot.cli", "-v", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        output = done.stdout + done.stderr
        assert "DEBUG" in output  # debug logging was on
        assert TOKEN not in output and TOKEN[3:] not in output
    assert hub.commits()  # the first publish went through
    assert done.returncode == 1 and "error:" in output  # PR against a missing branch


def test_dry_run_for_a_new_branch_compares_with_main(collection, hub):
    assert publish(str(collection), "--repo", REPO).exit_code == 0
    result = publish(str(collection), "--repo", REPO, "--revision", "feat", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would create it from main" in result.output
    assert "0 to add, 0 to change, 0 to delete, 8 unchanged" in result.output
    assert "feat" not in hub.repos[REPO].branches
