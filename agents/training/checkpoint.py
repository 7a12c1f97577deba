"""Atomic training checkpoints, dataset-compatibility checks and ``load_agent``.

Layout of one checkpoint ``RUNDIR/checkpoints/step_000500/``::

    agent/            BYOGAgent.save_pretrained: model.safetensors, model_config.json, tokenizer/
    obs_encoder/      the fitted vqvae/units encoder (encoder.save), when the kind has one
    trainer_state.pt  optimizer, scheduler, RNG states (torch, numpy, python), sampler position
    meta.json         step, the resolved TrainConfig, the dataset identity, the metric history length

It is written under ``checkpoints/.tmp-step_000500`` and renamed into place, so a kill never
leaves a half-written checkpoint; only the newest ``keep_last`` are kept.
"""
from __future__ import annotations

import json
import os
import random
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.training.config import TrainError

CKPT_DIR = "checkpoints"
PREFIX = "step_"
META = "meta.json"
STATE = "trainer_state.pt"
AGENT = "agent"
OBS = "obs_encoder"


def rng_state() -> dict[str, Any]:
    """The torch, numpy and python RNG states of this process."""
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def save_checkpoint(run_dir: str | Path, step: int, *, agent: Any, trainer_state: dict[str, Any],
                    meta: dict[str, Any], obs_encoder: Any = None, keep_last: int = 3) -> Path:
    """Write a checkpoint atomically and prune old ones.

    Args:
        run_dir: The run directory.
        step: Optimizer steps done.
        agent: The (unwrapped) BYOGAgent.
        trainer_state: Optimizer/scheduler/RNG/sampler state (``torch.save``-able).
        meta: JSON-able metadata (config, dataset identity, ...); ``step`` is added.
        obs_encoder: A fitted vqvae/units encoder to save beside the weights, or None.
        keep_last: Number of checkpoints to keep.

    Returns:
        The checkpoint directory.
    """
    root = Path(run_dir) / CKPT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{PREFIX}{step:06d}"
    tmp = root / f".tmp-{final.name}"
    if tmp.exists():
        shutil.rmtree(tmp)
    agent.save_pretrained(tmp / AGENT)
    if obs_encoder is not None and hasattr(obs_encoder, "save"):
        obs_encoder.save(tmp / OBS)
    torch.save(trainer_state, tmp / STATE)
    (tmp / META).write_text(json.dumps({**meta, "step": int(step)}, indent=2, default=str))
    if final.exists():  # re-saving the same step (e.g. the end right after a periodic save)
        old = root / f".old-{final.name}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    for stale in list_checkpoints(run_dir)[:-keep_last]:
        shutil.rmtree(stale)
    return final


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / CKPT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and p.name.startswith(PREFIX) and (p / META).is_file())


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint of a run, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a run directory (its newest checkpoint) or a checkpoint dir.

    Raises:
        TrainError: nothing loadable at ``path``.
    """
    path = Path(path)
    if (path / META).is_file() and (path / AGENT).is_dir():
        return path
    if (path / "model_config.json").is_file():  # a bare save_pretrained directory
        return path
    latest = latest_checkpoint(path) if path.is_dir() else None
    if latest is None:
        what = "does not exist" if not path.exists() else "holds no checkpoint"
        raise TrainError(
            f"{str(path)!r} {what}; pass a run directory written by `python -m agents.train` "
            f"(with {CKPT_DIR}/{PREFIX}NNNNNN/) or one of its checkpoint directories."
        )
    return latest


def read_meta(ckpt: str | Path) -> dict[str, Any]:
    """A checkpoint's ``meta.json`` ({} for a bare save_pretrained directory)."""
    f = Path(ckpt) / META
    return json.loads(f.read_text()) if f.is_file() else {}


def load_trainer_state(ckpt: str | Path) -> dict[str, Any]:
    """A checkpoint's optimizer/scheduler/RNG/sampler state."""
    return torch.load(Path(ckpt) / STATE, map_location="cpu", weights_only=False)


