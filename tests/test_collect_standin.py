"""A tiny annotated stand-in environment for the collector tests, and its own checks.

Frames encode (episode seed, step) so a test can tell which episode every recorded frame came
from: channel 0 holds ``seed % 251``, channel 1 the step. Episodes terminate after
``3 + seed % 5`` steps (so sub-envs of a vector env finish at different times) unless the time
limit truncates them first. Built with ``gymnasium.make("test_collect_standin:StandIn-v0")``.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

ENV_ID = "test_collect_standin:StandIn-v0"


class StandInEnv(gym.Env):
    """RGB uint8 [8, 8, 3] frames, Discrete(4) actions, ``info["annotations"]`` every step."""

    metadata: ClassVar[dict] = {"render_fps": 10, "render_modes": []}

    def __init__(self) -> None:
        self.observation_space = gym.spaces.Box(0, 255, (8, 8, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(4)
        self.ep_seed, self.t, self.length = 0, 0, 3

    def _obs(self) -> np.ndarray:
        obs = np.zeros((8, 8, 3), np.uint8)
        obs[..., 0] = self.ep_seed % 251
        obs[..., 1] = self.t
        obs[0, 0, 2] = 7
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self.ep_seed = int(self.np_random.integers(0, 2**31 - 1)) if seed is None else int(seed)
        self.t, self.length = 0, 3 + self.ep_seed % 5
        return self._obs(), {"annotations": [f"start {self.ep_seed % 251}"]}

    def step(self, action):
        self.t += 1
        terminated = self.t >= self.length
        annotations = [f"action {int(action)}"] if self.t % 2 == 0 else []
        if terminated:
            annotations.append("goal reached")
        reward = 1.0 if terminated else 0.0
        return self._obs(), reward, terminated, False, {"annotations": annotations, "success": terminated}


if ENV_ID.split(":")[1] not in gym.registry:
    gym.register(id=ENV_ID.split(":")[1], entry_point=StandInEnv)


def decode_frame(frame: np.ndarray) -> tuple[int, int]:
    """(seed % 251, step) encoded in a stand-in frame."""
    return int(frame[0, 0, 0]), int(frame[0, 0, 1])


def assert_same_episodes(a: Path, b: Path) -> None:
    """Datasets ``a`` and ``b`` hold the same episodes (seeds, frames, actions, annotations) and
    ``b`` is complete: valid on a deep check, no temp files left."""
    from collect.dataset import open_dataset

    da, db = open_dataset(a), open_dataset(b)
    db.validate(deep=True)
    assert [r["seed"] for r in db.records] == [r["seed"] for r in da.records]
    for ea, eb in zip(da.iter_episodes(), db.iter_episodes(), strict=True):
        np.testing.assert_array_equal(ea.frames, eb.frames)
        np.testing.assert_array_equal(ea.actions, eb.actions)
        assert ea.annotations == eb.annotations
    assert not list(Path(b).rglob("*.tmp"))


def test_standin_passes_check_env_and_encodes_seed_and_step():
    env = StandInEnv()
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=11)
    assert decode_frame(obs) == (11, 0) and info["annotations"] == ["start 11"]
    for t in range(1, 5):
        obs, r, term, _, info = env.step(1)
        assert decode_frame(obs) == (11, t)
    assert term and r == 1.0 and info["annotations"] == ["action 1", "goal reached"]
