"""Collection in worker processes: Ray actors (``--workers N`` starts a local Ray,
``--ray-address auto|HOST:PORT`` joins a cluster) or, on one machine without Ray, a process pool
(``--num-envs N --vector-mode process``).

Each actor owns its envs and policies (a :class:`collect.rollout.Collector`) and writes the
episodes it is handed straight into the dataset directory, so the directory must be on a
filesystem every node can write (local disk for one machine, a shared mount for a cluster).
The driver hands out one episode index at a time (dynamic load balancing, same seeds as a local
run), and rebuilds ``meta/`` from the episode files at the end. Plain ``@ray.remote`` actors are
used (RLlib pins an older gymnasium). Ray is the ``distributed`` extra.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


def import_ray() -> Any:
    """Imports Ray with the project's defaults, or raises a clear install hint."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    try:
        import ray
    except ImportError:
        from collect.rollout import CollectError

        raise CollectError('Ray is needed for --workers/--ray-address: pip install "byog[distributed]".') from None
    return ray


class CollectorActor:
    """A Ray actor running one :class:`~collect.rollout.Collector` (``num_envs`` envs)."""

    def __init__(self, cfg_fields: dict[str, Any], info: dict[str, Any]) -> None:
        from collect.rollout import CollectConfig, Collector
        from collect.writer import DatasetWriter

        cfg = CollectConfig(**cfg_fields)
        cfg.progress = False
        writer = DatasetWriter(cfg.out, info, check_existing=False)
        self.collector = Collector(cfg, writer)

    def run(self, indices: list[int]) -> list[dict[str, Any]]:
        """Collects and writes the given episodes; returns their records."""
        queue = list(indices)
        records: list[dict[str, Any]] = []
        self.collector.run(lambda running: queue.pop(0) if queue else None, records.append)
        return records

    def close(self) -> None:
        """Closes the envs."""
        self.collector.close()


def collect_with_ray(cfg: Any, info: dict[str, Any], source: Any,
                     on_episode: Callable[[dict[str, Any]], None]) -> None:
    """Runs the episodes ``source`` hands out in Ray actors (see the module docstring).

    Args:
        cfg: The :class:`~collect.rollout.CollectConfig` (``workers`` or ``ray_address`` set).
        info: The dataset's ``info`` (actors write episode files with it).
        source: An :class:`~collect.rollout.EpisodeSource`.
        on_episode: Called with each finished episode's record, in completion order.
    """
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        # Local workers import this checkout (and whatever the driver can import).
        env_vars = {"PYTHONPATH": os.pathsep.join([str(REPO_ROOT), *[p for p in sys.path if p]]),
                    "RAY_AUTH_MODE": os.environ["RAY_AUTH_MODE"]}
        if cfg.ray_address:
            ray.init(address=cfg.ray_address, runtime_env={"env_vars": env_vars}, log_to_driver=False)
        else:
            ray.init(num_cpus=cfg.workers, include_dashboard=False, log_to_driver=False,
                     runtime_env={"env_vars": env_vars})
    try:
        n = cfg.workers or max(int(ray.cluster_resources().get("CPU", 1)), 1)
        fields = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
        actor_cls = ray.remote(num_cpus=1)(CollectorActor)
        actors = [actor_cls.remote(fields, info) for _ in range(n)]
        pending: dict[Any, Any] = {}

        def submit(actor: Any) -> None:
            running = 0  # episodes in flight count toward --steps only once written
            idx = source.next(running)
            if idx is not None:
                pending[actor.run.remote([idx])] = actor

        for actor in actors:
            submit(actor)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            actor = pending.pop(done[0])
            for record in ray.get(done[0]):
                on_episode(record)
            submit(actor)
        ray.get([a.close.remote() for a in actors])
    finally:
        if started:
            ray.shutdown()


_WORKER: CollectorActor | None = None  # one per pool process (see collect_with_processes)


def _init_worker(cfg_fields: dict[str, Any], info: dict[str, Any]) -> None:
    global _WORKER
    _WORKER = CollectorActor({**cfg_fields, "num_envs": 1, "vector_mode": "sync", "workers": 0,
                              "ray_address": None}, info)


def _run_episode(index: int) -> list[dict[str, Any]]:
    assert _WORKER is not None, "worker process not initialised"
    return _WORKER.run([index])


def _ready(_: int) -> int:
    import time

    time.sleep(0.2)  # hold this worker so the next ping starts (and initialises) another
    return os.getpid()


def collect_with_processes(cfg: Any, info: dict[str, Any], source: Any,
                           on_episode: Callable[[dict[str, Any]], None],
                           on_ready: Callable[[], None] = lambda: None) -> None:
    """Runs the episodes ``source`` hands out in ``cfg.num_envs`` local worker processes.

    Each process owns one env and its policy and writes whole episodes, exactly like a Ray actor
    (same seeds, same files); there is no lock-step, so on 2 cores two processes give close to
    2x, where gymnasium's AsyncVectorEnv waits for its slowest env every step (measured by
    ``benchmarks/bench_collect.py``). ``on_ready`` is called once every worker has started
    and built its env (the stepping loop starts there, as after a vector env's start-up).
    """
    import concurrent.futures as cf
    import multiprocessing as mp

    fields = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
    with cf.ProcessPoolExecutor(cfg.num_envs, mp_context=mp.get_context("spawn"),
                                initializer=_init_worker, initargs=(fields, info)) as pool:
        list(pool.map(_ready, range(cfg.num_envs)))
        on_ready()
        pending: set[cf.Future] = set()

        def submit() -> None:
            idx = source.next(0)  # in-flight episodes count toward --steps once written
            if idx is not None:
                pending.add(pool.submit(_run_episode, idx))

        for _ in range(cfg.num_envs):
            submit()
        while pending:
            done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in done:
                pending.discard(future)
                for record in future.result():
                    on_episode(record)
                submit()
