"""Per-frame features for action heads: a BYOG/captioner encoder's hidden states, an
observation encoder's output (scratch CNN, VQ-VAE, units), the language channel (token counts
of text: ground-truth annotations or a narrator's greedy words), symbolic state, or a bias-only
constant. Featurizers receive the frames *and* the per-frame annotations / infos (offline: the
dataset's rows and replayed infos; live: the env's), and say which they read
(``needs_annotations``, ``needs_infos``).

Text features (:class:`TextFeaturizer`): frame t's slot as hashed word counts, beside an
exponentially decayed bag of the earlier slots of the episode, ``bag_t = decay * bag_{t-1} +
counts_{t-1}``. The same function reads every text source, so the ground-truth annotations
(the positive control), BYOG / captioner / random-narrator narration and narration shuffled
across episodes (the negative control) differ only in their words.

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

import re
import zlib
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from agents.model.agent import BYOGAgent
from agents.model.slot_rule import narration_rule
from agents.narrate.vector_narration import VectorNarrator
from agents.obs import ObsEncoder

Pool = Literal["last", "mean"]


@dataclass
class FeatureState:
    """Live state of a featurizer: the narration state and the frames seen in this block (an
    int for streams in lock-step, or Long [B] per stream for featurizers that restart streams
    at their own steps)."""

    narration: Any = None
    in_block: Any = 0
    last_frame: Any = None
    """The block's previous frame uint8 [B, H, W, 3] (frame-delta encoders read it; None at a
    block's start, where the offline path gives a zero delta too)."""
    obs_state: Any = None
    """An observation encoder's per-stream state (``ObsEncoder.init_state`` / ``step``)."""


Annotations = list[list[list[str]]]
"""B lists of T lists of sentences (``collate_windows``' layout); live: B lists of sentences."""
Infos = list[list[dict[str, Any]]]
"""B lists of T info dicts; live: B info dicts."""


class Featurizer(nn.Module):
    """Maps frames to per-frame features, offline (blocks or episodes) or live (one frame a step).

    ``episode_level`` featurizers take whole episodes in :meth:`sequence` (their memory spans the
    episode); the others take blocks of at most ``context`` frames and restart at every block
    start, live too (:func:`episode_features` cuts episodes into blocks for them).
    """

    out_dim: int
    context: int
    needs_annotations: bool = False
    needs_infos: bool = False
    episode_level: bool = False
    narrates: bool = False
    """Whether its features read a narrator's words (live evaluation scores them against the env's
    annotations: ``live/narration_support``)."""
    restarts_streams: bool = False
    """Whether :meth:`step` takes ``starts`` (bool [B]: streams whose frame is the first of a new
    episode, restarted on their own). Then live evaluation restarts each env as soon as its
    episode ends instead of waiting for the slowest env of a round (``experiments.live``)."""

    def __init__(self) -> None:
        super().__init__()
        # an empty buffer that moves with .to(): the device of featurizers without weights
        # (text, symbolic, constant), where they put their features; not saved (state_dict)
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    @property
    def device(self) -> torch.device:
        """Where the featurizer runs: callers put frames here, features come back here."""
        return self._anchor.device

    def sequence(self, frames: torch.Tensor, valid: torch.Tensor | None = None, *,
                 annotations: Annotations | None = None, infos: Infos | None = None) -> torch.Tensor:
        """frames uint8 [B, T, H, W, 3] (a block or episode start at t=0) -> float [B, T, D]."""
        raise NotImplementedError

    def start(self, batch_size: int) -> FeatureState:
        """A fresh live state for ``batch_size`` streams."""
        return FeatureState()

    def step(self, state: FeatureState, frame: torch.Tensor, *, annotations: list[list[str]] | None = None,
             infos: list[dict[str, Any]] | None = None,
             starts: torch.Tensor | None = None) -> tuple[torch.Tensor, FeatureState]:
        """One new frame per stream: uint8 [B, H, W, 3] -> (float [B, D], new state).

        ``starts`` (only where :attr:`restarts_streams`): bool [B], the streams that begin a new
        episode with this frame."""
        raise NotImplementedError

    def parts(self, train_encoder: bool) -> tuple[Featurizer | None, Featurizer | None]:
        """``(frozen part, trained part)``: the frozen part's features are computed once."""
        return (None, self) if train_encoder else (self, None)


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

    def sequence(self, frames: torch.Tensor, valid: torch.Tensor | None = None, *,
                 annotations: Annotations | None = None, infos: Infos | None = None) -> torch.Tensor:
        B, T = frames.shape[:2]
        if T > self.context:
            raise ValueError(f"A block has at most context={self.context} frames, got {T}.")
        enc = self.encoder
        e = enc.frame_embeddings(frames, valid)  # [B, T, D]
        with torch.no_grad():
            # the slot format live narration keeps (agents.model.slot_rule), so offline == live
            ids, _ = enc.sample(e.detach(), greedy=True, rule=narration_rule(self.agent))  # [B, T, k]
        h, _ = enc(ids, e)  # [B, T*k, D]
        return self._pool(h.view(B, T, enc.k, -1))

    restarts_streams = True

    def start(self, batch_size: int) -> FeatureState:
        return FeatureState(narration=_block_narrator(self.agent, batch_size, self.context),
                            in_block=torch.zeros(batch_size, dtype=torch.long))

    def step(self, state: FeatureState, frame: torch.Tensor, *, annotations: list[list[str]] | None = None,
             infos: list[dict[str, Any]] | None = None,
             starts: torch.Tensor | None = None) -> tuple[torch.Tensor, FeatureState]:
        out, in_block = _narrate_blocks(state.narration, state.in_block, frame, starts, self.context)
        # out.hidden = the frame's k hidden states [B, k, D]
        return self._pool(out.hidden), FeatureState(narration=state.narration, in_block=in_block)


