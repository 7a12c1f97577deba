"""A toy env family with its own annotator: the "how to add an env" recipe, exercised by the tests.

This module is the whole recipe: an env with RGB frames, an annotator (a pure function of
consecutive infos), and two ``register_*`` calls. Use it by import path so that worker
processes import it too: ``byog_env.make("plugins.toy_env:toy")``,
``python collect/rollout.py --env plugins.toy_env:toy``,
``gymnasium.make("plugins.toy_env:byog/Toy-v0")``.
"""
from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

import byog_env
from byog_env import AnnotatedEnv, EnvId, sentence


class ToyEnv(gym.Env):
    """A lamp on a line of ``size`` cells: action 1 steps right, 0 left; reaching the right end
    lights the lamp (reward 1, terminated). Info: ``position``, ``visits`` (edge -> count)."""

    metadata: ClassVar[dict] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, size: int = 8, length: int = 20, render_mode: str | None = "rgb_array") -> None:
        self.size, self.length, self.render_mode = int(size), int(length), render_mode
        self.observation_space = gym.spaces.Box(0, 255, (16, 16, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.t, self.pos = 0, int(self.np_random.integers(self.size - 1))
        self.visits = {"left_edge": 0, "right_edge": 0}
        return self._frame(), self._info()

    def step(self, action):
        self.pos = int(np.clip(self.pos + (1 if int(action) else -1), 0, self.size - 1))
        self.t += 1
        self.visits["left_edge"] += self.pos == 0
        self.visits["right_edge"] += self.pos == self.size - 1
        reward = float(self.pos == self.size - 1)
        return self._frame(), reward, reward > 0, self.t >= self.length, self._info()

    def _frame(self) -> np.ndarray:
        frame = np.zeros((16, 16, 3), np.uint8)
        frame[:, self.pos * 16 // self.size] = 255
        return frame

    def _info(self) -> dict[str, Any]:
        return {"position": self.pos, "visits": dict(self.visits)}

    def render(self):
        return self._frame()


class ToyAnnotator:
    """``facing wall`` on reaching the left edge; reward and episode end as every family."""

    def __call__(self, prev_info, action, info) -> list[str]:
        out = []
        if prev_info is not None and info["visits"]["left_edge"] > prev_info["visits"]["left_edge"]:
            out.append(sentence("face", thing="wall"))
        if info["reward"] > 0:
            out.append(sentence("reward", sign="positive"))
        if info["terminated"]:
            out.append(sentence("done", reason="terminated"))
        elif info["truncated"]:
            out.append(sentence("done", reason="truncated"))
        return out


def make_toy(max_episode_steps: int | None = None, **kwargs: Any) -> gym.Env:
    """The family's entry point: the raw env wrapped with its registered annotator."""
    if max_episode_steps is not None:
        kwargs["length"] = max_episode_steps
    return AnnotatedEnv(ToyEnv(**kwargs), "toy")  # the registered annotator, by name


def toy_symbolic(env: gym.Env) -> np.ndarray:
    """The family's symbolic state (what a perfect perception sees): the lamp's cell, one-hot."""
    u = env.unwrapped
    return np.eye(u.size, dtype=np.float32)[u.pos]


byog_env.register_annotator("toy", "plugins.toy_env:ToyAnnotator")
byog_env.register_family(
    "toy", "plugins.toy_env:make_toy", annotator="toy",
    ids=[EnvId("toy", "byog/Toy-v0"), EnvId("toy-small", "byog/ToySmall-v0", {"size": 4})],
    info_columns=("visits",),  # recorded per episode: the edges visited at least once
    # what a study reads: the expert it collects with, the oracle-symbolic arm's state, the
    # live cap, and an ETA hint (seconds a collected step costs)
    policy="random", symbolic="plugins.toy_env:toy_symbolic", live_step_cap=20, collect_step_s=0.001,
)
