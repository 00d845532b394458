"""The same catalog built on a real local Ray (2 CPUs, started once for the module) gives the files
a single pass gives, also when a Ray worker process is killed half-way through a unit."""

from __future__ import annotations

import pytest
import scaleout_helpers
from scaleout_helpers import Killing, Remote, fingerprint, run_build

ray = pytest.importorskip("ray", reason='the Ray tests need pip install "alpacacot[ray]"')


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    from ray import cloudpickle

    # Ray's workers are not this process: they unpickle the test's wrappers by value.
    cloudpickle.register_pickle_by_value(scaleout_helpers)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    cloudpickle.unregister_pickle_by_value(scaleout_helpers)


def test_ray_writes_the_same_files_as_one_pass(catalog, one_process, tmp_path):
    run_build(catalog, tmp_path / "out", executor_name="ray")
    assert fingerprint(tmp_path / "out") == one_process


def test_a_ray_worker_killed_mid_unit_is_retried_by_ray(catalog, one_process, tmp_path):
    from alpacacot.executors.ray import RayExecutor

    marker = tmp_path / "killed"
    executor = Killing(RayExecutor(), "sharegpt_zh", 3, marker)
    run_build(catalog, tmp_path / "out", executor=executor)
    assert marker.exists()  # a Ray worker did die
    assert fingerprint(tmp_path / "out") == one_process


def test_ray_workers_that_cannot_see_the_staging_folder_send_records_back(
    catalog, one_process, tmp_path
):
    """On this machine Ray's workers leave their records in the build's staging folder; a worker
    on another machine (here: one that does not find the build's token there) sends them back
    through Ray's object store. Both give the files one pass gives."""
    from alpacacot.executors.ray import RayExecutor

    log = tmp_path / "how"
    run_build(catalog, tmp_path / "here", executor_name="ray")
    assert fingerprint(tmp_path / "here") == one_process
    run_build(catalog, tmp_path / "there", executor=Remote(RayExecutor(), log))
    assert fingerprint(tmp_path / "there") == one_process
    ways = log.read_text().split()
    assert len(ways) > 10 and set(ways) == {"in-band"}
