"""A small deterministic env for the imagination tests: a sprite moved by the action.

A 8x8 sprite (four coloured quadrants, so its orientation is visible) on a plain grey 16x16
background (``size`` sets another side) moves 4 pixels (half its side) per step by the action (0 left, 1 right, 2 up, 3 down), wrapping
around the edges, so every action changes the frame and the next frame is a pure function of
the current one and the action. The start position comes from ``reset(seed=...)``. Registered
with gymnasium as ``SpriteTest-v0`` (``byog_env.make`` reads it through the generic family).
"""
from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

SIZE, SPRITE, STEP = 16, 8, 4
BACKGROUND = (110, 110, 110)
QUADRANTS = ((220, 40, 40), (40, 200, 60), (40, 80, 230), (240, 220, 40))
MOVES = ((-STEP, 0), (STEP, 0), (0, -STEP), (0, STEP))  # (dx, dy) per action
ENV_ID = "SpriteTest-v0"


def render_sprite(x: int, y: int, size: int = SIZE) -> np.ndarray:
    """The frame uint8 [size, size, 3] with the sprite's top-left corner at (x, y) (wrapping)."""
    frame = np.empty((size, size, 3), np.uint8)
    frame[:] = BACKGROUND
    h = SPRITE // 2
    for q, colour in enumerate(QUADRANTS):
        dy, dx = divmod(q, 2)
        rows = (y + dy * h + np.arange(h)) % size
        cols = (x + dx * h + np.arange(h)) % size
        frame[np.ix_(rows, cols)] = colour
    return frame


class SpriteEnv(gym.Env):
    """See the module docstring."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, render_mode: str | None = "rgb_array", length: int = 32,
                 size: int = SIZE) -> None:
        if size % STEP or size < SPRITE:
            raise ValueError(f"size must be a multiple of {STEP} and >= {SPRITE}, got {size}.")
        self.render_mode = render_mode
        self.length, self.size = length, size
        self.observation_space = gym.spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = gym.spaces.Discrete(len(MOVES))
        self.x = self.y = self.t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        cells = self.size // STEP
        self.x, self.y = (int(v) * STEP for v in self.np_random.integers(0, cells, 2))
        self.t = 0
        return self.render(), {}

    def step(self, action: int):
        dx, dy = MOVES[int(action)]
        self.x, self.y = (self.x + dx) % self.size, (self.y + dy) % self.size
        self.t += 1
        return self.render(), 0.0, False, self.t >= self.length, {}

    def render(self) -> np.ndarray:
        return render_sprite(self.x, self.y, self.size)


def register() -> str:
    """Register ``SpriteTest-v0`` with gymnasium (idempotent); returns the id."""
    if ENV_ID not in gym.registry:
        gym.register(ENV_ID, entry_point="plugins.sprite_env:SpriteEnv")
    return ENV_ID


def sprite_episodes(n: int, length: int = 32, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """``n`` episodes under uniformly random actions: frames uint8 [L+1, 16, 16, 3] and
    actions int64 [L+1] (``-1`` on the last frame, as the dataset stores them)."""
    rng = np.random.default_rng(seed)
    env = SpriteEnv(length=length)
    frames, actions = [], []
    for i in range(n):
        obs, _ = env.reset(seed=seed * 100_003 + i)
        fs, acts = [obs], []
        for _ in range(length):
            a = int(rng.integers(len(MOVES)))
            obs, *_ = env.step(a)
            fs.append(obs)
            acts.append(a)
        frames.append(np.stack(fs))
        actions.append(np.array(acts + [-1], np.int64))
    return frames, actions
