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

from agents.model import BYOGAgent
from agents.narrator import Narrator
from agents.obs import ObsEncoder

Pool = Literal["last", "mean"]


@dataclass
class FeatureState:
    """Live state of a featurizer: the narration state and the frames seen in this block."""

    narration: Any = None
    in_block: int = 0
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

    def sequence(self, frames: torch.Tensor, valid: torch.Tensor | None = None, *,
                 annotations: Annotations | None = None, infos: Infos | None = None) -> torch.Tensor:
        """frames uint8 [B, T, H, W, 3] (a block or episode start at t=0) -> float [B, T, D]."""
        raise NotImplementedError

    def start(self, batch_size: int) -> FeatureState:
        """A fresh live state for ``batch_size`` streams."""
        return FeatureState()

    def step(self, state: FeatureState, frame: torch.Tensor, *, annotations: list[list[str]] | None = None,
             infos: list[dict[str, Any]] | None = None) -> tuple[torch.Tensor, FeatureState]:
        """One new frame per stream: uint8 [B, H, W, 3] -> (float [B, D], new state)."""
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
            ids, _ = enc.sample(e.detach(), greedy=True)  # [B, T, k]
        h, _ = enc(ids, e)  # [B, T*k, D]
        return self._pool(h.view(B, T, enc.k, -1))

    def start(self, batch_size: int) -> FeatureState:
        # the one live narration API; its window never fills (reset at every block start)
        narrator = Narrator(self.agent, batch_size=batch_size, window=max(2, self.context + 1),
                            greedy=True, decode=False)
        return FeatureState(narration=narrator)

    def step(self, state: FeatureState, frame: torch.Tensor, *, annotations: list[list[str]] | None = None,
             infos: list[dict[str, Any]] | None = None) -> tuple[torch.Tensor, FeatureState]:
        narrator = state.narration
        if narrator.state is None or state.in_block >= self.context:
            narrator.reset()  # a block start: fresh cache, no previous frame (zero delta)
            state = FeatureState(narration=narrator, in_block=0)
        out = narrator.step(frame)  # out.hidden = the frame's k hidden states [B, k, D]
        return self._pool(out.hidden), FeatureState(narration=narrator, in_block=state.in_block + 1,
                                                    last_frame=frame)


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

    def step(self, state: FeatureState, frame: torch.Tensor, *, annotations: list[list[str]] | None = None,
             infos: list[dict[str, Any]] | None = None) -> tuple[torch.Tensor, FeatureState]:
        if state.in_block >= self.context or state.obs_state is None:  # a block starts afresh,
            state = FeatureState(obs_state=self.obs.init_state(frame.shape[0]))  # as offline
        feats, obs_state = self.obs.step(state.obs_state, frame)  # the encoder's stream hook
        return feats, FeatureState(in_block=state.in_block + 1, last_frame=frame, obs_state=obs_state)


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


class TextSource:
    """Where a text featurizer's words come from (the annotations, or a narrator)."""

    needs_annotations = False
    module: nn.Module | None = None

    def offline(self, frames: torch.Tensor, valid: torch.Tensor, annotations: Annotations | None,
                context: int) -> Annotations:
        """Per-frame sentences of whole episodes: B lists of T sentence lists."""
        raise NotImplementedError

    def start(self, batch_size: int) -> Any:
        return None

    def step(self, state: Any, frame: torch.Tensor, annotations: list[list[str]] | None,
             context: int) -> tuple[list[list[str]], Any]:
        """This frame's sentences per stream (B lists) and the new state."""
        raise NotImplementedError


class AnnotationSource(TextSource):
    """The ground-truth annotations (offline: the dataset's; live: ``info["annotations"]``)."""

    needs_annotations = True

    def offline(self, frames, valid, annotations, context):
        if annotations is None:
            raise ValueError("The annotation text source needs the per-frame annotations.")
        return annotations

    def step(self, state, frame, annotations, context):
        if annotations is None:
            raise ValueError("The annotation text source needs this frame's annotations.")
        return annotations, state


class NarratorSource(TextSource):
    """A narrator's greedy words: the agent narrates blocks of ``context`` frames (its state
    restarts at every block start, as the hidden-state featurizer's does); each frame's slot is
    read back on its own with :func:`agents.text.unslot` (token counts of the slot)."""

    def __init__(self, agent: Any) -> None:
        self.agent = agent.eval()
        self.module = agent

    def _words(self, ids: torch.Tensor) -> Annotations:
        from agents.text import unslot

        return unslot(ids, self.agent.tokenizer)

    def offline(self, frames, valid, annotations, context):
        B, T = frames.shape[:2]
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
        return [[w if bool(valid[b, t]) else [] for t, w in enumerate(ep)] for b, ep in enumerate(out)]

    def start(self, batch_size: int) -> Any:
        return {"state": None, "in_block": 0}

    def step(self, state, frame, annotations, context):
        if state["state"] is None or state["in_block"] >= context:
            # a block start, as offline; the window never fills within a block (no slide)
            state = {"state": self.agent.start(frame.shape[0], window=max(2, context + 1), decode=False),
                     "in_block": 0}
        ids, nar = self.agent.narrate_step(state["state"], frame)  # [B, k]
        return [w[0] for w in self._words(ids[:, None])], {"state": nar, "in_block": state["in_block"] + 1}


