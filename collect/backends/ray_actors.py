"""The Ray backend: ``--workers N`` starts a local Ray, ``--ray-address auto|HOST:PORT`` joins a
cluster.

Each actor owns its envs and policies (a :class:`collect.engine.CollectorActor`) and writes the
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

from collect.engine import CollectorActor
from collect.errors import CollectRunError

REPO_ROOT = Path(__file__).resolve().parents[2]


def import_ray() -> Any:
    """Imports Ray with the project's defaults, or raises a clear install hint."""
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    try:
        import ray
    except ImportError:
        raise CollectRunError('Ray is needed for --workers/--ray-address: pip install "byog[distributed]".') from None
    return ray


def collect_with_ray(cfg: Any, info: dict[str, Any], source: Any,
                     on_episode: Callable[[dict[str, Any]], None]) -> None:
    """Runs the episodes ``source`` hands out in Ray actors (see the module docstring).

    Args:
        cfg: The :class:`~collect.config.CollectConfig` (``workers`` or ``ray_address`` set).
        info: The dataset's ``info`` (actors write episode files with it).
        source: An :class:`~collect.engine.EpisodeSource`.
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
        pending: dict[Any, tuple[Any, int]] = {}
        retry: list[int] = []  # episodes of actors that died (a lost node): run them elsewhere

        def submit(actor: Any) -> None:
            # episodes in flight count toward --steps only once written
            idx = retry.pop(0) if retry else source.next(0)
            if idx is not None:
                pending[actor.run.remote([idx])] = (actor, idx)

        for actor in actors:
            submit(actor)
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            actor, idx = pending.pop(done[0])
            try:
                records = ray.get(done[0])
            except ray.exceptions.RayActorError as e:
                actors.remove(actor)
                retry.append(idx)
                print(f"warning: a Ray collector actor died ({type(e).__name__}: a lost node?); episode {idx} "
                      f"goes to another actor ({len(actors)} left).", file=sys.stderr)
                if not actors:
                    raise CollectRunError("Every Ray collector actor died; finished episodes are saved: rerun "
                                       "with --resume to continue.") from None
                if not pending:
                    submit(actors[0])
                continue
            for record in records:
                on_episode(record)
            submit(actor)
        ray.get([a.close.remote() for a in actors])
    finally:
        if started:
            ray.shutdown()


def run(cfg: Any, info: dict[str, Any], writer: Any, source: Any,
        on_episode: Callable[[dict[str, Any]], None], on_ready: Callable[[], None]) -> None:
    """Backend entry point (see :mod:`collect.backends`)."""
    on_ready()
    collect_with_ray(cfg, info, source, on_episode)