def _block_narrator(agent: BYOGAgent, batch_size: int, context: int) -> VectorNarrator:
    """The live narrator of block features: one batched decode for all streams, each stream
    restarting on its own (its window never fills: streams restart at every block start)."""
    return VectorNarrator(agent, num_envs=batch_size, window=max(2, context + 1), greedy=True, decode=False)


def _narrate_blocks(narrator: VectorNarrator, in_block: torch.Tensor, frame: torch.Tensor,
                    starts: torch.Tensor | None, context: int) -> tuple[Any, torch.Tensor]:
    """Narrate one frame per stream; a stream restarts (fresh context, no previous frame: a zero
    delta, as offline) at an episode's start or when its block of ``context`` frames is full."""
    restart = in_block >= context  # per-stream counters stay on the CPU: the narrator reads them as numpy
    if starts is not None:
        restart |= torch.as_tensor(starts, dtype=torch.bool, device=in_block.device)
    if narrator.state is None:
        narrator.reset()
    out = narrator.step(frame, starts=restart.numpy())
    return out, torch.where(restart, 0, in_block) + 1


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

    def sequence(self, frames: torch.Tensor, valid: torch.Tensor | None = None, *,
                 annotations: Annotations | None = None, infos: Infos | None = None) -> torch.Tensor:
        return self.obs(frames, valid=valid)

    restarts_streams = True

    def start(self, batch_size: int) -> FeatureState:
        return FeatureState(obs_state=self.obs.init_state(batch_size),
                            in_block=torch.zeros(batch_size, dtype=torch.long))

    def step(self, state: FeatureState, frame: torch.Tensor, *, annotations: list[list[str]] | None = None,
             infos: list[dict[str, Any]] | None = None,
             starts: torch.Tensor | None = None) -> tuple[torch.Tensor, FeatureState]:
        restart = state.in_block >= self.context  # a block starts afresh, as offline
        if starts is not None:
            restart |= torch.as_tensor(starts, dtype=torch.bool, device=restart.device)
        obs_state = self.obs.reset_state(state.obs_state, restart) if bool(restart.any()) else state.obs_state
        feats, obs_state = self.obs.step(obs_state, frame)  # the encoder's stream hook
        return feats, FeatureState(in_block=torch.where(restart, 0, state.in_block) + 1, obs_state=obs_state)


