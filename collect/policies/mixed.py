"""`mixed:<policy>:<eps>`: an epsilon-mixture of a policy and uniform random actions."""
from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from collect.policies.base import Policy, PolicyError


def parse_mixed(name: str) -> tuple[str, float]:
    """Splits `mixed:<policy>:<eps>` into the inner policy name and eps in [0, 1].

    The inner name may itself contain colons (`mixed:sb3:runs/a.zip:0.1`), so eps is the part
    after the LAST colon.

    Raises:
        PolicyError: When the name is malformed or eps is not a number in [0, 1].
    """
    body = name.removeprefix("mixed:")
    inner, sep, eps_text = body.rpartition(":")
    if not sep or not inner:
        raise PolicyError(
            f"Policy {name!r} is malformed: write mixed:<policy>:<eps>, e.g. mixed:random:0.1."
        )
    try:
        eps = float(eps_text)
    except ValueError:
        raise PolicyError(
            f"Policy {name!r}: eps {eps_text!r} is not a number; write mixed:<policy>:<eps> with"
            " eps in [0, 1], e.g. mixed:crafter-scripted:0.1."
        ) from None
    if not 0.0 <= eps <= 1.0:
        raise PolicyError(f"Policy {name!r}: eps must lie in [0, 1], got {eps}.")
    return inner, eps


class MixedPolicy(Policy):
    """Acts randomly with probability `eps`, otherwise like `inner`.

    The inner policy is queried on EVERY step (its action is simply discarded on random
    steps), so stateful policies such as `babyai-bot` keep tracking the episode and replan
    after the random detour.

    Args:
        inner: The policy to mix.
        action_space: The environment's action space (for the random actions).
        eps: Probability of a random action at each step.
        seed: Seed of the coin flips and the random actions.
    """

    def __init__(
        self, inner: Policy, action_space: gym.Space, *, eps: float, seed: int | None = None
    ) -> None:
        if not 0.0 <= eps <= 1.0:
            raise PolicyError(f"mixed policy: eps must lie in [0, 1], got {eps}.")
        self.inner = inner
        self.eps = eps
        self.action_space = copy.deepcopy(action_space)
        self.seed(seed)
        #: Whether the last `act` returned a random action (for diagnostics/tests).
        self.last_was_random = False

    def seed(self, seed: int | None) -> None:
        self._rng = np.random.default_rng(seed)
        self.action_space.seed(None if seed is None else seed + 1)

    def reset(self, obs: np.ndarray, info: dict[str, Any]) -> None:
        self.inner.reset(obs, info)

    def act(self, obs: np.ndarray, info: dict[str, Any]) -> Any:
        inner_action = self.inner.act(obs, info)
        self.last_was_random = bool(self._rng.random() < self.eps)
        if not self.last_was_random:
            return inner_action
        action = self.action_space.sample()
        self.inner.observe(action)
        return action

    def intent(self) -> list[str]:
        return self.inner.intent()


def make(arg: str | None, env: gym.Env, seed: int | None, make_inner: Callable[..., Policy]) -> MixedPolicy:
    """Registry factory of `mixed:<policy>:<eps>` (``arg`` is ``<policy>:<eps>``; ``make_inner``
    is ``make_policy``, passed in because this policy wraps another)."""
    inner_name, eps = parse_mixed(f"mixed:{arg}")
    return MixedPolicy(make_inner(inner_name, env, seed=seed), env.action_space, eps=eps, seed=seed)
