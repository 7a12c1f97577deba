"""Narration under label scarcity (issue 12): with few labelled episodes, does BYOG narrate
better than the supervised captioner (``w_byog = 0``) and a self-training captioner?

    python -m experiments.scarcity --preset scarcity-cpu --out runs/scarcity --plan-only
    python -m experiments.scarcity --preset scarcity-cpu --out runs/scarcity

Crafter, scripted episodes, the tiny settings of ``make demo``. Every step draws semi-supervised
batches (issue 21): the same true-labelled batch of ``loader.batch_size`` windows for every arm
of a seed, plus, for BYOG, an unlabelled batch of ``loader.unlabelled_batch_size`` windows for
the self-supervised loss. Arms (:data:`ARMS`):

* ``captioner``: ``w_byog = 0``, the labelled batch only.
* ``self-training``: the captioner of the same seed and labelled set (its cell) pseudo-labels
  the unlabelled training episodes with its greedy narration; a fresh captioner then trains on
  the same true-labelled batch plus a pseudo-labelled batch beside it.
* ``byog-hidden``: BYOG with the predictor reading the encoder's hidden states (the default).
* ``byog-piloted``: the BYOG variant (:data:`VARIANTS`: warm-up, init from a captioner, encoder
  gradient scale, separate clipping, sampling temperature, the latent objective, weightings)
  a pilot chooses by event F1 on a seeded slice of training episodes that no main cell trains
  or validates on.
* ``shuffled-captioner``: a captioner on annotations shuffled across episodes, the negative
  control (it must not beat the majority-token baseline).

A pipeline seed re-draws the labelled episodes (``label_seed``) and the initialisation. Cells
run on the shared study runner (:mod:`experiments.runner`: config-keyed, resumable, a process
pool); ``--plan-only`` prints the cell count and an ETA from steps and validation timed here
with the study's workers side by side. Every run is validated on the same held-out windows
(``logging.val_windows``, spaced evenly over the held-out episodes). The report gives, per arm
and fraction, event P/R/F1 (also per kind), token accuracy and the majority-token baseline,
collapse monitors and prefix gains, learning curves over steps and labelled windows seen, the
gradient each loss puts on the encoder, the controls' verdicts, paired differences with
two-sided t-intervals and MDEs, and the stated one-sided comparisons with Holm's adjustment.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from byog_core.registry import Registry
from experiments.errors import ExperimentError
from experiments.runner import Cell, estimate, run_cells
from experiments.scarcity_cells import run_cell  # noqa: F401  (cells name it here)
from experiments.scarcity_report import (  # noqa: F401  (re-exported: the study's analysis)
    ARM_METRICS,
    Gates,
    analyse,
    choose_variant,
    pilot_table,
    plot_curves,
    plot_grad_norms,
    report,
)

# the tiny settings of `make demo` (Makefile DEMO_TRAIN), as a trainer config dict
DEMO_TRAIN: dict[str, Any] = {
    "size": "tiny",
    "model": {"text": {"tokens_per_frame": 8}, "nil_threshold": 0.5},
    "loader": {"window": 8, "batch_size": 32, "num_workers": 0},
    "optim": {"lr": 5e-3},
    "schedule": {"warmup_steps": 10},
    "logging": {"progress": False, "plots": False, "tensorboard": False, "examples": 0,
                "val_batches": 4},
    "checkpoint": {"every": 0, "keep_last": 1},
    "threads": 1,
}

# BYOG loss weightings (agents.config.LossConfig fields), used by the pilot's variants and the
# gpu factorial
WEIGHTINGS: Registry[dict[str, float]] = Registry.of("BYOG loss weighting", {
    "none": {},
    "nil0.3": {"byog_nil_weight": 0.3},
    "slot0": {"byog_later_slots_weight": 0.0},
    "nil0.3+slot0": {"byog_nil_weight": 0.3, "byog_later_slots_weight": 0.0},
}, error=ExperimentError)


@dataclass(frozen=True)
class Arm:
    """One way of training the narrator: a trainer preset plus model/trainer overrides."""

    preset: str
    """Trainer preset (``captioner``, ``byog``, ``byog-latent``)."""
    model: dict[str, Any] = field(default_factory=dict)
    """Nested ``ModelConfig`` overrides (e.g. ``{"predictor": {"input": "logits"}}``)."""
    self_train: bool = False
    """The same fraction's captioner pseudo-labels the unlabelled episodes; this arm trains on
    the true-labelled batch plus a pseudo-labelled batch beside it."""
    piloted: bool = False
    """Stands for the BYOG variant the pilot chooses (:data:`VARIANTS`)."""
    shuffled: bool = False
    """Train on annotations shuffled across episodes (the negative control)."""
    train: dict[str, Any] = field(default_factory=dict)
    """Trainer config overrides beside the model's (e.g. ``{"optim": {...}}``)."""
    init_share: float = 0.0
    """Spend this share of the steps on a captioner first and start from it (``--init-from``);
    the cell's total steps stay the preset's."""


