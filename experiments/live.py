"""Live evaluation of a policy in an annotated env: success rate, return, Crafter score.

``num_envs`` environments play the episodes (seeds ``seed .. seed + episodes - 1``). An actor
that restarts envs on its own (``restarts_envs``: its state is per env, e.g. vector narration,
:class:`agents.narrate.vector_narration.VectorNarrator`) gets each env's next episode as soon as the
env's last one ends, with ``starts`` marking the envs whose frame begins an episode, so no env
waits for the slowest. Any other actor runs in synchronised rounds (all envs reset together; an
env that finishes idles until the round ends, so a batched state stays aligned). The same code
evaluates cloned policies and the references (the BabyAI bot, a random policy) through
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
    """A policy acting in ``n`` environments at once.

    An actor with ``restarts_envs = True`` takes ``act(..., starts=[bool] * n)``: the envs whose
    observation is the first of a new episode (after the first :meth:`reset`)."""

    def reset(self, envs: list[gym.Env], obs: list[np.ndarray], infos: list[dict]) -> None: ...

    def act(self, obs: list[np.ndarray], infos: list[dict], active: list[bool]) -> list[Any]: ...


class PerEnvPolicies:
    """A :class:`BatchActor` made of one ``collect.policies`` policy per environment (in
    rounds: each round draws fresh policies seeded ``seed + slot``, so a reference's episodes
    do not depend on which env finished first)."""

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
    """Roll ``actor`` out for ``episodes`` episodes (seeds ``seed .. seed+episodes-1``), in
    seed order.

    Success: the episode terminated with positive reward (BabyAI's goal reached); for Crafter
    see :func:`summarize` (achievements).
    """
    bar = tqdm(total=episodes, desc=f"live {env_name}", disable=not progress, leave=False)
    envs = [make_env(env_name, max_steps, env_kwargs, symbolic) for _ in range(min(num_envs, episodes))]
    play = _play_continuously if getattr(actor, "restarts_envs", False) else _play_rounds
    try:
        out = play(envs, actor, episodes, seed, bar)
    finally:
        bar.close()
        for env in envs:
            env.close()
    return sorted(out, key=lambda r: r.seed)


class _Episode:
    """One env slot's running episode."""

    def __init__(self, env: gym.Env, seed: int) -> None:
        self.env, self.seed = env, seed
        self.ret, self.length, self.ach = 0.0, 0, {}
        with contextlib.redirect_stdout(io.StringIO()):
            self.obs, self.info = env.reset(seed=seed)

    def step(self, action: Any) -> EpisodeResult | None:
        """Step the env; the episode's result once it ended, else None."""
        with contextlib.redirect_stdout(io.StringIO()):
            self.obs, r, term, trunc, self.info = self.env.step(action)
        self.ret += float(r)
        self.length += 1
        if "achievements" in self.info:
            self.ach = {k: int(v) for k, v in self.info["achievements"].items()}
        if term or trunc:
            return EpisodeResult(self.seed, self.ret, self.length, bool(term and r > 0), self.ach)
        return None


def _play_rounds(envs: list[gym.Env], actor: BatchActor, episodes: int, seed: int, bar: Any) -> list[EpisodeResult]:
    """Synchronised rounds: every env resets together; finished envs idle until the round ends."""
    out: list[EpisodeResult] = []
    while len(out) < episodes:
        n = min(len(envs), episodes - len(out))
        eps = [_Episode(env, seed + len(out) + i) for i, env in enumerate(envs[:n])]
        actor.reset(envs[:n], [e.obs for e in eps], [e.info for e in eps])
        done: list[EpisodeResult | None] = [None] * n
        while any(d is None for d in done):
            active = [d is None for d in done]
            actions = actor.act([e.obs for e in eps], [e.info for e in eps], active)
            for i, e in enumerate(eps):
                if active[i]:
                    done[i] = e.step(actions[i])
        out += [d for d in done if d is not None]
        bar.update(n)
    return out


def _play_continuously(envs: list[gym.Env], actor: BatchActor, episodes: int, seed: int,
                       bar: Any) -> list[EpisodeResult]:
    """Each env takes the next episode as soon as its last one ends (``starts`` marks it)."""
    n = len(envs)
    eps: list[_Episode | None] = [_Episode(env, seed + i) for i, env in enumerate(envs)]
    next_ep, out = n, []
    actor.reset(envs, [e.obs for e in eps], [e.info for e in eps])
    starts = [False] * n
    while any(e is not None for e in eps):
        active = [e is not None for e in eps]
        live = [e if e is not None else eps[active.index(True)] for e in eps]  # idle slots repeat one
        actions = actor.act([e.obs for e in live], [e.info for e in live], active, starts=starts)
        starts = [False] * n
        for i, e in enumerate(eps):
            if e is None or (res := e.step(actions[i])) is None:
                continue
            out.append(res)
            bar.update(1)
            eps[i] = _Episode(envs[i], seed + next_ep) if next_ep < episodes else None
            starts[i], next_ep = eps[i] is not None, next_ep + 1
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
