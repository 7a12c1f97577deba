"""Settings of a collection run (:class:`CollectConfig`) and the per-episode seed rule.

Leaf module: no gymnasium, no pyarrow; the CLI (:mod:`collect.rollout`), the engine and every
backend read these settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from collect.errors import CollectError, UsageError


def import_plugins(modules: tuple[str, ...] | list[str], flag: str = "--plugins") -> None:
    """Import each plugin module (it registers policies, env families, formats); one error line
    naming ``flag`` if one cannot be imported."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise UsageError(f"{flag} module {module!r} cannot be imported ({e}); install it or put "
                             "it on PYTHONPATH.") from None

__all__ = ["CollectConfig", "CollectError", "UsageError", "episode_seed"]


@dataclass
class CollectConfig:
    """Settings of one collection run (saved in ``meta/info.json["collect_config"]``)."""

    env: str
    """Environment name for ``byog_env.make`` (e.g. ``crafter``, ``babyai-gotolocal``), or a
    gymnasium ``module:EnvId`` of an env that already annotates itself."""
    out: Path
    """Dataset directory to write."""
    policy: str = "random"
    """Policy name for ``collect.policies.make_policy`` (``random``, ``crafter-scripted``, ...)."""
    plugins: tuple[str, ...] = ()
    """Modules imported first, here and in every worker process or Ray actor: they register a
    policy (or an env family) by name (``--plugins my_pkg.policies --policy my-policy``)."""
    episodes: int | None = None
    """Number of episodes to collect (give this or ``--steps``)."""
    steps: int | None = None
    """Collect until this many environment steps are recorded (running episodes are finished)."""
    max_episode_steps: int | None = None
    """Truncate episodes after this many steps (``None``: the environment's default)."""
    env_kwargs: dict[str, int | float | str] = field(default_factory=dict)
    """Extra ``byog_env.make`` options (e.g. ``--env-kwargs view agent size 64`` for BabyAI's
    egocentric view); recorded in ``meta/info.json`` so that replay, live evaluation and PPO
    build the same env."""
    seed: int = 0
    """Base seed; episode i is reset with ``episode_seed(seed, i)``."""
    num_envs: int = 1
    """Environments run in parallel (worker processes or a vector env: see ``--vector-mode``)."""
    vector_mode: Literal["sync", "async", "process"] = "process"
    """How ``--num-envs K > 1`` envs run. ``process`` (default): K independent worker processes,
    each running whole episodes (env, annotator, policy, writer) pulled from a shared queue, no
    lock-step; on 2 cores it is the fastest mode for Crafter (``benchmarks/bench_collect.py``)
    and records the same episodes as the others. ``async``: a gymnasium AsyncVectorEnv, one
    subprocess per env stepped in lock-step, waiting for its slowest env every step (policies
    needing the live env fall back to ``sync``); ``sync``: the K envs in this process. Inside
    one Ray actor with K > 1, ``process`` means ``async``."""
    resume: bool = False
    """Continue an interrupted collection in ``--out`` without losing or duplicating episodes."""
    video: bool = False
    """Also write ``videos/episode_XXXXXX.mp4`` previews with annotations as subtitles."""
    video_scale: int = 4
    """Upscaling factor of the preview videos."""
    workers: int = 0
    """Start a local Ray with this many actors (0: no Ray)."""
    ray_address: str | None = None
    """Connect to a Ray cluster (``auto`` or ``HOST:PORT``) and use one actor per CPU."""
    progress: bool = True
    """Show a progress bar."""
    fsync: bool = True
    """fsync every episode file and its directory when it is written, so finished episodes
    survive a power loss (kill -9 safety does not need it). ``--no-fsync`` saves ~15 ms an
    episode on an ordinary disk: ~30% of the time of short BabyAI episodes."""
    threads: int = 0
    """CPU threads of torch/BLAS in this process and the env workers it starts (0 = the cores
    this process may use, ``os.sched_getaffinity``)."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.plugins = tuple(self.plugins)
        import_plugins(self.plugins)  # before the policy name is looked up (needs_live_env)
        if self.threads < 0:
            raise UsageError(f"--threads must be >= 0 (0 = the cores this process may use), "
                             f"got {self.threads}.")
        if (self.episodes is None) == (self.steps is None):
            raise UsageError("Give exactly one of --episodes N or --steps N.")
        if self.episodes is not None and self.episodes < 1:
            raise UsageError(f"--episodes must be >= 1, got {self.episodes}.")
        if self.steps is not None and self.steps < 1:
            raise UsageError(f"--steps must be >= 1, got {self.steps}.")
        if self.max_episode_steps is not None and self.max_episode_steps < 1:
            raise UsageError(f"--max-episode-steps must be >= 1, got {self.max_episode_steps}.")
        if self.num_envs < 1:
            raise UsageError(f"--num-envs must be >= 1, got {self.num_envs}.")
        if self.workers < 0:
            raise UsageError(f"--workers must be >= 0, got {self.workers}.")
        if self.workers and self.ray_address:
            raise UsageError("Give --workers N (local Ray) or --ray-address A (existing cluster), not both.")
        if self.out.exists() and not self.out.is_dir():
            raise UsageError(f"--out {self.out} is a file; pass a directory (a new one, or a BYOG dataset to resume).")
        from collect.policies import PolicyError, policy_spec

        try:
            policy_spec(self.policy)
        except PolicyError as e:  # an unknown name is a usage error (exit 2)
            raise UsageError(str(e)) from None
        if self.video_scale < 1:
            raise UsageError(f"--video-scale must be >= 1, got {self.video_scale}.")

    @property
    def needs_live_env(self) -> bool:
        """Whether the policy must see the live env object (sync vector env or in-process)."""
        from collect.policies import needs_live_env

        return needs_live_env(self.policy)


def episode_seed(seed: int, index: int) -> int:
    """The reset seed of episode ``index`` (independent of which worker runs it)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0] & 0x7FFFFFFF)

