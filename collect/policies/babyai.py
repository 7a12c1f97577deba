"""`babyai-bot`: minigrid's scripted `BabyAIBot`, with its subgoal stack exposed as intent.

The bot plans on the live MiniGrid state (grid, agent position, instructions), so it needs the
environment OBJECT, not just observations: `env.unwrapped` must be the MiniGrid env. The
collector therefore runs it in-process or with synchronous vector envs (one policy per
sub-env, built from `vec_env.envs[i]`); it cannot drive async (subprocess) vector envs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from collect.policies.base import Policy, PolicyError

_REASONS = {
    None: "",
    "Open": " to open it",
    "PutNext": " to put the carried object next to it",
    "Explore": " to explore",
    "Unlock": " to unlock it with the key",
    "KeepKey": " and keep the key",
    "UnlockAndKeepKey": " to unlock it and keep the key",
}


def _describe_target(datum: Any, env: Any) -> str:
    if datum is None:
        return "the cell ahead"
    if hasattr(datum, "surface"):  # an ObjDesc from the mission
        return datum.surface(env)
    if hasattr(datum, "type") and hasattr(datum, "color"):  # a WorldObj such as a door
        return f"the {datum.color} {datum.type}"
    pos = np.asarray(datum).tolist()
    return f"position ({pos[0]}, {pos[1]})"


def describe_subgoal(subgoal: Any, env: Any) -> str:
    """One short sentence for a `BabyAIBot` subgoal, e.g. "go next to the red ball to open it"."""
    kind = type(subgoal).__name__.removesuffix("Subgoal")
    reason = _REASONS.get(subgoal.reason, f" ({str(subgoal.reason).lower()})")
    if kind == "GoNextTo":
        if subgoal.reason == "Explore":
            return f"explore towards {_describe_target(subgoal.datum, env)}"
        return f"go next to {_describe_target(subgoal.datum, env)}{reason}"
    if kind == "Open":
        return f"open the door ahead{reason}"
    if kind == "Close":
        return "close the door ahead"
    if kind == "Pickup":
        return "pick up the object ahead"
    if kind == "Drop":
        return "drop the carried object"
    return f"{kind.lower()}{reason}"


class BabyAIBotPolicy(Policy):
    """Drives a BabyAI env with `minigrid.utils.baby_ai_bot.BabyAIBot`.

    A fresh bot is built at every `reset` (the bot parses the new mission). `act` calls
    `bot.replan(action_taken)`, passing the action that was really executed when a wrapper
    (e.g. `mixed:`) overrode the bot's suggestion, so the bot replans after detours.

    Args:
        env: A BabyAI env whose `unwrapped` is the MiniGrid env (with `instrs`).
    """

    name = "babyai-bot"

    def __init__(self, env: Any) -> None:
        self.env = env
        base = getattr(env, "unwrapped", None)
        if base is None or not hasattr(base, "grid") or not hasattr(base, "agent_pos"):
            raise PolicyError(
                "babyai-bot needs a live BabyAI env whose env.unwrapped is the MiniGrid env (not"
                " an async vector env); use --env babyai-<level> with --num-envs 1 or sync vector envs."
            )
        self.bot: Any = None
        self._taken: Any = None
        self._suggested: Any = None

    def reset(self, obs: Any, info: dict[str, Any]) -> None:
        from minigrid.utils.baby_ai_bot import BabyAIBot

        base = self.env.unwrapped
        if not hasattr(base, "instrs"):
            raise PolicyError(
                f"babyai-bot only drives BabyAI levels (envs with instructions), got"
                f" {type(base).__name__}; use --env babyai-<level>."
            )
        self.bot = BabyAIBot(base)
        self._taken = None
        self._suggested = None

    def observe(self, action_taken: Any) -> None:
        self._taken = int(action_taken)

    def act(self, obs: Any, info: dict[str, Any]) -> int:
        if self.bot is None:
            raise PolicyError("babyai-bot: call reset(obs, info) after env.reset before act().")
        taken = self._taken
        if taken is not None and taken == self._suggested:
            taken = None  # the bot's own suggestion was executed
        action = self.bot.replan(taken)
        self._suggested = int(action)
        self._taken = None
        return self._suggested

    def intent(self) -> list[str]:
        """The subgoal stack as sentences, the current subgoal first."""
        if self.bot is None:
            return []
        base = self.env.unwrapped
        return [describe_subgoal(sg, base) for sg in reversed(self.bot.stack)]


def make(arg: str | None, env: Any, seed: int | None) -> BabyAIBotPolicy:
    """Registry factory of `babyai-bot` (deterministic: the seed is unused)."""
    return BabyAIBotPolicy(env)
