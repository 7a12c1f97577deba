"""A world model over frame tokens, conditioned on the BYOG narrator: imagination in pictures.

A second training stage that reads a *frozen* agent (DESIGN.md, *Imagination*):

* **Frame tokens** (registry :data:`FRAME_TOKENS`): ``vqvae`` turns a frame into a grid of
  VQ-VAE codes (the agent's own VQ-VAE when its observation encoder is one, otherwise one fitted
  here on the dataset's frames; its decoder renders codes back to pixels); ``units`` turns a
  frame into ONE k-means unit id over downsampled pixels (the hidden-units note's forward model),
  whose picture is the unit's *centroid thumbnail*: the mean of the training frames assigned to
  it. Units are one id per frame, so a units world model can only ever show those thumbnails.
  ``grid`` (:mod:`agents.imagine.grid_tokens`) gives each tile of a grid world's frame (the env family's
  ``tile_size``) the id of its nearest k-means tile patch: nearly lossless by day on Crafter.
* **Condition** (registry :data:`CONDITIONS`): the BYOG encoder's state at frame t (the final
  hidden state of frame t's narration slot, so its narration is included) and the action taken
  at t; ``action`` / ``state`` / ``none`` drop one or both (the language ablation).
* **Model** (:class:`FrameTransformer`): a small bidirectional transformer over the grid
  positions of frame t+1. Position i's input is ``embed(code_t[i]) + embed(revealed_{t+1}[i])
  + pos[i]``, where ``revealed`` holds the frame-t+1 codes decoded so far and ``[MASK]``
  elsewhere; two condition tokens (state, action) are prepended. With a copy path
  (``copy``, :mod:`agents.imagine.copy_path`) each position may also copy frame t's code at itself or a
  neighbour, and a copied tile keeps its pixels (``copy_pixels``). The model is causal in time:
  frame t+1 is predicted from frame t and the narrator's state, which summarises frames <= t.
  Trained by masked-code cross-entropy (MaskGIT): a fraction ``full_mask_fraction`` of the
  samples has every position masked (what one-pass decoding sees), the rest a cosine-scheduled
  random ratio (what iterative decoding sees). Actions are dropped with probability
  ``action_dropout`` (replaced by a learned "no action" id), so a rollout without actions predicts
  under the action prior of the data rather than an unseen input.

Rollouts: :func:`imagine` (also ``BYOGAgent.imagine``) feeds each imagined frame back, narrated
by the agent, whose new state conditions the next step; it lives here, not in the CLI module
:mod:`agents.imagine.command`, so that ``agents.model.agent`` depends on this module only.

Decoding scheme (registry :data:`DECODERS`), chosen by measured quality per CPU second
---------------------------------------------------------------------------------------
``parallel`` (every position in one pass), ``maskgit`` (``decoding_steps`` passes, each keeping
the most confident predictions, cosine schedule) and ``autoregressive`` (raster order, one
position per pass: ``h*w`` passes) all run on the same trained model. ``parallel`` is the
default because it was as good for a fraction of the cost. Measured on the Crafter demo
(docs/results/crafter-imagination-cpu/: 8x8 code grid, 64 one-step predictions from real frames,
argmax, 1 CPU thread): code accuracy 0.604 / 0.604 / 0.605 / 0.607 and PSNR 20.44 / 20.46 /
20.46 / 20.47 dB for parallel / maskgit-4 / maskgit-8 / autoregressive, at 1.0 / 5.4 / 8.2 /
61 CPU ms per frame. Iterative decoding can only pay off where positions of the next frame are
strongly coupled given the condition (multi-modal futures sampled at temperature > 0); argmax
decoding of a mostly predictable next frame gains nothing from it here. On the sprite test env
one parallel pass already reaches the reconstruction ceiling.
"""
from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.imagine.copy_path import COPY_PATHS, copy_mixture_loss, copy_sources, mix_copy
from byog_core.registry import Registry

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENS_DIR = "tokens"
WORLD_MODEL_DIR = "world_model"
KIND = "byog-world-model"
FORMAT_VERSION = 1


class WorldModelError(ValueError):
    """A bad world-model config, checkpoint or input; the message names the fix."""


# ---------------------------------------------------------------------------------------------
# Config and registries
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Conditioning:
    """What a world model reads besides frame t's tokens."""

    state: bool
    """The BYOG encoder's state at frame t (its narration included)."""
    action: bool
    """The action taken at frame t."""


CONDITIONS: Registry[Conditioning] = Registry.of("world-model condition", {
    "state+action": Conditioning(state=True, action=True),
    "action": Conditioning(state=False, action=True),
    "state": Conditioning(state=True, action=False),
    "none": Conditioning(state=False, action=False),
}, error=WorldModelError)


