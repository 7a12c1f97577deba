"""The in-process backend: one :class:`~collect.engine.Collector` (one env or a vector env)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from collect.config import CollectConfig
from collect.engine import Collector


def run(cfg: CollectConfig, info: dict[str, Any], writer: Any, source: Any,
        on_episode: Callable[[dict[str, Any]], None], on_ready: Callable[[], None]) -> None:
    """Steps ``cfg.num_envs`` envs here (sync or async vector env) and writes with ``writer``."""
    collector = Collector(cfg, writer, on_episode=on_episode)
    try:
        on_ready()
        collector.run(source.next)
    finally:
        collector.close()
