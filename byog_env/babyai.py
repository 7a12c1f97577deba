"""BabyAI and MiniGrid levels with RGB frames, the mission in info, and annotations."""
from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import cv2
import gymnasium as gym
import numpy as np

from byog_env.errors import EnvOptionError

VIEWS = ("full", "agent")


def thing_name(obj: Any) -> str:
    """``"red ball"``, ``"grey door"``, ``"goal"``, ``"wall"``; ``""`` for an empty cell."""
    if obj is None:
        return ""
    if obj.type in ("ball", "box", "key", "door"):
        return f"{obj.color} {obj.type}"
    return obj.type


class MiniGridRGB(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Replaces a MiniGrid observation by an RGB frame and adds state to info.

    Args:
        env: A MiniGrid/BabyAI env (``env.unwrapped`` stays the MiniGrid env, so
            ``minigrid.utils.baby_ai_bot.BabyAIBot(env.unwrapped)`` works).
        view: ``"full"`` (the whole grid, agent's field of view highlighted) or ``"agent"``
            (the agent's egocentric 7x7 view).
        size: Frame side in pixels; the grid is drawn at the smallest tile size covering it,
            padded to a square and area-resized (``cv2.INTER_AREA``) to ``size``.

    Info keys: ``mission`` (str), ``carrying`` and ``front`` (thing names, ``""`` when none),
    ``doors`` (``{cell index: "<color> <open|closed|locked>"}``), ``agent_pos`` (``int64 [2]``),
    ``agent_dir`` (int). Level generation's "Sampling rejected" prints are silenced.
    """

    def __init__(self, env: gym.Env, view: str = "full", size: int = 64) -> None:
        if view not in VIEWS:
            raise EnvOptionError(f"view must be one of {VIEWS}; got view={view!r}.")
        if int(size) < 8:
            raise EnvOptionError(f"Frame size must be at least 8 pixels; got size={size}.")
        gym.utils.RecordConstructorArgs.__init__(self, view=view, size=size)
        gym.Wrapper.__init__(self, env)
        self.view, self.size = view, int(size)
        self.observation_space = gym.spaces.Box(0, 255, (self.size, self.size, 3), np.uint8)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        with contextlib.redirect_stdout(io.StringIO()):
            _, info = self.env.reset(seed=seed, options=options)
        return self._frame(), self._info(info)

    def step(self, action):
        _, reward, terminated, truncated, info = self.env.step(action)
        return self._frame(), float(reward), terminated, truncated, self._info(info)

    def _frame(self) -> np.ndarray:
        u = self.env.unwrapped
        if self.view == "full":
            cells, pov = max(u.width, u.height), False
        else:
            cells, pov = u.agent_view_size, True
        tile = max(1, math.ceil(self.size / cells))
        img = u.get_frame(highlight=u.highlight, tile_size=tile, agent_pov=pov)  # [h, w, 3]
        h, w = img.shape[:2]
        if h != w:  # pad to a square so cells keep their aspect ratio
            side = max(h, w)
            canvas = np.zeros((side, side, 3), np.uint8)
            canvas[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = img
            img = canvas
        if img.shape[0] != self.size:
            img = cv2.resize(img, (self.size, self.size), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(img, dtype=np.uint8)

    def _info(self, info: dict) -> dict:
        u = self.env.unwrapped
        fx, fy = u.front_pos
        inside = 0 <= fx < u.width and 0 <= fy < u.height
        doors = {}
        for i, obj in enumerate(u.grid.grid):
            if obj is not None and obj.type == "door":
                state = "locked" if obj.is_locked else "open" if obj.is_open else "closed"
                doors[i] = f"{obj.color} {state}"
        return {
            **info,
            "mission": str(u.mission),
            "carrying": thing_name(u.carrying),
            "front": thing_name(u.grid.get(fx, fy)) if inside else "",
            "doors": doors,
            "agent_pos": np.array(u.agent_pos, dtype=np.int64),
            "agent_dir": int(u.agent_dir),
        }


def make_minigrid(
    env_id: str, view: str = "full", size: int = 64, max_episode_steps: int | None = None,
    render_mode: str | None = "rgb_array", **kwargs: Any,
) -> gym.Env:
    """Annotated BabyAI/MiniGrid level ``env_id`` (e.g. ``"BabyAI-GoToLocal-v0"``).

    Args:
        env_id: Registered MiniGrid/BabyAI gymnasium id.
        view: ``"full"`` or ``"agent"`` (see :class:`MiniGridRGB`).
        size: Frame side in pixels.
        max_episode_steps: Overrides the level's own step limit (``max_steps``).
        render_mode: Passed to the MiniGrid env (``render()`` draws the full grid).
        **kwargs: Passed to the level's constructor.
    """
    import minigrid  # noqa: F401  (registers the ids)

    from byog_env.annotators.minigrid import MiniGridAnnotator
    from byog_env.wrappers import AnnotatedEnv

    if max_episode_steps is not None:
        kwargs["max_steps"] = int(max_episode_steps)
    # disable_env_checker: the checker wraps the MiniGrid env; ours is run on the final env.
    with contextlib.redirect_stdout(io.StringIO()):  # some levels print while they construct
        base = gym.make(env_id, render_mode=render_mode, disable_env_checker=True, **kwargs)
    return AnnotatedEnv(MiniGridRGB(base, view=view, size=size), MiniGridAnnotator())
