"""Narration under label scarcity (issue 12): with few labelled episodes, does BYOG narrate
better than the supervised captioner (``w_byog = 0``) and a self-training captioner?

    python -m experiments.scarcity --preset scarcity-cpu --out runs/scarcity --plan-only
    python -m experiments.scarcity --preset scarcity-cpu --out runs/scarcity

Crafter, scripted episodes, the tiny settings of ``make demo``; every arm trains the same number
of optimizer steps (each cell reports its measured step time). Arms (:data:`ARMS`):

* ``captioner``: ``w_byog = 0``, trained on the labelled episodes only.
* ``self-training``: the captioner of the same seed and labelled set (its cell) pseudo-labels
  the unlabelled training episodes with its greedy narration; a fresh captioner then trains the
  same number of steps on the true and the pseudo labels (the standard semi-supervised
  reference; its pipeline spends twice the steps, both reported).
* ``byog-hidden`` / ``byog-logits``: BYOG with the predictor reading the encoder's hidden states
  or its output distribution; ``byog-logits`` uses the BYOG loss weighting a short pilot
  (``pilot`` cells, the first seed at the smallest fraction) favours by validation token
  accuracy.

A pipeline seed re-draws the labelled episodes (``label_seed``) and the initialisation. Cells
run on the shared study runner (:mod:`experiments.runner`: config-keyed, resumable, a process
pool); ``--plan-only`` prints the cell count and an ETA from training steps timed on this
machine. The report gives, per arm and fraction, greedy non-``<nil>`` token accuracy, event
P/R/F1 (also per event kind), the majority-token baseline, collapse monitors and prefix gains,
learning curves over steps, and paired differences (BYOG - captioner, BYOG - self-training; same
seed and labelled set) with t-intervals over the per-seed differences and the minimum
detectable effect.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from experiments.errors import ExperimentError
from experiments.runner import Cell, estimate, run_cells

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

# BYOG loss weightings the pilot compares (agents.config.LossConfig fields)
WEIGHTINGS: dict[str, dict[str, float]] = {
    "none": {},
    "nil0.3": {"byog_nil_weight": 0.3},
    "slot0": {"byog_later_slots_weight": 0.0},
    "nil0.3+slot0": {"byog_nil_weight": 0.3, "byog_later_slots_weight": 0.0},
}


@dataclass(frozen=True)
class Arm:
    """One way of training the narrator: a trainer preset plus model overrides."""

    preset: str
    """Trainer preset (``captioner`` or ``byog``)."""
    model: dict[str, Any] = field(default_factory=dict)
    """Nested ``ModelConfig`` overrides (e.g. ``{"predictor": {"input": "logits"}}``)."""
    self_train: bool = False
    """Pseudo-label the unlabelled episodes with this fraction's captioner, then train on both."""
    piloted: bool = False
    """Use the BYOG loss weighting the pilot favours."""


ARMS: dict[str, Arm] = {
    "captioner": Arm("captioner"),
    "self-training": Arm("captioner", self_train=True),
    "byog-hidden": Arm("byog", {"predictor": {"input": "hidden"}}),
    "byog-logits": Arm("byog", {"predictor": {"input": "logits"}}, piloted=True),
}
"""The arms of ``scarcity-cpu``; ``scarcity-gpu`` adds its factorial (:func:`factorial_arms`)."""


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
    pilot_weightings: tuple[str, ...] = ("none", "nil0.3", "slot0")
    """BYOG weightings the pilot compares for the piloted arms (empty: no pilot)."""
    pilot_steps: int = 0
    """Steps of a pilot run (0 = ``steps // 2``)."""
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