ARMS: Registry[Arm] = Registry.of("scarcity arm", {
    "captioner": Arm("captioner"),
    "self-training": Arm("captioner", self_train=True),
    "byog-hidden": Arm("byog", {"predictor": {"input": "hidden"}}),
    "byog-logits": Arm("byog", {"predictor": {"input": "logits"}}),
    "byog-piloted": Arm("byog", piloted=True),
    "shuffled-captioner": Arm("captioner", shuffled=True),
}, error=ExperimentError)
"""The arms of ``scarcity-cpu``; ``scarcity-gpu`` adds its factorial (:func:`factorial_arms`)."""

VARIANTS: Registry[Arm] = Registry.of("pilot variant", {
    "byog": ARMS["byog-hidden"],
    "warmup": Arm("byog", {"loss": {"w_byog_warmup_steps": -1}}),  # -1: half the run's steps
    "init-captioner": Arm("byog", init_share=0.5),
    "grad-scale0.1": Arm("byog", {"loss": {"byog_encoder_grad_scale": 0.1}}),
    "clip-separate": Arm("byog", train={"optim": {"grad_clip_encoder": 0.5,
                                                  "grad_clip_predictor": 1.0}}),
    "temp0": Arm("byog", {"loss": {"sample_temperature": 0.0}}),
    "temp0.5": Arm("byog", {"loss": {"sample_temperature": 0.5}}),
    "latent": Arm("byog-latent"),
    "nil0.3": Arm("byog", {"loss": WEIGHTINGS["nil0.3"]}),
    "slot0": Arm("byog", {"loss": WEIGHTINGS["slot0"]}),
}, error=ExperimentError)
"""The BYOG variants the pilot compares (issue 21, item 3); the one with the best event F1 on
the pilot slice becomes ``byog-piloted`` in every main cell. ``captioner`` runs beside them as
the pilot's reference (not a candidate)."""


def factorial_arms() -> dict[str, Arm]:
    """input {hidden, logits} x w_byog {0.3, 1} x weighting {none, nil0.3+slot0} x EMA decay
    {0.99, 0.999}, beside the captioner and self-training."""
    arms = {"captioner": ARMS["captioner"], "self-training": ARMS["self-training"]}
    for inp in ("hidden", "logits"):
        for w in (0.3, 1.0):
            for wname in ("none", "nil0.3+slot0"):
                for ema in (0.99, 0.999):
                    arms[f"byog-{inp}-w{w:g}-{wname}-ema{ema:g}"] = Arm("byog", {
                        "predictor": {"input": inp},
                        "loss": {"w_byog": w, "target_ema": ema, **WEIGHTINGS[wname]}})
    return arms


