"""Load a ready agent from a run directory, a checkpoint or a ``save_pretrained`` directory.

Separate from :mod:`agents.training.checkpoint` on purpose: loading builds a ``BYOGAgent``, and
the model (through ``save_pretrained`` and ``imagine``) reads checkpoint files, so keeping the
model import here leaves no import cycle between the model and the checkpoint layout.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.training.checkpoint import AGENT, OBS, check_compatible, read_meta, resolve_checkpoint
from agents.training.config import TrainError


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
    from agents.model.agent import BYOGAgent
    from agents.model.lm import ModelError
    from agents.model.text import TextError
    from agents.obs import build_obs_encoder
    from agents.obs.base import ObsEncoderError

    ckpt = resolve_checkpoint(path)
    meta = read_meta(ckpt)
    agent_dir = ckpt / AGENT if (ckpt / AGENT).is_dir() else ckpt
    try:
        obs = None
        if (ckpt / OBS).is_dir():
            from agents.config import ModelConfig
            from agents.model.hf import read_agent_config

            cfg = ModelConfig.from_saved(read_agent_config(agent_dir)[0])
            obs = build_obs_encoder(cfg.obs, fitted_path=ckpt / OBS)
        agent = BYOGAgent.from_pretrained(agent_dir, obs_encoder=obs)
    except (ModelError, ObsEncoderError, TextError, OSError, json.JSONDecodeError) as e:
        raise TrainError(f"Cannot load the agent in {ckpt}: {e}") from None
    except Exception as e:  # safetensors' SafetensorError derives from Exception only
        if type(e).__name__ != "SafetensorError":
            raise
        raise TrainError(f"Checkpoint {ckpt} is corrupt ({e}); pass its run directory to use "
                         "the newest intact checkpoint.") from None
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
    if agent.cfg.window is None:  # saved before ModelConfig.window: the loader's window it trained on
        window = ((meta.get("config") or {}).get("loader") or {}).get("window")
        agent.cfg.window = int(window) if window else None
    return agent.to(device).eval()


def checkpoint_window(path: str | Path) -> int | None:
    """The window (frames) the agent at ``path`` (run, checkpoint or ``save_pretrained``
    directory) was trained on, read from its saved configs without loading any weight:
    ``ModelConfig.window``, else (saved before that field) the training config's
    ``loader.window``; None when it says neither."""
    from agents.model.hf import read_agent_config

    ckpt = resolve_checkpoint(path)
    agent_dir = ckpt / AGENT if (ckpt / AGENT).is_dir() else ckpt
    window = read_agent_config(agent_dir)[0].get("window")
    if not window:
        window = ((read_meta(ckpt).get("config") or {}).get("loader") or {}).get("window")
    return int(window) if window else None