PRESETS: dict[str, Preset] = {
    "scarcity-cpu": Preset(episodes=96, max_episode_steps=400, fractions=(0.05, 0.25),
                           seeds=(0, 1, 2), steps=600, pilot_steps=300,
                           arms=("captioner", "self-training", "byog-hidden", "byog-logits")),
    "scarcity-gpu": Preset(episodes=96, max_episode_steps=400,
                           fractions=(0.02, 0.05, 0.1, 0.25, 1.0), seeds=(0, 1, 2, 3, 4),
                           steps=2000, arms=tuple(factorial_arms()), pilot_weightings=(),
                           workers=8, device="cuda", collect_envs=8, factorial=True),
    # seconds-long, for tests: the whole pipeline on a few short episodes
    "scarcity-micro": Preset(episodes=6, max_episode_steps=40, fractions=(0.5,), seeds=(0, 1),
                             steps=2, pilot_steps=1, evals=1, workers=1, collect_envs=1,
                             arms=("captioner", "self-training", "byog-hidden", "byog-logits"),
                             pilot_weightings=("none", "slot0"),
                             train={"loader": {"batch_size": 4},
                                    "logging": {"val_batches": 1}}),
}


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


def _train_config(base: dict[str, Any], data: str, out: Path) -> Any:
    from agents.training.config import config_from_dict

    return config_from_dict({**base, "data": data, "out": str(out)})


def run_cell(config: dict[str, Any], out: Path) -> dict[str, Any]:
    """One training run (a study cell): ``config["train"]`` is the trainer config dict; with
    ``config["teacher"]`` (a captioner's run directory, trained on the labelled draw of
    ``config["teacher_train"]``) the unlabelled training episodes are pseudo-labelled by it
    first. Returns the final validation metrics, the learning curves, the step time and
    per-event-kind P/R/F1."""
    from agents.training.loop import train

    data = config["data"]
    t0 = time.perf_counter()
    if config.get("teacher"):
        data = str(pseudo_labelled_copy(config["teacher"], data, config["teacher_train"],
                                        out / "pseudo_data"))
    label_s = time.perf_counter() - t0
    run = out / "run"
    if run.exists():  # a cell killed mid-run starts afresh (its cell.json was never written)
        shutil.rmtree(run)
    summary = train(_train_config(config["train"], data, run))
    curve = [r for r in _metrics(run) if "val/token_accuracy" in r]
    steps = summary["steps"]
    return {"val": summary["val"], "steps": steps, "wall_s": summary["wall_clock_s"],
            "step_s": summary["wall_clock_s"] / max(steps, 1), "pseudo_label_s": label_s,
            "curves": {k: [(r["step"], r.get(k)) for r in curve] for k in CURVE_KEYS},
            "per_kind": per_kind_prf(run, config["data"], config["train"]),
            "episodes": summary["episodes"], "run": str(run)}


CURVE_KEYS = ("val/token_accuracy", "val/event_f1", "val/nil_rate", "val/distinct_1",
              "val/entropy", "val/prefix_gain")


def _metrics(run: Path) -> list[dict[str, Any]]:
    f = run / "metrics.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines()] if f.is_file() else []


def _validation(run: Path, data: str, train_cfg: dict[str, Any]) -> tuple[Any, list, list]:
    """The trained agent, its validation batches and their greedy narration."""
    from agents.training.data import build_data, val_batches
    from agents.training.evaluate import validate
    from agents.training.loading import load_agent

    cfg = _train_config(train_cfg, data, run)
    agent = load_agent(run)
    bundle = build_data(data, cfg.loader, label_fraction=cfg.label_fraction,
                        label_seed=cfg.label_seed, tokenizer=agent.tokenizer)
    vals = val_batches(bundle.val, cfg.loader.batch_size, cfg.logging.val_batches)
    _, preds = validate(agent, vals, step=0, tolerance=cfg.logging.tolerance)
    return agent, vals, preds


