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

3. **Optionally, no guessing which thing** (``word_share``, off by default). At a sentence's
   first token (no sentence open), a word whose probability is less than ``word_share`` of the
   probability of all words (everything but ``<nil>``) becomes ``<nil>`` (counted in
   ``SlotTrack.gated``). Why: a narrator that knows *that* something happened but is split
   between *which* thing ("cow in view" vs "coal in view", "facing stone" vs "facing water")
   otherwise says its best guess, and most such guesses are wrong; abstaining trades recall
   for precision (measured on the demo checkpoint in the README's narration section). Inside a
   sentence nothing is gated: cutting a sentence after its first word would leave a fragment.

4. **Optionally, say only sure sentences** (``sentence_share``, off by default). Decoding is
   untouched (the model's context keeps every token it chose); what is *said* leaves out each
   sentence begun in a slot where one of its words in that slot holds less than
   ``sentence_share`` of the words' probability (its tokens become ``<nil>`` in the said slot,
   its continuation in later slots too; counted in ``SlotTrack.hushed``). Why: the word gate
   (rule 3) sees only a sentence's first word, but "facing stone" vs "facing water" is decided
   at the second; a sentence that has not left its slot can still be taken back whole, so no
   fragment is said. See :meth:`SlotRule.say`.

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
        word_share: A sentence's first word must hold at least this share of the probability
            of all words (not ``<nil>``), else ``<nil>`` is written (rule 3 of the module
            docstring); None = off. Applies only where the decoder passes its logits.
        sentence_share: Say a sentence only when each of its words in the slot it began in
            holds at least this share of the words' probability (rule 4, :meth:`say`);
            None = off.
    """

    nil: int
    ends: tuple[int, ...]
    max_carry: int | None = 4
    early_exit: bool = True
    word_share: float | None = None
    sentence_share: float | None = None

    def __post_init__(self) -> None:
        if self.nil not in self.ends:
            raise ValueError(f"ends {self.ends} must hold <nil> ({self.nil}): <nil> ends a sentence.")
        if self.max_carry is not None and self.max_carry < 0:
            raise ValueError(f"max_carry must be >= 0 slots or None, got {self.max_carry}.")
        if self.word_share is not None and not 0.0 < self.word_share <= 1.0:
            raise ValueError(f"word_share must be in (0, 1] or None (off), got {self.word_share}.")
        if self.sentence_share is not None and not 0.0 < self.sentence_share <= 1.0:
            raise ValueError(f"sentence_share must be in (0, 1] or None (off), got "
                             f"{self.sentence_share}.")

    @property
    def active(self) -> bool:
        """Whether the rule changes anything (a cut, the early exit, the word or sentence gate)."""
        return (self.max_carry is not None or self.early_exit or self.word_share is not None
                or self.sentence_share is not None)

    def start(self, batch_size: int, device: torch.device | str) -> SlotTrack:
        """A fresh track for ``batch_size`` streams (no sentence open)."""
        z = torch.zeros(batch_size, dtype=torch.long, device=device)
        return SlotTrack(age=z - 1, done=z.bool(), ill=z.bool(), cut=z.clone(),
                         ill_formed=z.clone(), exits=z.clone(), gated=z.clone(),
                         said_open=z.bool(), hush=z.bool(), hushed=z.clone())

    def force(self, track: SlotTrack, tok: torch.Tensor, j: int,
              logits: torch.Tensor | None = None) -> torch.Tensor:
        """The token written at slot position ``j`` given the decoder's choice ``tok`` Long [B]
        (from ``logits`` [B, V], which the word gate reads); advances ``track`` in place."""
        ends = _ids_tensor(self.ends, tok.device)
        if j == 0:  # a new slot: an open sentence has run on into one more slot
            track.done.zero_()
            track.ill.zero_()
            track.age.add_(track.age.ge(0).long())
            if self.max_carry is not None:
                over = track.age.gt(self.max_carry) & ~torch.isin(tok, ends)
                track.cut.add_(over.long())
                tok = tok.masked_fill(over, self.nil)
        if self.word_share is not None and logits is not None:
            # after the slot's <nil> too: the early exit's fill gates those positions as well
            tok, gated = self.gate(tok, logits, track.age.lt(0))
            track.gated.add_(gated.long())
        if self.early_exit:
            track.ill |= track.done & tok.ne(self.nil)  # the model would have gone on
            tok = tok.masked_fill(track.done, self.nil)
        is_end = torch.isin(tok, ends)
        # an end token closes the sentence; a word opens one (age 0) or continues it
        track.age.copy_(torch.where(is_end, -1, track.age.clamp(min=0)))
        track.done |= tok.eq(self.nil)
        return tok

    def gate(self, tok: torch.Tensor, logits: torch.Tensor, start: torch.Tensor,
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rule 3: ``tok`` Long [...] with each word that begins a sentence (``start`` bool
        [...], no sentence open) but holds less than ``word_share`` of the words' probability
        under ``logits`` [..., V] replaced by ``<nil>``; returns (tokens, the gated mask)."""
        if self.word_share is None:
            return tok, torch.zeros_like(tok, dtype=torch.bool)
        gated = start & ~torch.isin(tok, _ids_tensor(self.ends, tok.device)) \
            & word_shares(tok, logits, self.nil).lt(self.word_share)
        return tok.masked_fill(gated, self.nil), gated

    def say(self, track: SlotTrack, ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Rule 4: the slot as said, from the slot as decoded ``ids`` Long [B, k] and the
        ``logits`` [B, k, V] each token was chosen from; advances ``track``'s said-sentence
        state and ``hushed`` count. ``ids`` itself (the model's context) is not changed."""
        if self.sentence_share is None:
            return ids
        return self.say_shares(track, ids, word_shares(ids, logits, self.nil))

    def say_shares(self, track: SlotTrack, ids: torch.Tensor, share: torch.Tensor) -> torch.Tensor:
        """:meth:`say` from each decoded token's share of the words' probability (``share``
        float [B, k], :func:`word_shares`) instead of the logits: a decoding recorded with its
        shares can be said again at any ``sentence_share`` (the gate leaves decoding as it is),
        as ``agents.narrate --sentence-share-sweep`` does."""
        if self.sentence_share is None:
            return ids
        B, k = ids.shape
        word = ~torch.isin(ids, _ids_tensor(self.ends, ids.device))  # [B, k]
        # words continuing the sentence open when the slot began, then sentences begun here
        carried = track.said_open[:, None] & word.long().cumprod(1).bool()  # [B, k]
        after_end = torch.cat([~track.said_open[:, None], ~word[:, :-1]], 1)
        start = word & after_end & ~carried  # [B, k] a sentence begins at j
        seg = start.long().cumsum(1)  # [B, k] index of the sentence begun here (0: none)
        own = word & ~carried
        worst = torch.ones(B, k + 1, device=ids.device).scatter_reduce(
            1, seg.masked_fill(~own, 0), share.masked_fill(~own, 1.0), "amin")  # [B, k + 1]
        unsure = worst.lt(self.sentence_share)
        unsure[:, 0] = False
        hush = (carried & track.hush[:, None]) | (own & unsure.gather(1, seg))
        track.hushed.add_((start & hush).long().sum(1))
        track.said_open.copy_(word[:, -1])
        track.hush.copy_(word[:, -1] & hush[:, -1])
        return ids.masked_fill(hush, self.nil)

    def end_slot(self, track: SlotTrack, free: torch.Tensor | None = None,
                 free_logits: torch.Tensor | None = None) -> None:
        """Close the frame's slot: ``free`` Long [B, L] the greedy choices at the positions the
        early exit filled (None: none filled, or not greedy), from ``free_logits`` [B, L, V]
        (read by the word gate: every filled position follows the slot's ``<nil>``, so a word
        there would begin a sentence); counts ill-formed slots."""
        if free is not None:
            if self.word_share is not None and free_logits is not None:
                free, gated = self.gate(free, free_logits, torch.ones_like(free, dtype=torch.bool))
                track.gated.add_(gated.long().sum(1))
            track.ill |= free.ne(self.nil).any(1)
            track.exits.add_(1)
        track.ill_formed.add_(track.ill.long())


def word_shares(ids: torch.Tensor, logits: torch.Tensor, nil: int) -> torch.Tensor:
    """Each chosen token's share of the probability of all words (everything but ``<nil>``, the
    probability of saying anything): ids Long [...] chosen from logits [..., V] -> float [...]
    (what the word gate and the sentence gate read)."""
    p = torch.softmax(logits.float(), dim=-1)
    return p.gather(-1, ids[..., None])[..., 0] / (1.0 - p[..., nil]).clamp_min(1e-12)


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
        gated: Sentence-first words the word gate replaced with ``<nil>`` (since the start).
        said_open: A sentence was open at the end of the last slot said (rule 4).
        hush: That open sentence is not said (rule 4).
        hushed: Sentences rule 4 left unsaid (since the start).
    """

    age: torch.Tensor
    done: torch.Tensor
    ill: torch.Tensor
    cut: torch.Tensor
    ill_formed: torch.Tensor
    exits: torch.Tensor
    gated: torch.Tensor
    said_open: torch.Tensor
    hush: torch.Tensor
    hushed: torch.Tensor

    def totals(self) -> dict[str, int]:
        """The counters summed over the streams: ``cut_tokens``, ``ill_formed_slots``,
        ``gated_words``, ``hushed_sentences`` (what narration reports)."""
        return {"cut_tokens": int(self.cut.sum()), "ill_formed_slots": int(self.ill_formed.sum()),
                "gated_words": int(self.gated.sum()), "hushed_sentences": int(self.hushed.sum())}

    def force_slot(self, ids: torch.Tensor, rule: SlotRule) -> None:
        """The last slot was replaced by ``ids`` Long [B, k] (teacher forcing, said as given):
        a sentence is open after it iff it ends in a word (then it began there: age 0)."""
        open_ = ~torch.isin(ids[:, -1], _ids_tensor(rule.ends, ids.device))
        self.age.copy_(torch.where(open_, 0, -1))
        self.said_open.copy_(open_)
        self.hush.zero_()

    def reset_rows(self, rows: torch.Tensor) -> None:
        """Streams where ``rows`` (bool [B]) is True start afresh (their env reset): no open
        sentence (their counters keep counting)."""
        self.age.masked_fill_(rows, -1)
        self.said_open.masked_fill_(rows, False)
        self.hush.masked_fill_(rows, False)


def narration_rule(agent: Any, *, cut: bool = True, early_exit: bool = True,
                   word_share: float | None = None,
                   sentence_share: float | None = None) -> SlotRule | None:
    """The slot rule narration keeps (:mod:`agents.model.slot_rule`): the agent's (its training
    targets' carry bound) with the cut, the early exit and the word and sentence gates switched
    as asked; None when none is on or the agent has none."""
    base = getattr(agent.encoder, "slot_rule", None)
    if base is None or not (cut or early_exit or word_share is not None
                            or sentence_share is not None):
        return None
    return replace(base, max_carry=base.max_carry if cut else None, early_exit=early_exit,
                   word_share=word_share, sentence_share=sentence_share)


__all__ = ["SlotRule", "SlotTrack", "narration_rule", "word_shares"]