@dataclass
class WorldModelConfig:
    """Settings of the imagination world model (saved in its ``config.json``)."""

    tokens: str = "vqvae"
    """Frame tokens: ``vqvae`` (a grid of VQ-VAE codes, rendered by its decoder), ``grid`` (one
    k-means tile-patch id per tile of a grid world, see ``tile_size``) or ``units`` (one k-means
    unit id per frame, rendered as the unit's centroid thumbnail)."""
    condition: str = "state+action"
    """What the model reads besides frame t: ``state+action``, ``action``, ``state``, ``none``."""
    decoding: str = "parallel"
    """How frame t+1's codes are decoded: ``parallel``, ``maskgit`` or ``autoregressive``
    (see the module docstring for the measured choice)."""
    decoding_steps: int = 8
    """Passes of ``maskgit`` decoding."""
    d_model: int = 64
    """Transformer width."""
    layers: int = 2
    """Transformer layers."""
    heads: int = 4
    """Attention heads (must divide d_model)."""
    full_mask_fraction: float = 0.5
    """Share of training samples with every position of frame t+1 masked."""
    action_dropout: float = 0.1
    """Probability of replacing the action by the learned "no action" id in training."""
    steps: int = 800
    """Optimiser steps of the world model."""
    batch_size: int = 32
    """Transitions per step."""
    lr: float = 1e-3
    """AdamW learning rate (linear warm-up over the first 5% of steps, then constant)."""
    seed: int = 0
    """Seed of initialisation and sampling."""
    narration_window: int | None = None
    """Context window (frames) of the narrator that provides the BYOG states (None: the window
    the agent was trained on, so its states are those it learned to produce; at least 2)."""
    vqvae_steps: int = 600
    """Steps to fit a VQ-VAE when the agent has none (tokens=vqvae)."""
    vqvae_batch_size: int = 32
    """Frames per step of that fit."""
    vqvae_downsample: int = 3
    """Stride-2 stages of a VQ-VAE fitted here (64x64 frames -> an 8x8 code grid at 3)."""
    vqvae_codebook_size: int = 256
    """Codebook size of a VQ-VAE fitted here."""
    vqvae_hidden: int = 32
    """Channels of a VQ-VAE fitted here."""
    units_k: int = 64
    """Number of k-means units (tokens=units)."""
    units_pixel_size: int = 8
    """Side of the downsampled frame the units cluster (tokens=units)."""
    tile_size: int | None = None
    """Tile side in pixels (tokens=grid); None: the env family's ``tile_size`` (the dataset's
    or --env's family; an error when it registers none)."""
    grid_codes: int = 1024
    """Most codes of the grid tokenizer's codebook (k-means over tile patches; all distinct
    training tiles when there are no more)."""
    grid_fit_tiles: int = 200_000
    """Most distinct training tiles the grid codebook's k-means reads (a random subset above)."""
    copy_tolerance: float = 6.0
    """A copied code counts as the target in training when their pictures differ by at most this
    RMS (0-255 levels; 0: only the same code), for tokens that can tell (grid): one texture split
    into several codes by drifting light is then "unchanged", not a new tile."""
    copy_pixels: bool = True
    """Render a copied position with the copied frame's own pixels (grid tokens: the tile
    itself, not its code's codebook picture), so what the model keeps is kept exactly."""
    copy: str = "neighbours"
    """The "same as last" path (:data:`agents.imagine.copy_path.COPY_PATHS`): besides codebook logits
    each position may copy frame t's code at itself (``same``), at itself and its four
    neighbours (``neighbours``: a moving view shifts by one tile) or nowhere (``none``)."""

    def __post_init__(self) -> None:
        _known("tokens", self.tokens, FRAME_TOKENS)
        _known("condition", self.condition, CONDITIONS)
        _known("decoding", self.decoding, DECODERS)
        _known("copy path", self.copy, COPY_PATHS)
        for name in ("decoding_steps", "d_model", "layers", "heads", "steps", "batch_size",
                     "vqvae_steps", "vqvae_batch_size", "units_k", "units_pixel_size",
                     "vqvae_codebook_size", "vqvae_hidden", "grid_codes", "grid_fit_tiles"):
            if getattr(self, name) < 1:
                raise WorldModelError(f"world model {name} must be >= 1, got {getattr(self, name)}.")
        if self.copy_tolerance < 0:
            raise WorldModelError(f"copy_tolerance must be >= 0, got {self.copy_tolerance}.")
        if self.tile_size is not None and self.tile_size < 1:
            raise WorldModelError(f"tile_size must be >= 1 pixel or None, got {self.tile_size}.")
        if self.narration_window is not None and self.narration_window < 2:
            raise WorldModelError(f"narration_window must be >= 2 frames, got {self.narration_window}.")
        if self.d_model % self.heads:
            raise WorldModelError(f"d_model {self.d_model} must be divisible by heads {self.heads}.")
        for name in ("full_mask_fraction", "action_dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise WorldModelError(f"{name} must be in [0, 1], got {getattr(self, name)}.")
        if self.lr <= 0:
            raise WorldModelError(f"lr must be > 0, got {self.lr}.")
        if not 1 <= self.vqvae_downsample <= 5:
            raise WorldModelError(f"vqvae_downsample must be in 1..5, got {self.vqvae_downsample}.")

    @property
    def conditioning(self) -> Conditioning:
        return CONDITIONS[self.condition]

    def window_for(self, agent: Any) -> int:
        """The narration window to use with ``agent`` (see ``narration_window``)."""
        from agents.narrate.narrator import training_window

        return self.narration_window or max(2, training_window(agent))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> WorldModelConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _known(what: str, name: str, registry: dict[str, Any]) -> None:
    if name not in registry:
        raise WorldModelError(f"Unknown world model {what} {name!r}; choose one of "
                              f"{', '.join(sorted(registry))}.")


# ---------------------------------------------------------------------------------------------
# Pure functions: masking, loss, sampling, image metrics
# ---------------------------------------------------------------------------------------------
def training_mask(batch: int, n: int, *, full_fraction: float, generator: torch.Generator,
                  ) -> torch.Tensor:
    """MaskGIT training mask bool [batch, n] (True = masked, to be predicted).

    A ``full_fraction`` share of rows is fully masked; the others mask ``ceil(r * n)`` random
    positions with ``r = cos(pi/2 * u)``, ``u ~ U(0, 1)`` (at least one position)."""
    u = torch.rand(batch, generator=generator)
    ratio = torch.cos(math.pi / 2 * u)
    full = torch.rand(batch, generator=generator) < full_fraction
    ratio = torch.where(full, torch.ones_like(ratio), ratio)
    k = (ratio * n).ceil().clamp(1, n).long()  # [B] positions masked per row
    ranks = torch.rand(batch, n, generator=generator).argsort(1).argsort(1)  # random ranks
    return ranks < k[:, None]


def masked_code_loss(logits: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
                     ) -> tuple[torch.Tensor, dict[str, float]]:
    """Cross-entropy on masked positions: logits [B, N, V], target long [B, N], mask bool [B, N].

    Returns:
        ``(loss, {"wm/ce": .., "wm/masked_accuracy": ..})``; the loss is the mean over masked
        positions of all rows.
    """
    ce = F.cross_entropy(logits.transpose(1, 2), target, reduction="none")  # [B, N]
    m = mask.float()
    loss = (ce * m).sum() / m.sum().clamp_min(1.0)
    with torch.no_grad():
        acc = ((logits.argmax(-1) == target).float() * m).sum() / m.sum().clamp_min(1.0)
    return loss, {"wm/ce": float(loss.detach()), "wm/masked_accuracy": float(acc)}


def sample_codes(logits: torch.Tensor, *, greedy: bool, temperature: float = 1.0,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Codes and their probabilities from logits [..., V]: argmax, or a sample at ``temperature``.

    Returns:
        ``(codes long [...], prob float [...])`` with ``prob`` the model's probability of each
        chosen code (MaskGIT's confidence).
    """
    probs = torch.softmax(logits.float(), -1)
    if greedy:
        p, codes = probs.max(-1)
        return codes, p
    scaled = torch.softmax(logits.float() / max(temperature, 1e-6), -1)
    flat = scaled.reshape(-1, scaled.shape[-1])
    codes = torch.multinomial(flat, 1, generator=generator).view(scaled.shape[:-1])
    return codes, probs.gather(-1, codes[..., None])[..., 0]


def psnr(pred: torch.Tensor, target: torch.Tensor, *, max_db: float = 60.0) -> torch.Tensor:
    """Per-frame PSNR (dB) of uint8 or [0, 1] frames [N, H, W, 3]; capped at ``max_db`` (an MSE
    floor) so identical frames give a finite number."""
    a, b = _unit(pred), _unit(target)
    mse = (a - b).pow(2).flatten(1).mean(1).clamp_min(10 ** (-max_db / 10))
    return -10 * torch.log10(mse)


def ssim(pred: torch.Tensor, target: torch.Tensor, *, window: int = 7, sigma: float = 1.5,
         ) -> torch.Tensor:
    """Per-frame SSIM (Wang et al. 2004) of frames [N, H, W, 3]: a Gaussian window, constants
    ``(0.01)^2`` and ``(0.03)^2`` for a dynamic range of 1, mean over channels and valid windows."""
    a = _unit(pred).permute(0, 3, 1, 2)
    b = _unit(target).permute(0, 3, 1, 2)
    C = a.shape[1]
    x = torch.arange(window, dtype=torch.float32) - (window - 1) / 2
    g = torch.exp(-x ** 2 / (2 * sigma ** 2))
    g = (g / g.sum())
    w = (g[:, None] * g[None, :]).expand(C, 1, window, window).contiguous()

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, w, groups=C)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return s.flatten(1).mean(1)


def code_accuracy(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-frame share of grid positions whose code matches: long [N, h, w] x2 -> float [N]."""
    return (pred == target).float().flatten(1).mean(1)


def _unit(x: torch.Tensor) -> torch.Tensor:
    x = torch.as_tensor(x)
    return x.float() / 255.0 if x.dtype == torch.uint8 else x.float()


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

        from agents.obs.units import UnitsEncoder
        from agents.model.weights import tensor_shapes

        thumbs = path / "thumbnails.safetensors"
        if "thumbnails" not in tensor_shapes(thumbs, what="World-model thumbnails", error=WorldModelError):
            raise WorldModelError(f"{thumbs} holds no 'thumbnails' tensor; retrain the world model.")
        return cls(UnitsEncoder.load(path), load_file(str(thumbs))["thumbnails"])


FRAME_TOKENS: Registry = Registry(
    "frame tokens", error=WorldModelError,
    hint="Register a FrameTokens class with agents.imagine.world_model.FRAME_TOKENS.register(name, cls).")
"""Frame tokenizers by name (``--world-model.tokens``); an entry point string imports on use."""
FRAME_TOKENS.register("vqvae", VQFrameTokens)
FRAME_TOKENS.register("units", UnitFrameTokens)
FRAME_TOKENS.register("grid", "agents.imagine.grid_tokens:GridFrameTokens")  # its own module


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


# ---------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------
class FrameTransformer(nn.Module):
    """Predicts frame t+1's codes: (codes_t, revealed_{t+1}, state, action) -> logits [B, N, V]."""

    def __init__(self, *, vocab: int, grid: tuple[int, int], n_actions: int, state_dim: int,
                 d_model: int, layers: int, heads: int,
                 copy_offsets: tuple[tuple[int, int], ...] = ()) -> None:
        super().__init__()
        self.vocab, self.n_actions = vocab, n_actions
        positions = grid[0] * grid[1]
        self.code_in = nn.Embedding(vocab, d_model)
        self.code_out = nn.Embedding(vocab + 1, d_model)  # id `vocab` = [MASK]
        self.pos = nn.Parameter(torch.randn(positions, d_model) * 0.02)
        self.action = nn.Embedding(n_actions + 1, d_model)  # id `n_actions` = no action
        self.state = (nn.Sequential(nn.LayerNorm(state_dim), nn.Linear(state_dim, d_model))
                      if state_dim else None)
        self.no_state = nn.Parameter(torch.zeros(d_model))
        self.cond_pos = nn.Parameter(torch.randn(2, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)
        # the "same as last" path (agents.imagine.copy_path): one logit per copy source
        self.copy_head = nn.Linear(d_model, len(copy_offsets)) if copy_offsets else None
        if self.copy_head is not None:  # start as copy-last: most of a next frame is the last
            with torch.no_grad():
                self.copy_head.bias.fill_(math.log(vocab) - 1.0)
                self.copy_head.bias[list(copy_offsets).index((0, 0))
                                    if (0, 0) in copy_offsets else 0] = math.log(vocab) + 2.0
        source, valid = copy_sources(grid, copy_offsets) if copy_offsets else (None, None)
        self.register_buffer("copy_source", source, persistent=False)
        self.register_buffer("copy_valid", valid, persistent=False)

    @property
    def mask_id(self) -> int:
        return self.vocab

    def forward(self, codes: torch.Tensor, revealed: torch.Tensor, state: torch.Tensor | None,
                action: torch.Tensor) -> torch.Tensor:
        """codes, revealed long [B, N]; state float [B, Ds] | None; action long [B] -> [B, N, V]
        logits (with a copy path: the mixture's normalised log-probabilities)."""
        vocab, copy = self.heads(codes, revealed, state, action)
        if copy is None:
            return vocab
        return mix_copy(vocab, copy, codes, self.copy_source, self.copy_valid)

    def heads(self, codes: torch.Tensor, revealed: torch.Tensor, state: torch.Tensor | None,
              action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The codebook logits [B, N, V] and the copy-source logits [B, N, O] (None: no path)."""
        B = codes.shape[0]
        x = self.code_in(codes) + self.code_out(revealed) + self.pos  # [B, N, D]
        s = self.state(state) if (self.state is not None and state is not None) \
            else self.no_state.expand(B, -1)  # [B, D]
        cond = torch.stack([s, self.action(action)], 1) + self.cond_pos  # [B, 2, D]
        h = self.norm(self.blocks(torch.cat([cond, x], 1))[:, 2:])  # [B, N, D]
        return self.head(h), (None if self.copy_head is None else self.copy_head(h))


# ---------------------------------------------------------------------------------------------
# Decoding schemes: how frame t+1's codes come out of the masked model
# ---------------------------------------------------------------------------------------------
LogitsFn = Callable[[torch.Tensor], torch.Tensor]  # revealed long [B, N] -> logits [B, N, V]
# Every decoder takes the logits function and ``revealed`` long [B, N] (all ``mask_id`` at the
# start) and returns frame t+1's codes long [B, N].


def decode_parallel(logits_fn: LogitsFn, revealed: torch.Tensor, *, mask_id: int, greedy: bool,
                    temperature: float, generator: torch.Generator | None, steps: int,
                    ) -> torch.Tensor:
    """Every position from one pass with all of frame t+1 masked."""
    return sample_codes(logits_fn(revealed), greedy=greedy, temperature=temperature,
                        generator=generator)[0]


def decode_maskgit(logits_fn: LogitsFn, revealed: torch.Tensor, *, mask_id: int, greedy: bool,
                   temperature: float, generator: torch.Generator | None, steps: int,
                   ) -> torch.Tensor:
    """MaskGIT (Chang et al. 2022): ``steps`` passes; after pass s, ``N cos(pi/2 (s+1)/steps)``
    positions stay masked, the most confident predictions being kept."""
    N = revealed.shape[1]
    cur = revealed.clone()
    for s in range(steps):
        codes, conf = sample_codes(logits_fn(cur), greedy=greedy, temperature=temperature,
                                   generator=generator)
        masked = cur == mask_id  # [B, N]
        keep_masked = math.floor(N * math.cos(math.pi / 2 * (s + 1) / steps))
        conf = conf.masked_fill(~masked, float("inf"))  # already revealed: never re-masked
        order = conf.argsort(1, descending=True)  # most confident first
        reveal = torch.zeros_like(masked)
        reveal.scatter_(1, order[:, : N - keep_masked], True)
        cur = torch.where(reveal & masked, codes, cur)
    return cur


def decode_autoregressive(logits_fn: LogitsFn, revealed: torch.Tensor, *, mask_id: int,
                          greedy: bool,
                          temperature: float, generator: torch.Generator | None, steps: int,
                          ) -> torch.Tensor:
    """Raster order, one position per pass (``N`` passes), each conditioned on those before."""
    cur = revealed.clone()
    for i in range(cur.shape[1]):
        codes, _ = sample_codes(logits_fn(cur)[:, i], greedy=greedy, temperature=temperature,
                                generator=generator)
        cur[:, i] = codes
    return cur


DECODERS: Registry[Callable[..., torch.Tensor]] = Registry.of("world-model decoding", {
    "parallel": decode_parallel,
    "maskgit": decode_maskgit,
    "autoregressive": decode_autoregressive,
}, error=WorldModelError, hint="Register a decoding with agents.imagine.world_model.DECODERS.register(name, fn).")


# ---------------------------------------------------------------------------------------------
# Data: transitions read from a frozen agent
# ---------------------------------------------------------------------------------------------
@dataclass
class Transitions:
    """Frames of several episodes, flattened, with what the world model reads from each.

    ``codes`` long [F, h, w]; ``states`` float [F, Ds] (None without a state condition);
    ``actions`` long [F] (-1: none); ``pairs`` long [P] rows t whose t+1 is in the same episode.
    """

    codes: torch.Tensor
    states: torch.Tensor | None
    actions: torch.Tensor
    pairs: torch.Tensor
    info: dict[str, float] = field(default_factory=dict)


@torch.no_grad()
def narrator_states(agent: Any, episodes: Sequence[np.ndarray], *, window: int,
                    batch: int = 64) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The BYOG state and greedy narration of every frame of every episode, read from the frozen
    agent by live narration (``agents.narrate.narrator.Narrator``, a bounded context of ``window``).

    The state of frame t is the final hidden state of its narration slot's last position, so it
    has read frames <= t and the words narrated for them.

    Returns:
        ``(states, ids)``: per episode float [L, D] and long [L, k].
    """
    from agents.narrate.narrator import Narrator

    states: list[torch.Tensor] = [None] * len(episodes)  # type: ignore[list-item]
    ids: list[torch.Tensor] = [None] * len(episodes)  # type: ignore[list-item]
    order = sorted(range(len(episodes)), key=lambda i: -len(episodes[i]))
    for g in range(0, len(order), batch):
        group = order[g:g + batch]
        L = max(len(episodes[i]) for i in group)
        nar = Narrator(agent, batch_size=len(group), window=window, greedy=True)
        nar.reset()
        hs, ys = [], []
        for t in range(L):  # shorter episodes repeat their last frame (ignored below)
            x = np.stack([episodes[i][min(t, len(episodes[i]) - 1)] for i in group])
            step = nar.step(x)
            hs.append(step.hidden[:, -1].float())
            ys.append(step.ids)
        h, y = torch.stack(hs, 1), torch.stack(ys, 1)  # [G, L, D], [G, L, k]
        for j, i in enumerate(group):
            states[i], ids[i] = h[j, : len(episodes[i])].clone(), y[j, : len(episodes[i])].clone()
    return states, ids


def build_transitions(tokens: FrameTokens, frames: Sequence[np.ndarray],
                      actions: Sequence[np.ndarray], states: Sequence[torch.Tensor] | None,
                      ) -> Transitions:
    """Stack episodes (frames uint8 [L, H, W, 3], actions long [L], states [L, D]) into
    :class:`Transitions`; a pair (t, t+1) counts when both are in one episode and a_t >= 0."""
    t0 = time.process_time()
    codes = torch.cat([tokens.encode_all(f) for f in frames])
    acts = torch.cat([torch.as_tensor(np.array(a, np.int64)) for a in actions])  # copies: read-only arrays
    starts = np.cumsum([0] + [len(f) for f in frames])
    rows = [np.arange(s, e - 1) for s, e in itertools.pairwise(starts)]
    pairs = torch.as_tensor(np.concatenate(rows) if rows else np.zeros(0, np.int64), dtype=torch.long)
    pairs = pairs[acts[pairs] >= 0]
    st = torch.cat(list(states)) if states is not None else None
    return Transitions(codes=codes, states=st, actions=acts, pairs=pairs,
                       info={"tokens/encode_cpu_s": time.process_time() - t0})


# ---------------------------------------------------------------------------------------------
# The world model: tokens + transformer + config
# ---------------------------------------------------------------------------------------------
class WorldModel(nn.Module):
    """Frame tokens + :class:`FrameTransformer` under one :class:`WorldModelConfig`.

    Args:
        cfg: The config.
        tokens: Frame tokens (fitted).
        n_actions: Size of the Discrete action space.
        state_dim: Width of the BYOG state (0 when the condition has no state).
    """

    def __init__(self, cfg: WorldModelConfig, tokens: FrameTokens, *, n_actions: int,
                 state_dim: int) -> None:
        super().__init__()
        self.cfg, self.tokens = cfg, tokens
        self.n_actions = int(n_actions)
        self.state_dim = int(state_dim) if cfg.conditioning.state else 0
        h, w = tokens.grid
        torch.manual_seed(cfg.seed)
        self.net = FrameTransformer(vocab=tokens.vocab, grid=(h, w), n_actions=self.n_actions,
                                    state_dim=self.state_dim, d_model=cfg.d_model,
                                    layers=cfg.layers, heads=cfg.heads,
                                    copy_offsets=COPY_PATHS[cfg.copy])
        # codes a copy may stand for (one texture under drifting light), for the copy loss
        self.near = tokens.equivalent(cfg.copy_tolerance) if cfg.copy_tolerance > 0 else None

    # -- inputs ----------------------------------------------------------------------------
    def action_ids(self, actions: torch.Tensor | None, batch: int) -> torch.Tensor:
        """Long [B]: the actions, or the learned "no action" id where they are None / < 0 or the
        condition does not read actions."""
        none = torch.full((batch,), self.n_actions, dtype=torch.long)
        if actions is None or not self.cfg.conditioning.action:
            return none
        a = torch.as_tensor(actions, dtype=torch.long).reshape(batch)
        if bool((a >= self.n_actions).any()):
            raise WorldModelError(f"Action ids must be < {self.n_actions} (the dataset's action "
                                  f"space), got {int(a.max())}.")
        return torch.where(a >= 0, a, none)

    def state_input(self, state: torch.Tensor | None) -> torch.Tensor | None:
        return state if self.cfg.conditioning.state else None

    # -- training --------------------------------------------------------------------------
    def training_step(self, data: Transitions, rows: torch.Tensor, generator: torch.Generator,
                      ) -> tuple[torch.Tensor, dict[str, float]]:
        """Masked-code loss on the transitions ``rows`` (indices into ``data.pairs``)."""
        t = data.pairs[rows]
        B = t.shape[0]
        cur, nxt = data.codes[t].flatten(1), data.codes[t + 1].flatten(1)  # [B, N]
        mask = training_mask(B, cur.shape[1], full_fraction=self.cfg.full_mask_fraction,
                             generator=generator)
        revealed = nxt.masked_fill(mask, self.net.mask_id)
        a = self.action_ids(data.actions[t], B)
        drop = torch.rand(B, generator=generator) < self.cfg.action_dropout
        a = torch.where(drop, torch.full_like(a, self.n_actions), a)
        state = self.state_input(data.states[t] if data.states is not None else None)
        vocab, copy = self.net.heads(cur, revealed, state, a)
        if copy is None:
            return masked_code_loss(vocab, nxt, mask)
        return copy_mixture_loss(vocab, copy, cur, self.net.copy_source, self.net.copy_valid, nxt,
                                 mask, self.near)

    # -- prediction ------------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, codes: torch.Tensor, state: torch.Tensor | None = None,
                actions: torch.Tensor | None = None, *, greedy: bool = True,
                temperature: float = 1.0, generator: torch.Generator | None = None,
                decoding: str | None = None, steps: int | None = None) -> torch.Tensor:
        """Frame t+1's codes long [B, h, w] from frame t's codes [B, h, w], the BYOG state
        [B, Ds] and the actions long [B] (None or -1: no action input)."""
        B, h, w = codes.shape
        decoding = decoding or self.cfg.decoding
        _known("decoding", decoding, DECODERS)
        cur = codes.reshape(B, h * w)
        a = self.action_ids(actions, B)
        s = self.state_input(state)
        if s is None and self.cfg.conditioning.state:
            raise WorldModelError("This world model reads the BYOG state; pass state=[B, D].")
        revealed = torch.full_like(cur, self.net.mask_id)
        out = DECODERS[decoding](lambda r: self.net(cur, r, s, a), revealed,
                                 mask_id=self.net.mask_id, greedy=greedy,
                                 temperature=temperature, generator=generator,
                                 steps=steps or self.cfg.decoding_steps)
        return out.view(B, h, w)

    @torch.no_grad()
    def copied_from(self, codes: torch.Tensor, pred: torch.Tensor, state: torch.Tensor | None = None,
                    actions: torch.Tensor | None = None) -> torch.Tensor:
        """Where each predicted code was copied from: long [B, h*w] flat positions of frame t
        (-1: none). A position counts as copied when a copy source holds exactly its predicted
        code; the most likely such source (copy logits of the one-pass prediction) is chosen."""
        B, h, w = codes.shape
        none = torch.full((B, h * w), -1, dtype=torch.long)
        if self.net.copy_head is None:
            return none
        cur, p = codes.reshape(B, h * w), pred.reshape(B, h * w)
        masked = torch.full_like(cur, self.net.mask_id)
        _, copy = self.net.heads(cur, masked, self.state_input(state), self.action_ids(actions, B))
        src = self.net.copy_source  # [N, O]
        hit = (cur[:, src] == p[..., None]) & self.net.copy_valid  # [B, N, O]
        best = copy.masked_fill(~hit, float("-inf")).argmax(-1)  # [B, N]
        chosen = src[torch.arange(h * w)[None], best]  # [B, N]
        return torch.where(hit.any(-1), chosen, none)

    # -- persistence -----------------------------------------------------------------------
    def save(self, path: str | Path, **meta: Any) -> Path:
        """Write ``config.json``, ``model.safetensors`` and ``tokens/`` to ``path`` atomically
        (written beside it, then renamed; only a directory this class wrote is replaced)."""
        import os
        import shutil

        from safetensors.torch import save_file

        path = Path(path)
        if path.exists() and not _is_world_model(path):
            raise WorldModelError(f"{path} exists and is not a world model directory; choose "
                                  "another output path (nothing was overwritten).")
        tmp = path.with_name(f".tmp-{path.name}")
        if tmp.exists():
            shutil.rmtree(tmp)
        tmp.mkdir(parents=True)
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()},
                  str(tmp / WEIGHTS_FILE))
        self.tokens.save(tmp / TOKENS_DIR)
        _write_json(tmp / CONFIG_FILE, {
            "kind": KIND, "format_version": FORMAT_VERSION, "config": self.cfg.to_dict(),
            "n_actions": self.n_actions, "state_dim": self.state_dim,
            "tokens": self.tokens.name, **meta})
        if path.exists():
            old = path.with_name(f".old-{path.name}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> WorldModel:
        """Load a world model written by :meth:`save`."""
        from safetensors.torch import load_file

        from agents.model.weights import check_dir, check_weights

        path = check_dir(Path(path), what="World-model directory", error=WorldModelError)
        if not _is_world_model(path):
            raise WorldModelError(
                f"No world model at {path} (expected {CONFIG_FILE} of kind {KIND!r} and "
                f"{WEIGHTS_FILE}); train one with `python -m agents.imagine --checkpoint RUN "
                "--data DIR --train-steps N ...`.")
        meta = _read_json(path / CONFIG_FILE)
        if meta.get("format_version") != FORMAT_VERSION:
            raise WorldModelError(f"{path} has world-model format {meta.get('format_version')}, "
                                  f"this code reads {FORMAT_VERSION}; retrain it.")
        # models saved before the copy path existed had none
        cfg = WorldModelConfig.from_dict({"copy": "none", **meta["config"]})
        tdir = path / TOKENS_DIR
        tmeta = _read_json(tdir / "frame_tokens.json")
        if tmeta.get("name") not in FRAME_TOKENS:
            raise WorldModelError(f"{tdir} holds frame tokens {str(tmeta.get('name'))[:40]!r}; known: "
                                  f"{sorted(FRAME_TOKENS)}. Retrain the world model.")
        tokens = FRAME_TOKENS[tmeta["name"]].load(tdir, tmeta)  # type: ignore[attr-defined]
        # the config's network compared with the file's tensors before it is built (issue #26)
        check_weights(lambda: cls(cfg, tokens, n_actions=meta["n_actions"], state_dim=meta["state_dim"]).net,
                      path / WEIGHTS_FILE, what="World-model weights", error=WorldModelError)
        wm = cls(cfg, tokens, n_actions=meta["n_actions"], state_dim=meta["state_dim"])
        wm.net.load_state_dict(load_file(str(path / WEIGHTS_FILE)))
        wm.meta = meta
        return wm.eval()


def _read_json(f: Path) -> dict[str, Any]:
    from collect.untrusted import read_json_object

    return read_json_object(f, what="world model", error=WorldModelError, fix="retrain the world model.")


def _is_world_model(path: Path) -> bool:
    f = path / CONFIG_FILE
    if not f.is_file() or not (path / WEIGHTS_FILE).is_file():
        return False
    try:
        return json.loads(f.read_text()).get("kind") == KIND
    except json.JSONDecodeError:
        return False


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=str))


def train_world_model(wm: WorldModel, data: Transitions, *, log_every: int = 0,
                      printer: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``wm.net`` on ``data`` for ``wm.cfg.steps`` AdamW steps (the stage-2 loop).

    Returns:
        ``{"history": {"wm/ce": [...], ...}, "cpu_s": .., "wall_s": ..}``.
    """
    cfg = wm.cfg
    if len(data.pairs) == 0:
        raise WorldModelError("No transitions to train on (every episode has one frame or no "
                              "actions); collect episodes with actions.")
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(wm.net.parameters(), lr=cfg.lr, weight_decay=0.01)
    warm = max(1, cfg.steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    history: dict[str, list[float]] = {}
    wm.net.train()
    t0, c0 = time.perf_counter(), time.process_time()
    for step in range(cfg.steps):
        rows = torch.randint(len(data.pairs), (min(cfg.batch_size, len(data.pairs)),), generator=gen)
        loss, metrics = wm.training_step(data, rows, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(wm.net.parameters(), 1.0)
        opt.step()
        sched.step()
        for k, v in metrics.items():
            history.setdefault(k, []).append(v)
        if log_every and ((step + 1) % log_every == 0 or step + 1 == cfg.steps):
            printer(f"world model step {step + 1}/{cfg.steps}: ce {np.mean(history['wm/ce'][-log_every:]):.3f}"
                    f" masked acc {np.mean(history['wm/masked_accuracy'][-log_every:]):.3f}")
    wm.net.eval()
    return {"history": history, "cpu_s": time.process_time() - c0,
            "wall_s": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------
# Rollouts: agent.imagine
# ---------------------------------------------------------------------------------------------
@dataclass
class Imagination:
    """Imagined continuations of ``B`` clips.

    Attributes:
        frames: uint8 [B, K, H, W, 3] imagined frames (decoded codes).
        codes: long [B, K, h, w] the world model's codes.
        narration_ids: long [B, K, k] the agent's narration of the imagined frames.
        narration: B lists of K strings (``""`` for a silent frame).
    """

    frames: torch.Tensor
    codes: torch.Tensor
    narration_ids: torch.Tensor
    narration: list[list[str]]


def attach_world_model(agent: Any, wm: WorldModel | None) -> None:
    """Make ``wm`` the agent's world model (None: detach). Kept out of the agent's modules on
    purpose: assigning an ``nn.Module`` attribute would register it, and the agent's checkpoint
    (``save_pretrained``) would then carry the world model's weights."""
    if wm is None:
        agent.__dict__.pop("world_model", None)
    else:
        agent.__dict__["world_model"] = wm


def attached_world_model(agent: Any) -> WorldModel:
    """``agent.world_model``, loading it from beside the agent's checkpoint on first use."""
    wm = getattr(agent, "world_model", None)
    if wm is None:
        ckpt = (getattr(agent, "metadata", None) or {}).get("checkpoint")
        if ckpt is None:
            raise WorldModelError("This agent has no world model; set agent.world_model = "
                                  "WorldModel.load(dir) or load the agent with load_agent(RUN) "
                                  "from a run whose checkpoint has world_model/.")
        wm = WorldModel.load(Path(ckpt) / WORLD_MODEL_DIR)
        attach_world_model(agent, wm)
    return wm


@torch.no_grad()
def imagine(agent: Any, frames: Any, actions: Any = None, steps: int = 16, *,
            world_model: WorldModel | None = None, greedy: bool = True, temperature: float = 1.0,
            seed: int = 0, decoding: str | None = None, window: int | None = None,
            prompt: Any = None) -> Imagination:
    """Imagine ``steps`` frames after each clip of real frames, and narrate them.

    Args:
        agent: A :class:`agents.model.agent.BYOGAgent` (it narrates; its state conditions the model).
        frames: uint8 [B, T, H, W, 3] (or [T, H, W, 3]) real frames; imagination starts after
            the last one, with the agent's narration context built over all T.
        actions: long [B, steps] (or [steps]): the action taken at the last real frame, then at
            each imagined frame (an imagined episode when they come from a policy). ``None`` (or
            -1 entries) means *no action input*: the model's learned "no action" id, trained by
            action dropout, so it predicts under the action prior of the training data (the
            marginal over actions) rather than under one action.
        steps: K, frames to imagine.
        world_model: The model (default: ``agent.world_model``, loaded from the checkpoint).
        greedy: Argmax codes; otherwise sampled at ``temperature`` (seeded by ``seed``).
        temperature: Sampling temperature.
        seed: Seed of the sampling and of the narrator.
        decoding: Override of the config's decoding scheme.
        window: Narration context window (default ``world_model.cfg.window_for(agent)``).
        prompt: long [B, k] narration slot ids teacher-forced into the last real frame's slot
            (:meth:`agents.narrate.narrator.Narrator.force`): imagination then starts from the state of
            the agent having *said* that (see :mod:`agents.imagine.steering`); None: its own words.

    Returns:
        An :class:`Imagination`.
    """
    from agents.narrate.narrator import Narrator

    wm = world_model or attached_world_model(agent)
    x = torch.as_tensor(np.asarray(frames))
    if x.dim() == 4:
        x = x[None]
    if x.dtype != torch.uint8 or x.dim() != 5 or tuple(x.shape[2:]) != tuple(wm.tokens.frame_shape):
        raise WorldModelError(f"imagine expects uint8 frames [B, T, {', '.join(map(str, wm.tokens.frame_shape))}]"
                              f", got {x.dtype} {tuple(x.shape)}; pass frames of the env the "
                              "world model was trained on.")
    if steps < 1:
        raise WorldModelError(f"steps must be >= 1, got {steps}.")
    B, T = x.shape[:2]
    acts = None
    if actions is not None:
        acts = torch.as_tensor(np.asarray(actions), dtype=torch.long).reshape(B, -1)
        if acts.shape[1] < steps:
            raise WorldModelError(f"{acts.shape[1]} actions per clip for {steps} steps; pass one "
                                  "action per imagined frame (or None).")
    nar = Narrator(agent, batch_size=B, window=window or wm.cfg.window_for(agent), greedy=True,
                   seed=seed)
    nar.reset()
    for t in range(T):
        step = nar.step(x[:, t])
    hidden = step.hidden if prompt is None else nar.force(torch.as_tensor(prompt).view(B, -1))
    state = hidden[:, -1].float()  # the last real frame's state (its narration included)
    codes = wm.tokens.encode(x[:, -1])
    frame = x[:, -1]
    gen = torch.Generator().manual_seed(seed)
    out_f, out_c, out_ids, texts = [], [], [], []
    for s in range(steps):
        a = None if acts is None else acts[:, s]
        pred = wm.predict(codes, state, a, greedy=greedy, temperature=temperature, generator=gen,
                          decoding=decoding)
        if wm.cfg.copy_pixels:  # kept tiles keep their pixels (see WorldModel.copied_from)
            frame = wm.tokens.render(pred, frame, wm.copied_from(codes, pred, state, a))
        else:
            frame = wm.tokens.decode(pred)
        codes = pred
        step = nar.step(frame)
        state = step.hidden[:, -1].float()
        out_f.append(frame)
        out_c.append(codes)
        out_ids.append(step.ids)
        texts.append(step.text)
    return Imagination(frames=torch.stack(out_f, 1), codes=torch.stack(out_c, 1),
                       narration_ids=torch.stack(out_ids, 1),
                       narration=[[texts[s][b] for s in range(steps)] for b in range(B)])