def per_kind_prf(run: Path, data: str, train_cfg: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Event P/R/F1 of the final greedy narration on the validation windows, per event kind
    (``byog_env.parse_event(s).kind``), pooled over windows."""
    from agents import monitors as M
    from agents.text import unslot
    from byog_env import parse_event

    agent, vals, preds = _validation(run, data, train_cfg)
    tol = _train_config(train_cfg, data, run).logging.tolerance

    def kind(s: str) -> str | None:
        try:
            return parse_event(s).kind
        except ValueError:
            return None

    windows = []  # (pred per frame, true per frame) over every validation window
    for batch, ids in zip(vals, preds):
        narrated = unslot(ids, agent.tokenizer)
        for b in range(ids.shape[0]):
            n = int(batch["valid"][b].sum())
            windows.append((narrated[b][:n], [list(f) for f in batch["annotations"][b][:n]]))
    kinds = sorted({kind(s) for p, t in windows for fr in p + t for s in fr} - {None})
    out = {}
    for kd in kinds:
        pick = [([[s for s in fr if kind(s) == kd] for fr in p],
                 [[s for s in fr if kind(s) == kd] for fr in t]) for p, t in windows]
        prf = M.combine_prf(M.event_prf(p, t, tolerance=tol) for p, t in pick)
        out[kd] = {m: float(prf[m]) for m in ("precision", "recall", "f1", "tp", "fp", "fn")}
    return out


def pseudo_labelled_copy(teacher_run: str, data: str, teacher_train: dict[str, Any],
                         dest: Path) -> Path:
    """A copy of dataset ``data`` whose unlabelled training episodes (those outside the
    teacher's labelled draw) carry the teacher's greedy narration as annotations; labelled and
    validation episodes keep theirs. Only the ``annotations`` column of those episode files is
    rewritten; frames are copied as stored."""
    import torch

    from agents.text import unslot
    from agents.training.data import build_data
    from agents.training.loading import load_agent
    from collect.dataset import WindowDataset, collate_windows
    from collect.writer import set_annotations

    src = Path(data)
    cfg = _train_config(teacher_train, str(src), dest)
    teacher = load_agent(teacher_run)
    bundle = build_data(str(src), cfg.loader, label_fraction=cfg.label_fraction,
                        label_seed=cfg.label_seed, tokenizer=teacher.tokenizer)
    unlabelled = sorted(set(bundle.train_ids) - set(bundle.labelled_ids))
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    W = cfg.loader.window
    pseudo: dict[int, list[list[str]]] = {}
    for pos in unlabelled:
        windows = WindowDataset(str(src), window=W, stride=W, episodes=[pos])
        frames: list[list[str]] = []
        for i in range(0, len(windows), cfg.loader.batch_size):
            batch = collate_windows([windows[j] for j in range(i, min(i + cfg.loader.batch_size,
                                                                      len(windows)))])
            with torch.no_grad():
                ids = teacher.narrate(batch["frames"], batch["valid"],
                                      prev_frame=batch.get("prev_frame"))
            for b, said in enumerate(unslot(ids, teacher.tokenizer)):
                frames.extend(said[: int(batch["valid"][b].sum())])
        pseudo[int(bundle.dataset.records[pos]["episode_index"])] = frames
    set_annotations(dest, pseudo)  # atomic per file; episode records and meta/ follow
    return dest


# --------------------------------------------------------------------------- the plan


def arms_of(p: Preset) -> dict[str, Arm]:
    """The preset's arms by name."""
    table = factorial_arms() if p.factorial else ARMS
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
               weighting: dict[str, float] | None = None) -> dict[str, Any]:
    """The trainer config dict of one run."""
    base = _merge(DEMO_TRAIN, p.train)
    model = _merge(base["model"], arm.model)
    if weighting:
        model = _merge(model, {"loss": weighting})
    every = max(1, steps // max(p.evals, 1))
    return _merge(base, {"preset": arm.preset, "model": model, "steps": steps,
                               "seed": seed, "label_seed": seed, "label_fraction": fraction,
                               "device": device, "logging": {"eval_every": every,
                                                             "log_every": every}})


def plan(cfg: ScarcityConfig, weighting: str | None = None) -> tuple[list[Cell], list[Cell]]:
    """(pilot cells, main cells). The main cells of piloted arms use ``weighting`` (None = the
    first of the preset's pilot weightings: a placeholder for counting before the pilot ran)."""
    p = PRESETS[cfg.preset]
    device = cfg.device or p.device
    data = str((cfg.out / "data").resolve())
    arms = arms_of(p)
    pilot: list[Cell] = []
    pilot_steps = p.pilot_steps or max(1, p.steps // 2)
    if p.pilot_weightings and any(a.piloted for a in arms.values()):
        for name, arm in arms.items():
            if arm.piloted:
                for w in p.pilot_weightings:
                    tr = train_dict(p, arm, min(p.fractions), p.seeds[0], steps=pilot_steps,
                                    device=device, weighting=WEIGHTINGS[w])
                    pilot.append(Cell(f"pilot/{name}/{w}", "experiments.scarcity:run_cell",
                                      {"data": data, "train": tr}, kind=arm.preset,
                                      cost=pilot_steps, meta={"arm": name, "weighting": w}))
    chosen = weighting or (p.pilot_weightings[0] if p.pilot_weightings else "none")
    main: list[Cell] = []
    teachers: dict[tuple[float, int], Cell] = {}
    for frac in p.fractions:
        for seed in p.seeds:
            for name, arm in arms.items():
                if arm.self_train:
                    continue
                w = WEIGHTINGS[chosen] if arm.piloted else None
                tr = train_dict(p, arm, frac, seed, steps=p.steps, device=device, weighting=w)
                c = Cell(f"main/{name}/f{frac:g}/s{seed}", "experiments.scarcity:run_cell",
                         {"data": data, "train": tr}, kind=arm.preset, cost=p.steps,
                         meta={"arm": name, "fraction": frac, "seed": seed,
                               "weighting": chosen if arm.piloted else None})
                main.append(c)
                if name == "captioner":
                    teachers[(frac, seed)] = c
            for name, arm in arms.items():
                if arm.self_train:  # a fresh captioner on true + pseudo labels, same steps
                    if (frac, seed) not in teachers:
                        raise ExperimentError("self-training needs the captioner arm in the preset.")
                    t = teachers[(frac, seed)]
                    tr = _merge(train_dict(p, arm, frac, seed, steps=p.steps, device=device),
                                {"label_fraction": 1.0})
                    cfg_ = {"data": data, "train": tr, "teacher_train": t.config["train"],
                            "teacher": str((t.dir(cfg.out) / "run").resolve())}
                    main.append(Cell(f"main/{name}/f{frac:g}/s{seed}", "experiments.scarcity:run_cell",
                                     cfg_, kind="self-training", cost=p.steps,
                                     meta={"arm": name, "fraction": frac, "seed": seed}))
    return pilot, main


def probe_step_seconds(p: Preset, device: str, steps: int = 3) -> dict[str, float]:
    """Seconds per training step of each run kind (``captioner``, ``byog``), timed here on
    synthetic batches of the preset's shape (Crafter frames 64x64, the demo's window/batch).

    CPU time of this one-thread process, not wall time: on a shared machine the wall clock
    counts other people's processes, while a study's workers each own a core."""
    import torch

    from agents.model import BYOGAgent
    from agents.text import train_tokenizer
    from agents.training.config import config_from_dict

    sentences = ["collected 1 wood", "tree in view", "made wood pickaxe", "cow in view",
                 "placed table", "ate cow"]
    tok = train_tokenizer(sentences)
    out: dict[str, float] = {}
    for kind in ("captioner", "byog"):
        tc = config_from_dict(_merge(_merge(DEMO_TRAIN, p.train),
                                     {"preset": kind, "data": "x", "out": "x"}))
        torch.manual_seed(0)
        agent = BYOGAgent(tc.model, tok).to(device)
        opt = torch.optim.AdamW(agent.parameters(), lr=1e-4)
        B, T = tc.loader.batch_size, tc.loader.window
        g = torch.Generator().manual_seed(0)
        batch = {"frames": torch.randint(0, 255, (B, T, 64, 64, 3), dtype=torch.uint8, generator=g),
                 "valid": torch.ones(B, T, dtype=torch.bool),
                 "annotations": [[[sentences[(b + t) % 6]] if (b + t) % 3 == 0 else []
                                  for t in range(T)] for b in range(B)],
                 "episode_index": torch.arange(B), "start": torch.zeros(B, dtype=torch.long),
                 "labelled": torch.ones(B, dtype=torch.bool) if kind == "captioner"
                 else torch.arange(B) % 4 == 0}
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        times = []
        for i in range(steps + 1):
            t0 = time.process_time() if device == "cpu" else time.perf_counter()
            loss, _ = agent.training_step(batch, i)
            opt.zero_grad()
            loss.backward()
            opt.step()
            agent.update_target()
            if device != "cpu":
                torch.cuda.synchronize()
            times.append((time.process_time() if device == "cpu" else time.perf_counter()) - t0)
        out[kind] = sum(times[1:]) / steps  # the first step warms up
        # validation (greedy narration + monitors) of one batch, done (evals + 2) x val_batches
        # times per run (the curve's points, the final one, the per-kind pass)
        agent.eval()
        t0 = time.process_time() if device == "cpu" else time.perf_counter()
        agent.evaluate(batch)
        out[f"{kind}_eval_batch"] = (time.process_time() if device == "cpu"
                                     else time.perf_counter()) - t0
    # a self-training cell: the student's steps plus narrating the unlabelled episodes
    out["self-training"] = out["captioner"] * 1.15
    out["self-training_eval_batch"] = out["captioner_eval_batch"]
    return out


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
    probe = probe_step_seconds(p, device)
    val_batches = _merge(DEMO_TRAIN, p.train)["logging"]["val_batches"]
    # per cost unit (one training step): the step, plus the run's validations spread over it
    unit = {k: probe[k] + (p.evals + 2) * val_batches * probe[f"{k}_eval_batch"] / max(p.steps, 1)
            for k in ("captioner", "byog", "self-training")}
    eta = estimate(pilot + main, cfg.out, unit, workers)
    collect_s = 0.0
    if not (cfg.out / "data" / "meta" / "info.json").is_file():
        collect_s = probe_collect_seconds() * p.episodes * p.max_episode_steps / p.collect_envs
    total = eta["eta_seconds"] + collect_s
    return {"preset": cfg.preset, "design": asdict(p), "pilot_cells": len(pilot),
            "main_cells": len(main), "step_seconds_probe": probe, "unit_seconds": unit, **eta,
            "collect_seconds": collect_s, "eta_minutes": total / 60,
            "note": ("CPU time measured here (one thread), each worker owning a core; data "
                     "loading, the writer and pseudo-labelling are not included")}


# --------------------------------------------------------------------------- analysis


ARM_METRICS = ("token_accuracy", "majority_token_accuracy", "event_f1", "event_precision",
               "event_recall", "nil_rate", "distinct_1", "distinct_2", "entropy", "prefix_gain",
               "prefix_gain_shuffled", "teacher_forced_token_accuracy")


def analyse(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per (arm, fraction) means with t-intervals over seeds, and paired differences of each
    BYOG arm against the captioner and self-training (same seed and labelled set)."""
    from experiments.stats import mde, mean_ci, paired_t

    by: dict[tuple[str, float], dict[int, dict[str, Any]]] = {}
    for r in rows:
        by.setdefault((r["arm"], r["fraction"]), {})[r["seed"]] = r
    table = []
    for (arm, frac), seeds in sorted(by.items(), key=lambda x: (x[0][1], x[0][0])):
        row: dict[str, Any] = {"arm": arm, "fraction": frac, "seeds": sorted(seeds)}
        for m in ARM_METRICS:
            vals = [s["val"].get(f"val/{m}") for s in seeds.values()]
            row[m] = mean_ci([v for v in vals if v is not None])
        row["step_s"] = mean_ci([s["step_s"] for s in seeds.values()])
        table.append(row)
    diffs = []
    for (arm, frac), seeds in by.items():
        if not arm.startswith("byog"):
            continue
        for ref in ("captioner", "self-training"):
            other = by.get((ref, frac), {})
            common = sorted(set(seeds) & set(other))
            for m in ("token_accuracy", "event_f1"):
                d = [seeds[s]["val"].get(f"val/{m}", math.nan) - other[s]["val"].get(f"val/{m}", math.nan)
                     for s in common]
                iv = paired_t(d)
                diffs.append({"arm": arm, "minus": ref, "fraction": frac, "metric": m,
                              "per_seed": d, "mean": iv.estimate, "lo": iv.lo, "hi": iv.hi,
                              "n": iv.n, "p_greater": iv.p_greater, "mde": mde(_sd(d), iv.n)})
    return {"table": table, "paired": diffs}


def _sd(xs: list[float]) -> float:
    import numpy as np

    x = np.asarray([v for v in xs if math.isfinite(v)], float)
    return float(x.std(ddof=1)) if x.size > 1 else math.nan


def report(cfg: ScarcityConfig, pilot_rows: list[dict[str, Any]], rows: list[dict[str, Any]],
           chosen: str | None) -> str:
    """``results.json``, ``curves.png`` and ``report.md`` under the study directory."""
    res = analyse(rows)
    (cfg.out / "results.json").write_text(json.dumps(
        {"preset": cfg.preset, "pilot": pilot_rows, "chosen_weighting": chosen, **res,
         "cells": rows}, indent=2, default=str))
    plot_curves(rows, cfg.out / "curves.png")
    def f(mc: tuple[float, float]) -> str:
        return f"{mc[0]:.3f} ± {mc[1]:.3f}" if math.isfinite(mc[1]) else f"{mc[0]:.3f}"

    lines = [f"# Narration under label scarcity ({cfg.preset})", "",
             f"Command: `python -m experiments.scarcity --preset {cfg.preset} --out {cfg.out}`", ""]
    if pilot_rows:
        lines += ["## Pilot (BYOG loss weighting of the piloted arms)", "",
                  "| arm | weighting | token acc | event F1 |", "|---|---|---|---|"]
        lines += [f"| {r['arm']} | {r['weighting']} | {r['val'].get('val/token_accuracy', math.nan):.3f} "
                  f"| {r['val'].get('val/event_f1', math.nan):.3f} |" for r in pilot_rows]
        lines += ["", f"Chosen: `{chosen}`.", ""]
    lines += ["## Held-out greedy narration (mean ± 95% t half-width over seeds)", "",
              ("| fraction | arm | token acc | majority | event F1 | P | R | nil rate | distinct-1 "
               "| entropy | prefix gain | shuffled gain | s/step |"),
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["table"]:
        lines.append(f"| {r['fraction']:g} | {r['arm']} | " + " | ".join(
            f(r[m]) for m in ("token_accuracy", "majority_token_accuracy", "event_f1",
                              "event_precision", "event_recall", "nil_rate", "distinct_1",
                              "entropy", "prefix_gain", "prefix_gain_shuffled", "step_s")) + " |")
    lines += ["", "## Paired differences (same seed and labelled set; t-interval over seeds)", "",
              "| fraction | arm | minus | metric | mean | 95% CI | n | MDE |", "|---|---|---|---|---|---|---|---|"]
    for d in sorted(res["paired"], key=lambda d: (d["fraction"], d["arm"], d["minus"], d["metric"])):
        lines.append(f"| {d['fraction']:g} | {d['arm']} | {d['minus']} | {d['metric']} | "
                     f"{d['mean']:+.3f} | [{d['lo']:+.3f}, {d['hi']:+.3f}] | {d['n']} | {d['mde']:.3f} |")
    lines += ["", ("Learning curves: `curves.png`; per-event-kind P/R/F1 and every cell's "
                   "figures: `results.json`.")]
    text = "\n".join(lines) + "\n"
    (cfg.out / "report.md").write_text(text)
    return text


def plot_curves(rows: list[dict[str, Any]], path: Path) -> Path:
    """Validation token accuracy over steps, mean over seeds, one panel per fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fracs = sorted({r["fraction"] for r in rows})
    fig, axes = plt.subplots(1, len(fracs), figsize=(5 * len(fracs), 3.5), squeeze=False)
    for ax, frac in zip(axes[0], fracs):
        for arm in sorted({r["arm"] for r in rows}):
            curves = [r["curves"]["val/token_accuracy"] for r in rows
                      if r["arm"] == arm and r["fraction"] == frac]
            if not curves or not curves[0]:
                continue
            steps = [s for s, _ in curves[0]]
            vals = np.nanmean([[v if v is not None else np.nan for _, v in c] for c in curves], 0)
            ax.plot(steps, vals, marker="o", label=arm)
        ax.set_title(f"label fraction {frac:g}")
        ax.set_xlabel("step")
        ax.set_ylabel("val token accuracy")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


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
    """Plan (and with ``plan_only`` stop), collect, run the pilot, then the main cells, report."""
    cfg.check()
    p = PRESETS[cfg.preset]
    workers = cfg.workers or p.workers
    cfg.out.mkdir(parents=True, exist_ok=True)
    summary = plan_summary(cfg)
    (cfg.out / "plan.json").write_text(json.dumps(summary, indent=2, default=str))
    steps = {k: round(v, 3) for k, v in summary["step_seconds_probe"].items()}
    print(f"{cfg.preset}: {summary['pilot_cells']} pilot + {summary['main_cells']} main cells, "
          f"{summary['todo']} to run on {workers} worker(s); ETA {summary['eta_minutes']:.1f} min "
          f"(collection {summary['collect_seconds'] / 60:.1f} min; seconds per step / per "
          f"validation batch measured here: {steps})")
    if cfg.plan_only:
        return summary
    ensure_data(cfg)
    pilot, _ = plan(cfg)
    pilot_rows = run_cells(pilot, cfg.out, workers=workers, progress=cfg.progress, desc="pilot")
    chosen = None
    if pilot_rows:
        best = max(pilot_rows, key=lambda r: _score(r["val"].get("val/token_accuracy")))
        chosen = best["weighting"]
    _, main_cells = plan(cfg, chosen)
    first = [c for c in main_cells if c.kind != "self-training"]
    rows = run_cells(first, cfg.out, workers=workers, progress=cfg.progress, desc="runs")
    rows += run_cells([c for c in main_cells if c.kind == "self-training"], cfg.out,
                      workers=workers, progress=cfg.progress, desc="self-training")
    print(report(cfg, pilot_rows, rows, chosen))
    return {"plan": summary, "chosen_weighting": chosen, "rows": len(rows)}


def _score(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else -math.inf


def cli(argv: list[str] | None = None) -> int:
    """Command-line entry point: errors print one ``error:`` line and return 2."""
    import tyro

    try:
        cfg = tyro.cli(ScarcityConfig, args=argv, description=__doc__.split("\n")[0])
        cfg.check()
    except SystemExit as e:
        return int(e.code or 0)
    except ExperimentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        main(cfg)
    except KeyboardInterrupt:
        print("error: interrupted; finished cells are kept, rerun to resume", file=sys.stderr)
        return 130
    except (ExperimentError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli())
