"""Pretraining of the encoders the transfer experiments compare, through the project trainer
(:func:`agents.training.train`), on the same unlabelled collection with the same labelled
fraction for grounding.

Kinds: ``byog`` and ``captioner`` (``w_byog = 0``) train a :class:`agents.model.agent.BYOGAgent`
with the trainer's ``--preset byog|captioner``; ``vqvae`` and ``units`` are fitted by the
trainer's observation-encoder fitting (``--model.obs.kind vqvae|units``; the agent on top gets
a single step, only the fitted encoder is used); ``random`` (a fresh agent, the floor) and
``scratch`` (a CNN trained on the actions only) need no pretraining.

The captioner (``w_byog = 0``) is trained by the trainer on its labelled episodes alone (it has no
loss on the others); below full labels its batch is capped at their window count.

Every encoder uses the trainer's episode split (``loader.split_seed = 0``): the transfer
experiments hold out exactly its validation episodes, which no encoder has seen.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from byog_core.registry import Registry
from experiments.errors import ExperimentError

SPLIT_SEED = 0
VAL_FRACTION = 0.2


@dataclass(frozen=True)
class PretrainKind:
    """What a pretraining kind is, so that a study needs no list of kind names: one
    :meth:`Registry.register <byog_core.registry.Registry.register>` call on
    :data:`PRETRAIN_KINDS` adds one (``tests/plugins/toy_pretrain.py`` is the recipe)."""

    preset: str = "byog"
    """The trainer preset it trains with (``agents.config.PRESETS``)."""
    narrates: bool = False
    """It narrates: its held-out narration F1 is measured (and the text arms can read it)."""
    label_sensitive: bool = False
    """It learns from the annotations: a study runs it at each of its label fractions, its labelled
    batch capped at the labelled windows when there are fewer (:func:`cap_labelled_batch`)."""
    obs_fit: bool = False
    """The trainer's observation-encoder fit trains it (``--model.obs.kind KIND``); the agent on
    top gets a single step and only the fitted encoder is used."""


PRETRAIN_KINDS: Registry[PretrainKind] = Registry.of("pretraining kind", {
    "byog": PretrainKind("byog", narrates=True, label_sensitive=True),
    "captioner": PretrainKind("captioner", narrates=True, label_sensitive=True),
    "vqvae": PretrainKind(obs_fit=True),
    "units": PretrainKind(obs_fit=True),
}, error=ExperimentError, hint="Register one with experiments.pretrain.PRETRAIN_KINDS.register(name, "
                               "PretrainKind(...)) (docs/architecture.md).")
"""Pretraining kind -> :class:`PretrainKind` (``random`` and ``scratch`` need no pretraining)."""


@dataclass
class PretrainSpec:
    """How every encoder of a study is pretrained (the same for all kinds)."""

    steps: int = 200
    """Optimizer steps of the agent (byog, captioner) and of the VQ-VAE fit."""
    size: str = "tiny"
    """Model size (agents.config)."""
    window: int = 16
    """Frames per training window."""
    batch_size: int = 8
    """Windows per step."""
    seed: int = 0
    """Seed of the model init and the data order (the study's pipeline seed)."""
    label_seed: int = SPLIT_SEED
    """Seed of the labelled draw (the study's pipeline seed re-draws the labelled episodes)."""
    units_k: int = 32
    """k-means units of the ``units`` encoder."""
    obs_options: dict[str, Any] = field(default_factory=dict)
    """Options of a fitted observation encoder (vqvae/units) by their names in
    ``agents/obs/*_config.py``, e.g. ``{"pool": 8}`` or ``{"pixel_size": 16, "k": 256}``: the
    settings at which its features can encode where things are (they win over ``units_k``)."""
    keep_steps: tuple[int, ...] = ()
    """Intermediate checkpoints (steps below ``steps``) kept beside the final one, each with its
    own held-out narration F1: the transfer study's dose-response points."""
    threads: int = 1
    """torch CPU threads."""
    device: str = "cpu"
    """Torch device of the trainer (and of the kept checkpoints' narration F1): cpu, cuda."""
    progress: bool = True
    """Progress bar."""

    def __post_init__(self) -> None:
        for name in ("steps", "window", "batch_size", "units_k", "threads"):
            if getattr(self, name) < 1:
                raise ExperimentError(f"Pretraining {name} must be >= 1, got {getattr(self, name)}.")
        self.keep_steps = tuple(sorted({int(s) for s in self.keep_steps}))
        bad = [s for s in self.keep_steps if not 0 < s < self.steps]
        if bad:
            raise ExperimentError(f"Checkpoint steps {bad} are not between 0 and the {self.steps} "
                                  "pretraining steps; choose intermediate steps (e.g. --dose-steps 100 200).")


def bc_split(num_episodes: int, n_train: int, seed: int) -> tuple[list[int], list[int]]:
    """``(train_ids, val_ids)`` for behavioural cloning.

    The held-out episodes are the trainer's validation split (fixed, never seen in
    pretraining); the ``n_train`` training episodes are a seeded draw from its training split.
    """
    from collect.dataset import split_episodes

    train, val = split_episodes(num_episodes, VAL_FRACTION, SPLIT_SEED)
    if n_train > len(train):
        raise ExperimentError(f"N = {n_train} training episodes requested but the dataset has "
                              f"{len(train)} (of {num_episodes}); collect more episodes or lower N.")
    order = np.random.default_rng(seed).permutation(len(train))
    return sorted(int(train[i]) for i in order[:n_train]), val


def bc_split3(num_episodes: int, n_train: int, seed: int, n_val: int,
              ) -> tuple[list[int], list[int], list[int]]:
    """``(train_ids, bc_val_ids, test_ids)``: the test episodes are the trainer's validation
    split (fixed, never seen in pretraining); a seeded draw from its training split gives the
    ``n_val`` BC-validation episodes (early stopping) and then the ``n_train`` training
    episodes from the rest (the pool)."""
    from collect.dataset import split_episodes

    train, test = split_episodes(num_episodes, VAL_FRACTION, SPLIT_SEED)
    if n_train + n_val > len(train):
        raise ExperimentError(f"N = {n_train} training + {n_val} BC-validation episodes requested but the "
                              f"pool has {len(train)} (of {num_episodes}); collect more episodes or lower N.")
    order = np.random.default_rng(seed).permutation(len(train))
    val = sorted(int(train[i]) for i in order[:n_val])
    return sorted(int(train[i]) for i in order[n_val:n_val + n_train]), val, test


def narration_f1(run: Path, data: Path, device: str = "cpu", episodes: list[int] | None = None) -> float:
    """Greedy narration event F1 (``BYOGAgent.evaluate``) of a byog/captioner run on ``data``'s
    held-out episodes (the BC test split; or ``episodes``, e.g. a BC cell's BC-validation
    episodes), computed on ``device``: the study's one narration-F1 measure, at every
    pretraining step alike."""
    import torch

    from agents.narrate.narrator import training_window
    from agents.training import load_agent
    from agents.training.evaluate import to_device
    from collect.dataset import WindowDataset, collate_windows, open_dataset

    agent = load_agent(run, device=device)
    if episodes is None:
        _, episodes = bc_split(open_dataset(data).num_episodes, 0, 0)
    # the window the narrator was trained on (saved with its weights), as live narration uses
    wd = WindowDataset(data, window=training_window(agent), episodes=list(episodes))
    with torch.no_grad():
        m = agent.evaluate(to_device(collate_windows([wd[i] for i in range(len(wd))]), device))
    return float(m["eval/event_f1"])


def train_config(kind: str, data: Path, out: Path, spec: PretrainSpec, label_fraction: float):
    """The trainer's :class:`~agents.training.config.TrainConfig` for one encoder kind."""
    from agents.obs.config import obs_config_class
    from agents.training.config import TrainError, config_from_dict

    ks = PRETRAIN_KINDS[kind]
    obs_fit = ks.obs_fit  # fitted by the trainer's obs_fit step
    d: dict[str, Any] = {
        "data": str(data), "out": str(out), "steps": 1 if obs_fit else spec.steps, "seed": spec.seed,
        "label_fraction": label_fraction, "label_seed": spec.label_seed, "threads": spec.threads,
        "device": spec.device,
        "loader": {"window": spec.window, "batch_size": spec.batch_size, "num_workers": 0,
                   "split_seed": SPLIT_SEED, "val_fraction": VAL_FRACTION},
        "schedule": {"warmup_steps": min(50, max(1, spec.steps // 10))},
        "logging": {"tensorboard": False, "plots": False, "examples": 0, "eval_every": 0,
                    "progress": spec.progress, "val_batches": 0 if obs_fit else 8},
        "checkpoint": _checkpointing(spec),
    }
    if obs_fit:
        d["model"] = {"obs": {"kind": kind, "out_dim": None, "units_k": spec.units_k, **spec.obs_options}}
        if "fit_steps" in {f.name for f in fields(obs_config_class(kind))}:  # its own fit budget
            d["model"]["obs"]["fit_steps"] = spec.steps
        d["obs_fit"] = {"window": spec.window}
    try:
        return config_from_dict(d, size=spec.size, preset=ks.preset)
    except TrainError as e:
        raise ExperimentError(f"Cannot pretrain {kind!r} on {data}: {e}") from None


def cap_labelled_batch(cfg: Any, kind: str, label_fraction: float) -> Any:
    """Cap the labelled batch (``loader.batch_size``) at the labelled training windows when there
    are fewer (5% of a small collection: 30 windows against a batch of 32), the same cap for
    every kind that reads labels, so BYOG and the captioner keep equal supervision; BYOG's
    unlabelled batch keeps the spec's size (at most every training window). Returns ``cfg``
    (changed in place)."""
    from agents.training import TrainError
    from agents.training.data import build_data

    def windows(labelled_only: bool) -> int:
        try:
            return len(build_data(str(cfg.data), cfg.loader, label_fraction=label_fraction,
                                  label_seed=cfg.label_seed, labelled_only=labelled_only).train)
        except TrainError as e:
            raise ExperimentError(f"Cannot pretrain {kind!r} on {cfg.data}: {e}") from None

    labelled = windows(True)
    if cfg.loader.batch_size > labelled:  # else the config stays as it was (resumable)
        if cfg.loader.unlabelled_batch_size is None:  # at most every training window (a tiny set)
            cfg.loader.unlabelled_batch_size = min(cfg.loader.batch_size, windows(False))
        cfg.loader.batch_size = labelled
    return cfg


def _checkpointing(spec: PretrainSpec) -> dict[str, int]:
    """Save often enough to land on every kept step (their gcd with the final step) and keep
    them all; :func:`pretrain` removes the others at the end."""
    if not spec.keep_steps:
        return {"every": 0, "keep_last": 1}
    every = math.gcd(spec.steps, *spec.keep_steps)
    return {"every": every, "keep_last": spec.steps // every}


def checkpoint_at(run: Path, step: int) -> Path:
    """The run's checkpoint directory of ``step`` (kept by ``PretrainSpec.keep_steps``)."""
    from agents.training.checkpoint import list_checkpoints, read_meta

    for ckpt in list_checkpoints(run):
        if int(read_meta(ckpt).get("step", -1)) == int(step):
            return ckpt
    raise ExperimentError(f"{run} holds no checkpoint of step {step}; pretrain it with that step "
                          "among its kept steps (python -m experiments.run_all --dose-steps does).")


def pretrain(kind: str, data: Path, out: Path, spec: PretrainSpec, label_fraction: float = 1.0,
             ) -> dict[str, float]:
    """Pretrain one encoder into the run directory ``out`` (skipped when done; an interrupted
    run is resumed). Returns ``pretrain/seconds`` and, for byog/captioner, the final checkpoint's
    held-out ``narration/event_f1`` (:func:`narration_f1`, also as ``narration/event_f1@STEPS``,
    the measure of the kept steps), and the trainer's own validation F1 and token accuracy
    (``narration/trainer_event_f1``, ``narration/token_acc``: its validation windows)."""
    from agents.training import TrainError, train

    done = Path(out) / "pretrain.json"
    if done.is_file():
        return json.loads(done.read_text())
    cfg = train_config(kind, data, out, spec, label_fraction)
    ks = PRETRAIN_KINDS[kind]
    if ks.label_sensitive and label_fraction < 1.0:  # the same labelled-batch cap for every kind
        cap_labelled_batch(cfg, kind, label_fraction)
    from agents.training.checkpoint import latest_checkpoint

    cfg.resume = latest_checkpoint(out) is not None
    try:
        s = train(cfg)
    except TrainError as e:
        raise ExperimentError(f"Pretraining {kind!r} failed: {e}") from None
    res = {"pretrain/seconds": float(s.get("wall_clock_s", float("nan")))}
    if ks.narrates:
        res["narration/trainer_event_f1"] = float(s.get("val_event_f1", float("nan")))
        res["narration/token_acc"] = float(s.get("val_token_accuracy", float("nan")))
    if spec.keep_steps:
        res.update(_keep_only(Path(out), kind, data, spec))
    if ks.narrates:  # one measure for the final and the kept checkpoints
        final = f"narration/event_f1@{spec.steps}"
        if final not in res:
            res[final] = narration_f1(Path(out), data, spec.device)
        res["narration/event_f1"] = res[final]
    done.write_text(json.dumps(res, indent=2))
    return res


def _keep_only(run: Path, kind: str, data: Path, spec: PretrainSpec) -> dict[str, float]:
    """Remove the run's checkpoints other than the kept steps and the final one (this run wrote
    them all), and measure each kept byog/captioner checkpoint's narration F1 on the held-out
    episodes (:func:`narration_f1`, the same measure at every step, the final one included)."""
    import shutil

    from agents.training.checkpoint import list_checkpoints, read_meta

    keep = {*spec.keep_steps, spec.steps}
    out: dict[str, float] = {}
    for ckpt in list_checkpoints(run):
        step = int(read_meta(ckpt).get("step", -1))
        if step not in keep:
            shutil.rmtree(ckpt)
        elif PRETRAIN_KINDS[kind].narrates:
            out[f"narration/event_f1@{step}"] = narration_f1(ckpt, data, spec.device)
    return out


def encoder_checkpoint(kind: str, run: Path, step: int | None = None) -> Path:
    """The directory the featurizer loads: the agent's for byog/captioner (a run directory,
    read by :func:`agents.load_agent`, or with ``step`` that step's checkpoint), the fitted
    observation encoder's for vqvae/units."""
    from agents.training.checkpoint import latest_checkpoint

    if step is not None:
        ckpt = checkpoint_at(run, step)
        return ckpt / "obs_encoder" if PRETRAIN_KINDS[kind].obs_fit else ckpt
    ckpt = latest_checkpoint(run)
    if ckpt is None:
        raise ExperimentError(f"{run} holds no trained checkpoint; pretrain the {kind!r} encoder first "
                              "(python -m experiments.run_all does).")
    return ckpt / "obs_encoder" if PRETRAIN_KINDS[kind].obs_fit else Path(run)


__all__ = [
    "PRETRAIN_KINDS",
    "PretrainKind",
    "ExperimentError",
    "PretrainSpec",
    "bc_split",
    "bc_split3",
    "checkpoint_at",
    "encoder_checkpoint",
    "narration_f1",
    "pretrain",
    "train_config",
]