@dataclass(frozen=True)
class Preset:
    """One study design."""

    episodes: int
    """Scripted Crafter episodes collected (each labelled draw must hold >= 1 episode)."""
    max_episode_steps: int
    """Steps per episode at most."""
    fractions: tuple[float, ...]
    """Label fractions of the training episodes."""
    seeds: tuple[int, ...]
    """Pipeline seeds (labelled draw and initialisation)."""
    steps: int
    """Optimizer steps per training run (every arm)."""
    arms: tuple[str, ...]
    """Arm names (``ARMS`` or the factorial's)."""
    pilot_variants: tuple[str, ...] = tuple(VARIANTS.registration_order())
    """BYOG variants the pilot compares for ``byog-piloted`` (empty: no pilot)."""
    pilot_steps: int = 0
    """Steps of a pilot run (0 = ``steps // 2``)."""
    pilot_episodes: int = 10
    """Training episodes set aside (seeded) as the pilot's validation slice; no main cell trains
    or validates on them, so the pilot never selects on the reported split."""
    evals: int = 5
    """Validations per run (the learning curves)."""
    workers: int = 2
    """Worker processes."""
    device: str = "cpu"
    """Torch device of every run."""
    collect_seed: int = 1
    """Seed of the collection."""
    collect_envs: int = 2
    """Collector processes."""
    factorial: bool = False
    """Use :func:`factorial_arms` instead of :data:`ARMS`."""
    train: dict[str, Any] = field(default_factory=dict)
    """Trainer config overrides merged into :data:`DEMO_TRAIN` (e.g. a smaller batch)."""
    gates: Gates = field(default_factory=Gates)
    """The positive and negative controls' pass rules."""
    reference: str = "byog-hidden"
    """The default BYOG arm the piloted variant must beat to become the preset default."""


_CPU_ARMS = ("captioner", "self-training", "byog-hidden", "byog-piloted", "shuffled-captioner")
PRESETS: Registry[Preset] = Registry.of("scarcity preset", {
    "scarcity-cpu": Preset(episodes=96, max_episode_steps=400, fractions=(0.05, 0.25),
                           seeds=(0, 1, 2), steps=600, pilot_steps=300, arms=_CPU_ARMS,
                           train={"logging": {"val_windows": 256}}),
    "scarcity-gpu": Preset(episodes=96, max_episode_steps=400,
                           fractions=(0.02, 0.05, 0.1, 0.25, 1.0), seeds=(0, 1, 2, 3, 4),
                           steps=2000, arms=(*_CPU_ARMS, *[a for a in factorial_arms()
                                                         if a.startswith("byog-")]),
                           pilot_steps=1000, workers=8, device="cuda", collect_envs=8,
                           factorial=True, train={"logging": {"val_windows": 256}}),
    # seconds-long, for tests: the whole pipeline on a few short episodes
    "scarcity-micro": Preset(episodes=8, max_episode_steps=40, fractions=(0.5,), seeds=(0, 1),
                             steps=2, pilot_steps=2, evals=1, workers=1, collect_envs=1,
                             arms=_CPU_ARMS, pilot_variants=("byog", "init-captioner", "latent"),
                             pilot_episodes=2,
                             train={"loader": {"batch_size": 4},
                                    "logging": {"val_batches": 1, "val_windows": 8}}),
}, error=ExperimentError, hint="Add one with experiments.scarcity.PRESETS.register(name, Preset(...)).")


