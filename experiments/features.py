"""Per-frame features for action heads: a BYOG/captioner encoder's hidden states, or an
observation encoder's output (scratch CNN, VQ-VAE, units).

Context convention (shared by offline training and live rollouts, so both see *identical*
features): an episode is cut into consecutive blocks of ``context`` frames; the narration state
(KV cache) is reset at every block start. Within a block, frame t's feature is the encoder
LM's hidden state at frame t's token slot -- the slot's *last* position (``pool="last"``, the
state that has read the frame embedding and the frame's first k-1 greedy narration tokens) or
the mean over the slot's k positions (``pool="mean"``). Narration is greedy, so features are
deterministic. Offline, a block is narrated with the cached sampler and re-read in one
teacher-forced pass (gradients reach the encoder for the fine-tuned variant); live, each new
frame is pushed through the encoder incrementally with its KV cache (:meth:`step`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from agents.model import BYOGAgent
from agents.narrator import Narrator
from agents.obs import ObsEncoder

Pool = Literal["last", "mean"]


@dataclass
class FeatureState:
    """Live state of a featurizer: the narration state and the frames seen in this block."""

    narration: Any = None
    in_block: int = 0
    last_frame: Any = None
    """The block's previous frame uint8 [B, H, W, 3] (frame-delta encoders read it; None at a
    block's start, where the offline path gives a zero delta too)."""
    obs_state: Any = None
    """An observation encoder's per-stream state (``ObsEncoder.init_state`` / ``step``)."""


class Featurizer(nn.Module):
    """Maps frames to per-frame features, offline (whole blocks) or live (one frame a step)."""

    out_dim: int
    context: int

    def sequence(self, frames: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """frames uint8 [B, T, H, W, 3] (T <= context, a block start at t=0) -> float [B, T, D]."""
        raise NotImplementedError

    def start(self, batch_size: int) -> FeatureState:
        """A fresh live state for ``batch_size`` streams."""
        return FeatureState()

    def step(self, state: FeatureState, frame: torch.Tensor) -> tuple[torch.Tensor, FeatureState]:
        """One new frame per stream: uint8 [B, H, W, 3] -> (float [B, D], new state)."""
        raise NotImplementedError


class BYOGFeaturizer(Featurizer):
    """Hidden states of a :class:`BYOGAgent`'s narrating encoder at each frame's slot."""

    def __init__(self, agent: BYOGAgent, *, pool: Pool = "last", context: int = 16) -> None:
        super().__init__()
        if pool not in ("last", "mean"):
            raise ValueError(f"pool must be 'last' or 'mean', got {pool!r}.")
        if context < 1:
            raise ValueError(f"context must be >= 1 frame, got {context}.")
        self.encoder = agent.encoder
        object.__setattr__(self, "agent", agent)  # for live narration, not a registered submodule
        self.pool, self.context = pool, int(context)
        self.out_dim = int(self.encoder.tlm.hidden_size)

    def _pool(self, h: torch.Tensor) -> torch.Tensor:
        """h [..., k, D] -> [..., D]."""
        return h[..., -1, :] if self.pool == "last" else h.mean(-2)

    def sequence(self, frames: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        B, T = frames.shape[:2]
        if T > self.context:
            raise ValueError(f"A block has at most context={self.context} frames, got {T}.")
        enc = self.encoder
        e = enc.frame_embeddings(frames, valid)  # [B, T, D]
        with torch.no_grad():
            ids, _ = enc.sample(e.detach(), greedy=True)  # [B, T, k]
        h, _ = enc(ids, e)  # [B, T*k, D]
        return self._pool(h.view(B, T, enc.k, -1))

    def start(self, batch_size: int) -> FeatureState:
        # the one live narration API; its window never fills (reset at every block start)
        narrator = Narrator(self.agent, batch_size=batch_size, window=max(2, self.context + 1),
                            greedy=True, decode=False)
        return FeatureState(narration=narrator)

    def step(self, state: FeatureState, frame: torch.Tensor) -> tuple[torch.Tensor, FeatureState]:
        narrator = state.narration
        if narrator.state is None or state.in_block >= self.context:
            narrator.reset()  # a block start: fresh cache, no previous frame (zero delta)
            state = FeatureState(narration=narrator, in_block=0)
        out = narrator.step(frame)  # out.hidden = the frame's k hidden states [B, k, D]
        return self._pool(out.hidden), FeatureState(narration=narrator, in_block=state.in_block + 1,
                                                    last_frame=frame)


class ObsFeaturizer(Featurizer):
    """An observation encoder's per-frame output (no temporal context of its own)."""

    def __init__(self, obs: ObsEncoder, *, context: int = 16) -> None:
        super().__init__()
        self.obs = obs
        self.context = int(context)
        out = getattr(obs, "out_dim", None)
        if out is None:
            raise ValueError("The observation encoder has no out_dim; fit it before use.")
        self.out_dim = int(out)

    def sequence(self, frames: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        return self.obs(frames, valid=valid)

    def step(self, state: FeatureState, frame: torch.Tensor) -> tuple[torch.Tensor, FeatureState]:
        if state.in_block >= self.context or state.obs_state is None:  # a block starts afresh,
            state = FeatureState(obs_state=self.obs.init_state(frame.shape[0]))  # as offline
        feats, obs_state = self.obs.step(state.obs_state, frame)  # the encoder's stream hook
        return feats, FeatureState(in_block=state.in_block + 1, last_frame=frame, obs_state=obs_state)


def set_trainable(module: nn.Module, trainable: bool) -> nn.Module:
    """Freeze (eval mode, no grad) or unfreeze a featurizer's parameters."""
    for p in module.parameters():
        p.requires_grad_(trainable)
    module.train(trainable)
    return module


__all__ = ["BYOGFeaturizer", "FeatureState", "Featurizer", "ObsFeaturizer", "Pool", "set_trainable"]
