"""Symbolic state oracles: what a perfect perception would give the action head.

Each env family registers its symbolic state function (``EnvFamily.symbolic``; the built-in
ones are in :mod:`byog_env.symbolic`); :func:`symbolic_fn` finds it from an env name.

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

from byog_env.symbolic import babyai_symbolic, crafter_symbolic  # noqa: F401  (re-exported)
from experiments.errors import ExperimentError


def symbolic_fn(env_name: str) -> Callable[[gym.Env], np.ndarray]:
    """The symbolic state function ``env_name``'s family registers (``EnvFamily.symbolic``); an
    unknown env or a family without one is one error naming the fix."""
    import byog_env

    try:
        return byog_env.family(env_name).symbolic_state()
    except byog_env.EnvError as e:
        raise ExperimentError(f"No symbolic oracle for env {env_name!r}: {e}") from None


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


__all__ = ["SymbolicInfo", "babyai_symbolic", "crafter_symbolic", "replay_infos", "symbolic_fn"]
