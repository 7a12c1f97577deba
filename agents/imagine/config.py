"""The world model's settings: ``WorldModelConfig``, the conditions it may read (registry
:data:`CONDITIONS`), its error and the names of its files.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from agents.imagine.copy_path import COPY_PATHS
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


DECODERS: Registry = Registry.of("world-model decoding", {
    "parallel": "agents.imagine.decoding:decode_parallel",
    "maskgit": "agents.imagine.decoding:decode_maskgit",
    "autoregressive": "agents.imagine.decoding:decode_autoregressive",
}, error=WorldModelError, hint="Register a decoding with agents.imagine.world_model.DECODERS.register(name, fn).")
"""Decoding schemes by name (:mod:`agents.imagine.decoding`); an entry point string imports on use."""


FRAME_TOKENS: Registry = Registry(
    "frame tokens", error=WorldModelError,
    hint="Register a FrameTokens class with agents.imagine.world_model.FRAME_TOKENS.register(name, cls).")
"""Frame tokenizers by name (``--world-model.tokens``); an entry point string imports on use
(the built-ins live in :mod:`agents.imagine.frame_tokens`, ``grid`` in its own module)."""
FRAME_TOKENS.register("vqvae", "agents.imagine.frame_tokens:VQFrameTokens")
FRAME_TOKENS.register("units", "agents.imagine.frame_tokens:UnitFrameTokens")
FRAME_TOKENS.register("grid", "agents.imagine.grid_tokens:GridFrameTokens")


# the world model's files: read as untrusted input, written plainly (the directory is renamed
# into place by the caller)
def _read_json(f: Path) -> dict[str, Any]:
    from collect.untrusted import read_json_object

    return read_json_object(f, what="world model", error=WorldModelError, fix="retrain the world model.")


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=str))
