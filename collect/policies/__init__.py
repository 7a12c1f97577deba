"""Policies for the collector, built by name with `make_policy`.

Names (shared by every command that takes `--policy`):

- `random`: uniform samples from the action space.
- `crafter-scripted`: a rule-based Crafter agent that plans on `info["semantic"]`.
- `babyai-bot`: minigrid's `BabyAIBot`; needs the live env object (`env.unwrapped` must be the
  MiniGrid env), so the collector must run it in-process or with sync vector envs.
- `sb3:<path.zip>`: a saved stable-baselines3 model (PPO, A2C, DQN, ...).
- `mixed:<policy>:<eps>`: with probability eps a random action, otherwise `<policy>`'s.
"""
from __future__ import annotations

import gymnasium as gym

from collect.policies.base import Policy, PolicyError, RandomPolicy

__all__ = ["POLICY_NAMES", "Policy", "PolicyError", "RandomPolicy", "make_policy"]

#: Policy names as users write them (the parametrised ones show their argument).
POLICY_NAMES: tuple[str, ...] = (
    "random",
    "crafter-scripted",
    "babyai-bot",
    "sb3:<path.zip>",
    "mixed:<policy>:<eps>",
)


def make_policy(name: str, env: gym.Env, seed: int | None = None) -> Policy:
    """Builds the policy called `name` for `env`.

    Args:
        name: One of `POLICY_NAMES` (e.g. `random`, `sb3:runs/ppo.zip`, `mixed:crafter-scripted:0.1`).
        env: The (single, non-vector) environment the policy will act in.
        seed: Seed for the policy's own randomness.

    Returns:
        A fresh `Policy`; call `reset(obs, info)` after each `env.reset`.

    Raises:
        PolicyError: For an unknown name, a bad argument, or a policy that cannot act in `env`.
    """
    name = name.strip()
    if name == "random":
        policy: Policy = RandomPolicy(env.action_space, seed=seed)
    elif name == "crafter-scripted":
        from collect.policies.crafter_scripted import CrafterScriptedPolicy

        policy = CrafterScriptedPolicy(env, seed=seed)
    elif name == "babyai-bot":
        from collect.policies.babyai import BabyAIBotPolicy

        policy = BabyAIBotPolicy(env)
    elif name.startswith("sb3:"):
        from collect.policies.sb3 import SB3Policy

        policy = SB3Policy(name[len("sb3:"):], env)
    elif name.startswith("mixed:"):
        from collect.policies.mixed import MixedPolicy, parse_mixed

        inner_name, eps = parse_mixed(name)
        inner = make_policy(inner_name, env, seed=seed)
        policy = MixedPolicy(inner, env.action_space, eps=eps, seed=seed)
    else:
        raise PolicyError(
            f"Unknown policy {name!r}. Valid policies: {', '.join(POLICY_NAMES)}."
        )
    policy.name = name
    return policy
