"""Pretraining of the encoders the transfer experiments compare, on the same unlabelled
collection with the same labelled fraction for grounding.

Kinds: ``byog`` and ``captioner`` (``w_byog = 0``) train a :class:`agents.model.BYOGAgent`;
``random`` saves a freshly initialised agent (the floor); ``vqvae`` and ``units`` fit the
observation encoders of :mod:`agents.obs`; ``scratch`` needs no pretraining (its CNN is trained
on the actions only, in :mod:`experiments.action_transfer`).

The loop here is deliberately minimal (AdamW on ``BYOGAgent.training_step`` + EMA target
update); the project trainer (``agents.train``) is the full-featured path for long runs.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from collect.dataset import WindowDataset, collate_windows, open_dataset, split_episodes

ENCODER_KINDS = ("byog", "captioner", "random", "scratch", "vqvae", "units")


class ExperimentError(ValueError):
    """A bad experiment config or input; the message names the problem and the fix."""


@dataclass
class Source:
    """One pretraining dataset and the fraction of its training episodes that keep labels."""

    path: Path
    label_fraction: float = 1.0


def labelled_split(num_episodes: int, label_fraction: float, seed: int, val_fraction: float = 0.2,
                   ) -> tuple[list[int], list[int], set[int]]:
    """``(train_ids, val_ids, labelled_ids)``: labelled episodes are a seeded ``label_fraction``
    of the training episodes (at least one when the fraction is > 0)."""
    if not 0.0 <= label_fraction <= 1.0:
        raise ExperimentError(f"label_fraction must be in [0, 1], got {label_fraction}.")
    train, val = split_episodes(num_episodes, val_fraction, seed)
    n_lab = 0 if label_fraction == 0 else max(1, int(round(label_fraction * len(train))))
    lab = set(random.Random(seed).sample(train, min(n_lab, len(train))))
    return train, val, lab


def tokenizer_for(sources: list[Source], seed: int):
    """Word-level tokenizer on the labelled training episodes' annotations only."""
    from agents.text import train_tokenizer

    sentences: list[str] = []
    for src in sources:
        ds = open_dataset(src.path)
        _, _, lab = labelled_split(ds.num_episodes, src.label_fraction, seed)
        for i in sorted(lab):
            sentences += [s for step in ds.episode(i).annotations for s in step]
    return train_tokenizer(sentences)


def pretrain_agent(sources: list[Source], out: Path, *, preset: str = "byog", size: str = "tiny",
                   steps: int = 200, window: int = 16, batch_size: int = 8, lr: float = 1e-3,
                   seed: int = 0, progress: bool = True) -> dict[str, float]:
    """Train a BYOG agent (or captioner, or none for ``random``) and save it to ``out``."""
    from agents.config import make_model_config
    from agents.model import BYOGAgent

    torch.manual_seed(seed)
    tok = tokenizer_for(sources, seed)
    cfg = make_model_config(size, "captioner" if preset == "captioner" else "byog")
    agent = BYOGAgent(cfg, tok)
    t0 = time.perf_counter()
    metrics: dict[str, float] = {}
    if preset != "random" and steps > 0:
        items, labelled = [], []
        for src in sources:
            ds = open_dataset(src.path)
            train, _, lab = labelled_split(ds.num_episodes, src.label_fraction, seed)
            wd = WindowDataset(src.path, window=window, episodes=train)
            for j in range(len(wd)):
                it = wd[j]
                items.append(it)
                labelled.append(wd.index[j][0] in lab)  # index[j] = (episode position, start)
        if preset == "captioner" and not any(labelled):
            raise ExperimentError("The captioner needs labelled episodes; use label_fraction > 0.")
        opt = torch.optim.AdamW(agent.parameters(), lr=lr)
        rng = np.random.default_rng(seed)
        agent.train()
        for step in tqdm(range(steps), desc=f"pretrain {preset}", disable=not progress, leave=False):
            pick = rng.choice(len(items), size=min(batch_size, len(items)), replace=False)
            batch = collate_windows([items[i] for i in pick])
            batch["labelled"] = torch.tensor([labelled[i] for i in pick])
            if preset == "captioner" and not bool(batch["labelled"].any()):
                lab_ids = [i for i, f in enumerate(labelled) if f]
                batch = collate_windows([items[i] for i in lab_ids[:batch_size]])
                batch["labelled"] = torch.ones(len(batch["valid"]), dtype=torch.bool)
            loss, m = agent.training_step(batch, step)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(agent.parameters(), 1.0)
            opt.step()
            agent.update_target()
            metrics = m
    agent.save_pretrained(out)
    return {"pretrain/seconds": time.perf_counter() - t0, **{k: float(v) for k, v in metrics.items()
                                                            if k.startswith("loss/")}}


def pretrain_obs(kind: str, sources: list[Source], out: Path, *, steps: int = 300, seed: int = 0,
                 units_k: int = 32, progress: bool = True) -> dict[str, float]:
    """Fit a ``vqvae`` or ``units`` observation encoder on the sources' training frames; save it."""
    from agents.obs import ObsEncoderConfig, build_obs_encoder

    torch.manual_seed(seed)
    frames = []
    for src in sources:
        ds = open_dataset(src.path)
        train, _, _ = labelled_split(ds.num_episodes, 0.0, seed)
        frames += [ds.episode(e).frames for e in train]
    arr = np.concatenate(frames)  # [N, H, W, 3]
    t0 = time.perf_counter()
    if kind == "vqvae":
        enc = build_obs_encoder(ObsEncoderConfig(kind="vqvae", vqvae_codebook_size=64, vqvae_hidden=32))
        enc.fit(arr, steps=steps, batch_size=32, seed=seed, progress=progress)
    elif kind == "units":
        enc = build_obs_encoder(ObsEncoderConfig(kind="units", units_k=units_k))
        enc.fit(arr, max_frames=5000, progress=progress)
    else:
        raise ExperimentError(f"pretrain_obs fits 'vqvae' or 'units', not {kind!r}.")
    enc.save(out)
    return {"pretrain/seconds": time.perf_counter() - t0}


__all__ = ["ENCODER_KINDS", "ExperimentError", "Source", "labelled_split", "pretrain_agent",
           "pretrain_obs", "tokenizer_for"]
