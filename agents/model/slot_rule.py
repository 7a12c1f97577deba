"""Keeping narrated slots in the training format: the carry cut and the slot early exit.

Training targets (:func:`agents.model.text.slot_annotations`) obey two rules that a free-running
decoder does not know about:

1. **The carry bound.** A sentence whose tokens do not fit its frame's slot continues in the
   next slots, but at frame ``t`` tokens of frames older than ``t - max_carry`` are cut. So a
   sentence that begins in slot ``s`` never has a token in slot ``s + max_carry + 1`` or later
   (its frame is at most ``s``). Live, nothing bounded this: a narrator could keep one sentence
   going for ever, falling ever further behind the frames. :meth:`SlotRule.force` ends such a
   sentence: in the first slot past its bound a word token becomes ``<nil>`` (counted in
   ``SlotTrack.cut``; an end token ``<sep>``/``<nil>`` the model chose itself is kept).
2. **Nothing after a slot's first** ``<nil>``. ``<nil>`` pads the rest of a slot once the
   backlog is empty, so after a slot's first ``<nil>`` the rest of the slot is ``<nil>``.
   With ``early_exit``, :meth:`SlotRule.force` writes ``<nil>`` there, and once every row of
   the batch has ended its slot the decoder writes the remaining positions in ONE parallel
   pass that fills the KV cache (its inputs are all ``embed(<nil>)``, known in advance),
   instead of one sequential model call per position.

The early exit gives the same tokens as decoding every position wherever the model would
have written ``<nil>`` there anyway (a *well-formed* slot); the hidden states and logits of
those positions are the same up to float rounding (one batched pass instead of several).
Greedy decoders also count the slots where it would not have (``SlotTrack.ill_formed``): the
parallel pass's logits at each filled position are exactly those the sequential decoder would
have chosen from, so the greedy choice there says whether the slot was well formed.

Per-stream state lives in :class:`SlotTrack` (one per narration state, carried across window
slides, reset per stream when a vector narrator's env resets). Nothing here imports the model.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import torch


@dataclass(frozen=True)
class SlotRule:
    """The slot format a narration decoder keeps (see the module docstring).

    Attributes:
        nil: Id of ``<nil>``.
        ends: Ids that end a sentence (``<sep>``, ``<nil>``, ``<pad>``).
        max_carry: Slots a sentence may run on past the one it began in (the training
            targets' ``SlotConfig.max_carry``); None = no cut.
        early_exit: After a slot's first ``<nil>`` write ``<nil>``, and skip the sequential
            decode of the rest of the slot once every row has ended it.
    """

    nil: int
    ends: tuple[int, ...]
    max_carry: int | None = 4
    early_exit: bool = True

    def __post_init__(self) -> None:
        if self.nil not in self.ends:
            raise ValueError(f"ends {self.ends} must hold <nil> ({self.nil}): <nil> ends a sentence.")
        if self.max_carry is not None and self.max_carry < 0:
            raise ValueError(f"max_carry must be >= 0 slots or None, got {self.max_carry}.")

    @property
    def active(self) -> bool:
        """Whether the rule changes anything (a cut or the early exit)."""
        return self.max_carry is not None or self.early_exit

    def start(self, batch_size: int, device: torch.device | str) -> SlotTrack:
        """A fresh track for ``batch_size`` streams (no sentence open)."""
        z = torch.zeros(batch_size, dtype=torch.long, device=device)
        return SlotTrack(age=z - 1, done=z.bool(), ill=z.bool(), cut=z.clone(),
                         ill_formed=z.clone(), exits=z.clone())

    def force(self, track: SlotTrack, tok: torch.Tensor, j: int) -> torch.Tensor:
        """The token written at slot position ``j`` given the decoder's choice ``tok`` Long [B];
        advances ``track`` in place."""
        ends = _ids_tensor(self.ends, tok.device)
        if j == 0:  # a new slot: an open sentence has run on into one more slot
            track.done.zero_()
            track.ill.zero_()
            track.age.add_(track.age.ge(0).long())
            if self.max_carry is not None:
                over = track.age.gt(self.max_carry) & ~torch.isin(tok, ends)
                track.cut.add_(over.long())
                tok = tok.masked_fill(over, self.nil)
        if self.early_exit:
            track.ill |= track.done & tok.ne(self.nil)  # the model would have gone on
            tok = tok.masked_fill(track.done, self.nil)
        is_end = torch.isin(tok, ends)
        # an end token closes the sentence; a word opens one (age 0) or continues it
        track.age.copy_(torch.where(is_end, -1, track.age.clamp(min=0)))
        track.done |= tok.eq(self.nil)
        return tok

    def end_slot(self, track: SlotTrack, free: torch.Tensor | None = None) -> None:
        """Close the frame's slot: ``free`` Long [B, L] the greedy choices at the positions the
        early exit filled (None: none filled, or not greedy); counts ill-formed slots."""
        if free is not None:
            track.ill |= free.ne(self.nil).any(1)
            track.exits.add_(1)
        track.ill_formed.add_(track.ill.long())


@lru_cache(maxsize=16)
def _ids_tensor(ids: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """``ids`` as a Long tensor on ``device``, made once (force runs per token position)."""
    with torch.inference_mode(False):
        return torch.tensor(ids, dtype=torch.long, device=device)


@dataclass
class SlotTrack:
    """Per-stream state of a :class:`SlotRule` (tensors [B], on the narration's device).

    Attributes:
        age: Slots the open sentence has run on past the one it began in (-1: none open).
        done: The current slot has had its ``<nil>``.
        ill: The current slot is ill-formed (a word after its first ``<nil>``).
        cut: Word tokens the carry bound replaced with ``<nil>`` (since the start).
        ill_formed: Slots where the early exit wrote ``<nil>`` over a word (greedy: exact).
        exits: Frames (whole batch) whose slot ended in one parallel pass (same on every row).
    """

    age: torch.Tensor
    done: torch.Tensor
    ill: torch.Tensor
    cut: torch.Tensor
    ill_formed: torch.Tensor
    exits: torch.Tensor

    def reset_rows(self, rows: torch.Tensor) -> None:
        """Streams where ``rows`` (bool [B]) is True start afresh (their env reset): no open
        sentence (their counters keep counting)."""
        self.age.masked_fill_(rows, -1)


def narration_rule(agent: Any, *, cut: bool = True, early_exit: bool = True) -> SlotRule | None:
    """The slot rule narration keeps (:mod:`agents.model.slot_rule`): the agent's (its training
    targets' carry bound) with the cut and the early exit switched as asked; None when neither
    is on or the agent has none."""
    base = getattr(agent.encoder, "slot_rule", None)
    if base is None or not (cut or early_exit):
        return None
    return replace(base, max_carry=base.max_carry if cut else None, early_exit=early_exit)


__all__ = ["SlotRule", "SlotTrack", "narration_rule"]