class ShuffledSource(TextSource):
    """Another source's words, shuffled across episodes (the negative control): episode b gets
    the words of episode b+1 of its batch (rolled by one, cut or padded to b's length); live,
    env b gets env b+1's words (with one env: none)."""

    def __init__(self, inner: TextSource) -> None:
        self.inner = inner
        self.module, self.needs_annotations = inner.module, inner.needs_annotations

    def offline(self, frames, valid, annotations, context):
        words = self.inner.offline(frames, valid, annotations, context)
        B, T = valid.shape
        return [[words[(b + 1) % B][t] if B > 1 and bool(valid[b, t]) and bool(valid[(b + 1) % B, t]) else []
                 for t in range(T)] for b in range(B)]

    def start(self, batch_size: int) -> Any:
        return self.inner.start(batch_size)

    def step(self, state, frame, annotations, context):
        words, state = self.inner.step(state, frame, annotations, context)
        B = len(words)
        return [words[(b + 1) % B] if B > 1 else [] for b in range(B)], state


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
        self.needs_annotations = source.needs_annotations
        self.out_dim = 2 * self.buckets

    def texts(self, frames: torch.Tensor, valid: torch.Tensor | None = None,
              annotations: Annotations | None = None) -> Annotations:
        """The source's per-frame sentences of whole episodes."""
        if valid is None:
            valid = torch.ones(frames.shape[:2], dtype=torch.bool)
        return self.source.offline(frames, valid, annotations, self.context)

    def sequence(self, frames, valid=None, *, annotations=None, infos=None):
        slots = self.texts(frames, valid, annotations)
        return torch.stack([text_features(ep, buckets=self.buckets, decay=self.decay)[0] for ep in slots])

    def start(self, batch_size: int) -> FeatureState:
        return FeatureState(narration={"source": self.source.start(batch_size),
                                       "bag": [None] * batch_size, "last": [None] * batch_size})

    def step(self, state, frame, *, annotations=None, infos=None):
        st = state.narration
        words, src = self.source.step(st["source"], frame, annotations, self.context)
        rows, bags, lasts = [], [], []
        for b, w in enumerate(words):
            x, bag, last = text_features([w], buckets=self.buckets, decay=self.decay,
                                         bag=st["bag"][b], last=st["last"][b])
            rows.append(x[0])
            bags.append(bag)
            lasts.append(last)
        return torch.stack(rows), FeatureState(narration={"source": src, "bag": bags, "last": lasts},
                                               in_block=state.in_block + 1)


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
        out = torch.zeros(B, T, self.out_dim)
        for b, ep in enumerate(infos):
            for t, inf in enumerate(ep[:T]):
                if inf and "symbolic" in inf:
                    out[b, t] = torch.as_tensor(inf["symbolic"], dtype=torch.float32)
        return out

    def step(self, state, frame, *, annotations=None, infos=None):
        if infos is None:
            raise ValueError("The symbolic oracle needs this frame's infos (info['symbolic']).")
        x = torch.stack([torch.as_tensor(i["symbolic"], dtype=torch.float32) for i in infos])
        return x, state


class ConstantFeaturizer(Featurizer):
    """One constant zero feature: with a head that sees no mission it is a bias-only model
    (the ``prior`` arm, the floor every arm must beat)."""

    episode_level = True

    def __init__(self, *, context: int = 16) -> None:
        super().__init__()
        self.out_dim, self.context = 1, int(context)

    def sequence(self, frames, valid=None, *, annotations=None, infos=None):
        return torch.zeros(*frames.shape[:2], 1)

    def step(self, state, frame, *, annotations=None, infos=None):
        return torch.zeros(frame.shape[0], 1), state


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

    def sequence(self, frames, valid=None, *, annotations=None, infos=None):
        kw = {"annotations": annotations, "infos": infos}
        return torch.cat([episode_features(self.frozen, frames, valid, **kw),
                          episode_features(self.trained, frames, valid, **kw)], -1)

    episode_level = True

    def start(self, batch_size):
        return FeatureState(narration=(self.frozen.start(batch_size), self.trained.start(batch_size)))

    def step(self, state, frame, *, annotations=None, infos=None):
        a, b = state.narration
        xa, a = self.frozen.step(a, frame, annotations=annotations, infos=infos)
        xb, b = self.trained.step(b, frame, annotations=annotations, infos=infos)
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
           "TextSource", "episode_features", "set_trainable", "text_features", "word_counts"]
