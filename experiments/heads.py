"""Action heads on per-frame features: an MLP, optionally a GRU over the block's frames, and a
bag-of-words mission embedding (BabyAI missions are text, not pixels)."""
from __future__ import annotations

import zlib

import torch
from torch import nn

MISSION_BUCKETS = 512


def mission_ids(missions: list[str], max_words: int = 12) -> torch.Tensor:
    """Hash each mission's words into ``MISSION_BUCKETS`` buckets: Long [B, max_words], -1 = pad.

    crc32 (not Python's salted ``hash``) so ids are the same in every process.
    """
    out = torch.full((len(missions), max_words), -1, dtype=torch.long)
    for b, m in enumerate(missions):
        words = m.lower().replace(",", " ").split()[:max_words]
        for j, w in enumerate(words):
            out[b, j] = zlib.crc32(w.encode()) % MISSION_BUCKETS
    return out


class ActionHead(nn.Module):
    """features [B, T, D] (+ mission ids [B, W]) -> action logits [B, T, A].

    Args:
        in_dim: Feature width D.
        num_actions: A.
        hidden: MLP width.
        gru: Run a GRU over the block's frames before the output layer.
        mission_dim: Width of the mission embedding (0 = no mission input).
    """

    def __init__(self, *, in_dim: int, num_actions: int, hidden: int = 128, gru: bool = False,
                 mission_dim: int = 0) -> None:
        super().__init__()
        self.mission = nn.Embedding(MISSION_BUCKETS, mission_dim) if mission_dim else None
        self.mlp = nn.Sequential(nn.LayerNorm(in_dim + mission_dim), nn.Linear(in_dim + mission_dim, hidden),
                                 nn.GELU(), nn.Linear(hidden, hidden), nn.GELU())
        self.gru = nn.GRU(hidden, hidden, batch_first=True) if gru else None
        self.out = nn.Linear(hidden, num_actions)

    def forward(self, feats: torch.Tensor, mission: torch.Tensor | None = None,
                h0: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """feats [B, T, D], mission Long [B, W] -> (logits [B, T, A], GRU state [1, B, H] or None)."""
        B, T, _ = feats.shape
        if self.mission is not None:
            if mission is None:
                raise ValueError("This head was built with a mission input; pass mission ids.")
            m = _bag(self.mission, mission)  # [B, M]
            feats = torch.cat([feats, m[:, None].expand(B, T, -1)], dim=-1)
        x = self.mlp(feats)  # [B, T, H]
        h = None
        if self.gru is not None:
            x, h = self.gru(x, h0)
        return self.out(x), h


def _bag(bag: nn.Embedding, ids: torch.Tensor) -> torch.Tensor:
    """Mean embedding of the non-pad (>= 0) ids of each row: Long [B, W] -> [B, M]."""
    emb = bag.weight[ids.clamp_min(0)]  # [B, W, M]
    mask = (ids >= 0).float()[..., None]
    return (emb * mask).sum(1) / mask.sum(1).clamp_min(1.0)


__all__ = ["MISSION_BUCKETS", "ActionHead", "mission_ids"]