# ---------------------------------------------------------------------------- language channel
TEXT_BUCKETS = 256
"""Hash buckets of the word counts (crc32, the same in every process)."""


def word_counts(sentences: list[str], buckets: int = TEXT_BUCKETS) -> torch.Tensor:
    """Hashed counts of the lower-cased words of one frame's sentences: float [buckets]."""
    out = torch.zeros(buckets)
    for s in sentences:
        for w in re.findall(r"[a-z0-9_/]+", s.lower()):
            out[zlib.crc32(w.encode()) % buckets] += 1.0
    return out


def text_features(slots: list[list[str]], *, buckets: int, decay: float,
                  bag: torch.Tensor | None = None, last: torch.Tensor | None = None,
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One stream's text features: T slots -> ([T, 2*buckets], final bag, final counts).

    ``bag``/``last`` continue a stream (live: one slot at a time); None starts an episode.
    """
    bag = torch.zeros(buckets) if bag is None else bag
    last = torch.zeros(buckets) if last is None else last
    rows = []
    for sentences in slots:
        bag = decay * bag + last  # slots before t, newest weighted 1
        last = word_counts(sentences, buckets)
        rows.append(torch.cat([last, bag]))
    return (torch.stack(rows) if rows else torch.zeros(0, 2 * buckets)), bag, last


def slot_support(narrated: list[list[str]], truth: list[list[str]]) -> tuple[int, int]:
    """``(supported, said)``: of the slots with narrated words, how many have every word among the
    same step's true annotation words. Live, the share tells whether a narrator's events happen
    on the policy's own states (a narrator that says "picked up" where nothing was picked up
    misleads a head that learned "picked up" from expert episodes, where it was always true)."""
    said = supported = 0
    for words, sentences in zip(narrated, truth):
        w = set(re.findall(r"[a-z0-9_/]+", " ".join(words).lower()))
        if not w:
            continue
        said += 1
        supported += w <= set(re.findall(r"[a-z0-9_/]+", " ".join(sentences).lower()))
    return supported, said


class TextSource:
    """Where a text featurizer's words come from (the annotations, or a narrator)."""

    needs_annotations = False
    module: nn.Module | None = None
    restarts_streams = False
    """Whether :meth:`step` takes ``starts`` (see :attr:`Featurizer.restarts_streams`)."""

    def offline(self, frames: torch.Tensor, valid: torch.Tensor, annotations: Annotations | None,
                context: int) -> Annotations:
        """Per-frame sentences of whole episodes: B lists of T sentence lists."""
        raise NotImplementedError

    def start(self, batch_size: int) -> Any:
        return None

    def step(self, state: Any, frame: torch.Tensor, annotations: list[list[str]] | None,
             context: int, starts: torch.Tensor | None = None) -> tuple[list[list[str]], Any]:
        """This frame's sentences per stream (B lists) and the new state."""
        raise NotImplementedError


class AnnotationSource(TextSource):
    """The ground-truth annotations (offline: the dataset's; live: ``info["annotations"]``)."""

    needs_annotations = True

    def offline(self, frames, valid, annotations, context):
        if annotations is None:
            raise ValueError("The annotation text source needs the per-frame annotations.")
        return annotations

    restarts_streams = True  # stateless

    def step(self, state, frame, annotations, context, starts=None):
        if annotations is None:
            raise ValueError("The annotation text source needs this frame's annotations.")
        return annotations, state


