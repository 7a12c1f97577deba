"""A toy observation encoder, registered from the test suite (docs/architecture.md's recipe).

Kind ``toy``: a frame's mean colour minus the mean colour of the frames it was fitted on,
times ``gain``, through a trainable linear map. It is fitted on data (``requires_fit``), so
the trainer fits and saves it before training, exactly as it does the VQ-VAE and the units.
Configs name it ``"plugins.toy_obs:toy"``; a saved config records ``plugin:
"plugins.toy_obs"``, so a fresh process imports this module by itself. (A real plugin keeps
the config in a torch-free module beside the encoder's; one file keeps the toy short.)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from agents.obs.base import FittedObsEncoder
from agents.obs.config import ObsConfig, register_obs_encoder
from agents.obs.data import iter_clip_batches, valid_frames


@register_obs_encoder("toy", encoder="plugins.toy_obs:ToyEncoder",
                      summary="mean colour minus the fitted mean (a test plugin)")
@dataclass
class ToyConfig(ObsConfig):
    """Options of the toy encoder; ``out_dim`` None = 8."""

    requires_fit = True

    gain: float = 1.0
    """Scale of the centred mean colour."""


class ToyEncoder(FittedObsEncoder):
    """uint8 frames -> Linear(gain * (mean colour - fitted mean colour))."""

    def __init__(self, cfg: ToyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.out_dim = cfg.out_dim or 8
        self.register_buffer("mean", torch.zeros(3))
        self.proj = nn.Linear(3, self.out_dim)

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        colour = frames.float().mean((1, 2)) / 255.0  # [N, 3]
        return self.proj(self.cfg.gain * (colour - self.mean))  # [N, out_dim]

    def fit(self, source: Any, *, window: int = 16, batch_size: int = 16, **_: Any) -> dict[str, float]:
        frames = torch.cat([valid_frames(c) for c in
                            iter_clip_batches(source, batch_size=batch_size, window=window)])
        self.mean.copy_(frames.float().mean((0, 1, 2)) / 255.0)
        self.mark_fitted()
        return {"toy/frames": float(len(frames))}
