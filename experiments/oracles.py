"""Symbolic state oracles: what a perfect perception would give the action head.

Per env family, a pure function of the live env (``env.unwrapped``) gives a flat float vector:

* BabyAI / MiniGrid: the agent's egocentric 7x7 grid (MiniGrid's own ``gen_obs()["image"]``:
  object type, colour, door state per cell, one-hot) plus the carried object's type.
  The agent's heading is implicit in the egocentric frame.
* Crafter: the 9x9 semantic map around the player (material/object ids, one-hot), the
  inventory (counts / 9) and the facing direction.

:class:`SymbolicInfo` adds it to ``info["symbolic"]`` on reset and every step, so the same
code serves live evaluation and offline replay (:func:`replay_infos`: a dataset episode is
re-run from its recorded seed with its recorded actions; the replayed frames must equal the
stored ones, which proves the replay). Row ``t``'s vector describes arriving at ``o_t``: it
depends on ``a_0 … a_{t-1}`` only, never on the action ``a_t`` the head must predict.
"""
from __future__ import annotations

import contextlib
import io
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from experiments.errors import ExperimentError

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


SYMBOLIC: dict[str, Callable[[gym.Env], np.ndarray]] = {"babyai": babyai_symbolic,
                                                        "minigrid": babyai_symbolic,
                                                        "crafter": crafter_symbolic}
"""Env family (the short name's prefix) -> its symbolic state function."""


def symbolic_fn(env_name: str) -> Callable[[gym.Env], np.ndarray]:
    """The symbolic state function of ``env_name``'s family; an error names the known ones."""
    family = env_name.split("-", 1)[0].lower()
    if family not in SYMBOLIC:
        raise ExperimentError(f"No symbolic oracle for env {env_name!r}; families with one: "
                              f"{', '.join(sorted(SYMBOLIC))} (add one to experiments.oracles.SYMBOLIC).")
    return SYMBOLIC[family]


class SymbolicInfo(gym.Wrapper):
    """Adds ``info["symbolic"]`` (the family's symbolic state, float32 [D]) to every info."""

    def __init__(self, env: gym.Env, env_name: str) -> None:
        super().__init__(env)
        self.fn = symbolic_fn(env_name)

    def reset(self, **kwargs: Any):
        obs, info = self.env.reset(**kwargs)
        return obs, {**info, "symbolic": self.fn(self.env)}

    def step(self, action: Any):
        obs, r, term, trunc, info = self.env.step(action)
        return obs, r, term, trunc, {**info, "symbolic": self.fn(self.env)}


def replay_infos(env_name: str, env_kwargs: dict[str, Any], seed: int, actions: np.ndarray,
                 frames: np.ndarray) -> list[dict[str, Any]]:
    """Re-run one recorded episode and return each row's ``{"symbolic": …}``.

    Raises:
        ExperimentError: the replayed frames differ from the recorded ones (the env, its
            options or its version differ from the collection's).
    """
    import byog_env

    with contextlib.redirect_stdout(io.StringIO()):
        env = SymbolicInfo(byog_env.make(env_name, **env_kwargs), env_name)
        try:
            obs, info = env.reset(seed=int(seed))
            out = [{"symbolic": info["symbolic"]}]
            for t in range(len(frames) - 1):
                if not np.array_equal(obs, frames[t]):
                    raise ExperimentError(
                        f"Replaying {env_name} seed {seed} diverged from the dataset at row {t}; "
                        "collect the dataset with this code's env (and record --env-kwargs).")
                obs, _, _, _, info = env.step(int(actions[t]))
                out.append({"symbolic": info["symbolic"]})
        finally:
            env.close()
    return out


__all__ = ["SYMBOLIC", "SymbolicInfo", "babyai_symbolic", "crafter_symbolic", "replay_infos",
           "symbolic_fn"]
