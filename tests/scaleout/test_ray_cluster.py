"""A two-node Ray cluster on this machine (`ray start --head`, then `ray start --address` for a
second node, 1 CPU each): `build --executor ray --ray-address HOST:PORT` writes the files a single
pass writes. The cluster's processes are ended by their ids at the end (never `ray stop`, which
would stop every Ray of the machine)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from scaleout_helpers import fingerprint

pytest.importorskip("ray", reason='the Ray tests need pip install "alpacacot[ray]"')
RAY = Path(sys.executable).with_name("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes_of(marker: str) -> set[int]:
    """Processes whose command line names `marker`, and all their descendants."""
    parents: dict[int, int] = {}
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        parents[int(entry.name)] = ppid
        if marker in cmdline:
            found.add(int(entry.name))
    grew = True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    return found - {os.getpid()}


@pytest.fixture(scope="module")
def cluster():
    if not RAY.exists():
        pytest.skip("the ray command is not installed")
    # A short folder: Ray's unix sockets live under it and a socket path has ~100 characters.
    temp = tempfile.mkdtemp(prefix="acray", dir="/tmp")
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    try:
        for args in (
            ["--head", f"--port={port}", f"--temp-dir={temp}", "--include-dashboard=false"],
            [f"--address=127.0.0.1:{port}"],
        ):
            run = subprocess.run(
                [str(RAY), "start", *args, *common], env=env, capture_output=True, text=True
            )
            if run.returncode != 0:
                pytest.skip(f"this machine cannot start a Ray node: {run.stderr[-500:]}")
        yield f"127.0.0.1:{port}", env
    finally:
        pids = _processes_of(temp) | _processes_of(f":{port}")
        for pid in pids:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        time.sleep(2)
        for pid in _processes_of(temp) | _processes_of(f":{port}") | pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_a_two_node_cluster_writes_the_same_files_as_one_pass(
    cluster, catalog, one_process, tmp_path
):
    address, env = cluster
    out = tmp_path / "out"
    # The build runs in its own process, as a user's would, connecting to the cluster by address.
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from scaleout_helpers import run_build;"
        "run_build(Path(sys.argv[2]), Path(sys.argv[3]), executor_name='ray', ray_address=sys.argv[4]);"
        # The build disconnects when it is done: connect again to count the nodes.
        "import ray; ray.init(address=sys.argv[4], log_to_driver=False);"
        "print('nodes', sum(n['Alive'] for n in ray.nodes()))"
    )
    here = str(Path(__file__).parent)
    run = subprocess.run(
        [sys.executable, "-c", code, here, str(catalog), str(out), address],
        env={**env, "ALPACACOT_CACHE": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "nodes 2" in run.stdout
    assert fingerprint(out) == one_process
