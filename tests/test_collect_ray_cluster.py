"""``--ray-address`` against a real multi-node Ray cluster on this machine (issue #14 item 11):
a head and a second node (``ray.cluster_utils.Cluster``), connected by address; the second node
is removed mid-collection (``remove_node``, never ``ray stop``, which would stop every Ray node
on the host). The run completes (the lost episodes go to the surviving actor) or stops with a
"rerun with --resume" error and the resume completes it: nothing lost or duplicated."""
from __future__ import annotations

import threading
import time

import pytest
from standin_env import PROBE_ID, assert_same_episodes

from collect.config import CollectConfig
from collect.errors import CollectError
from collect.rollout import collect_dataset

ray = pytest.importorskip("ray")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_node_removed_mid_collection_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    from ray.cluster_utils import Cluster

    monkeypatch.setenv("BYOG_PROBE_STEP_S", "0.05")  # ~0.25 s an episode: the removal lands mid-run
    base = {"env": PROBE_ID, "episodes": 16, "seed": 9, "progress": False}
    collect_dataset(CollectConfig(**base, out=tmp_path / "ref"))
    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    removed = threading.Event()
    try:
        node = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        out = tmp_path / "ray"

        def remove_when_running() -> None:
            deadline = time.time() + 90
            while len(list(out.glob("data/chunk-*/episode_*.parquet"))) < 3 and time.time() < deadline:
                time.sleep(0.05)
            cluster.remove_node(node)
            removed.set()

        remover = threading.Thread(target=remove_when_running, daemon=True)
        remover.start()
        cfg = CollectConfig(**base, out=out, ray_address=cluster.address)
        try:
            summary = collect_dataset(cfg)
        except CollectError as e:
            assert "rerun with --resume" in str(e)
            summary = collect_dataset(CollectConfig(**base, out=out, ray_address=cluster.address, resume=True))
        remover.join(timeout=60)
        assert removed.is_set()
        assert summary["episodes"] == 16 and len(ray_nodes_alive(cluster)) == 1
        assert_same_episodes(tmp_path / "ref", out)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def ray_nodes_alive(cluster) -> list:
    ray.init(address=cluster.address)
    try:
        return [n for n in ray.nodes() if n["Alive"]]
    finally:
        ray.shutdown()
