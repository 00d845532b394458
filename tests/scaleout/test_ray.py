"""The same catalog built on a real local Ray (2 CPUs, started once for the module) gives the files
a single pass gives, also when a Ray worker process is killed half-way through a unit."""

from __future__ import annotations

import pytest
import scaleout_helpers
from scaleout_helpers import Killing, fingerprint, run_build

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
