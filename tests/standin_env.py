"""A tiny annotated stand-in environment for the collector and fault tests (a helper module, not
a test module: tests import it, spawned workers and Ray actors import it by env id).

Frames encode (episode seed, step) so a test can tell which episode every recorded frame came
from: channel 0 holds ``seed % 251``, channel 1 the step. Episodes terminate after
``3 + seed % 5`` steps (so sub-envs of a vector env finish at different times) unless the time
limit truncates them first.

``ProbeEnv`` (``Probe-v0``) is the stand-in with a log: per worker process, every reset seed and
step goes to the file named by ``BYOG_PROBE_LOG`` (spawned workers inherit the environment); it
sleeps on the first step of the episode seeded ``BYOG_PROBE_SLOW_SEED`` and exits its process on
a step of ``BYOG_PROBE_DIE_SEED``. Built with ``gymnasium.make("standin_env:StandIn-v0")``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import ClassVar

import gymnasium as gym
import numpy as np

ENV_ID = "standin_env:StandIn-v0"


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
        obs[..., 1] = self.t % 256
        obs[0, 0, 2] = 7
        if self.length > 100:  # a long episode (ProbeEnv): incompressible rows, a large file
            obs[1:, :, 2] = np.random.default_rng([self.ep_seed, self.t]).integers(0, 256, (7, 8))
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


class ProbeEnv(StandInEnv):
    """The stand-in env, logging ``pid reset SEED`` / ``pid step SEED`` lines."""

    def _log(self, what: str) -> None:
        path = os.environ.get("BYOG_PROBE_LOG")
        if path:
            with open(path, "a") as f:
                f.write(f"{os.getpid()} {what} {self.ep_seed}\n")

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        out = super().reset(seed=seed, options=options)
        if str(self.ep_seed) == os.environ.get("BYOG_PROBE_LONG_SEED"):
            self.length = 3000
        self._log("reset")
        return out

    def step(self, action):
        out = super().step(action)
        self._log("step")
        if os.environ.get("BYOG_PROBE_STEP_S"):
            time.sleep(float(os.environ["BYOG_PROBE_STEP_S"]))
        if self.t == 1 and str(self.ep_seed) == os.environ.get("BYOG_PROBE_SLOW_SEED"):
            time.sleep(1.5)
        if str(self.ep_seed) == os.environ.get("BYOG_PROBE_DIE_SEED"):
            os._exit(3)
        return out


PROBE_ID = "standin_env:Probe-v0"
if PROBE_ID.split(":")[1] not in gym.registry:
    gym.register(id=PROBE_ID.split(":")[1], entry_point=ProbeEnv)
