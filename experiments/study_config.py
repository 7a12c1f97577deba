"""The transfer study's settings: what each env plans (``EnvPlan``), the study presets
(registry :data:`PRESETS`), ``RunAllConfig`` (every flag of ``python -m experiments.run_all``) and
the env facts it reads (expert policy, collection cost).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from byog_core.registry import Registry
from experiments.errors import ExperimentError


def _collect_step_s(env: str) -> float:
    """The seconds a collected step of ``env`` costs (its family's ETA hint)."""
    import byog_env

    return byog_env.family(env).collect_step_s


def expert_policy(env: str) -> str:
    """The collector policy ``env``'s family registers as its expert (``EnvFamily.policy``); an
    unknown env or a family without one is one error, never a silent default."""
    import byog_env

    try:
        return byog_env.family(env).expert_policy()
    except byog_env.EnvError as e:
        raise ExperimentError(str(e)) from None


CROSS_SOURCE = "babyai-gotoobj"
CROSS_TARGET = "babyai-gotolocal"


@dataclass(frozen=True)
class EnvPlan:
    """One env of a study: what is collected."""

    episodes: int
    """Expert episodes collected (the test split is 20% of them, fixed)."""
    max_steps: int | None = None
    """Collection step cap (None: the env's own limit)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """``byog_env.make`` options (BabyAI egocentric: ``{"view": "agent"}``), recorded in the
    dataset and reused by replay, live evaluation and PPO."""


@dataclass(frozen=True)
class StudyPreset:
    """A study's design (every field can be overridden from the command line)."""

    description: str
    envs: dict[str, EnvPlan]
    arms: tuple[str, ...]
    ns: tuple[int, ...]
    pipeline_seeds: tuple[int, ...]
    bc_seeds: tuple[int, ...] = (0, 1)
    label_fractions: tuple[float, ...] = (1.0,)
    """Label fractions of BYOG/captioner pretraining (their arms run at each)."""
    pretrain_steps: int = 400
    pretrain_batch: int = 8
    size: str = "tiny"
    bc_steps: int = 400
    """Most BC steps (early stopping on BC-validation NLL, the same rule for every arm)."""
    eval_every: int = 25
    patience: int = 4
    bc_min_delta: float = 1e-3
    """A BC-validation NLL drop below this (nats) is no improvement (early stopping and
    ``train/at_cap_improving``)."""
    val_episodes: int = 8
    bc_batch: int = 8
    bc_lr: float = 3e-3
    """Head learning rate (and of encoders trained on the actions). At 1e-3 a bias-only head
    did not reach the action prior within 150 steps on Crafter (0.20 vs the majority's 0.24)."""
    gru: bool = False
    live_episodes: int = 16
    live_arms: tuple[str, ...] | None = None
    """Arms evaluated live (None: all)."""
    live_max_steps: int | None = None
    """Live cap (None: the env's own limit for BabyAI, 500 for Crafter)."""
    finetune: bool = False
    cross_domain: bool = False
    rl_timesteps: int = 0
    rl_encoders: tuple[str, ...] = ()
    workers: int = 2
    dose_steps: tuple[int, ...] = ()
    """Intermediate pretraining checkpoints (steps below ``pretrain_steps``) the ``dose_arms``
    are also cloned from (offline only): more points of the dose-response plot, BC gain vs
    that checkpoint's narration F1, from the same pretraining runs."""
    dose_arms: tuple[str, ...] = ("byog-text", "captioner-text")
    """Arms cloned at the ``dose_steps`` checkpoints (those in ``arms``)."""
    obs_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Per fitted encoder kind (vqvae, units), its options (``PretrainSpec.obs_options``)."""
    device: str = "cpu"
    """Torch device of every cell that trains or featurizes (pretraining, BC and its live
    evaluation, PPO); the live references run no torch."""
    positive_gate: float = 0.10
    """Positive control, fixed before any data and the same for every env: the 95% interval of
    oracle-text − random-text must have its lower bound at or above this accuracy."""
    equivalence_margin: float = 0.025
    """Negative control: shuffled-oracle-text − random-text equivalent within ± this accuracy by
    TOST (a fixed margin: noisier data fail, as they should; never one computed from the data)."""
    min_narrator_f1: float = 0.15
    """The text hypotheses are tested only where BYOG's held-out narration F1 reaches this
    (else the report says "not tested: narrator silent")."""
    hierarchical_bootstrap: bool = False
    """Report the paired hierarchical bootstrap (pipeline seed → BC seed → test episode) beside
    every paired t-interval (secondary; needs enough pipeline seeds to mean anything)."""


_TINY_ARMS = ("prior", "oracle-text", "random-text", "shuffled-oracle-text", "shuffled-text", "byog-text", "byog",
              "scratch")
_CPU_ARMS = ("prior", "oracle-text", "oracle-symbolic", "random-text", "shuffled-oracle-text", "shuffled-text", "byog-text",
             "captioner-text", "byog", "captioner", "random", "scratch", "byog-hidden+scratch")
PRESETS: Registry[StudyPreset] = Registry.of("study preset", {
    "tiny": StudyPreset(
        "make demo and tests (~3 min on 2 cores): BabyAI GoToLocal, 1 pipeline seed, 2 BC seeds",
        envs={"babyai-gotolocal": EnvPlan(32, 64)}, arms=_TINY_ARMS, ns=(8,), pipeline_seeds=(0,),
        # evaluations every 10 steps, patience 3: at every 25 with patience 4 a head of 80 steps
        # could never stop early, and 4 of 16 cells ended at the cap still improving
        pretrain_steps=40, bc_steps=80, eval_every=10, patience=3, val_episodes=4, live_episodes=4,
        live_arms=("prior", "oracle-text", "byog-text")),
    "cpu": StudyPreset(
        "the CPU study (<= 75 min on 2 cores): Crafter (240 scripted episodes x 64 steps) and "
        "BabyAI-UnlockLocal egocentric (600 bot episodes); BYOG and captioner at label fraction 0.05, "
        "360 pretraining steps of 32 labelled windows, 3 pipeline seeds x 2 BC seeds, BC at most 500 "
        "steps of 4 episodes; "
        "VQ-VAE and units left out (their position-encoding settings do not fit a CPU budget)",
        envs={"crafter": EnvPlan(240, 64), "babyai-unlocklocal": EnvPlan(600, None, {"view": "agent"})},
        arms=_CPU_ARMS, ns=(64,), pipeline_seeds=(0, 1, 2), label_fractions=(0.05,),
        # fixed from the scarcity study's curves (issue 21, docs/results/crafter-narration-scarcity-cpu),
        # never from the BC split: at 5% labels every arm's held-out event F1 reaches its plateau
        # after ~360 steps of 32 labelled windows (11,520 seen); 400 steps of 8 (3,200) stopped on
        # the rise (BYOG F1 0.036 in the first run)
        pretrain_steps=360, pretrain_batch=32, dose_steps=(120, 240),
        # batch 4: at 8 x 400 the scratch-CNN cells alone took most of 75 min. 500 steps: at 300,
        # 64 of 144 cells stopped at the cap (issue 22); with heads starting at the action prior
        # and min_delta 1e-3, 2 of 24 frozen Crafter cells still did (best steps 225 and 225)
        bc_steps=500, bc_batch=4, live_episodes=8, live_arms=("prior", "oracle-text", "random-text", "byog-text", "scratch")),
    "gpu": StudyPreset(
        "the GPU study, on cuda (--device overrides): thousands of episodes, label fractions "
        "0.02/0.05/0.1/1.0, 5 pipeline seeds, N up to 1,024, VQ-VAE (8x8 pooled grid) and units (256 of "
        "16x16-pixel thumbnails) at settings that encode position, PPO 1M steps on Crafter",
        envs={"crafter": EnvPlan(2000, 500), "babyai-unlocklocal": EnvPlan(5000, None, {"view": "agent"})},
        arms=(*_CPU_ARMS, "vqvae", "units"), ns=(16, 64, 256, 1024), pipeline_seeds=(0, 1, 2, 3, 4),
        bc_seeds=(0, 1), label_fractions=(0.02, 0.05, 0.1, 1.0), pretrain_steps=50_000, pretrain_batch=32,
        size="small", bc_steps=5000, eval_every=100, patience=5, val_episodes=32, gru=True,
        live_episodes=64, rl_timesteps=1_000_000, rl_encoders=("cnnpolicy", "byog", "scratch"), workers=8,
        hierarchical_bootstrap=True,
        dose_steps=(2000, 10_000, 25_000), device="cuda",
        # settings that can encode where things are (the former 2x2 pooled VQ-VAE and 8x8-pixel
        # units could not): an 8x8 grid of quantized vectors over the 16x16 latent (8-pixel
        # cells, about a Crafter tile), and 256 units of 16x16-pixel thumbnails
        obs_options={"vqvae": {"pool": 8}, "units": {"pixel_size": 16, "k": 256}}),
}, error=ExperimentError, hint="Add one with experiments.run_all.PRESETS.register(name, StudyPreset(...)).")
PRESETS.register("small", replace(PRESETS["cpu"], description="alias of cpu (the former ~2 h CPU study is retired: "
                                  "its design could not tell the arms apart)"))
PRESETS.register("full", replace(PRESETS["gpu"], description="alias of gpu"))


def register_preset(name: str, preset: StudyPreset) -> StudyPreset:
    """Add a study preset (deprecated: ``PRESETS.register(name, preset)``, the one registry API)."""
    import warnings

    warnings.warn("experiments.run_all.register_preset is deprecated; use PRESETS.register(name, preset).",
                  DeprecationWarning, stacklevel=2)
    return PRESETS.register(name, preset, overwrite=True)


OVERRIDES = ("arms", "ns", "pipeline_seeds", "bc_seeds", "label_fractions", "pretrain_steps", "bc_steps",
             "bc_batch", "bc_lr", "live_episodes", "finetune", "cross_domain", "rl_timesteps", "workers", "gru",
             "dose_steps", "device")


@dataclass
class RunAllConfig:
    """The whole study: a preset, optionally with some of its fields overridden."""

    out: Path
    """Study directory (datasets, cells, report)."""
    preset: str = "tiny"
    """Design: tiny (make demo, minutes), cpu (<= 75 min on 2 cores), gpu (on cuda); small = cpu, full = gpu."""
    envs: tuple[str, ...] | None = None
    """Override: only these of the preset's envs."""
    episodes: dict[str, int] | None = None
    """Override: episodes collected per env (e.g. crafter 120)."""
    arms: tuple[str, ...] | None = None
    """Override: arms (``python -m experiments.arms`` lists them)."""
    encoders: tuple[str, ...] | None = None
    """Old name of --arms (kept as an alias)."""
    ns: tuple[int, ...] | None = None
    """Override: numbers of training episodes N."""
    pipeline_seeds: tuple[int, ...] | None = None
    """Override: pipeline seeds (pretraining init + labelled draw; the unit of replication)."""
    seeds: tuple[int, ...] | None = None
    """Old name of --bc-seeds (kept as an alias)."""
    bc_seeds: tuple[int, ...] | None = None
    """Override: BC seeds within each pipeline seed."""
    label_fractions: tuple[float, ...] | None = None
    """Override: label fractions of BYOG/captioner pretraining."""
    pretrain_steps: int | None = None
    """Override: pretraining steps."""
    bc_steps: int | None = None
    """Override: most BC steps."""
    bc_batch: int | None = None
    """Override: episodes per BC step (every arm alike)."""
    bc_lr: float | None = None
    """Override: BC learning rate (every arm alike)."""
    live_episodes: int | None = None
    """Override: live episodes per cell and action mode."""
    finetune: bool | None = None
    """Override: also fine-tune the BYOG encoder with the head."""
    cross_domain: bool | None = None
    """Override: the cross-domain cells (pretrained on GoToObj, cloned on GoToLocal)."""
    rl_timesteps: int | None = None
    """Override: PPO timesteps (0 = no PPO)."""
    gru: bool | None = None
    """Override: the head's GRU over the episode (every arm alike)."""
    dose_steps: tuple[int, ...] | None = None
    """Override: intermediate pretraining checkpoints the text arms are also cloned from (the
    dose-response points); pass none for no extra points."""
    workers: int | None = None
    """Override: worker processes."""
    device: str | None = None
    """Override: torch device of pretraining, BC and PPO (cpu, cuda, cuda:1; the preset's: gpu
    runs on cuda, the others on cpu). Checked before anything runs, --plan-only too."""
    threads: int = 0
    """torch threads per worker process (0 = the cores this process may use,
    ``os.sched_getaffinity``, shared out among the workers, at least one each; through the
    Python API 0 means one)."""
    plan_only: bool = False
    """Print the cell count and a measured ETA, write ``plan.json``, and stop."""
    report_only: bool = False
    """Write the report from the plan's finished cells (a run cut short) and stop."""
    progress: bool = True
    """Progress bars."""
    steps_override: dict[str, Any] = field(default_factory=dict)
    """Python API only: override any preset field (tests), e.g. {"bc_batch": 2}."""

    def __post_init__(self) -> None:
        from experiments.arms import resolve_arm

        self.out = Path(self.out)
        if self.preset not in PRESETS:
            raise ExperimentError(f"Unknown preset {self.preset!r}; choose from {', '.join(PRESETS)}.")
        if self.arms is None and self.encoders is not None:
            self.arms = self.encoders
        if self.bc_seeds is None and self.seeds is not None:
            self.bc_seeds = self.seeds
        for a in self.arms or ():
            resolve_arm(a)  # an unknown arm is an error listing the known ones
        known = PRESETS[self.preset].envs
        unknown = [e for e in (*(self.envs or ()), *(self.episodes or {})) if e not in known]
        if unknown:
            raise ExperimentError(f"Env(s) {unknown} are not in preset {self.preset!r}; choose from {', '.join(known)}.")
        if any(n < 1 for n in self.ns or ()) or any(not 0 < f <= 1 for f in self.label_fractions or ()):
            raise ExperimentError("--ns must be >= 1 and --label-fractions in (0, 1].")
        if self.workers is not None and self.workers < 1:
            raise ExperimentError(f"--workers must be >= 1, got {self.workers}.")
        if any(s < 1 for s in self.dose_steps or ()):
            raise ExperimentError(f"--dose-steps must be pretraining steps >= 1, got {list(self.dose_steps)}.")
        if self.threads < 0:
            raise ExperimentError(f"--threads must be >= 0 (0 = the cores this process may use), "
                                  f"got {self.threads}.")


def resolve(cfg: RunAllConfig) -> StudyPreset:
    """The preset with the command line's overrides applied."""
    p = PRESETS[cfg.preset]
    over = {k: getattr(cfg, k) for k in OVERRIDES if getattr(cfg, k) is not None}
    envs = {e: (replace(plan, episodes=cfg.episodes[e]) if cfg.episodes and e in cfg.episodes else plan)
            for e, plan in p.envs.items() if cfg.envs is None or e in cfg.envs}
    valid = {f.name for f in fields(StudyPreset)}
    bad = [k for k in cfg.steps_override if k not in valid]
    if bad:
        raise ExperimentError(f"Unknown preset field(s) {bad}; fields: {', '.join(sorted(valid))}.")
    out = replace(p, **over, envs=envs, **cfg.steps_override)
    late = [d for d in cfg.dose_steps or () if d >= out.pretrain_steps]
    if late:  # asked for by name: never dropped in silence (a preset's own are, below its steps)
        raise ExperimentError(f"--dose-steps {late} are not before the {out.pretrain_steps} pretraining steps; "
                              "choose earlier checkpoints, or raise --pretrain-steps.")
    return out
