"""Any registered gymnasium env with ``rgb_array`` rendering: frames from ``render()``."""
from __future__ import annotations

from typing import Any

import gymnasium as gym

from byog_env.errors import RenderModeError


def make_generic(
    env_id: str, size: int | None = None, max_episode_steps: int | None = None, **kwargs: Any
) -> gym.Env:
    """Annotated generic env: observation = ``render()`` frame, reward/termination events.

    Args:
        env_id: A registered gymnasium id whose env supports ``render_mode="rgb_array"``.
        size: Resize frames to ``size x size`` (``None`` keeps the render size).
        max_episode_steps: Step limit (gymnasium's ``TimeLimit``).
        **kwargs: Passed to ``gymnasium.make``.

    Raises:
        gymnasium.error.Error: The env cannot render ``rgb_array`` frames (message says so).
    """
    from gymnasium.wrappers import AddRenderObservation, ResizeObservation

    from byog_env.annotators.base import GenericAnnotator
    from byog_env.wrappers import AnnotatedEnv

    mode = kwargs.setdefault("render_mode", "rgb_array")
    if mode != "rgb_array":
        raise RenderModeError(
            f"byog_env takes frames from render(), so {env_id} needs render_mode='rgb_array'; "
            f"got render_mode={mode!r}. Leave render_mode out."
        )
    env = gym.make(env_id, max_episode_steps=max_episode_steps, **kwargs)
    modes = env.metadata.get("render_modes", [])
    if "rgb_array" not in modes:
        env.close()
        raise RenderModeError(
            f"{env_id} cannot give RGB frames: byog_env needs render_mode='rgb_array', and this "
            f"env offers render modes {list(modes)}. Pick an env that renders rgb_array."
        )
    env = AddRenderObservation(env, render_only=True)
    if size is not None:
        env = ResizeObservation(env, (int(size), int(size)))
    return AnnotatedEnv(env, GenericAnnotator())
