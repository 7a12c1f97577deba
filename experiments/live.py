"""Live evaluation of a policy in an annotated env: success rate, return, Crafter score.

Episodes run in synchronised rounds of ``num_envs`` environments (all reset together, each with
its own seed ``seed + i``); an env that finishes keeps its slot idle until the round ends, so a
batched policy keeps one aligned state (KV cache) for the whole round. The same code evaluates
cloned policies and the references (the BabyAI bot, a random policy) through
:class:`PerEnvPolicies`.
"""
from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
from tqdm import tqdm


class BatchActor(Protocol):
    """A policy acting in ``n`` environments at once."""

    def reset(self, envs: list[gym.Env], obs: list[np.ndarray], infos: list[dict]) -> None: ...

    def act(self, obs: list[np.ndarray], infos: list[dict], active: list[bool]) -> list[Any]: ...


class PerEnvPolicies:
    """A :class:`BatchActor` made of one ``collect.policies`` policy per environment."""

    def __init__(self, name: str, seed: int = 0) -> None:
        self.name, self.seed = name, seed
        self.policies: list[Any] = []

    def reset(self, envs: list[gym.Env], obs: list[np.ndarray], infos: list[dict]) -> None:
        from collect.policies import make_policy

        self.policies = [make_policy(self.name, env, seed=self.seed + i) for i, env in enumerate(envs)]
        for p, o, inf in zip(self.policies, obs, infos):
            p.reset(o, inf)

    def act(self, obs: list[np.ndarray], infos: list[dict], active: list[bool]) -> list[Any]:
        return [p.act(o, inf) if a else 0 for p, o, inf, a in zip(self.policies, obs, infos, active)]


@dataclass
class EpisodeResult:
    """One live episode."""

    seed: int
    ret: float
    length: int
    success: bool
    achievements: dict[str, int]


def make_env(env_name: str, max_steps: int | None, env_kwargs: dict[str, Any] | None = None,
             symbolic: bool = False) -> gym.Env:
    """``byog_env.make`` (which silences BabyAI's level-sampling prints itself).

    ``max_steps`` None keeps the env's own time limit; ``env_kwargs`` are the dataset's
    collection options (view, size); ``symbolic`` adds ``info["symbolic"]``
    (:class:`experiments.oracles.SymbolicInfo`)."""
    import byog_env

    kw = dict(env_kwargs or {})
    if max_steps is not None:
        kw["max_episode_steps"] = max_steps
    env = byog_env.make(env_name, **kw)
    if symbolic:
        from experiments.oracles import SymbolicInfo

        env = SymbolicInfo(env, env_name)
    return env


class ActionPriorActor:
    """The observation-blind reference: samples (or takes the argmax of) the demonstrations'
    action frequencies, whatever it sees."""

    def __init__(self, freqs: np.ndarray, *, sample: bool = True, seed: int = 0) -> None:
        self.p = np.asarray(freqs, dtype=float) / float(np.sum(freqs))
        self.sample, self.rng = bool(sample), np.random.default_rng(seed)

    def reset(self, envs: list[gym.Env], obs: list[np.ndarray], infos: list[dict]) -> None:
        pass

    def act(self, obs: list[np.ndarray], infos: list[dict], active: list[bool]) -> list[int]:
        if not self.sample:
            return [int(np.argmax(self.p))] * len(obs)
        return [int(a) for a in self.rng.choice(len(self.p), size=len(obs), p=self.p)]


def run_episodes(env_name: str, actor: BatchActor, *, episodes: int, seed: int = 0,
                 num_envs: int = 8, max_steps: int | None = None, progress: bool = False,
                 env_kwargs: dict[str, Any] | None = None, symbolic: bool = False,
                 ) -> list[EpisodeResult]:
    """Roll ``actor`` out for ``episodes`` episodes (seeds ``seed .. seed+episodes-1``).

    Success: the episode terminated with positive reward (BabyAI's goal reached); for Crafter
    see :func:`summarize` (achievements).
    """
    out: list[EpisodeResult] = []
    bar = tqdm(total=episodes, desc=f"live {env_name}", disable=not progress, leave=False)
    envs = [make_env(env_name, max_steps, env_kwargs, symbolic) for _ in range(min(num_envs, episodes))]
    try:
        while len(out) < episodes:
            n = min(len(envs), episodes - len(out))
            seeds = [seed + len(out) + i for i in range(n)]
            obs, infos = [], []
            for env, s in zip(envs[:n], seeds):
                with contextlib.redirect_stdout(io.StringIO()):
                    o, inf = env.reset(seed=s)
                obs.append(o)
                infos.append(inf)
            actor.reset(envs[:n], obs, infos)
            active = [True] * n
            ret, length, success = [0.0] * n, [0] * n, [False] * n
            ach: list[dict[str, int]] = [{} for _ in range(n)]
            while any(active):
                actions = actor.act(obs, infos, active)
                for i in range(n):
                    if not active[i]:
                        continue
                    with contextlib.redirect_stdout(io.StringIO()):
                        o, r, term, trunc, inf = envs[i].step(actions[i])
                    obs[i], infos[i] = o, inf
                    ret[i] += float(r)
                    length[i] += 1
                    if "achievements" in inf:
                        ach[i] = {k: int(v) for k, v in inf["achievements"].items()}
                    if term or trunc:
                        active[i] = False
                        success[i] = bool(term and r > 0)
            out += [EpisodeResult(seeds[i], ret[i], length[i], success[i], ach[i]) for i in range(n)]
            bar.update(n)
    finally:
        bar.close()
        for env in envs:
            env.close()
    return out


def summarize(results: list[EpisodeResult]) -> dict[str, Any]:
    """``live/success_rate``, ``live/return``, ``live/length``; with Crafter achievements also
    ``live/crafter_score`` and ``live/ach_<name>`` (success rate in %)."""
    from byog_env.crafter import ACHIEVEMENTS, crafter_score

    out = {"live/episodes": float(len(results)),
           "live/episode_success": [float(r.success) for r in results],
           "live/success_rate": float(np.mean([r.success for r in results])),
           "live/return": float(np.mean([r.ret for r in results])),
           "live/length": float(np.mean([r.length for r in results]))}
    if results and any(r.achievements for r in results):
        rates = [100.0 * float(np.mean([r.achievements.get(a, 0) > 0 for r in results]))
                 for a in ACHIEVEMENTS]
        out["live/crafter_score"] = float(crafter_score(rates))
        out.update({f"live/ach_{a}": p for a, p in zip(ACHIEVEMENTS, rates)})
    return out


def evaluate_live(env_name: str, actor: BatchActor, **kwargs: Any) -> dict[str, Any]:
    """:func:`run_episodes` then :func:`summarize`."""
    return summarize(run_episodes(env_name, actor, **kwargs))


__all__ = ["ActionPriorActor", "BatchActor", "EpisodeResult", "PerEnvPolicies", "evaluate_live", "make_env",
           "run_episodes", "summarize"]
