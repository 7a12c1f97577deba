"""Narrating clips of frames with a frozen agent, and reading its sentences back as events.

Shared by the imagination evaluation (:mod:`agents.imagine.command`) and the steering score
(:mod:`agents.imagine.steering`).
"""
from __future__ import annotations

from typing import Any

import torch


@torch.no_grad()
def narrate_clips(agent: Any, context: torch.Tensor, future: torch.Tensor, *, window: int,
                  ) -> list[list[str]]:
    """The agent's greedy narration of ``future`` [B, K, ...] after ``context`` [B, C, ...]:
    B lists of K sentence lists."""
    from agents.model.text import unslot
    from agents.narrate.narrator import Narrator

    nar = Narrator(agent, batch_size=context.shape[0], window=window, greedy=True)
    nar.reset()
    for t in range(context.shape[1]):
        nar.step(context[:, t])
    ids = torch.stack([nar.step(future[:, t]).ids for t in range(future.shape[1])], 1)
    return unslot(ids, agent.tokenizer)


def sentence_event(text: str) -> Any:
    """An annotation sentence's event, or the sentence itself as an event (narration may say
    things no annotation template parses; two identical sentences still match)."""
    from types import SimpleNamespace

    from byog_env import parse_event

    try:
        return parse_event(text)
    except ValueError:
        return SimpleNamespace(kind="sentence", args={"text": text})
