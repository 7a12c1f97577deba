"""Decoding schemes (registry :data:`DECODERS`): how frame t+1's codes come out of the masked
model (``parallel``, ``maskgit``, ``autoregressive``; see :mod:`agents.imagine.world_model` for
the measured choice).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch

from agents.imagine.masking import sample_codes

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
