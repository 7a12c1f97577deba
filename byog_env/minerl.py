"""MineRL tasks behind the ``minerl`` extra: frames from ``pov``, annotations from the obs dict.

MineRL itself is optional (it builds Minecraft with gradle and a Java 8 JDK at install time).
Without it, :func:`make_minerl` raises one ``DependencyNotInstalled`` error with the install
command, while the observation conversion and :class:`MineRLAnnotator` work on plain dicts.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import cv2
import gymnasium as gym
import numpy as np

from byog_env.annotators.minerl import (
    MineRLAnnotator,
    biome_name,
    info_from_inventory,
    minerl_info,
    parse_stat_key,
)
from byog_env.errors import ObservationError
from byog_env.families import MINERL_TASKS

__all__ = [
    "TASKS", "MineRLAnnotator", "MineRLEnv", "biome_name", "info_from_inventory", "make_minerl",
    "minerl_info", "observation_frame", "parse_stat_key",
]

TASKS = MINERL_TASKS
"""Short task name -> MineRL gym id (0.4 tasks; ``humansurvival`` is MineRL 1.0)."""

INSTALL_HINT = (
    'pip install "byog[minerl]" (MineRL needs a Java 8 JDK and downloads Minecraft with gradle '
    "while it installs)"
)


def observation_frame(obs: Mapping[str, Any], size: int = 64) -> np.ndarray:
    """The ``pov`` image of a MineRL observation as ``uint8 [size, size, 3]`` (area resize).

    Raises:
        ValueError: ``pov`` is missing or not an ``[H, W, 3]`` image.
    """
    pov = obs.get("pov") if isinstance(obs, Mapping) else None
    if pov is None:
        raise ObservationError("A MineRL observation needs a 'pov' image; this one has keys "
                         f"{sorted(obs) if isinstance(obs, Mapping) else type(obs).__name__}.")
    pov = np.asarray(pov)
    if pov.ndim != 3 or pov.shape[2] != 3:
        raise ObservationError(f"MineRL 'pov' must be [H, W, 3]; got shape {pov.shape}.")
    if pov.shape[:2] != (size, size):
        pov = cv2.resize(pov, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(pov, dtype=np.uint8)


def _import_minerl(task: str):
    try:
        import gym as old_gym  # MineRL registers its envs with the old gym package
        import minerl  # noqa: F401
    except ImportError as err:
        raise gym.error.DependencyNotInstalled(
            f"MineRL is not installed, so 'minerl-{task}' cannot be made: {INSTALL_HINT}."
        ) from err
    return old_gym


def _gymnasium_space(space: Any) -> gym.Space:
    """Converts a MineRL (old gym) action space into a gymnasium one (Enum -> Discrete)."""
    kind = type(space).__name__
    if kind == "Dict":
        return gym.spaces.Dict({k: _gymnasium_space(v) for k, v in space.spaces.items()})
    if kind == "Enum":
        return gym.spaces.Discrete(len(space.values))
    if kind == "Discrete":
        return gym.spaces.Discrete(int(space.n))
    return gym.spaces.Box(np.asarray(space.low), np.asarray(space.high), space.shape, space.dtype)


class MineRLEnv(gym.Env):
    """A MineRL env (old gym API) as a gymnasium 1.x env with an RGB frame observation.

    Actions are MineRL action dicts; ``Enum`` entries (``place``, ``craft``, …) are given by
    index in gymnasium's ``Discrete`` space and mapped back to their names. The info carries
    :func:`minerl_info` of the observation (inventory, mainhand, vitals, biome, stats).
    """

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(self, env: Any, size: int = 64, render_mode: str | None = "rgb_array") -> None:
        self._env, self.size, self.render_mode = env, int(size), render_mode
        self.observation_space = gym.spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)
        self.action_space = _gymnasium_space(env.action_space)
        self._enums = {k: list(v.values) for k, v in env.action_space.spaces.items()
                       if type(v).__name__ == "Enum"}
        self._frame: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self._env.seed(seed)
        obs = self._env.reset()
        self._frame = observation_frame(obs, self.size)
        return self._frame.copy(), minerl_info(obs)

    def step(self, action: Mapping[str, Any]):
        action = {k: (self._enums[k][int(v)] if k in self._enums else v) for k, v in action.items()}
        obs, reward, done, raw = self._env.step(action)
        self._frame = observation_frame(obs, self.size)
        info = minerl_info(obs)
        terminated = bool(done and not raw.get("TimeLimit.truncated", False))
        return self._frame.copy(), float(reward), terminated, bool(done and not terminated), info

    def render(self):
        return None if self._frame is None else self._frame.copy()

    def close(self):
        self._env.close()


def make_minerl(task: str, size: int = 64, max_episode_steps: int | None = None,
                **kwargs: Any) -> gym.Env:
    """Annotated MineRL task (``task`` is a key of :data:`TASKS` or a MineRL gym id).

    Raises:
        gymnasium.error.DependencyNotInstalled: MineRL is missing (the message has the command).
    """
    from byog_env.wrappers import AnnotatedEnv

    old_gym = _import_minerl(task)
    env_id = TASKS.get(task, task)
    env = MineRLEnv(old_gym.make(env_id, **kwargs), size=size)
    if max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, int(max_episode_steps))
    return AnnotatedEnv(env, MineRLAnnotator())
