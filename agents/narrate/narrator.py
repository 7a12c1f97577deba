"""The one live narration API: :class:`Narrator` narrates each new frame of ``B`` streams.

It holds the incremental state of ``B`` synchronous streams (the encoder's KV cache, the frame
embeddings and tokens of the current context window, the predictor's cache for forecasts).
:class:`agents.narrate.narration.NarrationWrapper` (a gymnasium wrapper), ``BYOGAgent.start`` /
``narrate_step`` and ``experiments.features.BYOGFeaturizer`` are built on it. Live forecasts
are registered per predictor objective (:data:`FORECASTS`).

Why the sliding window *re-encodes* instead of trimming the cache
-----------------------------------------------------------------
The cache must stay bounded on arbitrarily long episodes. ``DynamicCache.crop`` only trims the
end, as does the project's ``KVCache``; slicing the oldest positions off the front instead
would be cheap but wrong in two ways:

1. The kept keys/values of layers >= 2 were computed while attending to the dropped frames, and
   the stream no longer starts with ``<bos>`` at position 0: the model was trained only on
   windows that start there (the "attention sink"), so a front-trimmed cache is a context it
   never saw.
2. Positions keep growing: rotary embeddings are relative in exact arithmetic, but position
   ids far beyond the training windows (hours of play at k tokens per frame) lose float32
   precision in the rotation angles and pass ``max_positions``.

So when the context holds ``window`` frames, the last ``keep`` frames (their frame embeddings
and the tokens already narrated for them) are re-encoded from position 0 in ONE teacher-forced
pass (``NarrationEncoder.prefill``); the next ``window - keep`` frames extend that cache one
frame at a time. The state is then exactly the one the model would have if narration had
started ``keep`` frames ago, the cache never exceeds ``window * k`` positions, and the
re-encoding costs one parallel pass every ``window - keep`` frames (amortised, see
``benchmarks/bench_narrate.py``). While an episode still fits the window, live narration is
identical to offline narration of the same frames.

Observation encoders step their per-stream state (``NarrationState.obs_state``, see
``ObsEncoder.step``): frame-delta encoders see, for each new frame, the previous frame, and the
units encoder its running mean, exactly as in an offline clip. A slide keeps the kept frames' embeddings as they are: the first kept frame keeps
its real delta to the frame before it, as the first frame of a training window has (training
windows carry the frame before them), so the re-encoded state is that of a training window.

The default context window is the checkpoint's training window (``loader.window``, recorded in
the checkpoint's metadata): a longer context than the model was trained on is a context it never
saw.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers.cache_utils import Cache

from agents.errors import NarrationError
from agents.model import monitors as M
from agents.model.lm import sample_tokens
from agents.model.slot_rule import narration_rule, word_shares
from agents.model.text import unslot
from byog_core.registry import Registry


@dataclass
class NarrationStep:
    """One step's narration of ``B`` streams.

    Attributes:
        ids: Long [B, k] the frame's narration slot.
        text: B strings (the slot's sentences joined by ``"; "``; ``""`` for an all-``<nil>`` slot).
        entropy: float [B] mean entropy (nats) of the slot's token distributions.
        forecast_ids: Long [B, N, k] the predictor's narration of the next N frames (N = 0: empty).
        forecast: B lists of N strings, one per forecast frame.
        hidden: float [B, k, D] the encoder's final hidden states at the frame's slot (what
            ``experiments.features.BYOGFeaturizer`` pools).
        cut: Long [B] word tokens the carry bound replaced with ``<nil>`` in this slot
            (:mod:`agents.model.slot_rule`; zeros without the cut).
        ill_formed: bool [B] the slot early exit wrote ``<nil>`` where the model would have
            written a word (exact for greedy narration; False without the early exit).
        gated: Long [B] sentence-first words the word gate replaced with ``<nil>`` in this
            slot (``word_share``; zeros without it).
        hushed: Long [B] sentences begun in this slot that the sentence gate left unsaid
            (``sentence_share``; zeros without it). With the gate, ``ids`` and ``text`` are the
            slot as said; the context keeps what the model chose.
        decoded: Long [B, k] the slot as decoded (what the context keeps; equal to ``ids``
            without the sentence gate) and
        shares: float [B, k] each decoded token's share of the probability of all words: what
            the sentence gate reads, so the slot can be said again at any ``sentence_share``
            (``SlotRule.say_shares``); both empty unless the narrator was built with ``shares``.
    """

    ids: torch.Tensor
    text: list[str]
    entropy: torch.Tensor
    forecast_ids: torch.Tensor
    forecast: list[list[str]]
    hidden: torch.Tensor
    cut: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    ill_formed: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.bool))
    gated: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    hushed: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    decoded: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    shares: torch.Tensor = field(default_factory=lambda: torch.zeros(0))


class Narrator:
    """Incremental narration of ``batch_size`` synchronous frame streams with a bounded context.

    The one live narration API: :class:`NarrationWrapper`, ``BYOGAgent.start`` /
    ``narrate_step`` and ``experiments.features.BYOGFeaturizer.step`` are built on it.

    Args:
        agent: A :class:`agents.model.BYOGAgent` (put in eval mode here).
        batch_size: Number of streams stepped together.
        window: Most frames in the context; the cache never exceeds ``window * k`` positions
            (None = the checkpoint's training window, see :func:`training_window`).
        keep: Frames re-encoded when the window is full (default ``window // 2``); must be in
            ``[1, window - 1]``.
        forecast: Future frames the predictor narrates each step (0 = none).
        greedy: Argmax narration (otherwise sampling at ``temperature``).
        temperature: Sampling temperature (ignored when greedy).
        top_k: Keep the k most likely tokens when sampling (None = all).
        seed: Seed of the sampling generator when :meth:`reset` gets none.
        decode: Decode each step's tokens to text (``NarrationStep.text``; False leaves it
            empty, for callers that only read ids or hidden states).
        cut: End a sentence that runs on past the training targets' carry bound
            (``SlotConfig.max_carry`` slots after the one it began in; :mod:`agents.model.slot_rule`).
        early_exit: After a slot's first ``<nil>`` write ``<nil>`` and, once every stream has
            ended its slot, fill the rest of the slot in one parallel pass.
        word_share: Say ``<nil>`` instead of a sentence's first word when that word holds less
            than this share of the probability of all words (no guessing *which* thing;
            :mod:`agents.model.slot_rule`, rule 3); None = off.
        sentence_share: Leave unsaid each sentence with a word (in the slot it began in) that
            holds less than this share of the words' probability (rule 4; decoding itself is
            unchanged); None = off.
        shares: Also return each step's decoded slot and its tokens' word shares
            (``NarrationStep.decoded`` / ``shares``: the sentence gate at any share can be
            applied after the fact, ``agents.narrate --sentence-share-sweep``).
    """

    def __init__(self, agent: Any, *, batch_size: int = 1, window: int | None = None,
                 keep: int | None = None, forecast: int = 0, greedy: bool = True,
                 temperature: float = 1.0, top_k: int | None = None, seed: int = 0,
                 decode: bool = True, cut: bool = True, early_exit: bool = True,
                 word_share: float | None = None, sentence_share: float | None = None,
                 shares: bool = False) -> None:
        window = training_window(agent) if window is None else window
        keep = window // 2 if keep is None else keep
        if batch_size < 1:
            raise NarrationError(f"batch_size must be >= 1 stream, got {batch_size}.")
        if window < 2:
            raise NarrationError(f"window must be >= 2 frames (so that a slide keeps one), got {window}.")
        if not 1 <= keep < window:
            raise NarrationError(f"keep must be in [1, window - 1] = [1, {window - 1}] frames, got {keep}.")
        if forecast < 0:
            raise NarrationError(f"forecast must be >= 0 frames, got {forecast}.")
        if not greedy and temperature <= 0:
            raise NarrationError(f"temperature must be > 0 when sampling, got {temperature}; "
                                 "pass greedy=True for argmax narration.")
        if top_k is not None and top_k < 1:
            raise NarrationError(f"top_k must be >= 1 or None, got {top_k}.")
        if word_share is not None and not 0.0 < word_share <= 1.0:
            raise NarrationError(f"word_share must be in (0, 1] or None (off), got {word_share}.")
        if sentence_share is not None and not 0.0 < sentence_share <= 1.0:
            raise NarrationError(f"sentence_share must be in (0, 1] or None (off), got "
                                 f"{sentence_share}.")
        enc = agent.encoder
        if forecast and agent.predictor is None:
            raise NarrationError("forecast needs the BYOG predictor, but this agent has none "
                                 "(a captioner, w_byog = 0); pass forecast=0.")
        max_pos = agent.cfg.lm.max_positions
        if window * enc.k > max_pos:
            raise NarrationError(
                f"window {window} frames x {enc.k} tokens = {window * enc.k} positions exceeds "
                f"the LM's max_positions {max_pos}; pass window <= {max_pos // enc.k}.")
        self.agent = agent.eval()
        self.enc = enc
        self.k = enc.k
        self.batch_size, self.window, self.keep, self.forecast = batch_size, window, keep, forecast
        self.greedy, self.temperature, self.top_k = greedy, temperature, top_k or 0
        self.decode, self.shares = decode, shares
        self.device = next(agent.parameters()).device
        self._seed = seed
        self.generator = torch.Generator(device=self.device)
        self.state = None
        self.reencodes = 0  # slides done since the last reset (for tests and benchmarks)
        self.rule = narration_rule(agent, cut=cut, early_exit=early_exit, word_share=word_share,
                                   sentence_share=sentence_share)
        self.track = None  # the rule's per-stream state and counters (agents.model.slot_rule)
        # the objective's live forecast, by name: an objective without one fails here
        self._forecaster = FORECASTS[agent.cfg.predictor.mode](self) if forecast else None

    # ------------------------------------------------------------------ state
    def reset(self, seed: int | None = None) -> None:
        """Clear the context; seed the sampling generator (``seed`` or the constructor's)."""
        self.generator.manual_seed(self._seed if seed is None else int(seed))
        self.state = self.enc.start(self.batch_size, self.device)
        self.track = None if self.rule is None else self.rule.start(self.batch_size, self.device)
        self.state.slot = self.track
        self._e: deque[torch.Tensor] = deque(maxlen=self.window)  # [B, D] per frame
        self._ids: deque[torch.Tensor] = deque(maxlen=self.window)  # [B, k] per frame
        self.reencodes = 0
        if self._forecaster is not None:
            self._forecaster.reset()

    @property
    def cache_length(self) -> int:
        """Token positions in the encoder's KV cache (0 before the first frame)."""
        return 0 if self.state is None else int(self.state.cache.get_seq_length())

    @property
    def context_frames(self) -> int:
        """Frames in the current context window."""
        return 0 if self.state is None else len(self._e)

    # ------------------------------------------------------------------ stepping
    @torch.no_grad()
    def step(self, frames: np.ndarray | torch.Tensor,
             embedding: torch.Tensor | None = None) -> NarrationStep:
        """Narrate one new frame per stream: frames uint8 [B, H, W, 3] -> :class:`NarrationStep`.

        ``embedding`` float [B, Dc]: the frame's dataset column, for an observation encoder
        that reads one (``needs_column``; a live env has none)."""
        if self.state is None:
            raise NarrationError("Narrator.step called before reset(); call reset() at the "
                                 "start of every episode.")
        x = (frames.to(self.device) if isinstance(frames, torch.Tensor)
             else torch.as_tensor(np.asarray(frames), device=self.device))
        if x.dtype != torch.uint8 or x.dim() != 4 or x.shape[0] != self.batch_size or x.shape[-1] != 3:
            raise NarrationError(
                f"Expected uint8 frames [{self.batch_size}, H, W, 3], got {x.dtype} "
                f"{tuple(x.shape)}; narrate RGB frames of a byog_env environment.")
        if self.enc.obs.needs_column and embedding is None:
            raise NarrationError(needs_column_message(self.enc.obs.needs_column))
        if len(self._e) == self.window:
            self._slide()
        e_t = self.enc.embed_frame(self.state, x, embedding)  # [B, D] (after state.last_frame)
        prev = self.state.prev  # [B] the token before this frame's slot
        before = self._slot_snapshot()
        ids, logits, self.state = self.enc.step_frame(
            self.state, e_t, greedy=self.greedy, temperature=self.temperature, top_k=self.top_k,
            generator=self.generator, rule=self.rule)  # [B, k], [B, k, V]
        self._e.append(e_t)
        self._ids.append(ids)  # the context keeps what the model chose
        f_ids = ids.new_zeros(self.batch_size, 0, self.k)
        if self._forecaster is not None:
            feats = self.agent.predictor.features(self.state.hidden, logits)  # [B, k, Dx]
            f_ids = self._forecaster(feats, prev, ids)
        ids, recorded = self._said(ids, logits)
        ent = M.position_entropy(logits).mean(-1)  # [B]
        tok = self.agent.tokenizer
        text = [_slot_text(s) for s in unslot(ids[:, None], tok)] if self.decode else []
        forecast = [[_slot_text([fr]) for fr in frames_] for frames_ in unslot(f_ids, tok)] \
            if self.forecast and self.decode else [[] for _ in range(self.batch_size)]
        return NarrationStep(ids=ids, text=text, entropy=ent, forecast_ids=f_ids, forecast=forecast,
                             hidden=self.state.hidden, **self._slot_step(before), **recorded)

    def _said(self, ids: torch.Tensor, logits: torch.Tensor,
              ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The slot as said (the sentence gate, rule 4 of :mod:`agents.model.slot_rule`): ids
        Long [B, k] decoded from logits [B, k, V] -> (Long [B, k], with ``shares`` the
        ``decoded``/``shares`` fields of :class:`NarrationStep`); ``ids`` without the gate."""
        if not self.shares:
            return (ids if self.rule is None else self.rule.say(self.track, ids, logits)), {}
        share = word_shares(ids, logits, self.agent.special.nil)  # [B, k]
        said = ids if self.rule is None else self.rule.say_shares(self.track, ids, share)
        return said, {"decoded": ids, "shares": share}

    def _slot_snapshot(self) -> tuple[torch.Tensor, ...] | None:
        """The cut, gated and hushed counts per stream before a step (None without a slot rule)."""
        return None if self.track is None else (self.track.cut.clone(), self.track.gated.clone(),
                                                self.track.hushed.clone())

    def _slot_step(self, before: tuple[torch.Tensor, ...] | None) -> dict[str, torch.Tensor]:
        """This step's cut tokens, ill-formed flags, gated words and hushed sentences per stream
        (``before``: :meth:`_slot_snapshot` taken before the step)."""
        B = self.batch_size
        if before is None:  # no slot rule
            zero = torch.zeros(B, dtype=torch.long)
            return {"cut": zero, "ill_formed": zero.bool(), "gated": zero.clone(),
                    "hushed": zero.clone()}
        return {"cut": (self.track.cut - before[0]).cpu(), "ill_formed": self.track.ill.clone().cpu(),
                "gated": (self.track.gated - before[1]).cpu(),
                "hushed": (self.track.hushed - before[2]).cpu()}

    def slot_counts(self) -> dict[str, int]:
        """Totals since the last reset, over all streams: ``cut_tokens`` (word tokens the carry
        bound replaced), ``ill_formed_slots`` (slots where the early exit wrote ``<nil>`` over a
        word; exact for greedy narration), ``early_exit_frames`` (frames whose slot ended
        in one parallel pass) and ``gated_words`` (sentence-first words the word gate replaced
        with ``<nil>``), ``hushed_sentences`` (sentences the sentence gate left unsaid)."""
        if self.track is None:
            return {"cut_tokens": 0, "ill_formed_slots": 0, "early_exit_frames": 0, "gated_words": 0,
                    "hushed_sentences": 0}
        return {**self.track.totals(), "early_exit_frames": int(self.track.exits.max())}

    @torch.no_grad()
    def force(self, ids: torch.Tensor) -> torch.Tensor:
        """Teacher-force the last frame's narration slot to ``ids`` long [B, k] (a given
        sentence instead of the narrator's own words) and re-encode the context with it in ONE
        pass, as a slide does; the following steps continue from that state.

        Returns:
            float [B, k, D] the final hidden states of the forced slot.
        """
        if self.state is None or not self._e:
            raise NarrationError("Narrator.force needs a narrated frame first; call step().")
        ids = torch.as_tensor(ids, device=self.device).long()
        if tuple(ids.shape) != (self.batch_size, self.k):
            raise NarrationError(f"force expects ids [{self.batch_size}, {self.k}], got "
                                 f"{tuple(ids.shape)}.")
        self._ids[-1] = ids
        e, all_ids = torch.stack(list(self._e), 1), torch.stack(list(self._ids), 1)
        last_frame, obs_state = self.state.last_frame, self.state.obs_state
        h, z, self.state = self.enc.prefill(all_ids, e)  # [B, R*k, D], [B, R*k, V]
        self.state.last_frame, self.state.obs_state = last_frame, obs_state
        if self.track is not None:  # the same track goes on (its counts), from the forced slot
            self.state.slot = self.track
            self.track.force_slot(ids, self.rule)
        if self._forecaster is not None:
            self._forecaster.refill(h, z, all_ids)
        return self.state.hidden

    def _slide(self) -> None:
        """Re-encode the last ``keep`` frames from position 0 (see the module docstring)."""
        for _ in range(self.window - self.keep):
            self._e.popleft()
            self._ids.popleft()
        # the kept embeddings stay as computed: the first kept frame keeps its real delta, as
        # the first frame of a training window (which carries the frame before it) has
        e = torch.stack(list(self._e), 1)  # [B, R, D]
        ids = torch.stack(list(self._ids), 1)  # [B, R, k]
        last_frame, obs_state = self.state.last_frame, self.state.obs_state
        h, z, self.state = self.enc.prefill(ids, e)  # [B, R*k, D], [B, R*k, V]
        # the next frame's predecessor, the obs encoder's stream state (units' running mean)
        # and the slot rule's (an open sentence's age carries over the slide)
        self.state.last_frame, self.state.obs_state = last_frame, obs_state
        self.state.slot = self.track
        if self._forecaster is not None:
            self._forecaster.refill(h, z, ids)
        self.reencodes += 1

    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Next tokens Long [B] from logits z [B, V] with the narrator's sampling settings."""
        return sample_tokens(z, greedy=self.greedy, temperature=self.temperature, top_k=self.top_k,
                             banned=self.enc.banned, generator=self.generator,
                             nil_rule=self.enc.nil_rule)


# --------------------------------------------------------------------------- live forecasts


FORECASTS: Registry = Registry(
    "live forecast", error=NarrationError,
    hint="Register a forecaster for this predictor objective with "
         "agents.narrate.narrator.FORECASTS.register(name, cls), or pass forecast=0.")
"""Live forecasters by predictor objective name: ``cls(narrator)`` with ``reset()``,
``refill(h, z, ids)`` after a slide and ``__call__(feats, prev, ids) -> Long [B, N, k]``."""


@FORECASTS.register("prefix")
class PrefixForecast:
    """Prefix mode: the predictor's cache holds the context with m = 1; each step feeds the
    new frame's states, rolls N*k tokens with m = 0 and crops the rollout back off."""

    def __init__(self, narrator: Narrator) -> None:
        self.n = narrator
        self.pred = narrator.agent.predictor
        self.cache: Cache | None = None
        self.pos = 0

    def reset(self) -> None:
        self.cache = self.pred.tlm.new_cache()
        self.pos = 0

    def refill(self, h: torch.Tensor, z: torch.Tensor, ids: torch.Tensor) -> None:
        """Re-feed the re-encoded context: h/z [B, R*k, ...], ids Long [B, R, k]."""
        B, R, k = ids.shape
        flat = ids.reshape(B, R * k)
        prev = torch.cat([flat.new_full((B, 1), self.n.enc.bos_id), flat[:, :-1]], 1)
        self.reset()
        self._feed(self.pred.features(h, z), prev)

    def _feed(self, feats: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        """Extend the cache: feats [B, L, Dx] (m = 1), prev Long [B, L]."""
        inp = self.pred.prefix_inputs(feats, prev)  # the training input with m = 1
        h = self.pred.tlm.hidden(inp, cache=self.cache, start=self.pos)
        self.pos += prev.shape[1]
        return h

    def __call__(self, feats: torch.Tensor, prev: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        B, k = ids.shape
        prevs = torch.cat([prev[:, None], ids[:, :-1]], 1)  # [B, k] teacher-forced encoder tokens
        self._feed(feats, prevs)
        tlm = self.pred.tlm
        base = pos = self.pos
        out = []
        tok = ids[:, -1]
        for _ in range(self.n.forecast * k):
            h = tlm.hidden(tlm.embed(tok)[:, None], cache=self.cache, start=pos)  # m = 0
            pos += 1
            tok = self.n.sample(tlm.logits(h[:, 0]))
            out.append(tok)
        # forget the rollout (transformers 5: crop(-n) removes the last n positions)
        self.cache.crop(-(pos - base))
        return torch.stack(out, 1).view(B, self.n.forecast, k)


@FORECASTS.register("parallel")
class ParallelForecast:
    """Parallel mode: condition on the frame's last state, roll N*k tokens (no context cache)."""

    def __init__(self, narrator: Narrator) -> None:
        self.n = narrator
        self.pred = narrator.agent.predictor

    def reset(self) -> None:
        pass

    def refill(self, h: torch.Tensor, z: torch.Tensor, ids: torch.Tensor) -> None:
        pass

    def __call__(self, feats: torch.Tensor, prev: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        x_i, last = feats[:, -1], ids[:, -1]  # [B, Dx], [B]
        tlm = self.pred.tlm
        B, k = ids.shape
        cache = tlm.new_cache()
        inp = self.pred.parallel_inputs(x_i, last[:, None])  # [B, 1, D]: input j = 0
        out = []
        for j in range(self.n.forecast * k):
            h = tlm.hidden(inp, cache=cache, start=j)
            tok = self.n.sample(tlm.logits(h[:, 0]))
            out.append(tok)
            inp = tlm.embed(tok)[:, None]
        return torch.stack(out, 1).view(B, self.n.forecast, k)


# the trainer's default window (agents.training.config.LoaderConfig.window), for agents whose
# metadata does not record theirs (e.g. built in memory or saved with save_pretrained)
DEFAULT_TRAINING_WINDOW = 16


def training_window(agent: Any) -> int:
    """The window (frames) the agent was trained on: its ``ModelConfig.window`` (saved with the
    weights); for a checkpoint saved before that field existed, ``loader.window`` of the training
    config in ``agent.metadata`` (set by the trainer's ``load_agent``); else the trainer's default."""
    window = getattr(getattr(agent, "cfg", None), "window", None)
    if window:
        return int(window)
    config = (getattr(agent, "metadata", None) or {}).get("config") or {}
    window = (config.get("loader") or {}).get("window")
    return int(window) if window else DEFAULT_TRAINING_WINDOW


def needs_column_message(column: str) -> str:
    return (f"This agent's observation encoder reads the dataset's {column!r} column, which a "
            "live env does not provide; narrate live with an agent trained on frames (obs kind "
            "cnn, vqvae or units), or pass the column's values as step(frames, embedding=...).")


def _slot_text(sentences_per_frame: list[list[str]]) -> str:
    return "; ".join(sentences_per_frame[0])


__all__ = ["DEFAULT_TRAINING_WINDOW", "FORECASTS", "NarrationStep", "Narrator", "ParallelForecast",
           "PrefixForecast", "training_window"]
