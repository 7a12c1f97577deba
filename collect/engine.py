"""The collection engine: environments, episode bookkeeping and the :class:`Collector` that
steps (vector) envs with policies and writes every finished episode.

Determinism: episode ``i`` is always reset with ``episode_seed(seed, i)`` and its policy reseeded
with the same seed, whichever env, process or actor runs it, so ``--resume`` and every backend
(:mod:`collect.backends`) record the same episodes. The vector env runs in gymnasium's default
*NextStep* autoreset mode: the step after an episode ends is that env's reset step (its action is
ignored); it starts the next episode's buffer and is never recorded as a transition of the old one.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from collect.config import CollectConfig, episode_seed
from collect.errors import CollectError
from collect.format import flatten_action, space_to_json
from collect.writer import DatasetWriter


def make_env(cfg: CollectConfig) -> gym.Env:
    """Builds one annotated environment for ``cfg`` (annotation happens inside it).

    Names go through ``byog_env.make``: a ``module:name`` name imports ``module`` first (a
    plugin env family registers itself there, so worker processes find it too); a gymnasium
    ``module:EnvId`` of no family is made as is, for envs that annotate themselves.
    """
    import byog_env

    return byog_env.make(cfg.env, max_episode_steps=cfg.max_episode_steps, **cfg.env_kwargs)


class EpisodeSeeder(gym.Wrapper):
    """Outermost wrapper of each sub-env: an unseeded (auto)reset uses the pending assignment.

    The collector sets ``pending_episode = (index, seed)`` through ``VectorEnv.set_attr`` before
    the reset happens; the reset info then carries ``episode_index`` (``-1`` when unassigned).
    """

    pending_episode: tuple[int, int] | None = None

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        index = -1
        if seed is None and self.pending_episode is not None:
            index, seed = self.pending_episode
        self.pending_episode = None
        obs, info = self.env.reset(seed=seed, options=options)
        return obs, {**info, "episode_index": index}


class EpisodeSource:
    """Hands out episode indices: the missing ones of ``--episodes N``, or new ones until the
    ``--steps`` budget (recorded plus running steps) is reached."""

    def __init__(self, cfg: CollectConfig, completed: dict[int, dict[str, Any]]) -> None:
        self.cfg = cfg
        self.done_steps = sum(int(r["num_steps"]) for r in completed.values())
        self.taken = set(completed)
        self.next_free = 0

    def next(self, running_steps: int = 0) -> int | None:
        """The next episode index to run, or ``None`` when the target is met."""
        if self.cfg.steps is not None and self.done_steps + running_steps >= self.cfg.steps:
            return None
        while self.next_free in self.taken:
            self.next_free += 1
        if self.cfg.episodes is not None and self.next_free >= self.cfg.episodes:
            return None
        self.taken.add(self.next_free)
        return self.next_free

    def finished(self, record: dict[str, Any]) -> None:
        """Counts a written episode's steps toward the budget."""
        self.done_steps += int(record["num_steps"])


def unbatch_info(infos: dict[str, Any], j: int) -> dict[str, Any]:
    """Sub-env ``j``'s info from a vector env's batched info dict (keys masked by ``_key``)."""
    out = {}
    for key, value in infos.items():
        if key.startswith("_"):
            continue
        mask = infos.get("_" + key)
        if mask is not None and not mask[j]:
            continue
        out[key] = unbatch_info(value, j) if isinstance(value, dict) else value[j]
    return out


class SingleEnv:
    """One env behind the subset of the vector-env API the collector uses, without batching.

    Same NextStep autoreset semantics as gymnasium's vector envs (the call after a done resets
    and ignores its action), but observations and infos stay per-env lists, which spares the
    one-env collector gymnasium's info batching and unbatching.
    """

    def __init__(self, env: gym.Env) -> None:
        self.envs = [env]
        self.num_envs = 1
        self.single_action_space = env.action_space
        self._needs_reset = False

    def set_attr(self, name: str, values: list[Any]) -> None:
        self.envs[0].set_wrapper_attr(name, values[0])

    def reset(self) -> tuple[list[Any], list[dict[str, Any]]]:
        obs, info = self.envs[0].reset()
        self._needs_reset = False
        return [obs], [info]

    def step(self, actions: list[Any]) -> tuple[list[Any], list[float], list[bool], list[bool], list[dict]]:
        if self._needs_reset:
            obs, info = self.reset()
            return obs, [0.0], [False], [False], info
        obs, reward, term, trunc, info = self.envs[0].step(actions[0])
        self._needs_reset = bool(term or trunc)
        return [obs], [reward], [term], [trunc], [info]

    def close(self) -> None:
        self.envs[0].close()


