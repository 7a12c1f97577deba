"""Symbolic states of the built-in env families: what a perfect perception would give an action
head, a pure function of the live env (``env.unwrapped``) as a flat float32 vector. Each family
names its function in its registration (``EnvFamily.symbolic``); a study reads it from there.

* BabyAI / MiniGrid: the agent's egocentric 7x7 grid (MiniGrid's own ``gen_obs()["image"]``:
  object type, colour, door state per cell, one-hot) plus the carried object's type.
  The agent's heading is implicit in the egocentric frame.
* Crafter: the 9x9 semantic map around the player (material/object ids, one-hot), the
  inventory (counts / 9) and the facing direction.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np

BABYAI_OBJECTS, BABYAI_COLORS, BABYAI_STATES = 11, 6, 3
CRAFTER_IDS, CRAFTER_VIEW = 20, 9


def babyai_symbolic(env: gym.Env) -> np.ndarray:
    """Egocentric 7x7 grid one-hot (type, colour, state) + carried type: float32 [7*7*20 + 11]."""
    u = env.unwrapped
    img = np.asarray(u.gen_obs()["image"], dtype=np.int64)  # [7, 7, 3]
    parts = [np.eye(BABYAI_OBJECTS, dtype=np.float32)[img[..., 0].clip(0, BABYAI_OBJECTS - 1)],
             np.eye(BABYAI_COLORS, dtype=np.float32)[img[..., 1].clip(0, BABYAI_COLORS - 1)],
             np.eye(BABYAI_STATES, dtype=np.float32)[img[..., 2].clip(0, BABYAI_STATES - 1)]]
    carry = np.zeros(BABYAI_OBJECTS, np.float32)
    if u.carrying is not None:
        from minigrid.core.constants import OBJECT_TO_IDX

        carry[OBJECT_TO_IDX[u.carrying.type]] = 1.0
    return np.concatenate([np.concatenate(parts, -1).ravel(), carry])


def crafter_symbolic(env: gym.Env) -> np.ndarray:
    """9x9 semantic map around the player one-hot + inventory / 9 + facing: float32."""
    u = env.unwrapped
    sim = u.simulator
    sem = np.asarray(sim._sem_view(), dtype=np.int64)  # [64, 64] world map of ids
    player = sim._player
    r = CRAFTER_VIEW // 2
    padded = np.pad(sem, r, constant_values=0)
    x, y = int(player.pos[0]) + r, int(player.pos[1]) + r
    local = padded[x - r:x + r + 1, y - r:y + r + 1].clip(0, CRAFTER_IDS - 1)  # [9, 9]
    inv = np.asarray([float(v) / 9.0 for _, v in sorted(player.inventory.items())], np.float32)
    facing = np.zeros(4, np.float32)
    facing[{(-1, 0): 0, (1, 0): 1, (0, -1): 2, (0, 1): 3}.get(tuple(int(v) for v in player.facing), 0)] = 1
    return np.concatenate([np.eye(CRAFTER_IDS, dtype=np.float32)[local].ravel(), inv, facing])


__all__ = ["babyai_symbolic", "crafter_symbolic"]
