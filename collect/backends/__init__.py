"""Where a collection's episodes run, chosen from the settings.

Every backend has one signature, ``run(cfg, info, writer, source, on_episode, on_ready)``:
it runs the episode indices ``source`` hands out (an :class:`~collect.engine.EpisodeSource`),
calls ``on_episode(record)`` for each written episode and ``on_ready()`` once its envs are
built (the timed stepping loop starts there). Registered by import path:

- ``local``: one :class:`~collect.engine.Collector` in this process (one env, or a gymnasium
  sync/async vector env for ``--num-envs K --vector-mode sync|async``);
- ``process``: ``--num-envs K`` worker processes (the default ``--vector-mode process``);
- ``ray``: Ray actors (``--workers N`` or ``--ray-address A``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from byog_core.registry import Registry
from collect.config import CollectConfig
from collect.errors import CollectError

BACKENDS: Registry[Callable[..., None]] = Registry(
    "collection backend", error=CollectError,
    hint="Register one with collect.backends.BACKENDS.register(name, 'module:run').")
"""Backend name -> ``run`` function, registered by ``"module:function"`` entry point."""
BACKENDS.register("local", "collect.backends.local:run")
BACKENDS.register("process", "collect.backends.process:run")
BACKENDS.register("ray", "collect.backends.ray_actors:run")


def backend_name(cfg: CollectConfig) -> str:
    """The backend the settings ask for."""
    if cfg.workers or cfg.ray_address:
        return "ray"
    if cfg.vector_mode == "process" and cfg.num_envs > 1:
        return "process"
    return "local"


def get_backend(name: str) -> Callable[..., None]:
    """The ``run`` function of a registered backend (unknown names list the known ones)."""
    return BACKENDS[name]


def run_backend(cfg: CollectConfig, info: dict[str, Any], writer: Any, source: Any,
                on_episode: Callable[[dict[str, Any]], None], on_ready: Callable[[], None]) -> None:
    """Runs the collection in the backend :func:`backend_name` picks."""
    get_backend(backend_name(cfg))(cfg, info, writer, source, on_episode, on_ready)
