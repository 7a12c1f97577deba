"""Frame tokens: frames <-> code grids (registry :data:`FRAME_TOKENS`: ``vqvae``, ``units``, and
``grid`` in :mod:`agents.imagine.grid_tokens`).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.imagine.config import FRAME_TOKENS, WorldModelConfig, WorldModelError, _write_json


# ---------------------------------------------------------------------------------------------
# Frame tokens: frames <-> code grids
# ---------------------------------------------------------------------------------------------
class FrameTokens:
    """Frames uint8 [N, H, W, 3] <-> codes long [N, h, w] (``grid = (h, w)``, ``vocab`` ids)."""

    name: str
    grid: tuple[int, int]
    vocab: int
    frame_shape: tuple[int, int, int]

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def save(self, path: Path) -> None:
        raise NotImplementedError

    def render(self, codes: torch.Tensor, previous: torch.Tensor, source: torch.Tensor,
               ) -> torch.Tensor:
        """Frames of ``codes`` [N, h, w] where grid position i shows ``previous`` [N, H, W, 3]'s
        own pixels at position ``source[:, i]`` (long [N, h*w], -1: the code's picture). Tokens
        whose positions are not pixel tiles cannot copy pixels and just decode."""
        return self.decode(codes)

    def equivalent(self, tolerance: float) -> torch.Tensor | None:
        """bool [V, V]: codes whose pictures differ by at most ``tolerance`` (RMS, 0-255 pixel
        levels); None where the tokens cannot say (then only identical codes match)."""
        return None

    def encode_all(self, frames: torch.Tensor | np.ndarray, chunk: int = 256) -> torch.Tensor:
        """:meth:`encode` in chunks (bounded memory)."""
        frames = torch.as_tensor(np.asarray(frames))
        return torch.cat([self.encode(frames[i:i + chunk]) for i in range(0, len(frames), chunk)])


class VQFrameTokens(FrameTokens):
    """A grid of VQ-VAE codes per frame; the VQ-VAE's decoder renders codes back to pixels."""

    name = "vqvae"

    def __init__(self, encoder: Any, frame_shape: Sequence[int]) -> None:
        self.encoder = encoder.freeze()
        self.frame_shape = tuple(int(s) for s in frame_shape)  # type: ignore[assignment]
        H, W = self.frame_shape[:2]
        m = 2 ** encoder.vqvae.n_down
        self.grid = (-(-H // m), -(-W // m))
        self.vocab = int(encoder.vqvae.codebook.shape[0])

    @classmethod
    def fit(cls, frames: np.ndarray, cfg: WorldModelConfig, *, progress: bool = False,
            ) -> tuple[VQFrameTokens, dict[str, float]]:
        """Fit a VQ-VAE on ``frames`` uint8 [N, H, W, 3] (when the agent has none)."""
        from agents.obs.vqvae import VQVAEEncoder
        from agents.obs.vqvae_config import VQVAEConfig

        t0 = time.process_time()
        enc = VQVAEEncoder(VQVAEConfig(downsample=cfg.vqvae_downsample,
                                       codebook_size=cfg.vqvae_codebook_size, hidden=cfg.vqvae_hidden))
        hist = enc.fit(torch.as_tensor(frames), steps=cfg.vqvae_steps, batch_size=cfg.vqvae_batch_size,
                       lr=1e-3, seed=cfg.seed, progress=progress)
        return cls(enc, frames.shape[1:]), {"vqvae/fit_cpu_s": time.process_time() - t0,
                                             "vqvae/final_recon_mse": hist["vq/recon"][-1]}

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        return self.encoder.codes(torch.as_tensor(frames))

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        vq = self.encoder.vqvae
        z_q = vq.codebook[codes].permute(0, 3, 1, 2)  # [N, D, h, w]
        H, W = self.frame_shape[:2]
        x = vq.decoder(z_q)[..., :H, :W] + 0.5  # the VQVAE's own output offset
        return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    def save(self, path: Path) -> None:
        self.encoder.save(path)
        _write_json(path / "frame_tokens.json", {"name": self.name, "frame_shape": self.frame_shape})

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> VQFrameTokens:
        from agents.obs.vqvae import VQVAEEncoder

        return cls(VQVAEEncoder.load(path), meta["frame_shape"])


class UnitFrameTokens(FrameTokens):
    """One k-means unit id per frame (a 1x1 grid); a unit's picture is its centroid thumbnail,
    the mean of the training frames assigned to it."""

    name = "units"

    def __init__(self, encoder: Any, thumbnails: torch.Tensor) -> None:
        self.encoder = encoder.eval()
        self.thumbnails = thumbnails  # uint8 [k, H, W, 3]
        self.frame_shape = tuple(int(s) for s in thumbnails.shape[1:])  # type: ignore[assignment]
        self.grid = (1, 1)
        self.vocab = int(thumbnails.shape[0])

    @classmethod
    def fit(cls, frames: np.ndarray, cfg: WorldModelConfig, *, progress: bool = False,
            ) -> tuple[UnitFrameTokens, dict[str, float]]:
        """k-means units over downsampled pixels of ``frames``; thumbnails = per-unit mean frame."""
        from agents.obs.units import UnitsEncoder
        from agents.obs.units_config import UnitsConfig

        t0 = time.process_time()
        enc = UnitsEncoder(UnitsConfig(k=cfg.units_k, source="pixels", embedding="onehot",
                                       pixel_size=cfg.units_pixel_size, seed=cfg.seed))
        x = torch.as_tensor(frames)
        info = enc.fit(x, max_frames=len(x), progress=progress)
        ids = enc.eval().unit_ids(x[None])[0]  # [N]
        sums = torch.zeros(cfg.units_k, *x.shape[1:], dtype=torch.float64)
        sums.index_add_(0, ids, x.double())
        counts = torch.bincount(ids, minlength=cfg.units_k).clamp_min(1).double()
        thumbs = (sums / counts[:, None, None, None]).round().to(torch.uint8)
        return cls(enc, thumbs), {"units/fit_cpu_s": time.process_time() - t0, **info}

    @torch.no_grad()
    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        ids = self.encoder.unit_ids(torch.as_tensor(frames)[None], temperature=0.0)[0]  # [N]
        return ids.view(-1, 1, 1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.thumbnails[codes.reshape(-1)]

    def save(self, path: Path) -> None:
        from safetensors.torch import save_file

        self.encoder.save(path)
        save_file({"thumbnails": self.thumbnails.contiguous()}, str(path / "thumbnails.safetensors"))
        _write_json(path / "frame_tokens.json", {"name": self.name, "frame_shape": self.frame_shape})

    @classmethod
    def load(cls, path: Path, meta: dict[str, Any]) -> UnitFrameTokens:
        from safetensors.torch import load_file

        from agents.model.weights import tensor_shapes
        from agents.obs.units import UnitsEncoder

        thumbs = path / "thumbnails.safetensors"
        if "thumbnails" not in tensor_shapes(thumbs, what="World-model thumbnails", error=WorldModelError):
            raise WorldModelError(f"{thumbs} holds no 'thumbnails' tensor; retrain the world model.")
        return cls(UnitsEncoder.load(path), load_file(str(thumbs))["thumbnails"])




def frame_tokens_for(agent: Any, frames: np.ndarray, cfg: WorldModelConfig, *,
                     progress: bool = False) -> tuple[FrameTokens, dict[str, float]]:
    """The agent's own VQ-VAE when it has one (and tokens=vqvae), else tokens fitted on ``frames``.

    Returns:
        ``(tokens, info)``; ``info`` holds the fitting cost (``*/fit_cpu_s``) when one was fitted.
    """
    obs = getattr(getattr(agent, "encoder", None), "obs", None)
    if cfg.tokens == "vqvae" and obs is not None and hasattr(obs, "vqvae") and hasattr(obs, "codes"):
        return VQFrameTokens(obs, frames.shape[1:]), {"vqvae/fit_cpu_s": 0.0, "vqvae/agent_own": 1.0}
    return FRAME_TOKENS[cfg.tokens].fit(frames, cfg, progress=progress)  # type: ignore[attr-defined]
