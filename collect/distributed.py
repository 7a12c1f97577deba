"""Collection in worker processes: Ray actors (``--workers N`` starts a local Ray,
``--ray-address auto|HOST:PORT`` joins a cluster) or, on one machine without Ray, a process pool
(``--num-envs N``, whose default ``--vector-mode process`` this is).

Each actor owns its envs and policies (a :class:`collect.rollout.Collector`) and writes the
episodes it is handed straight into the dataset directory, so the directory must be on a
filesystem every node can write (local disk for one machine, a shared mount for a cluster).
The driver hands out one episode index at a time (dynamic load balancing, same seeds as a local
run), and rebuilds ``meta/`` from the episode files at the end. Local worker processes pull their
indices from a shared queue and are warmed (env built and stepped once) before any is handed
out. Plain ``@ray.remote`` actors are used (RLlib pins an older gymnasium). Ray is the
``distributed`` extra.
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


WARM_UP_SEED = 2**31 - 1
"""Reset seed of a worker's warm-up step (``episode_seed`` never exceeds ``2**31 - 1`` and the
warm-up records nothing; every episode is reset with its own seed afterwards)."""

_POLL_S = 0.5  # how often the driver checks that its workers are alive while it waits


def warm_up(collector: Any) -> None:
    """Steps a one-env collector's env and policy once, outside any episode.

    Pays the one-off costs of a fresh process before it is timed or handed episodes: lazy
    imports, numba compiling Crafter's world generation, texture loading, the annotator's and
    the policy's first call. Episodes stay bit-identical: each one is reset with its own seed
    (a seeded reset restarts the simulator) and its policy reseeded and reset, as when one env
    runs many episodes in a row.
    """
    env, policy = collector.vec.envs[0], collector.policies[0]
    obs, info = env.reset(seed=WARM_UP_SEED)
    policy.seed(WARM_UP_SEED)
    policy.reset(obs, info)
    env.step(policy.act(obs, info))


def _sendable(exc: BaseException) -> BaseException:
    """The exception itself if it pickles (so the driver re-raises the same type and message)."""
    import pickle

    from collect.rollout import CollectError

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except (pickle.PickleError, TypeError, AttributeError, ValueError):
        return CollectError(f"{type(exc).__name__} in a collector worker: {exc}")


def _worker_main(wid: int, cfg_fields: dict[str, Any], info: dict[str, Any], tasks: Any, results: Any) -> None:
    """One worker process: build and warm a one-env collector, report ready, then run the
    episode indices pulled from the shared ``tasks`` queue until it hands out ``None``."""
    try:
        actor = CollectorActor({**cfg_fields, "num_envs": 1, "vector_mode": "sync", "workers": 0,
                                "ray_address": None}, info)
        warm_up(actor.collector)
        results.put(("ready", wid, os.getpid()))
        while (index := tasks.get()) is not None:
            results.put(("done", wid, actor.run([index])))
        actor.close()
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the driver reports it
        return
    except BaseException as e:  # noqa: BLE001 - any failure goes back to the driver, which raises it
        import traceback

        e.add_note("in collector worker " + str(wid) + ":\n" + "".join(traceback.format_tb(e.__traceback__)))
        results.put(("error", wid, _sendable(e)))


def collect_with_processes(cfg: Any, info: dict[str, Any], source: Any,
                           on_episode: Callable[[dict[str, Any]], None],
                           on_ready: Callable[[], None] = lambda: None) -> None:
    """Runs the episodes ``source`` hands out in ``cfg.num_envs`` local worker processes.

    Each process owns one env and its policy and writes whole episodes, exactly like a Ray actor
    (same seeds, same files); there is no lock-step, so on 2 cores two processes give close to
    2x, where gymnasium's AsyncVectorEnv waits for its slowest env every step (measured by
    ``benchmarks/bench_collect.py``).

    Scheduling is dynamic: the driver keeps one episode index per worker in a shared queue and
    whichever worker is free pulls the next one, so long and short episodes balance out (no
    static split). Every worker builds its env and steps it once (:func:`warm_up`) before it
    reports ready; ``on_ready`` is called once all of them have, and only then are episodes
    handed out, so the stepping loop timed from there contains no start-up.

    Raises:
        The worker's own exception (e.g. :class:`~collect.policies.PolicyError`), or
        :class:`~collect.rollout.CollectError` if a worker process dies.
    """
    import multiprocessing as mp
    import queue

    from collect.rollout import CollectError

    ctx = mp.get_context("spawn")  # no fork of a driver that runs threads (tqdm, pyarrow)
    fields = {k: getattr(cfg, k) for k in cfg.__dataclass_fields__}
    tasks, results = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_worker_main, args=(w, fields, info, tasks, results), daemon=True,
                         name=f"byog-collect-{w}") for w in range(cfg.num_envs)]

    def receive() -> tuple[str, int, Any]:
        while True:
            try:
                kind, wid, payload = results.get(timeout=_POLL_S)
            except queue.Empty:
                dead = [(p.name, p.exitcode) for p in procs if p.exitcode is not None]
                if dead:
                    raise CollectError(
                        f"Collector worker {dead[0][0]} died (exit code {dead[0][1]}); finished "
                        "episodes are saved: rerun with --resume to continue.") from None
                continue
            if kind == "error":
                raise payload
            return kind, wid, payload

    for p in procs:
        p.start()
    try:
        for _ in procs:
            receive()  # "ready"
        on_ready()
        running = 0
        for _ in procs:
            idx = source.next(0)  # in-flight episodes count toward --steps once written
            if idx is None:
                break
            tasks.put(idx)
            running += 1
        while running:
            _, _, records = receive()  # "done"
            running -= 1
            for record in records:
                on_episode(record)
            idx = source.next(0)
            if idx is not None:
                tasks.put(idx)
                running += 1
        for _ in procs:
            tasks.put(None)
        for p in procs:
            p.join(timeout=30)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(timeout=5)
        tasks.close()
        results.close()
