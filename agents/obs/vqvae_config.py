"""Options of the ``vqvae`` observation encoder (torch-free; the encoder is agents.obs.vqvae)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agents.obs.config import ObsConfig, ObsEncoderError, one_of, positive, register_obs_encoder


@register_obs_encoder("vqvae", encoder="agents.obs.vqvae:VQVAEEncoder",
                      summary="VQ-VAE fitted on the dataset's frames, then frozen")
@dataclass
class VQVAEConfig(ObsConfig):
    """A VQ-VAE (van den Oord et al., 2017) fitted on frames before training, then frozen;
    ``out_dim`` None = code_dim * pool^2 (quantized / pre_quant) or codebook_size (codes)."""

    requires_fit = True

    hidden: int = 64
    """Channels of the VQ-VAE's conv encoder/decoder."""
    downsample: int = 2
    """Number of stride-2 stages: the latent grid is (H / 2^n, W / 2^n)."""
    codebook_size: int = 256
    """Number of codebook vectors K."""
    code_dim: int = 32
    """Width of each codebook vector."""
    beta: float = 0.25
    """Commitment loss weight (van den Oord et al. use 0.25)."""
    codebook_update: Literal["loss", "ema"] = "loss"
    """'loss': codebook learned by the codebook loss ||sg[z_e] - e||^2 (the paper's eq. 3);
    'ema': codebook as exponential moving averages of assigned encoder outputs (paper's
    appendix), with the codebook loss term dropped."""
    ema_decay: float = 0.99
    """Decay of the EMA codebook updates (codebook_update='ema')."""
    features: Literal["quantized", "pre_quant", "codes"] = "quantized"
    """Features: quantized vectors or the encoder's pre-quantization output, average-pooled to
    a pool x pool grid and flattened; or 'codes', the frame's normalised histogram of code
    ids (a bag of codes, width K)."""
    pool: int = 2
    """Side of the pooled grid of quantized vectors (keeps coarse spatial layout)."""
    fit_steps: int = 500
    """Optimiser steps of the fit on training frames before training (the encoder's own budget;
    ``--obs_fit.vqvae_steps`` still overrides it)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        positive(self, "hidden", "codebook_size", "code_dim", "pool", "fit_steps")
        if not 1 <= self.downsample <= 5:
            raise ObsEncoderError(
                f"vqvae.downsample must be in 1..5 stride-2 stages, got {self.downsample}.")
        if self.beta < 0:
            raise ObsEncoderError(f"vqvae.beta must be >= 0, got {self.beta}.")
        if not 0.0 < self.ema_decay < 1.0:
            raise ObsEncoderError(f"vqvae.ema_decay must be in (0, 1), got {self.ema_decay}.")
        one_of(self, "codebook_update", ("loss", "ema"))
        one_of(self, "features", ("quantized", "pre_quant", "codes"))
