"""Masked-code training (MaskGIT): which positions are masked, the loss on them, and sampling
codes from logits.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


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