class EpisodeBuffer:
    """Rows of one running episode (``L`` frames, ``L - 1`` actions)."""

    def __init__(self, index: int, seed: int, obs: np.ndarray, info: dict[str, Any]) -> None:
        self.index, self.seed = index, seed
        self.frames = [np.ascontiguousarray(obs).tobytes()]
        self.actions: list[Any] = []
        self.rewards, self.terminated, self.truncated = [0.0], [False], [False]
        self.annotations = [list(info.get("annotations", []))]
        self.intent: list[list[str]] = []
        self.last_info = info

    def add(self, action: Any, obs: np.ndarray, reward: float, term: bool, trunc: bool,
            info: dict[str, Any]) -> None:
        self.actions.append(action)
        self.frames.append(np.ascontiguousarray(obs).tobytes())
        self.rewards.append(float(reward))
        self.terminated.append(bool(term))
        self.truncated.append(bool(trunc))
        self.annotations.append(list(info.get("annotations", [])))
        self.last_info = info

    @property
    def steps(self) -> int:
        return len(self.actions)


class Collector:
    """Runs episodes in (vector) envs and writes them; one instance per process or Ray actor.

    Args:
        cfg: The run's settings.
        writer: Where finished episodes go.
        on_episode: Called with each written episode's record.
    """

    def __init__(self, cfg: CollectConfig, writer: DatasetWriter,
                 on_episode: Callable[[dict[str, Any]], None] = lambda r: None) -> None:
        from collect.config import import_plugins
        from collect.policies import Policy, make_policy

        import_plugins(cfg.plugins)  # a spawned worker or Ray actor registers the plugins too
        self.cfg, self.writer, self.on_episode = cfg, writer, on_episode
        writer.warm_up()  # its first episode would otherwise pay pyarrow's lazy imports mid-run
        n = cfg.num_envs
        # `process` spawns workers in `collect`; a Collector itself (e.g. in a Ray actor) steps
        # its envs in a vector env, and the nearest one is async.
        mode = {"process": "async"}.get(cfg.vector_mode, cfg.vector_mode) if n > 1 else "sync"
        if mode == "async" and cfg.needs_live_env:
            print(f"note: policy {cfg.policy!r} reads the live env, so the {n} envs run in-process "
                  "(--vector-mode sync); use --vector-mode process or --workers N for parallelism.", file=sys.stderr)
            mode = "sync"
        thunks = [lambda: EpisodeSeeder(make_env(cfg)) for _ in range(n)]
        if n == 1:
            self.vec: Any = SingleEnv(thunks[0]())
        else:
            vec_cls = gym.vector.AsyncVectorEnv if mode == "async" else gym.vector.SyncVectorEnv
            self.vec = vec_cls(thunks, autoreset_mode=gym.vector.AutoresetMode.NEXT_STEP)
        self.mode = mode
        # Policies act in this process: on the real sub-envs (sync) or on a local, never-stepped
        # template env with the same spaces (async).
        self.template = None if mode == "sync" else make_env(cfg)
        envs = self.vec.envs if mode == "sync" else [self.template] * n
        self.policies = [make_policy(cfg.policy, env, seed=None) for env in envs]
        self.record_intent = type(self.policies[0]).intent is not Policy.intent
        space = self.vec.single_action_space
        import byog_env

        self.family = byog_env.family(cfg.env)
        self.layout = None if isinstance(space, gym.spaces.Discrete) else space_to_json(space)["layout"]
        self.idle_action = space.sample()

    def close(self) -> None:
        """Closes the envs."""
        self.vec.close()
        if self.template is not None:
            self.template.close()

    def run(self, next_index: Callable[[int], int | None], finished: Callable[[dict], None] = lambda r: None) -> None:
        """Runs until ``next_index(running_steps)`` returns ``None`` and all episodes are written."""
        n, seed = self.cfg.num_envs, self.cfg.seed
        assigned: list[tuple[int, int] | None] = [None] * n
        for j in range(n):
            idx = next_index(0)
            assigned[j] = None if idx is None else (idx, episode_seed(seed, idx))
        if all(a is None for a in assigned):
            return
        self.vec.set_attr("pending_episode", list(assigned))
        obs, infos = self._infos(*self.vec.reset())
        buffers: list[EpisodeBuffer | None] = [None] * n
        resetting = [False] * n
        for j in range(n):
            buffers[j] = self._start(j, assigned[j], obs[j], infos[j])
        actions: list[Any] = [None] * n
        while any(b is not None for b in buffers) or any(resetting):
            for j in range(n):
                b = buffers[j]
                if b is None:
                    actions[j] = self.idle_action
                    continue
                actions[j] = self.policies[j].act(obs[j], b.last_info)
                if self.record_intent:
                    b.intent.append(list(self.policies[j].intent()))
            obs, rewards, terms, truncs, infos = self.vec.step(self._batch(actions))
            infos = self._infos(obs, infos)[1]
            new_pending: list[tuple[int, int] | None] = [None] * n
            any_pending = False
            for j in range(n):
                info = infos[j]
                if resetting[j]:  # NextStep autoreset: this row is env j's new episode's reset
                    resetting[j] = False
                    buffers[j] = self._start(j, assigned[j], obs[j], info)
                    continue
                b = buffers[j]
                if b is None:
                    continue
                b.add(actions[j], obs[j], rewards[j], terms[j], truncs[j], info)
                if terms[j] or truncs[j]:
                    finished(self._write(b))
                    buffers[j] = None
                    running = sum(x.steps for x in buffers if x is not None)
                    idx = next_index(running)
                    assigned[j] = None if idx is None else (idx, episode_seed(seed, idx))
                    new_pending[j] = assigned[j]
                    any_pending |= idx is not None
                    resetting[j] = idx is not None
            if any_pending:
                self.vec.set_attr("pending_episode", new_pending)
        self.writer.wait()  # the last episode's file is on disk before run returns (workers report it)

    def _infos(self, obs: Any, infos: Any) -> tuple[Any, list[dict[str, Any]]]:
        if isinstance(infos, list):  # SingleEnv
            return obs, infos
        return obs, [unbatch_info(infos, j) for j in range(self.cfg.num_envs)]

    def _batch(self, actions: list[Any]) -> Any:
        if isinstance(self.vec, SingleEnv):
            return actions
        if self.layout is None:
            return np.asarray(actions, np.int64)
        return gym.vector.utils.concatenate(
            self.vec.single_action_space, actions,
            gym.vector.utils.create_empty_array(self.vec.single_action_space, len(actions)))

    def _start(self, j: int, assignment: tuple[int, int] | None, obs: np.ndarray,
               info: dict[str, Any]) -> EpisodeBuffer | None:
        if assignment is None:
            return None
        index, ep_seed = assignment
        got = int(info.get("episode_index", index))
        if got != index:
            raise CollectError(f"Internal error: env {j} reset for episode {got}, expected {index}.")
        policy = self.policies[j]
        policy.seed(ep_seed)
        policy.reset(obs, info)
        return EpisodeBuffer(index, ep_seed, obs, info)

    def _write(self, b: EpisodeBuffer) -> dict[str, Any]:
        info = b.last_info
        actions = b.actions if self.layout is None else [flatten_action(a, self.layout) for a in b.actions]
        # The env family declares which info keys become episode fields (achievements, mission).
        fields = self.family.episode_fields(info, terminated=bool(b.terminated[-1]), reward=float(b.rewards[-1]))
        intent = None
        if self.record_intent:
            intent = b.intent + [[]]  # no intent on the final frame (no action is chosen there)
        record = self.writer.write_episode(
            b.index, b.frames, actions, rewards=b.rewards, terminated=b.terminated,
            truncated=b.truncated, annotations=b.annotations, intent=intent, seed=b.seed,
            **fields)
        if self.cfg.video:
            from collect.video import hold_subtitles, write_video

            shape = self.writer.info["frame_shape"]
            frames = np.frombuffer(b"".join(b.frames), np.uint8).reshape(-1, *shape)
            write_video(self.cfg.out / "videos" / f"episode_{b.index:06d}.mp4", frames,
                        hold_subtitles(b.annotations), scale=self.cfg.video_scale,
                        fps=float(self.writer.info.get("fps", 10)))
        self.on_episode(record)
        return record