class NarratorSource(TextSource):
    """A narrator's greedy words: the agent narrates blocks of ``context`` frames (its state
    restarts at every block start, as the hidden-state featurizer's does); each frame's slot is
    read back on its own with :func:`agents.model.text.unslot` (token counts of the slot)."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent.eval()
        self.module = agent

    def _words(self, ids: torch.Tensor) -> Annotations:
        from agents.model.text import unslot

        return unslot(ids, self.agent.tokenizer)

    def offline(self, frames, valid, annotations, context):
        B, T = frames.shape[:2]
        ok = valid.tolist()  # read per frame below: one copy off the device, not B x T syncs
        out: Annotations = [[] for _ in range(B)]
        with torch.no_grad():
            for s in range(0, T, context):
                ids = self.agent.narrate(frames[:, s:s + context], valid[:, s:s + context])  # [B, t, k]
                b_, t_, k = ids.shape
                # each slot read on its own (a sentence running on into the next slot counts in
                # both), exactly as live, where only the newest slot exists
                words = self._words(ids.reshape(b_ * t_, 1, k))
                for b in range(b_):
                    out[b] += [list(words[b * t_ + t][0]) for t in range(t_)]
        return [[w if ok[b][t] else [] for t, w in enumerate(ep)] for b, ep in enumerate(out)]

    restarts_streams = True

    def start(self, batch_size: int) -> Any:
        return {"state": None, "in_block": torch.zeros(batch_size, dtype=torch.long)}

    def step(self, state, frame, annotations, context, starts=None):
        if state["state"] is None:
            state = dict(state, state=_block_narrator(self.agent, frame.shape[0], context))
        out, in_block = _narrate_blocks(state["state"], state["in_block"], frame, starts, context)  # as offline
        return [w[0] for w in self._words(out.ids[:, None])], {"state": state["state"], "in_block": in_block}


class ShuffledSource(TextSource):
    """Another source's words, shuffled across episodes *and* steps (the negative control):
    episode b gets the words of episode b+1 of its batch, in a seeded random order of that
    episode's steps (cut or padded to b's length). Keeping the donor's step order leaked the
    routine's phase: the Crafter scripted policy does the same things at the same steps in every
    episode, and time-aligned oracle text of another episode lifted cloning by +0.023 over
    random-text (issue 22), while step-permuted it is +0.005 [−0.014, +0.023] (the prior in 5 of 6 cells). Live, env b
    gets the words env b+1 said at a random earlier step of its episode (with one env: none)."""

    def __init__(self, inner: TextSource, seed: int = 0) -> None:
        self.inner, self.seed = inner, int(seed)
        self.module, self.needs_annotations = inner.module, inner.needs_annotations

    def offline(self, frames, valid, annotations, context):
        import numpy as np

        words = self.inner.offline(frames, valid, annotations, context)
        B, T = valid.shape
        ok = valid.tolist()  # one copy off the device
        out = []
        for b in range(B):
            d = (b + 1) % B
            steps = [t for t in range(T) if ok[d][t]]
            order = np.random.default_rng([self.seed, b, len(steps)]).permutation(len(steps))
            out.append([words[d][steps[int(order[t])]] if B > 1 and ok[b][t] and t < len(steps) else []
                        for t in range(T)])
        return out

    def start(self, batch_size: int) -> Any:
        import numpy as np

        return {"inner": self.inner.start(batch_size), "said": [[] for _ in range(batch_size)],
                "rng": np.random.default_rng(self.seed)}

    def step(self, state, frame, annotations, context):
        words, inner = self.inner.step(state["inner"], frame, annotations, context)
        B, said, rng = len(words), state["said"], state["rng"]
        for b, w in enumerate(words):
            said[b].append(w)
        out = [said[(b + 1) % B][int(rng.integers(len(said[(b + 1) % B])))] if B > 1 else [] for b in range(B)]
        return out, {"inner": inner, "said": said, "rng": rng}


class TextFeaturizer(Featurizer):
    """Token counts of frame t's slot + a decayed bag of the episode's earlier slots
    (float [2 * buckets]) from a :class:`TextSource`."""

    episode_level = True

    def __init__(self, source: TextSource, *, buckets: int = TEXT_BUCKETS, decay: float = 0.5,
                 context: int = 16) -> None:
        super().__init__()
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay}.")
        self.source, self.buckets, self.decay, self.context = source, int(buckets), float(decay), int(context)
        self.narrator = source.module  # registered so that set_trainable/eval reach it
        self.narrates = isinstance(source, NarratorSource)
        self.needs_annotations = source.needs_annotations
        self.restarts_streams = source.restarts_streams
        self.out_dim = 2 * self.buckets

    def texts(self, frames: torch.Tensor, valid: torch.Tensor | None = None,
              annotations: Annotations | None = None) -> Annotations:
        """The source's per-frame sentences of whole episodes."""
        if valid is None:
            valid = torch.ones(frames.shape[:2], dtype=torch.bool, device=frames.device)
        return self.source.offline(frames, valid, annotations, self.context)

    def sequence(self, frames, valid=None, *, annotations=None, infos=None):
        slots = self.texts(frames, valid, annotations)
        # words are hashed in Python: the counts are built on the CPU and moved once per call
        return torch.stack([text_features(ep, buckets=self.buckets, decay=self.decay)[0]
                            for ep in slots]).to(self.device)

    def start(self, batch_size: int) -> FeatureState:
        return FeatureState(narration={"source": self.source.start(batch_size),
                                       "bag": [None] * batch_size, "last": [None] * batch_size})

    def step(self, state, frame, *, annotations=None, infos=None, starts=None):
        st = state.narration
        kw = {} if starts is None else {"starts": starts}
        words, src = self.source.step(st["source"], frame, annotations, self.context, **kw)
        fresh = [False] * len(words) if starts is None else [bool(v) for v in starts]
        rows, bags, lasts = [], [], []
        for b, w in enumerate(words):
            x, bag, last = text_features([w], buckets=self.buckets, decay=self.decay,  # None: a new episode
                                         bag=None if fresh[b] else st["bag"][b],
                                         last=None if fresh[b] else st["last"][b])
            rows.append(x[0])
            bags.append(bag)
            lasts.append(last)
        # each stream's bag stays on the CPU with its Python-built counts; one move per step
        return torch.stack(rows).to(self.device), FeatureState(
            narration={"source": src, "bag": bags, "last": lasts, "words": words}, in_block=state.in_block + 1)


