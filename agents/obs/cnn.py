"""A small trainable CNN: the default observation encoder, trained end to end."""
from __future__ import annotations

import torch
from torch import nn

from agents.obs.base import ObsEncoder, to_float_chw


class CNNEncoder(ObsEncoder):
    """Nature-DQN-like conv stack with adaptive pooling, so any frame size works."""

    def __init__(self, *, out_dim: int = 256, channels: tuple[int, ...] = (32, 64, 64)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate(channels):
            stride = 2 if i < len(channels) - 1 else 1
            layers += [nn.Conv2d(c_in, c, kernel_size=4 if stride == 2 else 3, stride=stride,
                                 padding=1), nn.GELU()]
            c_in = c
        self.convs = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(4)  # fixed 4x4 grid keeps spatial layout, any H, W
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c_in * 16, out_dim), nn.GELU())
        self.out_dim = out_dim

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        x = to_float_chw(frames)                # [N, 3, H, W]
        return self.head(self.pool(self.convs(x)))  # [N, out_dim]
