"""The world model's network: a small bidirectional transformer predicting frame t+1's codes.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from agents.imagine.copy_path import copy_sources, mix_copy


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