# ---------------------------------------------------------------------------- oracles, floor, sums
class SymbolicFeaturizer(Featurizer):
    """The symbolic state in ``info["symbolic"]`` (:mod:`experiments.oracles`)."""

    needs_infos = True
    episode_level = True

    def __init__(self, out_dim: int, *, context: int = 16) -> None:
        super().__init__()
        self.out_dim, self.context = int(out_dim), int(context)

    def sequence(self, frames, valid=None, *, annotations=None, infos=None):
        if infos is None:
            raise ValueError("The symbolic oracle needs the per-frame infos (info['symbolic']).")
        B, T = frames.shape[:2]
        out = torch.zeros(B, T, self.out_dim)  # filled from Python dicts: on the CPU, then moved once
        for b, ep in enumerate(infos):
            for t, inf in enumerate(ep[:T]):
                if inf and "symbolic" in inf:
                    out[b, t] = torch.as_tensor(inf["symbolic"], dtype=torch.float32)
        return out.to(self.device)

    restarts_streams = True  # stateless

    def step(self, state, frame, *, annotations=None, infos=None, starts=None):
        if infos is None:
            raise ValueError("The symbolic oracle needs this frame's infos (info['symbolic']).")
        x = torch.stack([torch.as_tensor(i["symbolic"], dtype=torch.float32) for i in infos])
        return x.to(self.device), state


