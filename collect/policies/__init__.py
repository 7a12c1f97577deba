"""Policies for the collector, built by name with `make_policy` from a registry.

Names (shared by every command that takes `--policy`):

- `random`: uniform samples from the action space.
- `crafter-scripted`: a rule-based Crafter agent that plans on `info["semantic"]`.
- `crafter-survivor`: `crafter-scripted` on a day/night timetable, nights sealed in a stone
  pocket (lives 2,000 steps on most seeds: long-episode narration).
- `babyai-bot`: minigrid's `BabyAIBot`; needs the live env object (`env.unwrapped` must be the
  MiniGrid env), so the collector must run it in-process or with sync vector envs.
- `sb3:<path.zip>`: a saved stable-baselines3 model (PPO, A2C, DQN, ...).
- `mixed:<policy>:<eps>`: with probability eps a random action, otherwise `<policy>`'s.

Adding a policy is one `register_policy` call naming a factory by import path (a string, as
gymnasium's `register` does, so the module imports only when the policy is built, also in
spawned workers and Ray actors)::

    register_policy("my-policy", "my_package.my_policy:make")  # make(arg, env, seed) -> Policy
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from byog_core.registry import Registry
from collect.policies.base import Policy, PolicyError, RandomPolicy

__all__ = ["POLICY_NAMES", "Policy", "PolicyError", "PolicySpec", "RandomPolicy", "make_policy",
           "needs_live_env", "play_episode", "policy_spec", "register_policy", "specs"]


@dataclass(frozen=True)
class PolicySpec:
    """A registered policy.

    Attributes:
        name: The name before the first colon (`random`, `sb3`, `mixed`).
        entry_point: ``"module:function"``; ``function(arg, env, seed) -> Policy`` where ``arg``
            is the text after ``name:`` (``None`` when the policy takes none); wrapping policies
            also get ``make_inner=make_policy``.
        usage: How users write it (``sb3:<path.zip>``); the name alone if it takes no argument.
        takes_arg: Whether the name is followed by ``:<arg>``.
        needs_live_env: The policy reads the live env object (``env.unwrapped``), so it cannot
            act on a subprocess (async) sub-env.
        wraps: The argument starts with another policy's name (``mixed:<policy>:<eps>``), whose
            needs this policy inherits.
    """

    name: str
    entry_point: str
    usage: str
    takes_arg: bool = False
    needs_live_env: bool = False
    wraps: bool = False


_REGISTRY: Registry[PolicySpec] = Registry(
    "policy", error=PolicyError, hint="Register one with collect.policies.register_policy(name, 'module:make').")


def register_policy(name: str, entry_point: str, *, usage: str | None = None, takes_arg: bool = False,
                    needs_live_env: bool = False, wraps: bool = False) -> PolicySpec:
    """Registers (or replaces) a policy; see :class:`PolicySpec` for the fields."""
    if ":" in name or not name:
        raise PolicyError(f"Policy name {name!r} must be non-empty and contain no ':'; its argument follows the colon.")
    spec = PolicySpec(name, entry_point, usage or name, takes_arg, needs_live_env, wraps)
    return _REGISTRY.register(name, spec, overwrite=True)


register_policy("random", "collect.policies.base:make_random")
register_policy("crafter-scripted", "collect.policies.crafter_scripted:make")
register_policy("babyai-bot", "collect.policies.babyai:make", needs_live_env=True)
register_policy("sb3", "collect.policies.sb3:make", usage="sb3:<path.zip>", takes_arg=True)
register_policy("mixed", "collect.policies.mixed:make", usage="mixed:<policy>:<eps>", takes_arg=True,
                wraps=True)
register_policy("crafter-survivor", "collect.policies.crafter_survivor:make")


def specs() -> list[PolicySpec]:
    """The registered policies, in registration order."""
    return [_REGISTRY[n] for n in _REGISTRY.registration_order()]


def _known() -> str:
    return ", ".join(s.usage for s in specs())


def __getattr__(name: str) -> Any:
    if name == "POLICY_NAMES":  # computed so that registered policies are listed too
        return tuple(s.usage for s in specs())
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def policy_spec(name: str) -> tuple[PolicySpec, str | None]:
    """The registered spec of a policy name and its argument (``sb3:a.zip`` → sb3, ``a.zip``).

    Raises:
        PolicyError: For an unknown name (listing the known ones) or a missing/extra argument.
    """
    name = name.strip()
    head, sep, arg = name.partition(":")
    spec = _REGISTRY.get(head)
    if spec is None:
        raise PolicyError(f"Unknown policy {name!r}. Valid policies: {_known()}.")
    if spec.takes_arg and not arg:
        raise PolicyError(f"Policy {name!r} needs an argument: write {spec.usage}.")
    if not spec.takes_arg and sep:
        raise PolicyError(f"Policy {head!r} takes no argument (got {name!r}); write {spec.usage}.")
    return spec, (arg if spec.takes_arg else None)


def needs_live_env(name: str) -> bool:
    """Whether the policy called ``name`` (or a policy it wraps) reads the live env object."""
    spec, arg = policy_spec(name)
    if spec.needs_live_env:
        return True
    return bool(spec.wraps and arg and needs_live_env(arg.rpartition(":")[0] or arg))


def make_policy(name: str, env: Any, seed: int | None = None) -> Policy:
    """Builds the policy called `name` for `env`.

    Args:
        name: A registered policy (e.g. `random`, `sb3:runs/ppo.zip`, `mixed:crafter-scripted:0.1`).
        env: The (single, non-vector) environment the policy will act in.
        seed: Seed for the policy's own randomness.

    Returns:
        A fresh `Policy`; call `reset(obs, info)` after each `env.reset`.

    Raises:
        PolicyError: For an unknown name, a bad argument, or a policy that cannot act in `env`.
    """
    name = name.strip()
    spec, arg = policy_spec(name)
    module, _, attr = spec.entry_point.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise PolicyError(f"Policy {spec.name!r} is registered as {spec.entry_point!r}, which cannot be "
                          f"imported ({e}); install its dependencies or fix the registration.") from None
    # a wrapping policy builds its inner one through this function (no import back up here)
    policy = factory(arg, env, seed, make_inner=make_policy) if spec.wraps else factory(arg, env, seed)
    policy.name = name
    return policy


def play_episode(env_name: str, policy: str, *, seed: int, max_steps: int,
                 ) -> tuple[Any, list[list[str]]]:
    """Play one episode of ``policy`` in the annotated env ``env_name`` without writing it:
    (frames uint8 [T, H, W, 3] with the reset frame first, per-frame annotations), at most
    ``max_steps`` frames. For benchmarks and tests that need a recorded episode in memory."""
    import numpy as np

    import byog_env

    env = byog_env.make(env_name)
    try:
        pol = make_policy(policy, env, seed=seed)
        obs, info = env.reset(seed=seed)
        pol.reset(obs, info)
        frames, ann = [obs], [list(info.get("annotations", []))]
        while len(frames) < max_steps:
            obs, _, term, trunc, info = env.step(pol.act(obs, info))
            frames.append(obs)
            ann.append(list(info.get("annotations", [])))
            if term or trunc:
                break
    finally:
        env.close()
    return np.stack(frames), ann

