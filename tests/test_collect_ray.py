"""Ray path: actors write into one dataset; same episodes as the vector-env path."""
from __future__ import annotations

from pathlib import Path

import pytest
from standin_env import ENV_ID, assert_same_episodes

from collect.config import CollectConfig
from collect.dataset import open_dataset
from collect.rollout import collect_dataset

ray = pytest.importorskip("ray")
TESTS = str(Path(__file__).resolve().parent)


@pytest.fixture(scope="module")
def local_ray():
    root = str(Path(TESTS).parent)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": f"{TESTS}:{root}", "RAY_AUTH_MODE": "disabled"}})
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_and_vector_paths_record_the_same_episodes(tmp_path, local_ray):
    base = {"env": ENV_ID, "episodes": 6, "seed": 9, "progress": False}
    vec = collect_dataset(CollectConfig(**base, out=tmp_path / "vec", num_envs=2, vector_mode="sync"))
    ray_summary = collect_dataset(CollectConfig(**base, out=tmp_path / "ray", workers=2))
    assert ray_summary["episodes"] == vec["episodes"] == 6
    assert ray_summary["steps"] == vec["steps"]
    assert_same_episodes(tmp_path / "vec", tmp_path / "ray")
    assert open_dataset(tmp_path / "ray").info["num_episodes"] == 6
