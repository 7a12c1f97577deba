"""A collector policy registered from outside the collect package (the "how to add a collector
policy" recipe: one new file, zero edits): ``always-first`` takes the first action every step,
``every:<n>`` changes action every n steps. Use it as
``python collect/rollout.py --plugins plugins.toy_policy --policy every:3 ...``."""
from __future__ import annotations

from typing import Any

from collect.policies import Policy, register_policy


class Every(Policy):
    """Cycles through the discrete actions, holding each for ``n`` steps."""

    def __init__(self, n: int, actions: int) -> None:
        self.n, self.actions, self.t = n, actions, 0

    def reset(self, obs: Any, info: dict) -> None:
        self.t = 0

    def act(self, obs: Any, info: dict) -> int:
        a = (self.t // self.n) % self.actions
        self.t += 1
        return a


def make_every(arg: str | None, env: Any, seed: int | None) -> Every:
    return Every(int(arg) if arg else 10**9, int(env.action_space.n))


register_policy("always-first", "plugins.toy_policy:make_every")
register_policy("every", "plugins.toy_policy:make_every", takes_arg=True, usage="every:<n>")