def _spec_json(env: gym.Env) -> str | None:
    """The env's gymnasium spec as JSON (``gymnasium.make(EnvSpec.from_json(s))`` rebuilds it;
    Minari exports carry it), or None when it has none or it does not serialise."""
    try:
        return None if env.spec is None else env.spec.to_json()
    except (TypeError, ValueError):
        return None


def dataset_info(cfg: CollectConfig) -> dict[str, Any]:
    """The ``meta/info.json`` facts of a collection (env, spaces, policy, seeds, annotator)."""
    import byog_env

    env = make_env(cfg)
    try:
        obs_space = env.observation_space
        if not (isinstance(obs_space, gym.spaces.Box) and obs_space.dtype == np.uint8 and len(obs_space.shape) == 3):
            raise CollectError(f"Environment {cfg.env!r} must give uint8 [H, W, 3] frames, got {obs_space}.")
        fps = (env.metadata or {}).get("render_fps") or 10
        spec = env.spec.id if env.spec is not None else cfg.env
        return {
            "env": cfg.env, "env_id": spec, "env_spec": _spec_json(env), "policy": cfg.policy, "seed": cfg.seed,
            "max_episode_steps": cfg.max_episode_steps, "env_kwargs": dict(cfg.env_kwargs), "fps": fps,
            "observation_space": space_to_json(obs_space), "frame_shape": list(obs_space.shape),
            "action_space": space_to_json(env.action_space),
            "action_names": byog_env.action_names(env),
            "annotator_version": getattr(byog_env, "ANNOTATOR_VERSION", None),
            "episode_seeds": "episode i is reset with collect.rollout.episode_seed(seed, i) = "
                             "SeedSequence([seed, i]).generate_state(1)[0] & 0x7FFFFFFF",
            "collect_config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        }
    finally:
        env.close()


class CollectorActor:
    """One backend worker (a Ray actor or a local worker process) running its own
    :class:`Collector` that writes the episodes it is handed into the shared dataset."""

    def __init__(self, cfg_fields: dict[str, Any], info: dict[str, Any]) -> None:
        cfg = CollectConfig(**cfg_fields)
        cfg.progress = False
        writer = DatasetWriter(cfg.out, info, check_existing=False, durable=cfg.fsync, background=True)
        self.collector = Collector(cfg, writer)

    def run(self, indices: list[int]) -> list[dict[str, Any]]:
        """Collects and writes the given episodes; returns their records."""
        queue = list(indices)
        records: list[dict[str, Any]] = []
        self.collector.run(lambda running: queue.pop(0) if queue else None, records.append)
        return records

    def close(self) -> None:
        """Closes the envs."""
        self.collector.close()


WARM_UP_SEED = 2**31 - 1
"""Reset seed of a worker's warm-up step (``episode_seed`` never exceeds ``2**31 - 1`` and the
warm-up records nothing; every episode is reset with its own seed afterwards)."""


def warm_up(collector: Collector) -> None:
    """Steps a one-env collector's env and policy once, outside any episode.

    Pays the one-off costs of a fresh process before it is timed or handed episodes: lazy
    imports, numba compiling Crafter's world generation, texture loading, the annotator's and
    the policy's first call. Episodes stay bit-identical: each one is reset with its own seed
    (a seeded reset restarts the simulator) and its policy reseeded and reset, as when one env
    runs many episodes in a row.
    """
    env, policy = collector.vec.envs[0], collector.policies[0]
    obs, info = env.reset(seed=WARM_UP_SEED)
    policy.seed(WARM_UP_SEED)
    policy.reset(obs, info)
    env.step(policy.act(obs, info))
