"""Issue 12, items 4 and 6: one build at a time per output folder; a lock left by a killed build
is taken over; a worker that dies is noticed; workers die with their parent."""

from __future__ import annotations

import os
import signal

from .helpers import (
    leftovers,
    manifest,
    missing_output,
    pid_running,
    qa,
    run_build,
    start_build,
    trace_lines,
    wait_for,
    write_sources,
)


def test_a_second_build_into_the_same_folder_is_refused_until_the_first_is_gone(tmp_path):
    catalog = write_sources(tmp_path, {"src_a": qa("a", 5), "src_b": qa("b", 5)})
    out, trace = tmp_path / "out", tmp_path / "trace.txt"
    assert run_build(catalog, out).returncode == 0
    # A rebuild stops (hangs) half way through its first swap, holding the folder.
    first = start_build(catalog, out, "-j", "1", "--force", fault="swap.rejects=hang", trace=trace)
    try:
        wait_for(lambda: (first.pid, "swap.rejects") in trace_lines(trace), "the first build")
        second = run_build(catalog, out, "-j", "2", "--force")
        assert second.returncode == 1
        assert f"another build is writing {out} (pid {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None  # the first build was left alone
    finally:
        first.kill()  # SIGKILL: its lock file stays behind, stale
        first.wait()
    assert (out / ".lock").read_text().strip() == str(first.pid)

    third = run_build(catalog, out, "-j", "1")
    assert third.returncode == 0, third.stderr
    assert f"taking over the lock of pid {first.pid}" in third.stderr
    assert missing_output(out) == []
    assert leftovers(out) == []


def test_a_worker_that_dies_fails_its_source_and_the_build_ends(tmp_path):
    catalog = write_sources(tmp_path, {"src_a": qa("a", 5), "src_b": qa("b", 5)})
    out = tmp_path / "out"
    # src_b's worker is killed (SIGKILL, as the OOM killer would) in the middle of its source.
    result = run_build(catalog, out, "-j", "2", fault="worker.progress.src_b", timeout=120)
    assert result.returncode == 1, result.stderr
    assert "src_b failed: the worker process building it died" in result.stderr
    assert "Traceback" not in result.stderr
    assert list(manifest(out)["errors"]) == ["src_b"]
    assert list(manifest(out)["sources"]) == ["src_a"]  # built again alone, and recorded
    assert missing_output(out) == []
    assert leftovers(out) == []
    again = run_build(catalog, out, "-j", "2")
    assert again.returncode == 0, again.stderr
    assert set(manifest(out)["sources"]) == {"src_a", "src_b"}


def test_killing_the_parent_kills_its_workers(tmp_path):
    catalog = write_sources(tmp_path, {"src_a": qa("a", 5), "src_b": qa("b", 5)})
    out, trace = tmp_path / "out", tmp_path / "trace.txt"
    # Both workers stop in the middle of their source (a source that takes forever).
    parent = start_build(catalog, out, "-j", "2", fault="worker.progress.*=hang", trace=trace)
    workers: set[int] = set()
    try:
        wait_for(lambda: len({pid for pid, _ in trace_lines(trace)}) == 2, "both workers")
        workers = {pid for pid, _ in trace_lines(trace)}
        assert parent.pid not in workers
        assert sorted(p.name for p in out.glob(".tmp-*")) == [".tmp-src_a", ".tmp-src_b"]
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        wait_for(lambda: not any(pid_running(pid) for pid in workers), "the workers to die")
    finally:
        parent.kill()
        parent.wait()
        for pid in workers:  # only when the test failed: leave no hanging process behind
            if pid_running(pid):
                os.kill(pid, signal.SIGKILL)
    again = run_build(catalog, out, "-j", "2")
    assert again.returncode == 0, again.stderr
    assert set(manifest(out)["sources"]) == {"src_a", "src_b"}
    assert missing_output(out) == []
    assert leftovers(out) == []
