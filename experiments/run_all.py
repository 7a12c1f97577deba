"""One command for the transfer study: collection, pretraining (per pipeline seed), the BC cells
of every arm, live references, optional cross-domain and PPO cells, and the report with its
gates, hypotheses and intervals.

    python -m experiments.run_all --preset tiny --out runs/study-tiny
    python -m experiments.run_all --preset cpu --out runs/study-cpu --plan-only   # cells + ETA

Every unit of work is a :class:`~experiments.runner.Cell` keyed by its full resolved config: a
changed setting is a new cell (recomputed), a finished one is reused (resumable). Independent
cells run in a pool of ``--workers`` processes with one torch thread each. The pipeline seed
(pretraining init + labelled draw) is the unit of replication; BC seeds (episode draw, head
init, live env seeds) nest inside it. Any preset field can be overridden from the command line
(``--arms prior oracle-text --pipeline-seeds 0 1 --ns 32``).
"""
from __future__ import annotations

import json
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from byog_core.registry import Registry
from experiments.errors import ExperimentError
from experiments.runner import Cell, estimate, run_cells

if TYPE_CHECKING:
    from experiments.pretrain import PretrainSpec


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


# ---------------------------------------------------------------------------- cells
def data_dir(root: Path, env: str, plan: EnvPlan) -> Path:
    """Where ``env``'s dataset lives: keyed by what was collected (changed settings recollect)."""
    c = Cell(env, "collect", {"env": env, **asdict(plan), "policy": expert_policy(env)})
    return Path(root) / "data" / f"{env}-{c.key}"


def collect_data(env: str, plan: EnvPlan, out: Path, progress: bool) -> Path:
    """Collect ``plan.episodes`` expert episodes of ``env`` into ``out`` (resumes a partial run)."""
    from collect.rollout import CollectConfig, collect_dataset

    info = out / "meta" / "info.json"
    if info.is_file() and json.loads(info.read_text()).get("num_episodes", 0) >= plan.episodes:
        return out
    collect_dataset(CollectConfig(env=env, out=out, policy=expert_policy(env), episodes=plan.episodes,
                          max_episode_steps=plan.max_steps, env_kwargs=dict(plan.env_kwargs), num_envs=1,
                          vector_mode="sync", resume=(out / "meta").is_dir(), progress=progress))
    return out


def pretrain_spec(config: dict[str, Any]) -> PretrainSpec:
    """The :class:`~experiments.pretrain.PretrainSpec` of a pretraining cell's config."""
    from experiments.pretrain import PretrainSpec

    return PretrainSpec(steps=config["steps"], size=config["size"], batch_size=config["batch"],
                        seed=config["pipeline_seed"], label_seed=config["pipeline_seed"], progress=False,
                        keep_steps=tuple(config.get("keep_steps", ())), device=config.get("device", "cpu"),
                        obs_options=dict(config.get("obs", {})))