def check_compatible(saved: dict[str, Any], current: dict[str, Any], *, where: str) -> list[str]:
    """Check a checkpoint's dataset identity against a dataset's.

    Frame shape, format major version and (for the same environment) the vocabulary must agree;
    another environment with a compatible frame shape is allowed (cross-domain use) and comes
    back as a warning, as do a different action space or annotator version.

    Args:
        saved: The checkpoint's ``dataset`` identity.
        current: :func:`agents.training.data.dataset_identity` of the dataset at hand.
        where: The checkpoint's path (for the messages).

    Returns:
        The warnings (also issued with ``warnings.warn``).

    Raises:
        TrainError: an incompatible frame shape, format or vocabulary.
    """
    if list(saved.get("frame_shape") or []) != list(current.get("frame_shape") or []):
        raise TrainError(
            f"Checkpoint {where} was trained on frames of shape {saved.get('frame_shape')} but "
            f"this dataset has {current.get('frame_shape')}; use a dataset with the same frame "
            "size (re-collect or resize) or train a new model."
        )
    major = [str(x.get("format_version", "")).split(".")[0] for x in (saved, current)]
    if major[0] != major[1]:
        raise TrainError(f"Checkpoint {where} was trained on dataset format {saved.get('format_version')}, "
                         f"this dataset is {current.get('format_version')}; convert the dataset.")
    same_env = saved.get("env_id") == current.get("env_id")
    out: list[str] = []
    if same_env and saved.get("vocab_hash") and current.get("vocab_hash") \
            and saved["vocab_hash"] != current["vocab_hash"]:
        raise TrainError(
            f"Checkpoint {where} has vocabulary {saved['vocab_hash']} ({saved.get('vocab_size')} "
            f"tokens) but this dataset's labelled training annotations give {current['vocab_hash']} "
            f"({current.get('vocab_size')} tokens); resume on the dataset the run was trained on "
            "(same episodes, split and label_fraction) or start a new run."
        )
    if not same_env:
        out.append(f"Checkpoint {where} was trained on env {saved.get('env_id')!r}, this dataset is "
                   f"{current.get('env_id')!r} (same frame shape): cross-domain use, the checkpoint's "
                   "vocabulary is kept and unknown words map to <unk>.")
    elif saved.get("action_space") != current.get("action_space"):
        out.append(f"Checkpoint {where} was trained with another action space than this dataset's.")
    if same_env and saved.get("annotator_version") != current.get("annotator_version"):
        out.append(f"Checkpoint {where} used annotator {saved.get('annotator_version')}, this "
                   f"dataset {current.get('annotator_version')}.")
    for w in out:
        warnings.warn(w, stacklevel=2)
    return out


def load_agent(path: str | Path, *, data: str | Path | None = None, device: str = "cpu") -> Any:
    """A ready agent (eval mode, tokenizer attached) from a run directory or a checkpoint.

    Args:
        path: A run directory (its newest checkpoint is used), a checkpoint directory, or a
            ``save_pretrained`` directory.
        data: Optionally a dataset directory to check the checkpoint against (frame shape,
            vocabulary; another env with the same frame shape only warns).
        device: Where to put the agent.

    Returns:
        The ``BYOGAgent`` with ``agent.metadata`` (step, config, dataset identity, checkpoint path).

    Raises:
        TrainError: nothing loadable at ``path`` or an incompatible dataset.
    """
    from agents.lm import ModelError
    from agents.model import BYOGAgent
    from agents.obs import build_obs_encoder
    from agents.obs.base import ObsEncoderError
    from agents.text import TextError

    ckpt = resolve_checkpoint(path)
    meta = read_meta(ckpt)
    agent_dir = ckpt / AGENT if (ckpt / AGENT).is_dir() else ckpt
    try:
        obs = None
        if (ckpt / OBS).is_dir():
            from agents.config import ModelConfig

            cfg = ModelConfig.from_saved(json.loads((agent_dir / "model_config.json").read_text()))
            obs = build_obs_encoder(cfg.obs, fitted_path=ckpt / OBS)
        agent = BYOGAgent.from_pretrained(agent_dir, obs_encoder=obs)
    except (ModelError, ObsEncoderError, TextError, OSError, json.JSONDecodeError) as e:
        raise TrainError(f"Cannot load the agent in {ckpt}: {e}") from None
    if data is not None:
        from agents.training.data import dataset_identity
        from collect.dataset import DatasetError, open_dataset

        try:
            ds = open_dataset(data)
        except DatasetError as e:
            raise TrainError(str(e)) from None
        current = dataset_identity(ds, agent.tokenizer)
        saved = meta.get("dataset") or {}
        # the agent keeps its own vocabulary; only the frame shape/format/env can clash here
        check_compatible({**saved, "vocab_hash": None}, current, where=str(ckpt))
    agent.metadata = {**meta, "checkpoint": str(ckpt)}
    return agent.to(device).eval()
