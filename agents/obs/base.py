"""The one interface every observation encoder implements: uint8 frames -> feature vectors."""
from __future__ import annotations

import torch
from torch import nn


class ObsEncoder(nn.Module):
    """Maps frames ``uint8 [B, T, H, W, 3]`` to features ``float [B, T, out_dim]``.

    Subclasses set ``out_dim`` and implement :meth:`encode_frames` on a flat batch of frames.
    Encoders that must be fitted on data before use (VQ-VAE, k-means units) implement ``fit``;
    ``trainable`` says whether the BYOG loss may update the encoder's weights.
    """

    out_dim: int
    trainable: bool = True

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """frames uint8 [N, H, W, 3] -> float [N, out_dim]."""
        raise NotImplementedError

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        B, T = frames.shape[:2]
        feats = self.encode_frames(frames.reshape(B * T, *frames.shape[2:]))  # [B*T, D]
        return feats.reshape(B, T, -1)


def to_float_chw(frames: torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, H, W] in [0, 1]."""
    return frames.permute(0, 3, 1, 2).float().div_(255.0)