def pretrain_cell(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """Cell entry point: pretrain one encoder into ``out/run``."""
    from experiments.pretrain import pretrain

    res = pretrain(config["kind"], Path(config["data"]), out / "run", pretrain_spec(config),
                   label_fraction=config["label_fraction"])
    return {**res, "run": str(out / "run")}


def bc_cell(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """Cell entry point: one BC cell (:func:`experiments.action_transfer.run`), with the
    pretrained encoder's narration metrics beside its result."""
    from experiments.action_transfer import ActionTransferConfig, run
    from experiments.pretrain import encoder_checkpoint

    cfg = dict(config)
    pre = cfg.pop("pretrained", None)
    extra: dict[str, Any] = {}
    ckpt = None
    if pre:
        step = pre.get("step")
        ckpt = encoder_checkpoint(pre["kind"], Path(pre["run"]), step)
        f = Path(pre["run"]) / "pretrain.json"
        extra = {k: v for k, v in json.loads(f.read_text()).items() if k.startswith("narration/")} if f.is_file() else {}
        if step is not None:  # this checkpoint's narration, not the final one's
            extra = {"narration/event_f1": extra.get(f"narration/event_f1@{step}", float("nan")),
                     "pretrain_step": step}
    res = run(ActionTransferConfig(**cfg, out=out, checkpoint=ckpt, progress=False))
    return {**res, **extra}


def ref_cell(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """Cell entry point: a live reference policy (expert, random, or the observation-blind
    action prior, sampled or argmax) through the same evaluation as the cloned policies."""
    import numpy as np

    from collect.dataset import open_dataset
    from experiments.action_transfer import env_kwargs_of, live_cap, live_seed
    from experiments.live import ActionPriorActor, PerEnvPolicies, evaluate_live
    from experiments.pretrain import bc_split3

    ds = open_dataset(config["data"])
    env = str(ds.info.get("env"))
    if config["policy"] == "action-prior":
        train, _, _ = bc_split3(ds.num_episodes, config["n"], config["seed"], config["val_episodes"])
        acts = np.concatenate([ds.episode(i).actions for i in train])
        freqs = np.bincount(acts[acts >= 0], minlength=int(ds.info["action_space"]["n"]))
        actor: Any = ActionPriorActor(freqs, sample=config["mode"] == "sample", seed=config["seed"])
    else:
        actor = PerEnvPolicies(config["policy"], seed=config["seed"])
    return evaluate_live(env, actor, episodes=config["episodes"], seed=live_seed(config["seed"]), num_envs=8,
                         max_steps=live_cap(env, config["live_max_steps"]), env_kwargs=env_kwargs_of(ds))


def rl_cell(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """Cell entry point: one PPO run (:mod:`experiments.rl_finetune`)."""
    from experiments.pretrain import encoder_checkpoint
    from experiments.rl_finetune import RLConfig, run

    cfg = dict(config)
    pre = cfg.pop("pretrained", None)
    ckpt = encoder_checkpoint(pre["kind"], Path(pre["run"])) if pre else None
    return run(RLConfig(**cfg, out=out, checkpoint=ckpt))


def plan_cells(p: StudyPreset, root: Path, data: dict[str, Path], episodes: dict[str, int]) -> list[Cell]:
    """Every cell of the study (``episodes``: each dataset's episode count), pretraining first."""
    from experiments.arms import resolve_arm
    from experiments.pretrain import PRETRAIN_KINDS

    pre_cells: dict[tuple, Cell] = {}
    dose = tuple(sorted({s for s in p.dose_steps if s < p.pretrain_steps}))
    dose_kinds = {resolve_arm(a)[1].pretrain for a in p.dose_arms if a in p.arms} if dose else set()

    def pretrained(env: str, kind: str, lf: float, ps: int, source: Path) -> dict[str, Any]:
        key = (env, kind, lf, ps, str(source))
        if key not in pre_cells:
            conf = {"kind": kind, "data": str(source), "steps": p.pretrain_steps, "batch": p.pretrain_batch,
                    "size": p.size, "label_fraction": lf, "pipeline_seed": ps,
                    # only where kept (a preset without doses keeps its cells' keys)
                    **({"keep_steps": list(dose)} if kind in dose_kinds else {}), **on_device(p),
                    **({"obs": p.obs_options[kind]} if kind in p.obs_options else {})}
            pre_cells[key] = Cell(f"pretrain/{env}/{kind}/lf{lf:g}/p{ps}", "experiments.run_all:pretrain_cell",
                                  conf, kind="pretrain", cost=p.pretrain_steps,
                                  meta={"study": "pretrain", "env": env, "encoder": kind, "label_fraction": lf,
                                        "pipeline_seed": ps})
        return {"kind": kind, "run": str(pre_cells[key].dir(root) / "run")}

    bc: list[Cell] = []
    for env, path in ((e, d) for e, d in data.items() if e in p.envs):
        pool = episodes[env] - max(1, round(0.2 * episodes[env])) - p.val_episodes
        for arm in p.arms:
            spec = resolve_arm(arm)[1]
            sensitive = spec.pretrain is not None and PRETRAIN_KINDS[spec.pretrain].label_sensitive
            lfs = p.label_fractions if sensitive else (1.0,)
            modes = ("frozen", "finetune") if p.finetune and spec.finetunable and spec.pretrain else ("frozen",)
            for lf in lfs:
                for n in (n for n in p.ns if n <= pool):
                    for ps in p.pipeline_seeds:
                        pre = pretrained(env, spec.pretrain, lf, ps, path) if spec.pretrain else None
                        bc += [_bc(p, env, path, arm, mode, n, lf, ps, bs, pre, "bc")
                               for mode in modes for bs in p.bc_seeds]
                        if pre and arm in p.dose_arms:  # the same cell at earlier checkpoints
                            bc += [_bc(p, env, path, arm, "frozen", n, lf, ps, bs, {**pre, "step": s}, "dose")
                                   for s in dose for bs in p.bc_seeds]
    if p.cross_domain and CROSS_TARGET in data:
        source = data[CROSS_SOURCE]
        n = max([x for x in p.ns if x <= 16] or [min(p.ns)])
        for arm in ("byog", "captioner", "byog-text", "captioner-text"):
            for ps in p.pipeline_seeds:
                pre = pretrained(CROSS_SOURCE, resolve_arm(arm)[1].pretrain, 1.0, ps, source)
                bc += [_bc(p, CROSS_TARGET, data[CROSS_TARGET], arm, "frozen", n, 1.0, ps, bs, pre, "cross")
                       for bs in p.bc_seeds]
    refs = [Cell(f"ref/{env}/{pol}-{mode}/b{bs}", "experiments.run_all:ref_cell",
                 {"data": str(path), "policy": pol, "mode": mode, "episodes": p.live_episodes, "seed": bs,
                  "live_max_steps": p.live_max_steps, "n": max(p.ns), "val_episodes": p.val_episodes},
                 kind="ref", cost=p.live_episodes,
                 meta={"study": "ref", "env": env, "encoder": pol if pol != "action-prior" else f"action-prior/{mode}",
                       "mode": mode, "seed": bs, "pipeline_seed": 0})
            for env, path in data.items() if p.live_episodes and env in p.envs
            for pol in (expert_policy(env), "random", "action-prior")
            for mode in (("sample", "argmax") if pol == "action-prior" else ("policy",))
            for bs in p.bc_seeds]
    rl = []
    for enc in p.rl_encoders if p.rl_timesteps else ():
        env = "crafter" if "crafter" in data else next(iter(data))
        spec = None if enc == "cnnpolicy" else resolve_arm(enc)[1]
        for ps in p.pipeline_seeds:
            pre = pretrained(env, spec.pretrain, 1.0, ps, data[env]) if spec and spec.pretrain else None
            conf = {"env": env, "encoder": enc, "timesteps": p.rl_timesteps, "seed": ps,
                    "max_episode_steps": p.envs[env].max_steps or 500, "env_kwargs": dict(p.envs[env].env_kwargs),
                    **({"pretrained": pre} if pre else {}), **on_device(p)}
            rl.append(Cell(f"rl/{env}/{enc}/p{ps}", "experiments.run_all:rl_cell", conf, kind="rl",
                           cost=p.rl_timesteps, meta={"study": "rl", "env": env, "encoder": enc, "pipeline_seed": ps}))
    return [*pre_cells.values(), *bc, *refs, *rl]


def on_device(p: StudyPreset) -> dict[str, str]:
    """A cell config's ``device`` entry: only off the CPU, so the CPU presets' cells keep the
    keys (and the finished results) they had before studies had a device."""
    return {"device": p.device} if p.device != "cpu" else {}


def bc_seed(pipeline_seed: int, bc_seed_index: int) -> int:
    """The BC seed of BC replicate ``bc_seed_index`` within a pipeline seed: nested, so every
    pipeline seed draws its own training episodes, head inits and live env seeds (arms within a
    pipeline seed and replicate share them: the pairing)."""
    return 1000 * int(pipeline_seed) + int(bc_seed_index)


def _bc(p: StudyPreset, env: str, path: Path, arm: str, mode: str, n: int, lf: float, ps: int, bs: int,
        pre: dict[str, Any] | None, study: str) -> Cell:
    from experiments.arms import resolve_arm

    live = p.live_episodes if (p.live_arms is None or arm in p.live_arms) and study != "dose" else 0
    conf = {"data": str(path), "encoder": arm, "mode": mode, "n_episodes": n, "val_episodes": p.val_episodes,
            "steps": p.bc_steps, "eval_every": p.eval_every, "patience": p.patience, "min_delta": p.bc_min_delta,
            "batch_size": p.bc_batch,
            "lr": p.bc_lr,
            "gru": p.gru, "live_episodes": live, "live_max_steps": p.live_max_steps, "seed": bc_seed(ps, bs),
            "pipeline_seed": ps, "size": p.size, **({"pretrained": pre} if pre else {}), **on_device(p),
            # the narration F1 on the BC-validation episodes: matched-F1 pairs of the dose arms
            **({"bc_val_f1": True} if pre and arm in p.dose_arms else {})}
    step = (pre or {}).get("step")
    name = f"{study}/{env}/{arm}-{mode}/lf{lf:g}/n{n}/p{ps}/b{bs}" + (f"/ck{step}" if step is not None else "")
    spec = resolve_arm(arm)[1]
    # cost in frozen-head steps at batch 8 (measured, loaded 2-core machine: a frozen-head step
    # 0.06 s, a step that trains a CNN on 8 episodes ~1 s, a live episode in both action modes
    # ~6 s); a step's cost grows with the episodes in its batch
    steps = p.bc_steps * p.bc_batch / 8
    trains = spec.trains_encoder or mode == "finetune"
    # + the convex head on frozen features (~0.06 s per training episode of 64 steps, measured
    # on Crafter at load ~11: 4-8 s for N = 64)
    cost = steps * (16 if trains else 1) + 100 * live + 2 * n + (0 if trains else n)
    return Cell(name, "experiments.run_all:bc_cell", conf, kind="bc", cost=cost,
                meta={"study": study, "env": env, "encoder": arm, "mode": mode, "n_episodes": n,
                      "label_fraction": lf, "pipeline_seed": ps, "seed": bs,
                      "pretrain_step": step if step is not None else (p.pretrain_steps if pre else None)})


# ---------------------------------------------------------------------------- ETA
def probe_unit_seconds() -> dict[str, float]:
    """Seconds per cost unit of each cell kind, measured now: a short burst of tiny-model
    training steps and env steps, scaled by per-unit ratios calibrated on this repository's
    CPU runs (the probe measures this machine's speed and load)."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 4, 2), torch.nn.GELU(), torch.nn.Conv2d(16, 32, 4, 2),
                              torch.nn.Flatten(), torch.nn.LazyLinear(64))
    x = torch.rand(64, 3, 64, 64)
    net(x)
    opt = torch.optim.AdamW(net.parameters())
    bursts = []
    for _ in range(3):  # the median of three bursts: one burst caught by a neighbour's spike misleads
        t0 = time.perf_counter()
        for _ in range(5):
            loss = net(x).pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        bursts.append((time.perf_counter() - t0) / 5)
    step = float(np.median(bursts))
    # calibration: on the shared 2-core machine at load ~8 this probe step took 0.17 s, a tiny
    # BYOG pretraining step 1.3 s, a BC cost unit 0.06 s, a reference live episode (both
    # Crafter 500-step modes) 3.5 s; PPO from the former small study. Recalibrated (issue 22)
    # on the cpu preset's measured run (docs/results/crafter-transfer-cpu/timings.json: 0.237 s
    # per pretraining step, 0.0224 s per BC unit, 0.81 s per reference unit on 2 idle cores)
    # against this probe at load ~2.5 (0.0369 s): the former factors put that run at 31 min,
    # against the 42.5 measured; these at 42
    scale = step / 0.17
    return {"pretrain": 1.1 * scale, "bc": 0.10 * scale, "ref": 3.7 * scale, "rl": 0.015 * scale,
            "probe_step_seconds": float(np.round(step, 4))}


# ---------------------------------------------------------------------------- main
def run(cfg: RunAllConfig) -> dict[str, Any]:
    from experiments.devices import require_device
    from experiments.report import write_report

    p = resolve(cfg)
    require_device(p.device, f"Preset {cfg.preset}")  # before collection, and in --plan-only
    root = cfg.out
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    envs = dict(p.envs)
    if p.cross_domain and CROSS_TARGET in envs:
        envs[CROSS_SOURCE] = EnvPlan(max(16, envs[CROSS_TARGET].episodes // 2), envs[CROSS_TARGET].max_steps)
    if cfg.plan_only:
        return plan_only(cfg, p, root, envs)
    data = {env: collect_data(env, plan, data_dir(root, env, plan), cfg.progress) for env, plan in envs.items()}
    from collect.dataset import open_dataset

    cells = plan_cells(p, root, data, {e: open_dataset(d).num_episodes for e, d in data.items()})
    (root / "plan.json").write_text(json.dumps({"preset": cfg.preset, "design": asdict(p), "cells": len(cells),
                                                "command": command(cfg)}, indent=2, default=str))
    workers = p.workers
    if cfg.report_only:
        done = [c.result(root) for c in cells if c.done(root)]
        text = write_report(root, done, p, command=command(cfg) + f"  ({len(done)} of {len(cells)} cells finished)")
        return {"preset": cfg.preset, "cells": len(cells), "finished": len(done), "report": text}
    if cfg.progress:  # the plan before anything runs: cells to run and a measured ETA
        eta = estimate(cells, root, probe_unit_seconds(), workers)
        print(f"{cfg.preset}: {eta['cells']} cells, {eta['todo']} to run on {workers} workers; "
              f"ETA {eta['eta_seconds'] / 60:.0f} min", file=sys.stderr)
    rows: list[dict[str, Any]] = []
    for desc, stage in stages(cells):
        rows += run_cells(stage, root, workers=workers, progress=cfg.progress, desc=desc,
                          threads=cfg.threads or 1)
    seconds = time.perf_counter() - t0
    report = write_report(root, rows, p, command=command(cfg), seconds=seconds)
    return {"preset": cfg.preset, "cells": len(cells), "seconds": seconds, "report": report}


def worker_threads(threads: int, workers: int) -> int:
    """torch threads per worker: ``threads``, or (0) the cores this process may use shared out
    among the ``workers`` (at least one each: more threads than cores only spin-wait)."""
    from byog_env.threads import available_cores

    return threads or max(1, available_cores() // max(1, workers))


def stages(cells: list[Cell]) -> list[tuple[str, list[Cell]]]:
    """Cells in runnable order, controls first (so a cut-short run still has its gates): BC
    cells that need no encoder; then per pretrained kind its encoders and the cells that use
    them; then the live references and PPO."""
    bc = [c for c in cells if c.kind == "bc"]  # the dose cells too (kind bc, study dose)
    out = [("bc cells (no pretraining)", [c for c in bc if "pretrained" not in c.config])]
    kinds = list(dict.fromkeys(c.config["kind"] for c in cells if c.kind == "pretrain"))
    for kind in kinds:
        out.append((f"pretrain {kind}", [c for c in cells if c.kind == "pretrain" and c.config["kind"] == kind]))
        out.append((f"bc cells ({kind})", [c for c in bc if c.config.get("pretrained", {}).get("kind") == kind]))
    out += [("references", [c for c in cells if c.kind == "ref"]), ("ppo", [c for c in cells if c.kind == "rl"])]
    return [(d, s) for d, s in out if s]


def plan_only(cfg: RunAllConfig, p: StudyPreset, root: Path, envs: dict[str, EnvPlan]) -> dict[str, Any]:
    """Count the cells (datasets assumed collected at their planned size) and estimate the wall
    clock from a measured probe (or this study's own timings)."""
    data = {env: data_dir(root, env, plan) for env, plan in envs.items()}
    cells = plan_cells(p, root, data, {env: plan.episodes for env, plan in envs.items()})
    units = probe_unit_seconds()
    eta = estimate(cells, root, units, p.workers)
    missing = [e for e in envs if not (data_dir(root, e, envs[e]) / "meta" / "info.json").is_file()]
    collect_s = sum(envs[e].episodes * (envs[e].max_steps or 64) * _collect_step_s(e) for e in missing)
    out = {"preset": cfg.preset, "description": p.description, "cells": eta["cells"], "todo": eta["todo"],
           "by_kind": eta["by_kind"], "workers": p.workers, "device": p.device, "collect_seconds": collect_s,
           "eta_seconds": eta["eta_seconds"] + collect_s, "probe": units, "command": command(cfg)}
    (root / "plan.json").write_text(json.dumps(out, indent=2, default=str))
    # the probe and its calibration are CPU measurements: off the CPU the ETA is an upper bound
    bound = "" if p.device == "cpu" else f", a CPU probe's: an upper bound on {p.device}"
    print(f"{cfg.preset}: {eta['cells']} cells ({eta['todo']} to run: "
          + ", ".join(f"{k} {v['cells']}" for k, v in eta["by_kind"].items())
          + f"), {p.workers} workers on {p.device}; ETA {out['eta_seconds'] / 60:.0f} min "
          f"(collection {collect_s / 60:.0f} min; probe step {units['probe_step_seconds']} s{bound})")
    return out


def command(cfg: RunAllConfig) -> str:
    """The command line that reproduces ``cfg`` (the preset plus its overrides)."""
    parts = ["python -m experiments.run_all", f"--preset {cfg.preset}", f"--out {shlex.quote(str(cfg.out))}"]
    for name in ("envs", *OVERRIDES):
        v = getattr(cfg, name)
        flag = "--" + name.replace("_", "-")
        if isinstance(v, tuple):
            parts.append(f"{flag} {' '.join(str(x) for x in v)}")
        elif isinstance(v, bool):
            parts.append(flag if v else f"--no-{name.replace('_', '-')}")
        elif v is not None:
            parts.append(f"{flag} {v}")
    if cfg.episodes:
        parts.append("--episodes " + " ".join(f"{k} {v}" for k, v in cfg.episodes.items()))
    if cfg.steps_override:
        parts.append(f"(Python API overrides: {json.dumps(cfg.steps_override, default=str)})")
    return " ".join(parts)


def main(cfg: RunAllConfig) -> dict[str, Any]:
    """Run the study (resumable; ``--plan-only`` prints the cells and the ETA and stops)."""
    return run(cfg)


def cli(argv: list[str] | None = None) -> int:
    """``python -m experiments.run_all``: prints the report's markdown; exit codes follow the one
    policy of :mod:`byog_core.cli` (2 bad settings, 1 a failure while running, 130 interrupted)."""
    import tyro

    from byog_core.cli import run_cli

    def body() -> int:
        cfg = tyro.cli(RunAllConfig, args=argv)
        cfg.threads = worker_threads(cfg.threads, resolve(cfg).workers)  # resolve checks the overrides
        res = main(cfg)
        if not cfg.plan_only:
            print(res.get("report", json.dumps(res, indent=2, default=str)))
        return 0

    return run_cli(body, on_interrupt="finished cells are kept; rerun the same command to resume.")


if __name__ == "__main__":
    sys.exit(cli())
