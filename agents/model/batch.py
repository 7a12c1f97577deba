"""Small helpers of the training step: sub-batches by row, per-row ids, modules in eval mode,
the self-supervised rows' inputs.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

import torch
from torch import nn


@contextmanager
def _eval_mode(*modules: nn.Module | None) -> Iterator[None]:
    """Put ``modules`` (None entries skipped) in eval mode for the block, then restore them."""
    mods = [m for m in modules if m is not None]
    was = [m.training for m in mods]
    for m in mods:
        m.eval()
    try:
        yield
    finally:
        for m, w in zip(mods, was):
            m.train(w)


def select_rows(batch: dict[str, Any], rows: torch.Tensor) -> dict[str, Any]:
    """The sub-batch of ``batch`` at the rows where bool ``rows`` [B] is True: tensors with a
    leading batch dimension are indexed, per-row lists filtered, anything else kept."""
    B = rows.shape[0]
    if bool(rows.all()):
        return batch
    keep = rows.tolist()
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == B:
            out[key] = value[rows.to(value.device)]
        elif isinstance(value, list) and len(value) == B:
            out[key] = [v for v, k_ in zip(value, keep) if k_]
        else:
            out[key] = value
    return out


def _as_long(x: Any, B: int) -> torch.Tensor:
    if x is None:
        return torch.zeros(B, dtype=torch.long)
    return torch.as_tensor(x, dtype=torch.long).reshape(-1).expand(B) if torch.as_tensor(x).numel() == 1 \
        else torch.as_tensor(x, dtype=torch.long).reshape(B)


class ByogInputs(NamedTuple):
    """The self-supervised rows of a step: their batch, frame embeddings, the target's sampled
    tokens and logits, and (reinforce objective) the online encoder's own words."""

    batch: dict[str, Any]
    e: torch.Tensor
    y: torch.Tensor
    y_logits: torch.Tensor
    y_pi: torch.Tensor | None