class ConstantFeaturizer(Featurizer):
    """One constant zero feature: with a head that sees no mission it is a bias-only model
    (the ``prior`` arm, the floor every arm must beat)."""

    episode_level = True

    def __init__(self, *, context: int = 16) -> None:
        super().__init__()
        self.out_dim, self.context = 1, int(context)

    def sequence(self, frames, valid=None, *, annotations=None, infos=None):
        return torch.zeros(*frames.shape[:2], 1, device=self.device)

    restarts_streams = True  # stateless

    def step(self, state, frame, *, annotations=None, infos=None, starts=None):
        return torch.zeros(frame.shape[0], 1, device=self.device), state


class ConcatFeaturizer(Featurizer):
    """Two featurizers side by side, e.g. frozen BYOG hidden states + a CNN trained on the
    actions (``byog-hidden+scratch``: does language add to pixels?)."""

    def __init__(self, frozen: Featurizer, trained: Featurizer) -> None:
        super().__init__()
        if frozen.context != trained.context:
            raise ValueError("Concatenated featurizers must share their context.")
        self.frozen, self.trained = frozen, trained
        self.out_dim, self.context = frozen.out_dim + trained.out_dim, frozen.context
        self.needs_annotations = frozen.needs_annotations or trained.needs_annotations
        self.needs_infos = frozen.needs_infos or trained.needs_infos
        self.restarts_streams = frozen.restarts_streams and trained.restarts_streams

    def sequence(self, frames, valid=None, *, annotations=None, infos=None):
        kw = {"annotations": annotations, "infos": infos}
        return torch.cat([episode_features(self.frozen, frames, valid, **kw),
                          episode_features(self.trained, frames, valid, **kw)], -1)

    episode_level = True

    def start(self, batch_size):
        return FeatureState(narration=(self.frozen.start(batch_size), self.trained.start(batch_size)))

    def step(self, state, frame, *, annotations=None, infos=None, starts=None):
        a, b = state.narration
        kw = {"annotations": annotations, "infos": infos, **({} if starts is None else {"starts": starts})}
        xa, a = self.frozen.step(a, frame, **kw)
        xb, b = self.trained.step(b, frame, **kw)
        return torch.cat([xa, xb], -1), FeatureState(narration=(a, b))

    def parts(self, train_encoder: bool):
        return (self.frozen, self.trained) if train_encoder else (self, None)


def episode_features(feat: Featurizer, frames: torch.Tensor, valid: torch.Tensor | None = None, *,
                     annotations: Annotations | None = None, infos: Infos | None = None) -> torch.Tensor:
    """Features of whole episodes [B, L, ...] -> [B, L, D]: episode-level featurizers read them
    whole, the others block by block (``context`` frames, restarting at each block start)."""
    if feat.episode_level:
        return feat.sequence(frames, valid, annotations=annotations, infos=infos)
    out = []
    for s in range(0, frames.shape[1], feat.context):
        sl = slice(s, s + feat.context)
        out.append(feat.sequence(frames[:, sl], None if valid is None else valid[:, sl],
                                 annotations=None if annotations is None else [a[sl] for a in annotations],
                                 infos=None if infos is None else [i[sl] for i in infos]))
    return torch.cat(out, 1)


def set_trainable(module: nn.Module, trainable: bool) -> nn.Module:
    """Freeze (eval mode, no grad) or unfreeze a featurizer's parameters."""
    for p in module.parameters():
        p.requires_grad_(trainable)
    module.train(trainable)
    return module


__all__ = ["AnnotationSource", "BYOGFeaturizer", "ConcatFeaturizer", "ConstantFeaturizer", "FeatureState",
           "Featurizer", "NarratorSource", "ObsFeaturizer", "Pool", "ShuffledSource", "SymbolicFeaturizer", "TextFeaturizer",
           "TextSource", "episode_features", "set_trainable", "slot_support", "text_features", "word_counts"]