@dataclass
class ScarcityConfig:
    """``python -m experiments.scarcity``: the narration-under-label-scarcity study."""

    out: Path = Path("runs/scarcity")
    """Study directory: data/, cells/, timings.json, plan.json, results.json, report.md."""
    preset: str = "scarcity-cpu"
    """Design: scarcity-cpu, scarcity-gpu or scarcity-micro (tests)."""
    plan_only: bool = False
    """Print the cell count and the measured ETA, write plan.json, and stop."""
    workers: int | None = None
    """Worker processes (None = the preset's)."""
    device: str | None = None
    """Torch device (None = the preset's)."""
    progress: bool = True
    """Progress bars."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)

    def check(self) -> None:
        """Raise :class:`ExperimentError` for a bad setting (the CLI's usage error, exit 2;
        not in ``__post_init__``, where tyro would print its own multi-line box)."""
        if self.preset not in PRESETS:
            raise ExperimentError(f"Unknown preset {self.preset!r}; choose one of "
                                  f"{', '.join(PRESETS)}.")
        if self.workers is not None and self.workers < 1:
            raise ExperimentError(f"--workers must be >= 1, got {self.workers}.")


# --------------------------------------------------------------------------- cells


# --------------------------------------------------------------------------- the plan


def arms_of(p: Preset) -> dict[str, Arm]:
    """The preset's arms by name."""
    table = {**ARMS, **factorial_arms()} if p.factorial else ARMS
    unknown = [a for a in p.arms if a not in table]
    if unknown:
        raise ExperimentError(f"Unknown arm(s) {unknown}; known: {', '.join(table)}.")
    return {a: table[a] for a in p.arms}


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def train_dict(p: Preset, arm: Arm, fraction: float, seed: int, *, steps: int, device: str,
               validate_on: str = "val") -> dict[str, Any]:
    """The trainer config dict of one run (every cell sets the pilot slice aside)."""
    base = _merge(_merge(DEMO_TRAIN, p.train), arm.train)
    model = _merge(base["model"], arm.model)
    loss = model.get("loss", {})
    if loss.get("w_byog_warmup_steps") == -1:  # the variant's "half the run"
        model = _merge(model, {"loss": {"w_byog_warmup_steps": max(1, steps // 2)}})
    every = max(1, steps // max(p.evals, 1))
    return _merge(base, {"preset": arm.preset, "model": model, "steps": steps,
                         "seed": seed, "label_seed": seed, "label_fraction": fraction,
                         "device": device,
                         "loader": {"pilot_episodes": p.pilot_episodes, "validate_on": validate_on},
                         "logging": {"eval_every": every, "log_every": every}})


def _arm_cells(cfg: ScarcityConfig, p: Preset, prefix: str, name: str, arm: Arm, frac: float,
               seed: int, steps: int, validate_on: str, meta: dict[str, Any],
               teachers: dict[tuple[float, int], Cell]) -> list[Cell]:
    """The cells of one arm at one (fraction, seed): one cell, or two stages (a captioner
    then the arm from it, for ``init_share``; the captioner teacher then the student, for
    self-training). ``meta["stage"]`` orders them."""
    device = cfg.device or p.device
    data = str((cfg.out / "data").resolve())
    where = f"{prefix}/{name}/f{frac:g}/s{seed}"
    tr = train_dict(p, arm, frac, seed, steps=steps, device=device, validate_on=validate_on)
    if arm.self_train:  # a fresh captioner on the true-labelled + a pseudo-labelled batch
        if (frac, seed) not in teachers:
            raise ExperimentError("self-training needs the captioner arm in the preset.")
        t = teachers[(frac, seed)]
        conf = {"data": data, "train": _merge(tr, {"pseudo_labels": True}),
                "teacher_train": t.config["train"],
                "teacher": str((t.dir(cfg.out) / "run").resolve())}
        return [Cell(where, "experiments.scarcity:run_cell", conf, kind="self-training",
                     cost=steps, meta={**meta, "stage": 1})]
    if arm.shuffled:
        return [Cell(where, "experiments.scarcity:run_cell",
                     {"data": data, "train": tr, "shuffle_seed": seed}, kind="captioner",
                     cost=steps, meta={**meta, "stage": 0})]
    if arm.init_share:
        first = max(1, round(steps * arm.init_share))
        cap = train_dict(p, ARMS["captioner"], frac, seed, steps=first, device=device,
                         validate_on=validate_on)
        c0 = Cell(f"{where}/init", "experiments.scarcity:run_cell", {"data": data, "train": cap},
                  kind="captioner", cost=first, meta={**meta, "stage": 0, "part": "init"})
        rest = _merge(train_dict(p, arm, frac, seed, steps=max(1, steps - first), device=device,
                                 validate_on=validate_on),
                      {"init_from": str((c0.dir(cfg.out) / "run").resolve())})
        return [c0, Cell(where, "experiments.scarcity:run_cell", {"data": data, "train": rest},
                         kind=arm.preset if arm.preset != "captioner" else "byog",
                         cost=steps - first, meta={**meta, "stage": 1})]
    return [Cell(where, "experiments.scarcity:run_cell", {"data": data, "train": tr},
                 kind="captioner" if arm.preset == "captioner" else "byog", cost=steps,
                 meta={**meta, "stage": 0})]


def plan(cfg: ScarcityConfig, variant: str | None = None) -> tuple[list[Cell], list[Cell]]:
    """(pilot cells, main cells). ``byog-piloted`` takes the BYOG variant ``variant`` (None =
    the first of the preset's pilot variants: a placeholder for counting before the pilot)."""
    p = PRESETS[cfg.preset]
    arms = arms_of(p)
    pilot: list[Cell] = []
    pilot_steps = p.pilot_steps or max(1, p.steps // 2)
    f0, s0 = min(p.fractions), p.seeds[0]
    if p.pilot_variants and any(a.piloted for a in arms.values()):
        ref = _arm_cells(cfg, p, "pilot", "captioner", ARMS["captioner"], f0, s0, pilot_steps,
                         "pilot", {"arm": "captioner", "variant": None}, {})
        pilot += ref
        for v in p.pilot_variants:
            pilot += _arm_cells(cfg, p, "pilot", v, VARIANTS[v], f0, s0, pilot_steps, "pilot",
                                {"arm": "byog-piloted", "variant": v}, {})
    chosen = variant or (p.pilot_variants[0] if p.pilot_variants else "byog")
    main: list[Cell] = []
    for frac in p.fractions:
        for seed in p.seeds:
            teachers: dict[tuple[float, int], Cell] = {}
            for name, arm in arms.items():
                use = VARIANTS[chosen] if arm.piloted else arm
                meta = {"arm": name, "fraction": frac, "seed": seed,
                        "variant": chosen if arm.piloted else None}
                cells = _arm_cells(cfg, p, "main", name, use, frac, seed, p.steps, "val", meta,
                                   teachers)
                if name == "captioner":
                    teachers[(frac, seed)] = cells[-1]
                main += cells
    return pilot, main


def stages(cells: list[Cell]) -> list[list[Cell]]:
    """Cells grouped by ``meta["stage"]``, in order: a stage reads only earlier stages' runs."""
    keys = sorted({c.meta.get("stage", 0) for c in cells})
    return [[c for c in cells if c.meta.get("stage", 0) == k] for k in keys]


PROBE_KINDS = ("captioner", "byog", "self-training")


def _probe_batch(kind: str, B: int, Bu: int, T: int, sentences: list[str]) -> dict[str, Any]:
    """A synthetic step batch of a run kind's shape: the labelled batch (B windows) plus the
    unlabelled (BYOG) or pseudo-labelled (self-training) batch of Bu windows beside it."""
    import torch

    extra = 0 if kind == "captioner" else Bu
    n = B + extra
    g = torch.Generator().manual_seed(0)
    return {"frames": torch.randint(0, 255, (n, T, 64, 64, 3), dtype=torch.uint8, generator=g),
            "valid": torch.ones(n, T, dtype=torch.bool),
            "annotations": [[[sentences[(b + t) % 6]] if (b + t) % 3 == 0 else []
                             for t in range(T)] for b in range(n)],
            "episode_index": torch.arange(n), "start": torch.zeros(n, dtype=torch.long),
            "labelled": torch.arange(n) < (n if kind == "self-training" else B),
            "byog": torch.arange(n) >= B if kind == "byog" else torch.zeros(n, dtype=torch.bool)}


def _probe_worker(args: tuple[dict[str, Any], str, int]) -> dict[str, float]:
    """Wall seconds per training step and per validation window of each run kind, in one
    process with one torch thread (a study worker's setting)."""
    import torch

    from agents.model.agent import BYOGAgent
    from agents.model.text import train_tokenizer
    from agents.training.config import config_from_dict

    train, device, steps = args
    torch.set_num_threads(1)
    sentences = ["collected 1 wood", "tree in view", "made wood pickaxe", "cow in view",
                 "placed table", "ate cow"]
    tok = train_tokenizer(sentences)
    out: dict[str, float] = {}
    for kind in PROBE_KINDS:
        preset = "byog" if kind == "byog" else "captioner"
        tc = config_from_dict(_merge(train, {"preset": preset, "data": "x", "out": "x"}))
        torch.manual_seed(0)
        agent = BYOGAgent(tc.model, tok).to(device)
        opt = torch.optim.AdamW(agent.parameters(), lr=1e-4)
        batch = _probe_batch(kind, tc.loader.batch_size, tc.loader.unlabelled_batch,
                             tc.loader.window, sentences)
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        times = []
        for i in range(steps + 1):
            t0 = time.perf_counter()
            loss, _ = agent.training_step(batch, i)
            opt.zero_grad()
            loss.backward()
            opt.step()
            agent.update_target()
            if device != "cpu":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        out[kind] = sum(times[1:]) / steps  # the first step warms up
        agent.eval()
        val = {k: (v[: tc.loader.batch_size] if isinstance(v, (torch.Tensor, list)) else v)
               for k, v in batch.items()}
        t0 = time.perf_counter()
        agent.evaluate(val)
        out[f"{kind}_eval_window"] = (time.perf_counter() - t0) / tc.loader.batch_size
    return out


def probe_step_seconds(p: Preset, device: str, steps: int = 3,
                       workers: int | None = None) -> dict[str, float]:
    """Wall seconds per training step and per validation window of each run kind
    (``captioner``; ``byog`` with its labelled and unlabelled batches; ``self-training`` with
    its pseudo-labelled batch), timed on synthetic batches of the preset's shape in ``workers``
    processes side by side, as the study runs them (one process alone runs faster than two
    sharing the machine's memory bandwidth: the old probe under-counted by 1.6x)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    train = _merge(DEMO_TRAIN, p.train)
    n = max(1, workers or p.workers)
    if n == 1:
        return _probe_worker((train, device, steps))
    with ProcessPoolExecutor(max_workers=n, mp_context=mp.get_context("spawn")) as pool:
        results = list(pool.map(_probe_worker, [(train, device, steps)] * n))
    return {k: sum(r[k] for r in results) / n for k in results[0]}


def probe_collect_seconds(steps: int = 100) -> float:
    """Seconds (CPU time) per scripted Crafter step, collector included roughly as the env
    and policy (the writer's compression is extra)."""
    import byog_env
    from collect.policies import make_policy

    env = byog_env.make("crafter")
    policy = make_policy("crafter-scripted", env, seed=0)
    obs, info = env.reset(seed=0)
    policy.reset(obs, info)
    t0 = time.process_time()
    for _ in range(steps):
        obs, _, term, trunc, info = env.step(policy.act(obs, info))
        if term or trunc:
            obs, info = env.reset()
            policy.reset(obs, info)
    env.close()
    return (time.process_time() - t0) / steps


def plan_summary(cfg: ScarcityConfig) -> dict[str, Any]:
    """Cell counts and the ETA (this study's timings where cells finished, else the probe)."""
    p = PRESETS[cfg.preset]
    workers = cfg.workers or p.workers
    pilot, main = plan(cfg)
    import torch

    from experiments.devices import require_device

    device = require_device(cfg.device or p.device, f"Preset {cfg.preset}")
    torch.set_num_threads(1)  # as in the study's workers
    probe = probe_step_seconds(p, device, workers=workers)
    logging = _merge(DEMO_TRAIN, p.train)["logging"]
    val_windows = logging.get("val_windows") or 128
    # per cost unit (one training step): the step, plus the run's validations spread over it
    # (evals + the final one + the per-kind pass, each over every validation window)
    unit = {k: probe[k] + (p.evals + 2) * val_windows * probe[f"{k}_eval_window"] / max(p.steps, 1)
            for k in PROBE_KINDS}
    eta_pilot = estimate(pilot, cfg.out, unit, workers)
    eta_main = estimate(main, cfg.out, unit, workers)
    collect_s = 0.0
    if not (cfg.out / "data" / "meta" / "info.json").is_file():
        collect_s = probe_collect_seconds() * p.episodes * p.max_episode_steps / p.collect_envs
    total = eta_pilot["eta_seconds"] + eta_main["eta_seconds"] + collect_s
    return {"preset": cfg.preset, "design": asdict(p), "pilot_cells": len(pilot),
            "main_cells": len(main), "step_seconds_probe": probe, "unit_seconds": unit,
            "todo": eta_pilot["todo"] + eta_main["todo"], "pilot_eta_minutes":
            eta_pilot["eta_seconds"] / 60, "main_eta_minutes": eta_main["eta_seconds"] / 60,
            "by_kind": {"pilot": eta_pilot["by_kind"], "main": eta_main["by_kind"]},
            "collect_seconds": collect_s, "eta_minutes": total / 60,
            "note": ("wall seconds measured here with the study's worker count side by side, "
                     "validation included; collection probed; pseudo-labelling not included")}


# --------------------------------------------------------------------------- analysis


# --------------------------------------------------------------------------- entry point


def ensure_data(cfg: ScarcityConfig) -> Path:
    """Collect the preset's scripted Crafter episodes into ``OUT/data`` (once; resumable)."""
    from collect.config import CollectConfig
    from collect.rollout import collect_dataset

    p = PRESETS[cfg.preset]
    data = cfg.out / "data"
    if not (data / "meta" / "info.json").is_file():
        collect_dataset(CollectConfig(env="crafter", out=data, policy="crafter-scripted",
                                      episodes=p.episodes, max_episode_steps=p.max_episode_steps,
                                      seed=p.collect_seed, num_envs=p.collect_envs,
                                      vector_mode="process" if p.collect_envs > 1 else "sync",
                                      resume=data.exists(), progress=cfg.progress))
    return data


def main(cfg: ScarcityConfig) -> dict[str, Any]:
    """Plan (and with ``plan_only`` stop), collect, run the pilot and choose the variant, then
    the main cells, report."""
    cfg.check()
    p = PRESETS[cfg.preset]
    workers = cfg.workers or p.workers
    cfg.out.mkdir(parents=True, exist_ok=True)
    summary = plan_summary(cfg)
    (cfg.out / "plan.json").write_text(json.dumps(summary, indent=2, default=str))
    steps = {k: round(v, 3) for k, v in summary["step_seconds_probe"].items()}
    print(f"{cfg.preset}: {summary['pilot_cells']} pilot + {summary['main_cells']} main cells, "
          f"{summary['todo']} to run on {workers} worker(s); ETA {summary['eta_minutes']:.1f} min "
          f"(pilot {summary['pilot_eta_minutes']:.1f}, main {summary['main_eta_minutes']:.1f}, "
          f"collection {summary['collect_seconds'] / 60:.1f}; wall seconds per step / per "
          f"validation window measured here: {steps})")
    if cfg.plan_only:
        return summary
    ensure_data(cfg)
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    pilot, _ = plan(cfg)
    pilot_rows = _run_stages(cfg, pilot, workers, "pilot")
    timing["pilot_minutes"] = (time.perf_counter() - t0) / 60
    chosen = choose_variant(pilot_rows)  # fixed here, before any main cell runs
    t1 = time.perf_counter()
    _, main_cells = plan(cfg, chosen)
    rows = _run_stages(cfg, main_cells, workers, "main")
    timing["main_minutes"] = (time.perf_counter() - t1) / 60
    (cfg.out / "wall_clock.json").write_text(json.dumps(timing, indent=2))
    print(report(cfg.out, cfg.preset, p.gates, pilot_rows, rows, chosen))
    return {"plan": summary, "chosen_variant": chosen, "rows": len(rows), **timing}


def _run_stages(cfg: ScarcityConfig, cells: list[Cell], workers: int, desc: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i, stage in enumerate(stages(cells)):
        rows += run_cells(stage, cfg.out, workers=workers, progress=cfg.progress,
                          desc=f"{desc} {i + 1}")
    return rows


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point, under the one exit-code policy (:mod:`byog_core.cli`): one
    ``error:`` line, 2 for bad settings, 1 for a failure while running, 130 interrupted."""
    import tyro

    from byog_core.cli import run_cli

    def body() -> int:
        try:
            cfg = tyro.cli(ScarcityConfig, args=argv, description=__doc__.split("\n")[0])
        except SystemExit as e:
            return int(e.code or 0)
        cfg.check()
        main(cfg)
        return 0

    return run_cli(body, on_interrupt="finished cells are kept; rerun the same command to resume.")


if __name__ == "__main__":
    sys.exit(cli())
