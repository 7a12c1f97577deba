"""The `Policy` interface shared by every collector policy, and the uniform-random policy."""
from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np

from collect.errors import PolicyError  # noqa: F401  (re-exported: policies raise it)


class Policy:
    """A stateful per-environment controller used by the collector.

    The collector calls `reset(obs, info)` after every `env.reset` and `act(obs, info)` once per
    step, always with the observation and info the environment returned last. Subclasses keep
    whatever per-episode state they need between the two.

    Attributes:
        name: The name the policy was built from (as given to `make_policy`).
    """

    name: str = "policy"

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        """Starts a new episode; `obs`/`info` are what `env.reset` returned."""

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> Any:
        """Returns the action for the current step (an element of `env.action_space`)."""
        raise NotImplementedError

    def observe(self, action_taken: Any) -> None:
        """Tells the policy which action was actually executed after its last `act`.

        Wrappers that override the policy's choice (e.g. `mixed:`) call this so that stateful
        policies can track the real trajectory; without a call the policy assumes its own
        action was taken.
        """

    def intent(self) -> list[str]:
        """Short sentences describing what the policy is trying to do now (may be empty)."""
        return []

    def seed(self, seed: int | None) -> None:
        """Reseeds the policy's own randomness (no-op for deterministic policies)."""


class RandomPolicy(Policy):
    """Samples uniformly from the action space with its own seeded generator.

    Args:
        action_space: The environment's action space.
        seed: Seed of the policy's RNG (independent of the environment's).
    """

    name = "random"

    def __init__(self, action_space: gym.Space, seed: int | None = None) -> None:
        # A private copy so reseeding never touches the env's own space RNG.
        self.action_space = copy.deepcopy(action_space)
        self.seed(seed)

    def seed(self, seed: int | None) -> None:
        self.action_space.seed(seed)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> Any:
        return self.action_space.sample()


def make_random(arg: str | None, env: gym.Env, seed: int | None) -> RandomPolicy:
    """Registry factory of `random`."""
    return RandomPolicy(env.action_space, seed=seed)
