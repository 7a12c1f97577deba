"""The world model's data: transitions (codes, narrator states, actions) read from a frozen agent.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from agents.imagine.frame_tokens import FrameTokens


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
